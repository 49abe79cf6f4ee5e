"""What the extractive reader reads: its context's units (`Sentence`) and where each
sits (`Reading`). Shared by the reader and the signals it weighs (evidence, one hop)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kb.backends.extractive.sentence_index import SentenceIndex


@dataclass(frozen=True, slots=True)
class Sentence:
    """A unit as read from the context, with offsets in its own document."""

    doc_id: str
    title: str
    source: str
    start: int
    end: int
    text: str


@dataclass(slots=True)
class Reading:
    """What the reader was given to read: an index, the rows of it that the context
    holds, and where each document's text sits in the context."""

    index: SentenceIndex
    rows: np.ndarray
    # doc_id -> pieces of context (base, text): character i of the document is
    # text[i - base] (the snapshot holds whole documents; a passage a slice of one).
    texts: dict[str, list[tuple[int, str]]]
    titles: dict[str, tuple[str, str]]  # doc_id -> (title, source)
    # doc_id -> the document's own text where the reader has it whole (the snapshot's
    # documents; with passages, the corpus's), for a unit's table and opening.
    documents: dict[str, str] = field(default_factory=dict)

    def document(self, doc_id: str, start: int, end: int) -> tuple[int, str]:
        """(base, text) holding document characters [start, end): character i is
        text[i - base]; the whole document when the reader has it."""
        whole = self.documents.get(doc_id)
        if whole is not None:
            return 0, whole
        for base, text in self.texts[doc_id]:
            if base <= start and end - base <= len(text):
                return base, text
        raise LookupError(f"unit {start}-{end} of {doc_id} is not in the context")

    def sentence(self, row: int) -> Sentence:
        doc_id = self.index.doc_ids[int(self.index.doc[row])]
        start, end = int(self.index.start[row]), int(self.index.end[row])
        title, source = self.titles[doc_id]
        for base, text in self.texts[doc_id]:
            if base <= start and end - base <= len(text):
                return Sentence(doc_id, title, source, start, end, text[start - base : end - base])
        raise LookupError(f"unit {start}-{end} of {doc_id} is not in the context")
