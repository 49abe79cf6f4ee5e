"""Hybrid retrieval: vector hits from Chroma and BM25 hits, fused by reciprocal rank.

Vector hits are filtered to the chunks of the corpus version being read, so
vectors an ingest has added but not committed (or is deleting) are never seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kb.corpus import CorpusVersion
from kb.embedding import Embedder
from kb.models import Chunk
from kb.store import VectorStore

RRF_K = 60  # the constant of Cormack et al. (2009); damps the weight of the top ranks


@dataclass(frozen=True, slots=True)
class Hit:
    chunk: Chunk
    score: float
    vector_rank: int | None
    lexical_rank: int | None
    similarity: float | None


class Retriever:
    """Finds the chunks of one corpus version that best match a question."""

    def __init__(self, corpus: CorpusVersion, store: VectorStore, embedder: Embedder) -> None:
        self.corpus = corpus
        self.store = store
        self.embedder = embedder

    def vector_search(self, vector: np.ndarray, n: int) -> list[tuple[int, float]]:
        """Rows (in corpus.chunks) and similarities of the `n` nearest chunks of this version."""
        rows = self.corpus.chunk_rows
        n = min(n, len(rows))
        fetch = n
        while True:
            raw = self.store.query(vector, fetch)
            hits = [(rows[cid], sim) for cid, sim in raw if cid in rows]
            # Vectors of other versions can crowd the top; fetch deeper until enough are ours.
            if len(hits) >= n or len(raw) < fetch:
                return hits[:n]
            fetch *= 4

    def search(self, question: str, k: int, depth: int | None = None) -> list[Hit]:
        """The best `k` chunks by reciprocal-rank fusion of vector and BM25 rankings."""
        depth = depth or max(4 * k, 50)
        vector = self.embedder.embed_one(question)
        vector_hits = self.vector_search(vector, depth)
        lexical_hits = self.corpus.lexical.search(question, depth)
        fused: dict[int, float] = {}
        vector_rank: dict[int, int] = {}
        similarity: dict[int, float] = {}
        for rank, (row, sim) in enumerate(vector_hits, start=1):
            fused[row] = fused.get(row, 0.0) + 1.0 / (RRF_K + rank)
            vector_rank[row] = rank
            similarity[row] = sim
        lexical_rank: dict[int, int] = {}
        for rank, (row, _) in enumerate(lexical_hits, start=1):
            fused[row] = fused.get(row, 0.0) + 1.0 / (RRF_K + rank)
            lexical_rank[row] = rank
        best = sorted(fused, key=lambda row: (-fused[row], row))[:k]
        chunks = self.corpus.chunks
        return [
            Hit(
                chunk=chunks[row],
                score=fused[row],
                vector_rank=vector_rank.get(row),
                lexical_rank=lexical_rank.get(row),
                similarity=similarity.get(row),
            )
            for row in best
        ]
