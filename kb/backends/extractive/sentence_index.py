"""The extractive reader's index of a corpus version: every reading unit (sentence,
list item, table row, heading) of every document, with its vector and its words.

It is built at ingest time, before the version is committed, so no question pays
for it; and incrementally: a document whose title and text the previous version
indexed (under any name) has its rows copied as one block, without being read
again, and in an edited document a unit whose text (title and section context
included) was embedded before keeps its vector: an unchanged, renamed or moved
document embeds nothing and an edited one only its new sentences.

    DATA_DIR/cache/sentences/<version>/
      vectors.npy    float16 unit vectors, one row per unit (memory-mapped on read)
      units.npz      per unit: document row, span, kind, text hash, whether its vector
                     is the unit's own encode or pooled from its chunk's forward pass
                     (`own`); the units' words as hashes (CSR), and their document
                     frequencies; per document: the hash of its title and text

Only the committed version and the one before it are kept (`prune`). Building it,
incrementally, is `index_builder.py`'s.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np

from kb.core.text import ANSWER_KINDS, Unit, UnitKind
from kb.search.embedding import DIMENSIONS, MODEL_NAME

# Part of every unit's hash: a new reading-unit rule or model re-embeds everything.
UNITS_VERSION = f"{MODEL_NAME}/units-v4"
KINDS: tuple[UnitKind, ...] = ("sentence", "item", "row", "heading", "question", "rule")
EMBED_STEP = 512  # units per embedding call (and per progress report)

Progress = Callable[[int, int], None]
COLUMNS = ("doc", "start", "end", "kind", "text_hash", "context", "own")


def hash64(text: str) -> int:
    """A stable 64-bit hash (Python's own `hash` changes between processes)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def unit_embedding_text(title: str, unit: Unit, text: str) -> str:
    """What the model sees for a unit of `text`: the title and section give it its
    subject."""
    return embedding_text(title, unit.context, text[unit.start : unit.end])


def embedding_text(title: str, context: str, body: str) -> str:
    """What the model sees for a unit whose own text is `body` under `context`."""
    return f"{title}: {context}: {body}" if context else f"{title}: {body}"


def word_hashes(words: set[str], cache: dict[str, int]) -> list[int]:
    out = []
    for word in words:
        value = cache.get(word)
        if value is None:
            value = cache[word] = hash64(word)
        out.append(value)
    return out


class TextDocument(Protocol):
    """What the index needs of a document; `kb.core.models.Document` fits."""

    @property
    def doc_id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def text(self) -> str: ...


@dataclass(frozen=True, slots=True)
class DocumentText:
    doc_id: str
    title: str
    text: str


class SentenceIndex:
    """The units of one corpus version: vectors, spans, kinds and words (as hashes)."""

    def __init__(self, arrays: dict[str, np.ndarray], vectors: np.ndarray) -> None:
        self.doc_ids: list[str] = [str(d) for d in arrays["doc_ids"]]
        self.doc: np.ndarray = arrays["doc"]
        self.start: np.ndarray = arrays["start"]
        self.end: np.ndarray = arrays["end"]
        self.kind: np.ndarray = arrays["kind"]
        self.text_hash: np.ndarray = arrays["text_hash"]
        # Per document, the hash of its title and text (0: an index written before
        # documents were hashed, whose rows are then reused unit by unit).
        self.doc_hash: np.ndarray = arrays.get("doc_hash", np.zeros(len(self.doc_ids), np.uint64))
        # Per unit: its vector is its own encode (False: pooled from its chunk's forward
        # pass, `late_chunking`; the reader re-scores those it shortlists, `rescoring`).
        # An index written before the column holds own vectors, unless it was built with
        # the unreleased opt-in `KB_READER_VECTORS=pooled` of 2026-12-07 (then delete
        # DATA_DIR/cache/sentences and ingest again).
        self.own: np.ndarray = arrays.get("own", np.ones(len(self.doc), dtype=bool))
        self.word_ptr: np.ndarray = arrays["word_ptr"]
        self.words: np.ndarray = arrays["words"]
        self.df_words: np.ndarray = arrays["df_words"]
        self.df_counts: np.ndarray = arrays["df_counts"]
        self.vectors = vectors  # float16, possibly memory-mapped
        self.context_names: list[str] = [str(c) for c in arrays["context_names"]]
        self.context: np.ndarray = arrays["context"]  # row -> index in context_names

    def __len__(self) -> int:
        return len(self.doc)

    def column(self, name: str) -> np.ndarray:
        """One per-unit column by name (see `COLUMNS`)."""
        array: np.ndarray = getattr(self, name)
        return array

    def context_of(self, row: int) -> str:
        """The section heading (and header row or list lead-in) a unit sits under."""
        return self.context_names[int(self.context[row])]

    # -- reading --------------------------------------------------------------------

    @cached_property
    def doc_rows(self) -> dict[str, tuple[int, int]]:
        """Each document's first unit row and one past its last (units are grouped)."""
        bounds = np.searchsorted(self.doc, np.arange(len(self.doc_ids) + 1))
        return {d: (int(bounds[i]), int(bounds[i + 1])) for i, d in enumerate(self.doc_ids)}

    @cached_property
    def answerable(self) -> np.ndarray:
        """Rows whose kind can make an answer (not headings, questions or borders)."""
        allowed = [KINDS.index(k) for k in ANSWER_KINDS]
        return np.isin(self.kind, allowed)

    @cached_property
    def dense(self) -> np.ndarray:
        """All vectors as float32, for scoring every unit (the long-context path)."""
        return np.asarray(self.vectors, dtype=np.float32)

    def rows_within(self, doc_id: str, start: int, end: int) -> np.ndarray:
        """Rows of the units of `doc_id` that lie inside [start, end) of its text."""
        lo, hi = self.doc_rows.get(doc_id, (0, 0))
        rows = np.arange(lo, hi)
        inside = (self.start[lo:hi] >= start) & (self.end[lo:hi] <= end)
        return rows[inside]

    def idf(self, words: Sequence[int]) -> np.ndarray:
        """BM25-style inverse document frequency over units, for the given words."""
        keys = np.asarray(words, dtype=np.uint64)
        df = np.zeros(len(keys), dtype=np.float64)
        if len(self.df_words):
            at = np.minimum(np.searchsorted(self.df_words, keys), len(self.df_words) - 1)
            df = np.where(self.df_words[at] == keys, self.df_counts[at], 0).astype(np.float64)
        n = len(self)
        return np.log(1 + (n - df + 0.5) / (df + 0.5))

    def docs_holding(self, word: int) -> np.ndarray:
        """The document rows (`doc`) whose units hold the word hash `word`."""
        at = np.flatnonzero(self.words == np.uint64(word))
        units = np.searchsorted(self.word_ptr, at, side="right") - 1
        return np.unique(self.doc[units])

    def overlap(self, rows: np.ndarray, weights: dict[int, float]) -> np.ndarray:
        """Per row, the summed weight of the question words its unit holds."""
        if not weights or len(rows) == 0:
            return np.zeros(len(rows), dtype=np.float32)
        keys = np.fromiter(weights, dtype=np.uint64, count=len(weights))
        values = np.fromiter(weights.values(), dtype=np.float64, count=len(weights))
        order = np.argsort(keys)
        keys, values = keys[order], values[order]
        starts, ends = self.word_ptr[rows], self.word_ptr[rows + 1]
        lengths = ends - starts
        picked = np.repeat(ends - lengths.cumsum(), lengths) + np.arange(lengths.sum())
        words = self.words[picked]
        at = np.minimum(np.searchsorted(keys, words), len(keys) - 1)
        hit = np.where(keys[at] == words, values[at], 0.0)
        owner = np.repeat(np.arange(len(rows)), lengths)
        return np.bincount(owner, weights=hit, minlength=len(rows)).astype(np.float32)

    # -- on disk --------------------------------------------------------------------

    def save(self, folder: Path) -> None:
        """Write the index to `folder` atomically (a staging folder, then a rename)."""
        staging = folder.with_name(f".{folder.name}.staging")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        np.save(staging / "vectors.npy", np.asarray(self.vectors, dtype=np.float16))
        np.savez(
            staging / "units.npz",
            doc_ids=np.array(self.doc_ids, dtype=str),
            context_names=np.array(self.context_names, dtype=str),
            context=self.context,
            doc=self.doc,
            start=self.start,
            end=self.end,
            kind=self.kind,
            text_hash=self.text_hash,
            doc_hash=self.doc_hash,
            own=self.own,
            word_ptr=self.word_ptr,
            words=self.words,
            df_words=self.df_words,
            df_counts=self.df_counts,
            units_version=np.array(UNITS_VERSION),
        )
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)

    @classmethod
    def load(cls, folder: Path) -> SentenceIndex | None:
        """The index in `folder`, or None if it is missing, unreadable or outdated."""
        try:
            with np.load(folder / "units.npz") as data:
                if str(data["units_version"]) != UNITS_VERSION:
                    return None
                arrays = {name: data[name] for name in data.files}
            vectors = np.load(folder / "vectors.npy", mmap_mode="r")
        except (OSError, ValueError, KeyError):
            return None
        if vectors.shape != (len(arrays["doc"]), DIMENSIONS):
            return None
        return cls(arrays, vectors)
