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
      units.npz      per unit: document row, span, kind, text hash; the units' words
                     as hashes (CSR), and their document frequencies; per document:
                     the hash of its title and text

Only the committed version and the one before it are kept (`prune`).
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np

from kb.core.settings import Settings
from kb.core.text import ANSWER_KINDS, Unit, UnitKind, content_words, reading_units
from kb.search.embedding import DIMENSIONS, MODEL_NAME, Embedder
from kb.store.corpus import CorpusVersion, Layout

# Part of every unit's hash: a new reading-unit rule or model re-embeds everything.
UNITS_VERSION = f"{MODEL_NAME}/units-v4"
KINDS: tuple[UnitKind, ...] = ("sentence", "item", "row", "heading", "question", "rule")
EMBED_STEP = 512  # units per embedding call (and per progress report)

Progress = Callable[[int, int], None]


def hash64(text: str) -> int:
    """A stable 64-bit hash (Python's own `hash` changes between processes)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def unit_embedding_text(title: str, unit: Unit, text: str) -> str:
    """What the model sees for a unit: the title and section give it its subject."""
    context = f"{unit.context}: " if unit.context else ""
    return f"{title}: {context}{text[unit.start : unit.end]}"


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


@dataclass(slots=True)
class SentenceIndexSummary:
    units: int = 0
    embedded: int = 0
    reused: int = 0
    pooled: int = (
        0  # vectors pooled from a chunk's forward pass (`kb.backends.extractive.late_chunking`)
    )
    seconds: float = 0.0
    embed_seconds: float = 0.0


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

    # -- building -------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        documents: Sequence[TextDocument],
        embedder: Embedder,
        previous: SentenceIndex | None = None,
        progress: Progress | None = None,
        summary: SentenceIndexSummary | None = None,
        pooled: Mapping[int, np.ndarray] | None = None,
    ) -> SentenceIndex:
        """Index `documents` (in doc_id order), embedding only the units whose text
        `previous` did not hold and `pooled` (unit text hash -> vector, from the
        chunks' forward passes) does not give. A document whose title and text `previous` indexed
        (under any id: renamed and moved files too) has its rows copied as a block, so
        the work besides embedding grows with what changed, not with the corpus."""
        summary = summary if summary is not None else SentenceIndexSummary()
        docs = sorted(documents, key=lambda d: d.doc_id)
        blocks = _Blocks(previous, pooled or {})
        for number, doc in enumerate(docs):
            digest = document_hash(doc)
            if not blocks.copy(number, digest):
                blocks.split(number, digest, doc)
        vectors = np.zeros((blocks.rows, DIMENSIONS), dtype=np.float16)
        if previous is not None:
            for new, old, size in blocks.runs:  # contiguous copies, not a gather
                vectors[new : new + size] = previous.vectors[old : old + size]
            if blocks.kept_new:
                vectors[blocks.kept_new] = previous.vectors[blocks.kept_old]
        for row, unit_hash in blocks.pooled_rows:
            vectors[row] = blocks.pooled[unit_hash]
        summary.pooled = len(blocks.pooled_rows)
        summary.units = blocks.rows
        summary.reused = blocks.rows - len(blocks.todo) - summary.pooled
        _embed_into(vectors, blocks.todo, embedder, progress, summary)
        return cls(blocks.arrays(docs), vectors)


def document_hash(doc: TextDocument) -> int:
    return hash64(f"{doc.title}\0{doc.text}")


class _Blocks:
    """The rows of a new index, document by document: a block copied from the
    previous index, or the document's units read afresh (each unit's vector reused
    when the previous index embedded the same text)."""

    def __init__(self, previous: SentenceIndex | None, pooled: Mapping[int, np.ndarray]) -> None:
        self.previous = previous
        self.pooled = pooled
        self.pooled_rows: list[tuple[int, int]] = []  # (new row, unit hash in `pooled`)
        self.by_hash: dict[int, int] = {}  # document hash -> its number in `previous`
        if previous is not None:
            self.by_hash = {int(h): n for n, h in enumerate(previous.doc_hash) if h}
        self.rows = 0
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in COLUMNS}
        self.lengths: list[np.ndarray] = []  # words per unit
        self.words: list[np.ndarray] = []
        self.contexts: list[str] = list(previous.context_names) if previous else []
        self.context_number = {name: n for n, name in enumerate(self.contexts)}
        self.doc_hashes: list[int] = []
        self.runs: list[list[int]] = []  # [new row, old row, rows] copied whole
        self.kept_new: list[int] = []  # single units whose vector is reused: new rows,
        self.kept_old: list[int] = []  # and their rows in `previous`
        self.todo: list[tuple[int, str]] = []  # (new row, embedding text)
        self._unit_hashes: tuple[np.ndarray, np.ndarray] | None = None
        self._word_cache: dict[str, int] = {}

    def copy(self, number: int, digest: int) -> bool:
        """Copy the previous index's rows of a document with this hash, if any."""
        old = self.by_hash.get(digest)
        if old is None or self.previous is None:
            return False
        prev = self.previous
        lo, hi = (int(x) for x in np.searchsorted(prev.doc, [old, old + 1]))
        for key in COLUMNS:
            self.parts[key].append(
                np.full(hi - lo, number, dtype=np.int64)
                if key == "doc"
                else prev.column(key)[lo:hi]
            )
        self.lengths.append(np.diff(prev.word_ptr[lo : hi + 1]))
        self.words.append(prev.words[prev.word_ptr[lo] : prev.word_ptr[hi]])
        last = self.runs[-1] if self.runs else None
        if last is not None and last[0] + last[2] == self.rows and last[1] + last[2] == lo:
            last[2] += hi - lo  # documents in the same order: one run
        else:
            self.runs.append([self.rows, lo, hi - lo])
        self.doc_hashes.append(digest)
        self.rows += hi - lo
        return True

    def split(self, number: int, digest: int, doc: TextDocument) -> None:
        """Read a document's units afresh."""
        columns: dict[str, list[int]] = {k: [] for k in COLUMNS}
        lengths: list[int] = []
        words: list[int] = []
        for unit in reading_units(doc.text):
            text = unit_embedding_text(doc.title, unit, doc.text)
            unit_hash = hash64(text)
            row = self.rows + len(lengths)
            old = self.unit_row(unit_hash)
            if old < 0:
                if unit_hash in self.pooled:
                    self.pooled_rows.append((row, unit_hash))
                else:
                    self.todo.append((row, text))
                unit_words = word_hashes(content_words(text), self._word_cache)
            else:
                assert self.previous is not None
                self.kept_new.append(row)
                self.kept_old.append(old)
                a, b = self.previous.word_ptr[old], self.previous.word_ptr[old + 1]
                unit_words = self.previous.words[a:b].tolist()
            lengths.append(len(unit_words))
            words += unit_words
            context = self.context_number.setdefault(unit.context, len(self.contexts))
            if context == len(self.contexts):
                self.contexts.append(unit.context)
            values = (number, unit.start, unit.end, KINDS.index(unit.kind), unit_hash, context)
            for key, value in zip(COLUMNS, values, strict=True):
                columns[key].append(value)
        for key in COLUMNS:
            self.parts[key].append(
                np.array(columns[key], dtype=np.int64 if key != "text_hash" else np.uint64)
            )
        self.lengths.append(np.array(lengths, dtype=np.int64))
        self.words.append(np.array(words, dtype=np.uint64))
        self.doc_hashes.append(digest)
        self.rows += len(lengths)

    def unit_row(self, unit_hash: int) -> int:
        """The row of a unit with this text hash in the previous index, or -1."""
        if self.previous is None:
            return -1
        if self._unit_hashes is None:  # sorted once, when a document is read afresh
            order = np.argsort(self.previous.text_hash, kind="stable")
            self._unit_hashes = self.previous.text_hash[order], order
        hashes, order = self._unit_hashes
        at = int(np.searchsorted(hashes, np.uint64(unit_hash)))
        return int(order[at]) if at < len(hashes) and int(hashes[at]) == unit_hash else -1

    def arrays(self, docs: Sequence[TextDocument]) -> dict[str, np.ndarray]:
        def joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

        lengths = joined(self.lengths, np.int64)
        words = joined(self.words, np.uint64)
        df_words, df_counts = np.unique(words, return_counts=True)
        # Only the section contexts still used (copied rows keep the previous names).
        used, context = np.unique(joined(self.parts["context"], np.int64), return_inverse=True)
        return {
            "doc_ids": np.array([d.doc_id for d in docs], dtype=str),
            "doc_hash": np.array(self.doc_hashes, dtype=np.uint64),
            "context_names": np.array([self.contexts[i] for i in used], dtype=str),
            "context": context.astype(np.int32),
            "doc": joined(self.parts["doc"], np.int32),
            "start": joined(self.parts["start"], np.int64),
            "end": joined(self.parts["end"], np.int64),
            "kind": joined(self.parts["kind"], np.uint8),
            "text_hash": joined(self.parts["text_hash"], np.uint64),
            "word_ptr": np.concatenate([[0], lengths.cumsum()]).astype(np.int64),
            "words": words,
            "df_words": df_words.astype(np.uint64),
            "df_counts": df_counts.astype(np.int32),
        }


