"""PDF and DOCX extraction in a worker process, so that the time bound is a hard one.

The extraction budget (`ingest.extract_budget`) is checked between pages and
paragraphs; a single call into pypdf or python-docx can still run long. Run in a
worker process (spawned: the ingest's own process holds model threads that must not
be forked), such a call is stopped when the file's time bound plus `HARD_SLACK_S`
has passed: the worker is terminated, the file skipped with the reason, and the next
file gets a new worker. The ingest lock is never held by one file for longer.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
from collections.abc import Callable
from typing import Any

from ingest.corpus_files import FileSkipped
from ingest.extract_budget import ExtractBudget

HARD_SLACK_S = 10.0  # past the file's own bound: a worker's start and imports, a slow step


class ExtractWorker:
    """One worker process, started on first use and reused for the files that follow."""

    def __init__(self, slack_s: float = HARD_SLACK_S) -> None:
        self.slack_s = slack_s
        self._pool: multiprocessing.pool.Pool | None = None

    def run(self, func: Callable[..., Any], raw: bytes, *args: Any, budget: ExtractBudget) -> Any:
        """`func(raw, *args, budget)` in the worker; FileSkipped if it overruns."""
        if self._pool is None:
            self._pool = multiprocessing.get_context("spawn").Pool(1)
        job = self._pool.apply_async(func, (raw, *args, budget))
        try:
            return job.get(timeout=budget.seconds + self.slack_s)
        except multiprocessing.TimeoutError:
            self.close()
            raise FileSkipped(
                f"text extraction took more than {budget.seconds + self.slack_s:.0f} s; "
                "the worker reading it was stopped"
            ) from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def __enter__(self) -> ExtractWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
