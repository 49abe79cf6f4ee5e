"""The BM25 index kept beside the vector store, for hybrid retrieval.

Stored as term counts per chunk (a CSR matrix: chunk rows, term columns), not as
precomputed scores, so a new corpus version is assembled from the previous one:
rows of unchanged chunks are copied, only new chunks are tokenized. Document
frequencies, lengths and IDF are derived when a version is loaded. Scoring is
BM25 as Lucene computes it (k1 1.5, b 0.75, the bm25s defaults and tokenizer), so
rankings match a whole rebuild with bm25s.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

STOPWORDS = "english"
K1 = 1.5
B = 0.75


def _tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s

    tokens: list[list[str]] = bm25s.tokenize(
        texts, stopwords=STOPWORDS, return_ids=False, show_progress=False
    )
    return tokens


class LexicalIndex:
    """BM25 over the chunks of one corpus version; rows follow the chunk order."""

    def __init__(
        self, terms: list[str], indptr: np.ndarray, indices: np.ndarray, counts: np.ndarray
    ) -> None:
        self.terms = terms
        self.indptr = indptr
        self.indices = indices
        self.counts = counts
        self.size = len(indptr) - 1

    @classmethod
    def build(cls, texts: list[str]) -> LexicalIndex:
        return cls.assemble(list(texts), None)

    @classmethod
    def assemble(cls, rows: Sequence[int | str], previous: LexicalIndex | None) -> LexicalIndex:
        """A new index whose row i is row `rows[i]` of `previous` (an int) or the
        tokenized text `rows[i]` (a str): work in proportion to the new text."""
        terms = list(previous.terms) if previous else []
        column = {term: col for col, term in enumerate(terms)}
        fresh = iter(_tokenize([r for r in rows if isinstance(r, str)]) if rows else [])
        lengths = np.zeros(len(rows), dtype=np.int64)
        pieces: list[tuple[np.ndarray, np.ndarray]] = []
        i = 0
        while i < len(rows):
            row = rows[i]
            if isinstance(row, str):
                counted = Counter(column.setdefault(t, len(column)) for t in next(fresh))
                pieces.append(
                    (
                        np.fromiter(counted.keys(), dtype=np.int32, count=len(counted)),
                        np.fromiter(counted.values(), dtype=np.float32, count=len(counted)),
                    )
                )
                lengths[i] = len(counted)
                i += 1
                continue
            assert previous is not None
            run = 1  # a run of consecutive previous rows is copied in one slice
            while i + run < len(rows) and rows[i + run] == row + run:
                run += 1
            a, b = previous.indptr[row], previous.indptr[row + run]
            pieces.append((previous.indices[a:b], previous.counts[a:b]))
            lengths[i : i + run] = np.diff(previous.indptr[row : row + run + 1])
            i += run
        terms += list(column)[len(terms) :]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        indices = np.concatenate([p[0] for p in pieces]) if pieces else np.zeros(0, np.int32)
        counts = np.concatenate([p[1] for p in pieces]) if pieces else np.zeros(0, np.float32)
        return cls(terms, indptr, indices.astype(np.int32), counts.astype(np.float32))

    def save(self, path: Path) -> None:
        with open(path, "wb") as fh:
            np.savez(
                fh,
                indptr=self.indptr,
                indices=self.indices,
                counts=self.counts,
                terms=np.frombuffer("\n".join(self.terms).encode(), dtype=np.uint8),
            )

    @classmethod
    def load(cls, path: Path) -> LexicalIndex:
        if not path.exists():
            return cls.build([])
        with np.load(path) as data:
            text = data["terms"].tobytes().decode()
            return cls(
                text.split("\n") if text else [],
                data["indptr"],
                data["indices"],
                data["counts"],
            )

    # -- scoring -----------------------------------------------------------------

    @cached_property
    def _column(self) -> dict[str, int]:
        return {term: col for col, term in enumerate(self.terms)}

    @cached_property
    def _row_of_entry(self) -> np.ndarray:
        return np.repeat(np.arange(self.size, dtype=np.int32), np.diff(self.indptr))

    @cached_property
    def _idf(self) -> np.ndarray:
        df = np.bincount(self.indices, minlength=len(self.terms)).astype(np.float64)
        return np.log(1 + (self.size - df + 0.5) / (df + 0.5))

    @cached_property
    def _length_norm(self) -> np.ndarray:
        """k1 * (1 - b + b * length / average length) per row (length in tokens)."""
        lengths = np.bincount(self._row_of_entry, weights=self.counts, minlength=self.size)
        average = float(lengths.mean()) if self.size else 1.0
        return K1 * ((1 - B) + B * lengths / (average or 1.0))

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every row for `query` (a repeated query word counts again)."""
        wanted = Counter(self._column[t] for t in _tokenize([query])[0] if t in self._column)
        if not wanted or not self.size:
            return np.zeros(self.size, dtype=np.float64)
        weight = np.zeros(len(self.terms), dtype=np.float64)
        for col, times in wanted.items():
            weight[col] = times * self._idf[col]
        hit = np.flatnonzero(weight[self.indices])
        rows = self._row_of_entry[hit]
        tf = self.counts[hit].astype(np.float64)
        part = weight[self.indices[hit]] * tf / (self._length_norm[rows] + tf)
        return np.bincount(rows, weights=part, minlength=self.size)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Row numbers and BM25 scores of the best `k` chunks (score > 0), best first."""
        k = min(k, self.size)
        if k <= 0:
            return []
        scores = self.scores(query)
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else range(len(scores))
        order = sorted((int(row) for row in top), key=lambda row: (-scores[row], row))
        return [(row, float(scores[row])) for row in order if scores[row] > 0]
