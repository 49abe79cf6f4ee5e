"""Loading files, chunking, embedding and the incremental re-index.

    loaders.py     files to documents (text, Markdown, HTML, PDF, docx), bounded
    chunking.py    token-aware chunks with exact spans; what the model sees of one
    pipeline.py    run_ingest: the ingest as named phases, crash-safe
    derive.py      the derive phase: per-version indexes readers need (the reader's)
    repair.py      what is committed is verified and repaired before it is trusted
    watch.py       `kb ingest --watch`: re-index on change
    progress.py    progress lines for the CLI

May import `kb`'s packages below the question path (`kb.core`, `kb.store`,
`kb.search`, `kb.backends`); `api/` builds on it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the public names, for type checkers; at run time they load on first use
    from ingest.chunking import chunk_document, chunk_embedding_text
    from ingest.loaders import load_corpus
    from ingest.pipeline import run_ingest, vector_key
    from ingest.progress import IngestProgress
    from ingest.watch import Reindex, describe, name_some, watch_corpus

# Each public name and the module it comes from, loaded on first use: a spawned
# extraction worker imports `ingest.extract_worker` without the pipeline.
_FROM = {
    "ingest.chunking": ("chunk_document", "chunk_embedding_text"),
    "ingest.loaders": ("load_corpus",),
    "ingest.pipeline": ("run_ingest", "vector_key"),
    "ingest.progress": ("IngestProgress",),
    "ingest.watch": ("Reindex", "describe", "name_some", "watch_corpus"),
}
_MODULE_OF = {name: module for module, names in _FROM.items() for name in names}

if not TYPE_CHECKING:  # hidden from type checkers, which then catch a misspelled name

    def __getattr__(name: str) -> Any:
        if name not in _MODULE_OF:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(_MODULE_OF[name]), name)
        globals()[name] = value  # the next use is a plain lookup
        return value


__all__ = [
    "IngestProgress",
    "Reindex",
    "chunk_document",
    "chunk_embedding_text",
    "describe",
    "load_corpus",
    "name_some",
    "run_ingest",
    "vector_key",
    "watch_corpus",
]
