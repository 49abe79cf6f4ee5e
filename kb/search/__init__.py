"""Finding the passages for a question.

    embedding.py    the bundled sentence embedder (torch, or its ONNX export)
    onnx_export.py  the ONNX export, made once per machine, offline
    retrieval.py    hybrid retrieval: vector and BM25 hits, fused
    passages.py     retrieved chunks as numbered, cited passages

May import `kb.core` and `kb.store`.
"""

from kb.search.embedding import (
    DIMENSIONS,
    Embedder,
    Purpose,
    available_cores,
    embedding_threads,
    model_path,
    set_embedding_threads,
    shared_embedder,
    threads_for,
)
from kb.search.passages import build_passages, passages_from_hits
from kb.search.retrieval import Fusion, Retriever, reciprocal_rank_fusion

__all__ = [
    "DIMENSIONS",
    "Embedder",
    "Fusion",
    "Purpose",
    "Retriever",
    "available_cores",
    "build_passages",
    "embedding_threads",
    "model_path",
    "passages_from_hits",
    "reciprocal_rank_fusion",
    "set_embedding_threads",
    "shared_embedder",
    "threads_for",
]