COLUMNS = ("doc", "start", "end", "kind", "text_hash", "context")


def _embed_into(
    vectors: np.ndarray,
    todo: list[tuple[int, str]],
    embedder: Embedder,
    progress: Progress | None,
    summary: SentenceIndexSummary,
) -> None:
    if progress and todo:
        progress(0, len(todo))
    for begin in range(0, len(todo), EMBED_STEP):
        part = todo[begin : begin + EMBED_STEP]
        started = time.perf_counter()
        fresh = embedder.embed([text for _, text in part])
        summary.embed_seconds += time.perf_counter() - started
        vectors[[row for row, _ in part]] = fresh
        summary.embedded += len(part)
        if progress:
            progress(summary.embedded, len(todo))


class SentenceIndexes:
    """The per-version sentence indexes under `DATA_DIR/cache/sentences/`."""

    def __init__(self, layout: Layout) -> None:
        self.root = layout.cache_dir("sentences")

    def folder(self, version: str) -> Path:
        return self.root / version

    def load(self, version: str) -> SentenceIndex | None:
        return SentenceIndex.load(self.folder(version))

    def prune(self, keep: set[str | None]) -> int:
        """Delete the indexes of versions not in `keep`; how many were deleted."""
        if not self.root.exists():
            return 0
        gone = 0
        for folder in self.root.iterdir():
            if folder.name not in keep:
                shutil.rmtree(folder, ignore_errors=True)
                gone += 1
        return gone


