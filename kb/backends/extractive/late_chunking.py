"""The reader's unit vectors from the chunks' own forward passes ("late chunking").

An ingest embeds every chunk; the extractive reader also needs a vector per reading
unit (sentence, list item, table row, heading: `sentence_index`). Embedding each
unit as a text of its own cost four extra model calls per chunk (hotpotqa-100: 4,391
units beside 1,134 chunks). Here a unit's vector is the normalised mean of the
contextual token embeddings of its span in the chunk's forward pass, so the units
cost a few array sums. A unit no embedded chunk holds whole (a chunk whose vector was
reused, or one the model's 256-token limit cut) is left to `index_builder.build_index`,
which embeds it alone. A pooled vector carries its chunk's context and ranks sentences
less sharply than the unit's own; the reader makes up for it per question
(`rescoring`).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kb.backends.extractive.sentence_index import hash64, unit_embedding_text
from kb.core.text import Unit, reading_units
from kb.search.embedding import Embedder


@dataclass(frozen=True, slots=True)
class Passage:
    """A slice [start, end) of a document, embedded as `text`, in which the slice
    begins at character `offset` (after a title line, say)."""

    doc_id: str
    title: str
    doc_text: str
    start: int
    end: int
    text: str
    offset: int


class DocumentUnits:
    """Each document's reading units, read once, and their text hashes."""

    def __init__(self) -> None:
        self.units: dict[str, tuple[list[Unit], list[int]]] = {}

    def within(self, passage: Passage) -> list[tuple[Unit, int]]:
        """The units lying inside the passage, with their hashes in the sentence index."""
        known = self.units.get(passage.doc_id)
        if known is None:
            units = reading_units(passage.doc_text)
            known = self.units[passage.doc_id] = (units, [u.start for u in units])
        units, starts = known
        out = []
        for unit in units[bisect.bisect_left(starts, passage.start) :]:
            if unit.start >= passage.end:
                break
            if unit.end <= passage.end:
                text = unit_embedding_text(passage.title, unit, passage.doc_text)
                out.append((unit, hash64(text)))
        return out


def embed_passages(
    passages: Sequence[Passage], embedder: Embedder, units: DocumentUnits | None = None
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """The passages' vectors, and from the same forward passes a vector for each
    reading unit a passage holds whole, keyed by the unit's text hash (see
    `sentence_index.unit_embedding_text`). A unit in two passages (chunk overlap) takes
    the first one that saw it whole."""
    units = units or DocumentUnits()
    inside = [units.within(p) for p in passages]
    spans = [
        [(p.offset + u.start - p.start, p.offset + u.end - p.start) for u, _ in held]
        for p, held in zip(passages, inside, strict=True)
    ]
    # The title line is pooled into each unit: the separate text began with it too, and
    # on the handbook it gave 74.1% reader accuracy where the unit's tokens alone gave 69.0%.
    heads = [p.offset for p in passages]
    vectors, pooled = embedder.embed_with_spans([p.text for p in passages], spans, heads)
    found: dict[int, np.ndarray] = {}
    for held, rows in zip(inside, pooled, strict=True):
        for (_, unit_hash), row in zip(held, rows, strict=True):
            if unit_hash not in found and row.any():
                found[unit_hash] = row
    return vectors, found
