"""The incremental re-index as named phases, each in proportion to what changed:

    diff    load the corpus, compare each document's content hash with the previous
            version: unchanged documents keep their chunks, token counts and BM25 rows
    chunk   cut only the new and changed documents
    embed   vectors are keyed by the hash of the text embedded (and the model), so
            only text the store has never seen is embedded: an edit re-embeds the
            chunks whose text changed; a rename, move or copy re-embeds nothing
    write   a complete version folder, assembled from the previous one plus the new
            parts (kb/store/corpus.py's VersionWriter owns the format)
    derive  per-version indexes readers need, computed before the version goes live
    commit  `current.json` is replaced atomically: readers switch to the new version
    clean   vectors of no kept version are deleted, old folders pruned

Order of writes (what makes a SIGKILL at any point safe): `pending.json` first;
vectors upserted under their text keys (ids already there, from a killed run or
another document, are not embedded again); the version folder is staged and
renamed into place; the pointer swap; the clean-up; `pending.json` removed.
Readers filter vector hits by the chunks of the version they hold, so the extra
vectors before the swap are never seen.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from ingest.chunking import chunk_document, chunk_embedding_text
from ingest.derive import Derivation, Progress, derive_indexes
from ingest.loaders import load_corpus
from ingest.repair import disk_full_error, prune_reader_cache, repair_committed
from kb.backends.extractive.index_builder import (
    needs_sentence_index,
)
from kb.backends.extractive.late_chunking import DocumentUnits, Passage, embed_passages
from kb.core.errors import IngestBusyError, IngestError, KBError, UserError
from kb.core.models import Chunk, Document, IngestSummary, Manifest, ManifestDoc
from kb.core.settings import Settings
from kb.core.tokens import count_tokens
from kb.search.embedding import MODEL_NAME, Embedder, shared_embedder
from kb.store.check import remember_sound
from kb.store.corpus import (
    CorpusVersion,
    Layout,
    VersionWriter,
    chunk_line,
    now,
    prune_versions,
    version_id,
    write_atomic,
)
from kb.store.lexical import LexicalIndex
from kb.store.snapshot import SnapshotEntry, body_tokens, build_snapshot
from kb.store.vectors import VectorStore

# A phase's progress: (phase, done, total). Called once when a phase ends, and for
# `embed` after every batch as well.
EMBED_STEP = 256  # chunks per model call: sorted by length inside it, so little padding
# "§ref title" headers (the title left out when the document before has it), refs.json
# beside the snapshot
SNAPSHOT_FORMAT = "snapshot-v3"


def content_hash(doc: Document) -> str:
    return hashlib.sha256(f"{doc.title}\0{doc.source}\0{doc.text}".encode()).hexdigest()


def vector_key(settings: Settings) -> str:
    """What, besides the embedded text, decides a vector: the model, its runtime (ONNX
    and torch vectors are never mixed in one index) and what it sees."""
    runtime = "" if settings.embed_backend == "torch" else f"/{settings.embed_backend}"
    return f"{MODEL_NAME}{runtime}/title-v2"  # torch: the key indexes had before ONNX


def config_key(settings: Settings) -> str:
    """What decides a version's chunks and files: a change rebuilds them (vectors of
    unchanged texts are still reused)."""
    return (
        f"{vector_key(settings)}/chunk{settings.chunk_tokens}/overlap{settings.chunk_overlap}"
        f"/{SNAPSHOT_FORMAT}"
    )


@dataclass
class Plan:
    """What the diff found: the documents to write, and which of them are new."""

    settings: Settings
    layout: Layout
    root: Path
    documents: list[Document]
    committed: CorpusVersion | None  # the committed version, whatever its configuration
    kept: dict[str, ManifestDoc]  # unchanged documents' entries, reused as they are
    fresh: list[Document]
    summary: IngestSummary
    interrupted: bool
    new_chunks: dict[str, list[Chunk]] = field(default_factory=dict)
    # Reader unit vectors pooled from the chunks' forward passes (see late_chunking.py).
    unit_vectors: dict[int, np.ndarray] = field(default_factory=dict)
    wrote_version: bool = False  # False: an earlier, killed run left the folder complete
    store_exact: bool = False  # the store holds just the committed version's vectors

    @cached_property
    def previous(self) -> CorpusVersion | None:
        """The committed version if it has this configuration: its parts are reused."""
        committed = self.committed
        if committed is None or committed.manifest.config_key != config_key(self.settings):
            return None
        return committed

    @property
    def nothing_changed(self) -> bool:
        return (
            self.previous is not None
            and len(self.kept) == len(self.documents)
            and not self.summary.removed
            and not self.interrupted
        )


def run_ingest(
    settings: Settings,
    root: Path,
    *,
    embedder: Embedder | None = None,
    progress: Progress | None = None,
    wait_seconds: float = 0.0,
) -> IngestSummary:
    """Bring the index in `settings.data_dir` in step with the documents under `root`."""
    layout = Layout(settings.data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(layout.lock))
    try:
        lock.acquire(timeout=wait_seconds)
    except Timeout as exc:
        raise IngestBusyError(
            f"Another ingest is running on {settings.data_dir}; wait for it to finish "
            "(or pass --wait SECONDS)."
        ) from exc
    try:
        return _ingest_locked(settings, layout, root, embedder, progress or _silent)
    except Exception as exc:
        if not isinstance(exc, KBError) and (full := disk_full_error(exc, settings.data_dir)):
            raise full from exc
        raise
    finally:
        lock.release()


def _ingest_locked(
    settings: Settings,
    layout: Layout,
    root: Path,
    embedder: Embedder | None,
    progress: Progress,
) -> IngestSummary:
    started = time.perf_counter()
    # Verify and repair (ingest/repair.py): what is committed is sound before it is trusted.
    repaired = repair_committed(settings, layout, lambda: embedder or shared_embedder(settings))
    plan = diff(settings, layout, root)
    plan.summary.repaired = repaired.repairs
    plan.summary.chunks_embedded += repaired.embedded  # every vector embedded is counted
    plan.summary.vectors_repaired = repaired.embedded
    plan.summary.embed_seconds += repaired.embed_seconds
    plan.store_exact = repaired.store_exact
    progress("diff", len(plan.documents), len(plan.documents))
    if plan.nothing_changed:
        assert plan.previous is not None
        return _finish(plan.summary, plan.previous.manifest, started)
    if not plan.documents:
        raise UserError(
            f"No loadable documents under {root}; nothing was changed. "
            f"Skipped: {len(plan.summary.skipped)} file(s)."
        )
    write_atomic(layout.pending, json.dumps({"started_at": now(), "root": str(root)}))
    plan.summary.resumed = plan.interrupted

    chunk(plan)
    progress("chunk", len(plan.fresh), len(plan.fresh))
    store = VectorStore(settings)
    embedder = embedder or shared_embedder(settings)
    embed(plan, store, embedder, progress)
    version = write(plan)
    progress("write", version.manifest.chunk_count, version.manifest.chunk_count)
    derive(plan, version, embedder, progress)
    VersionWriter(layout, version.version).commit()
    if plan.wrote_version:  # written whole just now: the next ingest need not read it all
        remember_sound(layout, version.version)
    progress("commit", 1, 1)
    clean(plan, store, version.manifest)
    progress("clean", 1, 1)
    return _finish(plan.summary, version.manifest, started)


# ---- phases ---------------------------------------------------------------------


def diff(settings: Settings, layout: Layout, root: Path) -> Plan:
    """Load the corpus and sort its documents into unchanged, added and changed."""
    try:
        loaded = load_corpus(root, settings.max_file_bytes)
    except FileNotFoundError as exc:
        raise UserError(f"{exc}; pass a folder or a file to ingest.") from exc
    committed = CorpusVersion.open(settings.data_dir) if layout.current_version() else None
    plan = Plan(
        settings=settings,
        layout=layout,
        root=root,
        documents=sorted(loaded.documents, key=lambda d: d.doc_id),
        committed=committed,
        kept={},
        fresh=[],
        summary=IngestSummary(
            skipped=loaded.skipped, previous_version=committed.version if committed else None
        ),
        interrupted=layout.pending.exists(),
    )
    old_docs = committed.manifest.by_id() if committed else {}
    summary = plan.summary
    for doc in loaded.documents:
        old = old_docs.get(doc.doc_id)
        if plan.previous is not None and old is not None and old.content_hash == content_hash(doc):
            summary.unchanged += 1
            plan.kept[doc.doc_id] = old
            continue
        if old is None:
            summary.added += 1
            summary.added_ids.append(doc.doc_id)
        else:
            summary.changed += 1
            summary.changed_ids.append(doc.doc_id)
        plan.fresh.append(doc)
    current_ids = {doc.doc_id for doc in loaded.documents}
    summary.removed_ids = sorted(set(old_docs) - current_ids)
    summary.removed = len(summary.removed_ids)
    return plan


def chunk(plan: Plan) -> None:
    """Cut the new and changed documents; chunk ids are their text keys."""
    key = vector_key(plan.settings)
    for doc in plan.fresh:
        plan.new_chunks[doc.doc_id] = chunk_document(
            doc, key, plan.settings.chunk_tokens, plan.settings.chunk_overlap
        )


def embed(plan: Plan, store: VectorStore, embedder: Embedder, progress: Progress) -> None:
    """Embed the chunk texts the store does not hold yet, in steps of `EMBED_STEP` (the
    model sorts each step by length, so larger steps pad less). When the reader needs
    unit vectors, they come from the same forward passes (`chunk_vectors`)."""
    summary = plan.summary
    unique = {c.chunk_id: c for chunks in plan.new_chunks.values() for c in chunks}
    # The committed version's vectors are all stored: ask the store only about the rest.
    committed = plan.committed.chunk_ids if plan.committed else frozenset()
    unknown = [cid for cid in unique if cid not in committed]
    # After a clean commit nothing else is stored: no need to ask (it costs Chroma a load).
    asked = store.existing(unknown) if unknown and not plan.store_exact else set()
    already = (unique.keys() & committed) | asked
    todo = [c for cid, c in unique.items() if cid not in already]
    summary.chunks_reused = sum(len(cs) for cs in plan.new_chunks.values()) - len(todo)
    if todo:
        _ = embedder.model  # loaded before the clock: embed_seconds is the model's work only
    progress("embed", 0, len(todo))
    texts = {doc.doc_id: doc.text for doc in plan.fresh}
    pooled = plan.settings.reader_vectors == "pooled"
    units = DocumentUnits() if pooled and needs_sentence_index(plan.settings.backend) else None
    for done, begin in enumerate(range(0, len(todo), EMBED_STEP)):
        part = todo[begin : begin + EMBED_STEP]
        embed_started = time.perf_counter()
        vectors = chunk_vectors(plan, part, texts, embedder, units)
        summary.embed_seconds += time.perf_counter() - embed_started
        store.upsert(part, vectors)
        summary.chunks_embedded += len(part)
        progress("embed", min(len(todo), (done + 1) * EMBED_STEP), len(todo))


def chunk_vectors(
    plan: Plan,
    chunks: list[Chunk],
    texts: dict[str, str],
    embedder: Embedder,
    units: DocumentUnits | None,
) -> np.ndarray:
    """The chunks' vectors; with `units`, the reader's unit vectors pooled from the same
    forward passes go into `plan.unit_vectors`."""
    if units is None:
        return embedder.embed([chunk_embedding_text(c) for c in chunks])
    passages = [
        Passage(c.doc_id, c.title, texts[c.doc_id], c.start, c.end, chunk_embedding_text(c),
                len(c.title) + 1)
        for c in chunks
    ]  # fmt: skip
    vectors, pooled = embed_passages(passages, embedder, units)
    plan.unit_vectors.update(pooled)
    return vectors


def write(plan: Plan) -> CorpusVersion:
    """The new version folder, from the previous version's parts and the new ones."""
    settings, previous = plan.settings, plan.previous
    entries = [_entry(plan, doc) for doc in plan.documents]
    snapshot = build_snapshot(
        [
            SnapshotEntry(d.doc_id, d.title, d.source, d.text, e.body_tokens)
            for d, e in zip(plan.documents, entries, strict=True)
        ]
    )
    key = config_key(settings)
    version = version_id(key, snapshot.text, snapshot.documents)
    writer = VersionWriter(plan.layout, version)
    if writer.complete() is None:
        lines, rows = _chunk_rows(plan, entries)
        lexical = LexicalIndex.assemble(rows, previous.lexical if previous else None)
        manifest = Manifest(
            corpus_version=version,
            created_at=now(),
            config_key=key,
            corpus_root=str(plan.root.resolve()),
            corpus_tokens=snapshot.tokens,
            text_tokens=sum(e.tokens for e in entries),
            documents=entries,
            chunk_count=len(lines),
            embedding_model=MODEL_NAME,
        )
        writer.write(manifest, snapshot, lines, lexical)
        plan.wrote_version = True
    return CorpusVersion.at(plan.layout, version)


