"""Which parts of a corpus an evaluation set is written from: chunks sampled across
documents, positions and sizes, and the words that single a sentence out.

Stratified so a generated set does not pile up on the longest document or on the
opening paragraphs every document shares: each round visits every document (in a
seeded order) and takes from it the chunk whose stratum, its third of the document
(opening, middle, closing) and its size tercile over the corpus, has been drawn
least so far. Deterministic for a seed.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from kb.core.models import Chunk
from kb.core.text import STOPWORDS

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'-]*[A-Za-z0-9]|[0-9]+")
POSITIONS = ("opening", "middle", "closing")
SIZES = ("small", "medium", "large")


@dataclass(frozen=True, slots=True)
class SampledChunk:
    """A chunk drawn for a question, with the stratum it was drawn from."""

    chunk: Chunk
    position: str
    size: str


def stratified_sample(chunks: Sequence[Chunk], count: int, seed: int) -> list[SampledChunk]:
    """Up to `count` distinct chunks, spread over documents first, then over position
    and size strata within the documents (see the module docstring)."""
    strata = _strata(chunks)
    rng = random.Random(seed)
    by_doc: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        by_doc.setdefault(chunk.doc_id, []).append(chunk)
    doc_ids = sorted(by_doc)
    rng.shuffle(doc_ids)
    drawn: Counter[tuple[str, str]] = Counter()
    picked: list[SampledChunk] = []
    while len(picked) < count and any(by_doc.values()):
        for doc_id in doc_ids:
            left = by_doc[doc_id]
            if not left or len(picked) == count:
                continue
            rng.shuffle(left)
            chunk = min(left, key=lambda c: drawn[strata[c.chunk_id]])
            left.remove(chunk)
            drawn[strata[chunk.chunk_id]] += 1
            picked.append(SampledChunk(chunk, *strata[chunk.chunk_id]))
    return picked


def _strata(chunks: Sequence[Chunk]) -> dict[str, tuple[str, str]]:
    """Each chunk's (position in its document, size tercile over the corpus)."""
    per_doc = Counter(chunk.doc_id for chunk in chunks)
    sizes = sorted(chunk.tokens for chunk in chunks)
    low = sizes[len(sizes) // 3] if sizes else 0
    high = sizes[2 * len(sizes) // 3] if sizes else 0
    strata = {}
    for chunk in chunks:
        third = min(2, 3 * chunk.index // max(1, per_doc[chunk.doc_id]))
        size = 0 if chunk.tokens < low else 1 if chunk.tokens < high else 2
        strata[chunk.chunk_id] = (POSITIONS[third], SIZES[size])
    return strata


def words(text: str) -> list[str]:
    """The lower-cased words of `text` that can single it out (no stop words, no
    one-letter words)."""
    return [
        w for w in (m.lower() for m in _WORD.findall(text)) if w not in STOPWORDS and len(w) > 1
    ]


class TermWeights:
    """Inverse document frequency of each word over the corpus's chunks: how well a
    word singles out the few chunks that hold it."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self.total = len(chunks)
        self.frequency: Counter[str] = Counter()
        for chunk in chunks:
            self.frequency.update(set(words(chunk.text)))

    def idf(self, word: str) -> float:
        return math.log((1 + self.total) / (1 + self.frequency[word])) + 1.0

    def discriminative(
        self, text: str, count: int, leave_out: frozenset[str] = frozenset()
    ) -> list[str]:
        """The `count` words of `text` with the highest tf-idf, in the order they
        appear (ties by first appearance), the way a person remembers a page; words in
        `leave_out` (the document's title) are not used."""
        found = [w for w in words(text) if w not in leave_out]
        tf = Counter(found)
        ranked = sorted(tf, key=lambda w: (-tf[w] * self.idf(w), found.index(w)))[:count]
        return sorted(ranked, key=found.index)

    def shared_term(self, a: str, b: str) -> str | None:
        """The rarest word two texts share (an entity or name, usually), if any word
        they share is rare enough to link them: held by at most a tenth of the chunks."""
        common = set(words(a)) & set(words(b))
        rare = [w for w in common if self.frequency[w] <= max(2, self.total // 10)]
        return min(rare, key=lambda w: (self.frequency[w], w)) if rare else None
