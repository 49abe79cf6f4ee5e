"""Server-sent events over kb's blocking generators.

The generator is advanced on a worker thread (bounded by a limiter), and its first
item is pulled before the response starts, so a bad question still gets a proper
4xx instead of a 200 stream that carries an error.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")
_END: Any = object()

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse(data: Any, event: str | None = None) -> str:
    """One SSE frame; `data` is JSON-encoded unless it is already a string."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n"


async def _next(iterator: Iterator[T], limiter: anyio.CapacityLimiter | None) -> T:
    item: T = await anyio.to_thread.run_sync(next, iterator, _END, limiter=limiter)
    return item


async def prefetched(
    iterator: Iterator[T], limiter: anyio.CapacityLimiter | None
) -> AsyncIterator[T]:
    """Pull the first item now (raising what it raises), and return an async iterator
    over all items that closes `iterator` when done or abandoned."""
    first = await _next(iterator, limiter)

    async def items() -> AsyncIterator[T]:
        try:
            item = first
            while item is not _END:
                yield item
                item = await _next(iterator, limiter)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    return items()
