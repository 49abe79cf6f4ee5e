"""Building the extractive reader's index of a corpus version (`SentenceIndex`),
incrementally: a document the previous index held (under any name) has its rows
copied as one block; in an edited one, a unit whose text was embedded before keeps
its vector, and one the chunks' forward passes gave (`late_chunking`) is not
embedded again. `build_sentence_index` is the ingest step; `SentenceIndexes` the
per-version folders under `DATA_DIR/cache/sentences/`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kb.backends.extractive.sentence_index import (
    COLUMNS,
    EMBED_STEP,
    KINDS,
    DocumentText,
    Progress,
    SentenceIndex,
    TextDocument,
    hash64,
    unit_embedding_text,
    word_hashes,
)
from kb.core.settings import Settings
from kb.core.text import content_words, reading_units
from kb.search.embedding import DIMENSIONS, Embedder
from kb.store.corpus import CorpusVersion, Layout

_DTYPES: dict[str, type] = {"text_hash": np.uint64, "own": bool}  # other columns: int64


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


def build_index(
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
    return SentenceIndex(blocks.arrays(docs), vectors)


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
        columns: dict[str, list[int | bool]] = {k: [] for k in COLUMNS}
        lengths: list[int] = []
        words: list[int] = []
        for unit in reading_units(doc.text):
            text = unit_embedding_text(doc.title, unit, doc.text)
            unit_hash = hash64(text)
            row = self.rows + len(lengths)
            old = self.unit_row(unit_hash)
            if old < 0:
                own = unit_hash not in self.pooled
                if own:
                    self.todo.append((row, text))
                else:
                    self.pooled_rows.append((row, unit_hash))
                unit_words = word_hashes(content_words(text), self._word_cache)
            else:
                assert self.previous is not None
                own = bool(self.previous.own[old])
                self.kept_new.append(row)
                self.kept_old.append(old)
                a, b = self.previous.word_ptr[old], self.previous.word_ptr[old + 1]
                unit_words = self.previous.words[a:b].tolist()
            lengths.append(len(unit_words))
            words += unit_words
            context = self.context_number.setdefault(unit.context, len(self.contexts))
            if context == len(self.contexts):
                self.contexts.append(unit.context)
            kind = KINDS.index(unit.kind)
            values = (number, unit.start, unit.end, kind, unit_hash, context, own)
            for key, value in zip(COLUMNS, values, strict=True):
                columns[key].append(value)
        for key in COLUMNS:
            self.parts[key].append(np.array(columns[key], dtype=_DTYPES.get(key, np.int64)))
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
            "own": joined(self.parts["own"], bool),
            "word_ptr": np.concatenate([[0], lengths.cumsum()]).astype(np.int64),
            "words": words,
            "df_words": df_words.astype(np.uint64),
            "df_counts": df_counts.astype(np.int32),
        }


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
        index = build_index(documents, embedder, previous, progress, summary, pooled)
        index.save(indexes.folder(version))
    summary.seconds = time.perf_counter() - started
    return summary
