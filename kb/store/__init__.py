"""What one ingest leaves on disk, and reading it back safely.

    corpus.py        the versioned layout of a data directory and its one writer
    snapshot.py      the byte-stable long-context snapshot of a version
    vectors.py       the vector store: embedded Chroma or a Chroma server
    vector_index.py  checks of Chroma's HNSW files before anything loads them
    lexical.py       the BM25 index kept beside the vectors
    check.py         `kb check`: verify a data directory without changing it

May import `kb.core` only.
"""

from kb.store.check import check_data_dir
from kb.store.corpus import CorpusVersion, Layout
from kb.store.snapshot import SnapshotEntry, body_tokens, build_snapshot
from kb.store.vectors import VectorStore

__all__ = [
    "CorpusVersion",
    "Layout",
    "SnapshotEntry",
    "VectorStore",
    "body_tokens",
    "build_snapshot",
    "check_data_dir",
]