def corpus_documents(corpus: CorpusVersion) -> list[DocumentText]:
    """Every document of a written version, read back from its snapshot."""
    titles = {d.doc_id: d.title for d in corpus.manifest.documents}
    snapshot = corpus.snapshot
    return [
        DocumentText(doc_id, titles.get(doc_id, ""), snapshot[start:end])
        for doc_id, start, end in corpus.document_spans()
    ]


def needs_sentence_index(backend: str) -> bool:
    """Whether the answer backend `backend` (a `KB_BACKEND` value) reads this index."""
    return backend.split(":", 1)[0] == "extractive"


def build_sentence_index(
    settings: Settings,
    version: str,
    documents: Sequence[TextDocument],
    embedder: Embedder,
    *,
    previous_version: str | None = None,
    progress: Progress | None = None,
    pooled: Mapping[int, np.ndarray] | None = None,
) -> SentenceIndexSummary:
    """The ingest step that gives `version` its reader index before it is committed.

    Reuses the vectors of `previous_version`'s index where the unit text is the same,
    writes the new index atomically, and deletes the indexes of every version but
    these two. Nothing is built when `version` already has a valid index, or when the
    configured backend does not read it (the extractive reader then builds it on its
    first question)."""
    started = time.perf_counter()
    summary = SentenceIndexSummary()
    indexes = SentenceIndexes(Layout(settings.data_dir))
    indexes.prune({version, previous_version})
    existing = indexes.load(version)
    if not needs_sentence_index(settings.backend):
        pass
    elif existing is not None:
        summary.units = summary.reused = len(existing)
    else:
        previous = indexes.load(previous_version) if previous_version else None
        index = SentenceIndex.build(documents, embedder, previous, progress, summary, pooled)
        index.save(indexes.folder(version))
    summary.seconds = time.perf_counter() - started
    return summary
