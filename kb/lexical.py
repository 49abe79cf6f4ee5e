"""The BM25 index kept beside the vector store, for hybrid retrieval."""

from __future__ import annotations

from pathlib import Path

import numpy as np

STOPWORDS = "english"


def _tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s

    tokens: list[list[str]] = bm25s.tokenize(
        texts, stopwords=STOPWORDS, return_ids=False, show_progress=False
    )
    return tokens


class LexicalIndex:
    """BM25 over the chunks of one corpus version; rows follow the chunk order."""

    def __init__(self, retriever: object, size: int) -> None:
        self._retriever = retriever
        self.size = size

    @classmethod
    def build(cls, texts: list[str]) -> LexicalIndex:
        import bm25s

        retriever = bm25s.BM25()
        if texts:
            retriever.index(_tokenize(texts), show_progress=False)
        return cls(retriever, len(texts))

    def save(self, folder: Path) -> None:
        if self.size:
            self._retriever.save(str(folder), show_progress=False)  # type: ignore[attr-defined]

    @classmethod
    def load(cls, folder: Path, size: int) -> LexicalIndex:
        import bm25s

        if size == 0 or not folder.exists():
            return cls.build([])
        return cls(bm25s.BM25.load(str(folder), mmap=False), size)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Row numbers and BM25 scores of the best `k` chunks (score > 0), best first."""
        k = min(k, self.size)
        tokens = _tokenize([query])
        if k <= 0 or not tokens[0]:
            return []
        rows, scores = self._retriever.retrieve(  # type: ignore[attr-defined]
            tokens, k=k, show_progress=False, n_threads=1
        )
        return [
            (int(row), float(score))
            for row, score in zip(np.asarray(rows)[0], np.asarray(scores)[0], strict=True)
            if score > 0
        ]
