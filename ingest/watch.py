"""`kb ingest --watch`: re-index a folder whenever its files change.

File events come from `watchfiles` (inotify and its equivalents, Rust `notify`
underneath), debounced: a burst of saves (an editor's write-rename, a `git
checkout`) becomes one re-index. Re-indexes run one at a time in this loop, and
the data directory's ingest lock keeps them from overlapping with any other
`kb ingest` or `POST /v1/ingest` (the watcher waits for it). Each re-index is the
ordinary incremental ingest, so only what changed is re-embedded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kb.embedding import Embedder
from kb.errors import KBError
from kb.models import IngestSummary
from kb.settings import Settings

if TYPE_CHECKING:
    from watchfiles import Change

DEBOUNCE_S = 1.0  # quiet time after the last event before re-indexing
LOCK_WAIT_S = 600.0  # how long a re-index waits for another ingest to finish
SHOWN_NAMES = 3  # file names a summary line shows per kind before "and N more"


@dataclass(frozen=True, slots=True)
class Reindex:
    """One re-index the watcher ran: the file events that caused it and its outcome."""

    events: int
    summary: IngestSummary | None
    error: str | None = None


def name_some(names: list[str], shown: int = SHOWN_NAMES) -> str:
    """`a.md, b.md, c.md and 4 more`: the first few names, then a count."""
    ordered = sorted(names)
    text = ", ".join(ordered[:shown])
    if len(ordered) > shown:
        text += f" and {len(ordered) - shown:,} more"
    return text


def describe_changes(summary: IngestSummary) -> str:
    """`changed a.md; added b.md, c.md; removed d.md`, or `no document changed`."""
    parts = [
        f"{kind} {name_some(ids)}"
        for kind, ids in (
            ("changed", summary.changed_ids),
            ("added", summary.added_ids),
            ("removed", summary.removed_ids),
        )
        if ids
    ]
    return "; ".join(parts) if parts else "no document changed"


def describe(reindex: Reindex) -> str:
    """The line `kb ingest --watch` prints for one re-index."""
    stamp = time.strftime("%H:%M:%S")
    events = f"{reindex.events} file event{'s' if reindex.events != 1 else ''}"
    summary = reindex.summary
    if summary is None:
        return f"{stamp} re-index after {events} failed: {reindex.error}"
    return (
        f"{stamp} re-indexed after {events}: {describe_changes(summary)}; "
        f"{summary.chunks_embedded} chunks embedded in {summary.seconds:.1f}s; corpus "
        f"{summary.corpus_version}: {summary.documents} documents"
    )


def watch(
    settings: Settings,
    root: Path,
    on_reindex: Callable[[Reindex], None],
    *,
    embedder: Embedder | None = None,
    debounce_s: float = DEBOUNCE_S,
    stop: threading.Event | None = None,
) -> None:
    """Re-index `root` after each debounced burst of file changes under it, calling
    `on_reindex` after each, until `stop` is set (or the process is interrupted).
    Changes inside the data directory are ignored."""
    from watchfiles import DefaultFilter
    from watchfiles import watch as watch_files

    from ingest.pipeline import run_ingest

    data_dir = settings.data_dir.resolve()

    class CorpusFilter(DefaultFilter):
        def __call__(self, change: Change, path: str) -> bool:
            return super().__call__(change, path) and not Path(path).resolve().is_relative_to(
                data_dir
            )

    for changes in watch_files(
        root,
        watch_filter=CorpusFilter(),
        debounce=int(debounce_s * 1000),
        stop_event=stop,
        rust_timeout=500,
        yield_on_timeout=False,
    ):
        try:
            summary = run_ingest(settings, root, embedder=embedder, wait_seconds=LOCK_WAIT_S)
        except KBError as exc:
            on_reindex(Reindex(len(changes), None, f"{exc.kind}: {exc.message}"))
            continue
        on_reindex(Reindex(len(changes), summary))
