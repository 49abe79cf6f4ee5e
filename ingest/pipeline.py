"""The incremental re-index: load, diff by content hash, chunk and embed only what
changed, write a new corpus version, swap the pointer, delete what is stale.

Order of writes (what makes a SIGKILL at any point safe):
1. `pending.json` says an ingest is under way.
2. New chunks' vectors are upserted into Chroma under content-derived ids; ids
   already there (from a killed run) are not embedded again.
3. A complete version folder is written: manifest, chunks, snapshot, BM25.
4. `current.json` is replaced atomically: readers switch to the new version.
5. Chunks of no committed version are deleted from Chroma; old version folders
   are pruned; `pending.json` is removed.
Readers filter vector hits by the chunks of the version they hold, so the extra
vectors of steps 2-4 are never seen.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from ingest.chunking import chunk_document
from ingest.loaders import load_corpus
from kb.corpus import DOCUMENT_FOOTER, CorpusVersion, Layout, document_header, write_atomic
from kb.embedding import MODEL_NAME, Embedder, shared_embedder
from kb.errors import IngestBusyError, IngestError, UserError
from kb.lexical import LexicalIndex
from kb.models import Chunk, Document, IngestSummary, Manifest, ManifestDoc
from kb.sentence_index import build_sentence_index
from kb.settings import Settings
from kb.store import VectorStore
from kb.tokens import count_tokens

Progress = Callable[[int, int], None]
KEEP_VERSIONS = 2  # the new one and the one before, for queries still reading it


def content_hash(doc: Document) -> str:
    return hashlib.sha256(f"{doc.title}\0{doc.source}\0{doc.text}".encode()).hexdigest()


def config_key(settings: Settings) -> str:
    """What, besides the text, decides a chunk's vector: a change re-embeds everything."""
    return f"{MODEL_NAME}/chunk{settings.chunk_tokens}/overlap{settings.chunk_overlap}/title-v2"


def chunk_key(settings: Settings, digest: str) -> str:
    """What chunk ids derive from: the content and the config, so that a new chunk size
    or model never picks up a vector computed for other text under the same id."""
    return f"{config_key(settings)}\0{digest}"


def embedding_text(chunk: Chunk) -> str:
    """What the model sees: the title gives a chunk its subject."""
    return f"{chunk.title}\n{chunk.text}"


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
        return _ingest_locked(settings, layout, root, embedder, progress)
    finally:
        lock.release()


def _ingest_locked(
    settings: Settings,
    layout: Layout,
    root: Path,
    embedder: Embedder | None,
    progress: Progress | None,
) -> IngestSummary:
    started = time.perf_counter()
    try:
        loaded = load_corpus(root, settings.max_file_bytes)
    except FileNotFoundError as exc:
        raise UserError(f"{exc}; pass a folder or a file to ingest.") from exc
    previous = CorpusVersion.open(settings.data_dir) if layout.current_version() else None
    key = config_key(settings)
    same_config = previous is not None and previous.manifest.config_key == key
    old_docs = previous.manifest.by_id() if previous and same_config else {}

    summary = IngestSummary(
        skipped=loaded.skipped,
        previous_version=previous.version if previous else None,
    )
    entries: list[ManifestDoc] = []
    fresh: list[tuple[Document, str]] = []
    for doc in loaded.documents:
        digest = content_hash(doc)
        old = old_docs.get(doc.doc_id)
        if old is not None and old.content_hash == digest:
            summary.unchanged += 1
            entries.append(old)
            continue
        if old is None and (previous is None or doc.doc_id not in previous.manifest.by_id()):
            summary.added += 1
            summary.added_ids.append(doc.doc_id)
        else:
            summary.changed += 1
            summary.changed_ids.append(doc.doc_id)
        fresh.append((doc, digest))
    current_ids = {doc.doc_id for doc in loaded.documents}
    if previous is not None:
        summary.removed_ids = sorted(set(previous.manifest.by_id()) - current_ids)
        summary.removed = len(summary.removed_ids)

    interrupted = layout.pending.exists()
    nothing_changed = (
        previous is not None
        and same_config
        and not fresh
        and not summary.removed
    )
    if nothing_changed and not interrupted:
        assert previous is not None
        _finish(summary, previous.manifest, started)
        return summary
    if not loaded.documents:
        raise UserError(
            f"No loadable documents under {root}; nothing was changed. "
            f"Skipped: {len(loaded.skipped)} file(s)."
        )

    write_atomic(layout.pending, json.dumps({"started_at": _now(), "root": str(root)}))
    summary.resumed = interrupted

    new_chunks: list[Chunk] = []
    for doc, digest in fresh:
        chunks = chunk_document(
            doc, chunk_key(settings, digest), settings.chunk_tokens, settings.chunk_overlap
        )
        new_chunks.extend(chunks)
        entries.append(
            ManifestDoc(
                doc_id=doc.doc_id,
                title=doc.title,
                source=doc.source,
                content_hash=digest,
                tokens=count_tokens(doc.text),
                chars=len(doc.text),
                chunk_ids=[c.chunk_id for c in chunks],
            )
        )
    entries.sort(key=lambda e: e.doc_id)

    store = VectorStore(settings)
    embedder = embedder or shared_embedder(settings.embed_batch_size)
    already = store.existing([c.chunk_id for c in new_chunks]) if new_chunks else set()
    todo = [c for c in new_chunks if c.chunk_id not in already]
    summary.chunks_reused = len(new_chunks) - len(todo)
    if todo:
        _ = embedder.model  # loaded before the clock: embed_seconds is the model's work only
    step = max(settings.embed_batch_size * 4, 256)
    for begin in range(0, len(todo), step):
        part = todo[begin : begin + step]
        embed_started = time.perf_counter()
        vectors = embedder.embed([embedding_text(c) for c in part])
        summary.embed_seconds += time.perf_counter() - embed_started
        store.upsert(part, vectors)
        summary.chunks_embedded += len(part)
        if progress:
            progress(summary.chunks_embedded, len(todo))

    manifest = _write_version(settings, layout, root, key, entries, loaded.documents, previous, {
        c.chunk_id: c for c in new_chunks
    })
    reader = build_sentence_index(
        settings, manifest.corpus_version, loaded.documents, embedder,
        previous_version=summary.previous_version, progress=progress,
    )
    summary.sentences_embedded, summary.sentences_reused = reader.embedded, reader.reused
    write_atomic(
        layout.current,
        json.dumps({"corpus_version": manifest.corpus_version, "committed_at": _now()}),
    )

    # A query still on the previous version keeps its chunks' text (its version
    # folder is kept) but no longer finds their vectors: never a mix of versions.
    live = {cid for entry in entries for cid in entry.chunk_ids}
    stale = store.all_ids() - live
    summary.chunks_deleted = store.delete(stale)
    _prune_versions(layout, keep={manifest.corpus_version, summary.previous_version})
    layout.pending.unlink(missing_ok=True)
    _finish(summary, manifest, started)
    return summary


