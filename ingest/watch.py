"""`kb ingest --watch`: re-index a folder whenever its files change.

File events come from `watchfiles` (inotify and its equivalents, Rust `notify`
underneath), debounced: a burst of saves (an editor's write-rename, a `git
checkout`) becomes one re-index. Re-indexes run one at a time in this loop, and
the data directory's ingest lock keeps them from overlapping with any other
`kb ingest` or `POST /v1/ingest` (the watcher waits for it). Each re-index is the
ordinary incremental ingest, so only what changed is re-embedded.

No single event or error ends the watch: a re-index that fails is reported and the
next burst tries again, and when the watcher itself fails (watchfiles raises on a
file name that is not valid UTF-8) it is reported, the folder is re-indexed (the
burst's events are lost with the watcher) and watching starts again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.pipeline import run_ingest
from kb.core.errors import KBError
from kb.core.models import IngestSummary
from kb.core.settings import Settings
from kb.search.embedding import Embedder

if TYPE_CHECKING:
    from watchfiles import Change

logger = logging.getLogger("ingest.watch")

DEBOUNCE_S = 1.0  # quiet time after the last event before re-indexing
LOCK_WAIT_S = 600.0  # how long a re-index waits for another ingest to finish
SHOWN_NAMES = 3  # file names a summary line shows per kind before "and N more"
RESTART_S = 1.0  # pause before watching again after the watcher failed...
RESTART_MAX_S = 30.0  # ...doubling with each failure up to this


@dataclass(frozen=True, slots=True)
class Reindex:
    """One re-index the watcher ran: the file events that caused it and its outcome."""

    events: int
    summary: IngestSummary | None
    error: str | None = None
    watcher_error: str | None = None  # the watcher failed and was restarted before this


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
    if reindex.watcher_error:
        events = f"the file watcher failed ({reindex.watcher_error}) and restarted"
    summary = reindex.summary
    if summary is None:
        return f"{stamp} re-index after {events} failed: {reindex.error}"
    return (
        f"{stamp} re-indexed after {events}: {describe_changes(summary)}; "
        f"{summary.chunks_embedded} chunks embedded in {summary.seconds:.1f}s; corpus "
        f"{summary.corpus_version}: {summary.documents} documents"
    )


def watch_corpus(
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
    Changes inside the data directory are ignored; see the module doc for failures."""
    stop = stop or threading.Event()
    failures = 0
    while not stop.is_set():
        try:
            _watch_once(settings, root, on_reindex, embedder, debounce_s, stop)
            return
        except Exception as exc:  # watchfiles' Rust errors, inotify limits, a vanished root
            why = f"{type(exc).__name__}: {exc}"
            logger.warning("the file watcher failed (%s); watching again", why)
            failures += 1
            if stop.wait(min(RESTART_MAX_S, RESTART_S * 2 ** min(failures - 1, 5))):
                return
            on_reindex(_reindex(settings, root, embedder, 0, watcher_error=why))


def _watch_once(
    settings: Settings,
    root: Path,
    on_reindex: Callable[[Reindex], None],
    embedder: Embedder | None,
    debounce_s: float,
    stop: threading.Event,
) -> None:
    from watchfiles import DefaultFilter
    from watchfiles import watch as watch_files

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
        on_reindex(_reindex(settings, root, embedder, len(changes)))


def _reindex(
    settings: Settings,
    root: Path,
    embedder: Embedder | None,
    events: int,
    watcher_error: str | None = None,
) -> Reindex:
    """One re-index; any failure becomes the Reindex's error (the watch goes on)."""
    try:
        summary = run_ingest(settings, root, embedder=embedder, wait_seconds=LOCK_WAIT_S)
    except KBError as exc:
        return Reindex(events, None, f"{exc.kind}: {exc.message}", watcher_error)
    except Exception as exc:  # unexpected: reported, and the next burst tries again
        logger.exception("a re-index failed")
        return Reindex(events, None, f"{type(exc).__name__}: {exc}", watcher_error)
    return Reindex(events, summary, None, watcher_error)
