"""Hybrid retrieval: vector hits from Chroma and BM25 hits, fused by reciprocal rank,
with a second hop only for the questions that need one.

Vector hits are filtered to the chunks of the corpus version being read, so
vectors an ingest has added but not committed (or is deleting) are never seen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kb.core.models import Chunk
from kb.core.text import content_words
from kb.search.embedding import Embedder
from kb.store.corpus import CorpusVersion
from kb.store.vectors import VectorStore

RRF_K = 60  # the constant of Cormack et al. (2009); damps the weight of the top ranks
HOPS = ("auto", "1", "2")
# `auto` skips the second hop when the best first-round passage holds at least this
# share of the question's content words: the evidence is already concentrated there.
SELF_CONTAINED_COVERAGE = 0.9


Ranking = list[tuple[int, float]]  # (row in corpus.chunks, score), best first
Fusion = Callable[[list[Ranking]], Ranking]


@dataclass(frozen=True, slots=True)
class FirstRound:
    """What the first search says about a question, for free (no model call)."""

    agree: bool  # the vector and BM25 rankings put the same document first
    coverage: float  # share of the question's content words in the best passage

    def needs_second_hop(self) -> bool:
        """A second hop is seeded by the best first-round passage, so it pays only when
        that passage is trustworthy (both rankings agree on its document) and leaves
        part of the question unanswered (a bridge to another document). When the
        rankings disagree the seed is a guess, and following it buries the right
        document; when the passage covers the whole question there is nothing to
        bridge to."""
        return self.agree and self.coverage < SELF_CONTAINED_COVERAGE


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
        self,
        corpus: CorpusVersion,
        store: VectorStore,
        embedder: Embedder,
        hops: int | str = "auto",
        fuse: Fusion | None = None,
    ) -> None:
        self.corpus = corpus
        self.fuse = fuse or reciprocal_rank_fusion  # benches try others (bench/fusion_sweep.py)
        self.store = store
        self.embedder = embedder
        self.hops = str(hops)
        if self.hops not in HOPS:
            raise ValueError(f"hops must be one of {', '.join(HOPS)}, got {hops!r}")

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

    def search(
        self, question: str, k: int, depth: int | None = None, hops: str | None = None
    ) -> list[Hit]:
        """The best `k` chunks by reciprocal-rank fusion of vector and BM25 rankings.

        A second hop seeds another search with the best first-round passage
        (pseudo-relevance feedback): BM25 for the question plus that passage's text,
        and vector search for the sum of the question's and the passage's stored
        vectors (no second model call); all four rankings are fused. It finds the
        "bridge" document a multi-hop question needs but does not name. `hops`
        ("auto", "1", "2"; the retriever's setting when None) says when to take it:
        "auto" asks `FirstRound.needs_second_hop`."""
        hops = self.hops if hops is None else hops
        depth = depth or max(4 * k, 50)
        question_vector = self.embedder.embed_one(question)
        rankings = [
            self.vector_search(question_vector, depth),
            self.corpus.lexical.search(question, depth),
        ]
        fused = self.fuse(rankings)
        if fused and (
            hops == "2"
            or (hops == "auto" and self.first_round(question, rankings, fused).needs_second_hop())
        ):
            rankings += self._second_hop(question, question_vector, fused[0][0], depth)
            fused = self.fuse(rankings)
        return self._hits(rankings, fused[:k])

    def first_round(
        self,
        question: str,
        rankings: list[list[tuple[int, float]]],
        fused: list[tuple[int, float]],
    ) -> FirstRound:
        """The free signals of the first round (see `FirstRound`)."""
        chunks = self.corpus.chunks
        vector, lexical = rankings[0], rankings[1]
        agree = bool(vector and lexical) and (
            chunks[vector[0][0]].doc_id == chunks[lexical[0][0]].doc_id
        )
        words = content_words(question)
        best = chunks[fused[0][0]]
        held = words & content_words(f"{best.title} {best.text}")
        return FirstRound(agree=agree, coverage=len(held) / len(words) if words else 1.0)

    def _second_hop(
        self, question: str, question_vector: np.ndarray, seed_row: int, depth: int
    ) -> list[list[tuple[int, float]]]:
        seed = self.corpus.chunks[seed_row]
        rankings = []
        seed_vector = self.store.vector_of(seed.chunk_id)
        if seed_vector is not None:
            seeded = question_vector + seed_vector
            rankings.append(self.vector_search(seeded / np.linalg.norm(seeded), depth))
        rankings.append(self.corpus.lexical.search(f"{question} {seed.title} {seed.text}", depth))
        return rankings

    def _hits(
        self, rankings: list[list[tuple[int, float]]], fused: list[tuple[int, float]]
    ) -> list[Hit]:
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
            for row, score in fused
        ]


def reciprocal_rank_fusion(rankings: list[list[tuple[int, float]]]) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion: rows with their fused score, best first."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (row, _) in enumerate(ranking, start=1):
            fused[row] = fused.get(row, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))