def _write_version(
    settings: Settings,
    layout: Layout,
    root: Path,
    key: str,
    entries: list[ManifestDoc],
    documents: list[Document],
    previous: CorpusVersion | None,
    new_chunks: dict[str, Chunk],
) -> Manifest:
    old_chunks = {c.chunk_id: c for c in previous.chunks} if previous else {}
    chunks: list[Chunk] = []
    for entry in entries:
        for cid in entry.chunk_ids:
            chunk = new_chunks.get(cid) or old_chunks.get(cid)
            if chunk is None:
                raise IngestError(f"chunk {cid} of {entry.doc_id} is missing; re-run the ingest")
            chunks.append(chunk)

    by_id = {doc.doc_id: doc for doc in documents}
    parts: list[str] = []
    spans: list[tuple[str, int, int]] = []
    offset = 0
    for entry in entries:
        doc = by_id[entry.doc_id]
        header = document_header(doc.doc_id, doc.title, doc.source)
        parts += [header, doc.text, DOCUMENT_FOOTER]
        spans.append((doc.doc_id, offset + len(header), offset + len(header) + len(doc.text)))
        offset += len(header) + len(doc.text) + len(DOCUMENT_FOOTER)
    snapshot = "".join(parts)
    version = hashlib.sha256(f"{key}\0{snapshot}".encode()).hexdigest()[:16]
    folder = layout.version_dir(version)
    if (folder / "manifest.json").exists():  # this exact version is already complete
        return Manifest.model_validate_json((folder / "manifest.json").read_text("utf-8"))

    manifest = Manifest(
        corpus_version=version,
        created_at=_now(),
        config_key=key,
        corpus_root=str(root.resolve()),
        corpus_tokens=count_tokens(snapshot),
        documents=entries,
        chunk_count=len(chunks),
        embedding_model=MODEL_NAME,
    )
    staging = folder.with_name(f".{version}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / "snapshot.txt").write_text(snapshot, "utf-8")
    (staging / "snapshot_spans.json").write_text(json.dumps(spans), "utf-8")
    with open(staging / "chunks.jsonl", "w", encoding="utf-8") as fh:
        for chunk in chunks:
            fh.write(json.dumps(asdict(chunk), ensure_ascii=False) + "\n")
    LexicalIndex.build([embedding_text(c) for c in chunks]).save(staging / "bm25")
    (staging / "manifest.json").write_text(manifest.model_dump_json(), "utf-8")
    staging.rename(folder)
    return manifest


def _prune_versions(layout: Layout, keep: set[str | None]) -> None:
    for folder in layout.versions.iterdir():
        if folder.name not in keep:
            shutil.rmtree(folder, ignore_errors=True)


def _finish(summary: IngestSummary, manifest: Manifest, started: float) -> None:
    summary.documents = len(manifest.documents)
    summary.chunks = manifest.chunk_count
    summary.corpus_tokens = manifest.corpus_tokens
    summary.corpus_version = manifest.corpus_version
    summary.seconds = round(time.perf_counter() - started, 3)
    summary.embed_seconds = round(summary.embed_seconds, 3)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