def derive(plan: Plan, version: CorpusVersion, embedder: Embedder, progress: Progress) -> None:
    """Indexes readers need per version, computed before the version goes live, so
    that the first question after an ingest is as fast as the tenth. Each is a
    function of a `Derivation` that reuses what it can from the previous version and
    is idempotent (a killed run repeats it)."""
    committed = plan.committed
    same = committed and committed.manifest.config_key.startswith(f"{vector_key(plan.settings)}/")
    job = Derivation(
        plan.settings, version, plan.previous, embedder, progress, plan.summary, plan.unit_vectors,
        committed if same else None,
    )  # fmt: skip
    derive_indexes(job)


def clean(plan: Plan, store: VectorStore, manifest: Manifest) -> None:
    """Delete vectors of no kept version; prune old folders; end the pending state.
    A query still on the previous version keeps its folder but not the vectors it
    no longer shares with the new one: never a mix of versions."""
    live = {cid for entry in manifest.documents for cid in entry.chunk_ids}
    if plan.interrupted or plan.previous is None:
        stale: set[str] | frozenset[str] = store.all_ids() - live  # a killed run: any text
    else:
        stale = plan.previous.chunk_ids - live
    plan.summary.chunks_deleted = store.delete(sorted(stale))
    prune_versions(plan.layout, keep={manifest.corpus_version, plan.summary.previous_version})
    prune_reader_cache(plan.layout, keep={manifest.corpus_version, plan.summary.previous_version})
    plan.layout.pending.unlink(missing_ok=True)


