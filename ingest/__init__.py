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

from ingest.chunking import chunk_document, chunk_embedding_text
from ingest.loaders import load_corpus
from ingest.pipeline import run_ingest, vector_key
from ingest.progress import IngestProgress
from ingest.watch import Reindex, describe, name_some, watch_corpus

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
