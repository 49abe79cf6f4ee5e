"""The bounds of an MCP request over HTTP, checked before the MCP SDK reads it.

The SDK matches a resource URI against the document template and logs names and
URIs whole: a 950 KB URI blocked the server for 7.5 s and a 500 KB tool name for
3.5 s. The body is read (at most `MCP_BODY_BYTES`), parsed once, and each
JSON-RPC message's method, name and URI are held to a length; the tools' own
arguments (questions, queries, history) are checked by the tools.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from starlette.types import Message, Receive

MCP_BODY_BYTES = 256_000
MCP_NAME_CHARS = 128  # a method, tool or prompt name
MCP_URI_CHARS = 2_048  # a resource URI (a document id is at most 512 characters)


async def read_bounded(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it passes `limit` bytes."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            return None
        parts.append(body)
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands out `body` once, then defers to the real one."""
    pending: Message | None = {"type": "http.request", "body": body, "more_body": False}

    async def again() -> Message:
        nonlocal pending
        if pending is not None:
            message, pending = pending, None
            return message
        return await receive()

    return again


def request_problem(body: bytes) -> str | None:
    """What is over its bound in a JSON-RPC body (one message or a batch), or None.
    A body that is not JSON is left to the SDK, which answers a parse error."""
    try:
        parsed = json.loads(body) if body else None
    except ValueError as exc:
        if "integer string conversion" in str(exc):
            return (
                f"The body holds an integer with more than {sys.get_int_max_str_digits():,} "
                "digits: send numbers as small JSON integers."
            )
        return None
    except RecursionError:
        return None
    messages = parsed if isinstance(parsed, list) else [parsed]
    for message in messages:
        if isinstance(message, dict) and (problem := _message_problem(message)):
            return problem
    return None


def _message_problem(message: dict[str, Any]) -> str | None:
    params = message.get("params")
    params = params if isinstance(params, dict) else {}
    for field, value, limit in (
        ("method", message.get("method"), MCP_NAME_CHARS),
        ("params.name", params.get("name"), MCP_NAME_CHARS),
        ("params.uri", params.get("uri"), MCP_URI_CHARS),
    ):
        if isinstance(value, str) and len(value) > limit:
            return (
                f"{field} has {len(value):,} characters; at most {limit:,} are allowed. "
                "Use a name from tools/list or a URI from resources/list."
            )
    return None