# ---- helpers --------------------------------------------------------------------


def _entry(plan: Plan, doc: Document) -> ManifestDoc:
    kept = plan.kept.get(doc.doc_id)
    if kept is not None and kept.body_tokens >= 0:
        return kept
    chunks = plan.new_chunks.get(doc.doc_id)
    if chunks is None:  # kept, from a version that did not store its body's tokens
        assert kept is not None
        return kept.model_copy(update={"body_tokens": body_tokens(doc.text)})
    return ManifestDoc(
        doc_id=doc.doc_id,
        title=doc.title,
        source=doc.source,
        content_hash=content_hash(doc),
        tokens=count_tokens(doc.text),
        chars=len(doc.text),
        chunk_ids=[c.chunk_id for c in chunks],
        body_tokens=body_tokens(doc.text),
    )


def _chunk_rows(plan: Plan, entries: list[ManifestDoc]) -> tuple[list[str], list[int | str]]:
    """The new chunk list as stored lines, and for the BM25 index each row's source:
    a row of the previous version's index, or the text to tokenize."""
    previous_lines: list[str] = plan.previous.chunk_lines() if plan.previous else []
    first_row: dict[str, int] = {}
    if plan.previous is not None:
        row = 0
        for old in plan.previous.manifest.documents:
            first_row[old.doc_id] = row
            row += len(old.chunk_ids)
    lines: list[str] = []
    rows: list[int | str] = []
    for entry in entries:
        fresh = plan.new_chunks.get(entry.doc_id)
        if fresh is None:
            start = first_row.get(entry.doc_id)
            if start is None or start + len(entry.chunk_ids) > len(previous_lines):
                raise IngestError(f"chunks of {entry.doc_id} are missing; re-run the ingest")
            lines += previous_lines[start : start + len(entry.chunk_ids)]
            rows += range(start, start + len(entry.chunk_ids))
        else:
            lines += [chunk_line(c) for c in fresh]
            rows += [chunk_embedding_text(c) for c in fresh]
    return lines, rows


def _finish(summary: IngestSummary, manifest: Manifest, started: float) -> IngestSummary:
    summary.documents = len(manifest.documents)
    summary.chunks = manifest.chunk_count
    summary.corpus_tokens = manifest.corpus_tokens
    summary.text_tokens = manifest.text_tokens
    summary.corpus_version = manifest.corpus_version
    summary.seconds = round(time.perf_counter() - started, 3)
    summary.embed_seconds = round(summary.embed_seconds, 3)
    return summary


def _silent(phase: str, done: int, total: int) -> None:
    pass
