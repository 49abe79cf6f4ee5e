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

    def __init__(
        self, corpus: CorpusVersion, store: VectorStore, embedder: Embedder, hops: int = 2
    ) -> None:
        self.corpus = corpus
        self.store = store
        self.embedder = embedder
        self.hops = hops

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
        """The best `k` chunks by reciprocal-rank fusion of vector and BM25 rankings.

        With two hops the best first-round passage seeds a second search
        (pseudo-relevance feedback): BM25 for the question plus that passage's text,
        and vector search for the sum of the question's and the passage's stored
        vectors (no second model call). All four rankings are fused. It finds the
        "bridge" document a multi-hop question needs but does not name."""
        depth = depth or max(4 * k, 50)
        question_vector = self.embedder.embed_one(question)
        rankings = [
            self.vector_search(question_vector, depth),
            self.corpus.lexical.search(question, depth),
        ]
        fused = _fuse(rankings)
        if self.hops >= 2 and fused:
            top = self.corpus.chunks[fused[0][0]]
            top_vector = self.store.vector_of(top.chunk_id)
            if top_vector is not None:
                seeded = question_vector + top_vector
                rankings.append(self.vector_search(seeded / np.linalg.norm(seeded), depth))
            rankings.append(self.corpus.lexical.search(f"{question} {top.title} {top.text}", depth))
            fused = _fuse(rankings)
        similarity = dict(rankings[0])
        vector_rank = {row: rank for rank, (row, _) in enumerate(rankings[0], start=1)}
        lexical_rank = {row: rank for rank, (row, _) in enumerate(rankings[1], start=1)}
        chunks = self.corpus.chunks
        return [
            Hit(
                chunk=chunks[row],
                score=score,
                vector_rank=vector_rank.get(row),
                lexical_rank=lexical_rank.get(row),
                similarity=similarity.get(row),
            )
            for row, score in fused[:k]
        ]


def _fuse(rankings: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion: rows with their fused score, best first."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (row, _) in enumerate(ranking, start=1):
            fused[row] = fused.get(row, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))
