"""Verify the committed version before an ingest trusts it, and repair what is damaged.

`kb ingest` calls `repair_committed` first (see `kb.store.check` for what is verified):

- an unreadable `current.json`, or one pointing at a missing folder: the pointer is
  restored to the newest complete version (none: the ingest starts afresh);
- a damaged lexical (BM25) index: rebuilt from the version's chunks, in place;
- damaged chunks, manifest or snapshot: the pointer goes back to the newest other
  complete version (the ingest then re-derives the damaged one from the documents,
  reusing every vector already in the store) and the damaged folder is removed;
- chunks without a vector: re-embedded from the chunks' text.

`disk_full_error` turns a failed write for want of space (an `OSError` ENOSPC,
SQLite's "database or disk is full", Chroma's failed compaction on a full disk)
into one clear `DiskFullError`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ingest.chunking import chunk_embedding_text
from kb.backends.extractive.index_builder import SentenceIndexes
from kb.core.errors import CorpusDamagedError, DiskFullError
from kb.core.models import Chunk
from kb.core.settings import Settings
from kb.search.embedding import Embedder
from kb.store.check import (
    check_version_files,
    known_sound,
    missing_vectors,
    remember_sound,
    vector_index_problem,
)
from kb.store.corpus import LEXICAL, CorpusVersion, Layout, now, write_atomic
from kb.store.lexical import LexicalIndex
from kb.store.vector_index import stored_vectors
from kb.store.vectors import VectorStore, chroma_client, forget_embedded_clients

EmbedderFactory = Callable[[], Embedder]
REBUILT_PARTS = {"manifest", "chunks", "snapshot"}  # what only the documents can rebuild


@dataclass
class Repaired:
    """What `repair_committed` did, in words, the vectors it embedded and the time the
    model took (counted in the ingest's summary), and whether the store is known to hold
    exactly the committed version's vectors (then no other id needs looking up)."""

    repairs: list[str] = field(default_factory=list)
    store_exact: bool = False
    embedded: int = 0
    embed_seconds: float = 0.0


def repair_committed(settings: Settings, layout: Layout, embedder: EmbedderFactory) -> Repaired:
    """Make the committed version sound (see module doc).

    The version's files are read whole only when they changed since they were last
    known sound (`kb.store.check.known_sound`), so an ingest of a large, healthy corpus does
    not pay for reading it all."""
    done = Repaired()
    repairs = done.repairs
    version = _sound_pointer(layout, repairs)
    if version is not None and not known_sound(layout, version):
        version = _repair_files(layout, version, repairs)
        if version is not None:
            remember_sound(layout, version)
    if version is None:
        return done
    corpus = CorpusVersion.at(layout, version)
    if broken := vector_index_problem(settings):
        _rebuild_vector_index(settings, Path(broken.path), corpus.chunks, embedder(), done)
        repairs.append(
            f"the vector index was damaged ({broken.problem}): rebuilt it from the "
            f"{corpus.manifest.chunk_count} chunks of version {version}"
        )
        return done
    ids = list(dict.fromkeys(cid for doc in corpus.manifest.documents for cid in doc.chunk_ids))
    if not layout.pending.exists() and _stored_count(settings) == len(ids):
        done.store_exact = True  # after a clean commit the store holds exactly these
        return done
    missing, _ = missing_vectors(settings, ids)
    if missing:
        lost = set(missing)
        unique = {c.chunk_id: c for c in corpus.chunks if c.chunk_id in lost}  # same text, same id
        _reembed(settings, list(unique.values()), embedder(), done)
        repairs.append(f"re-embedded {len(missing)} missing vectors of version {version}")
    return done


def _repair_files(layout: Layout, version: str, repairs: list[str]) -> str | None:
    """Check the files of `version`; the version to trust after repairing them."""
    manifest, chunks, damage = check_version_files(layout, version)
    parts = {d.part for d in damage}
    if manifest is None or chunks is None or parts & REBUILT_PARTS:
        described = "; ".join(d.problem for d in damage)
        fallback = _newest_complete(layout, exclude={version})
        _point_at(layout, fallback)
        shutil.rmtree(layout.version_dir(version), ignore_errors=True)
        repairs.append(
            f"version {version} was damaged ({described}): rebuilt from the documents"
            + (f", starting from version {fallback}" if fallback else "")
        )
        return fallback  # complete: `_newest_complete` found no damage in it
    if "lexical" in parts:
        _rebuild_lexical(layout.version_dir(version), chunks)
        repairs.append(f"rebuilt the lexical index of version {version} from its chunks")
    return version


def _stored_count(settings: Settings) -> int | None:
    """How many vectors the store holds (None if it cannot say). An ingest that
    finished (no `pending.json`) leaves exactly the committed version's vectors, so
    an equal count spares asking for every id; any other count checks them all."""
    if settings.chroma_url is None:  # read from Chroma's tables: no need to start it
        return stored_vectors(settings.data_dir / "chroma", settings.collection)
    try:
        return VectorStore(settings).count()
    except Exception:  # chromadb raises its own tree and sqlite's; the full check says more
        return None


def _sound_pointer(layout: Layout, repairs: list[str]) -> str | None:
    """The committed version, after restoring a damaged or dangling pointer."""
    try:
        version = layout.current_version()
    except CorpusDamagedError as exc:
        version, why = None, f"current.json was unreadable ({exc.message.split('. ')[0]})"
    else:
        if version is None or layout.version_dir(version).is_dir():
            return version
        why = f"current.json pointed at the missing version {version}"
    restored = _newest_complete(layout, exclude=set())
    _point_at(layout, restored)
    repairs.append(
        f"{why}: restored it to version {restored}"
        if restored
        else f"{why} and no complete version was left: re-indexing from the documents"
    )
    return restored


def _newest_complete(layout: Layout, exclude: set[str]) -> str | None:
    """The most recently created version folder whose files are all sound."""
    if not layout.versions.is_dir():
        return None
    found: list[tuple[str, int, str]] = []
    for folder in layout.versions.iterdir():
        if folder.name.startswith(".") or folder.name in exclude or not folder.is_dir():
            continue
        manifest, chunks, damage = check_version_files(layout, folder.name)
        if manifest is not None and chunks is not None and not damage:
            # created_at has whole seconds: two ingests in one second tie on it, and the
            # folder written last (its files' creation time) decides.
            found.append((manifest.created_at, folder.stat().st_mtime_ns, folder.name))
    return max(found)[2] if found else None


def _point_at(layout: Layout, version: str | None) -> None:
    if version is None:
        layout.current.unlink(missing_ok=True)
        return
    write_atomic(layout.current, json.dumps({"corpus_version": version, "committed_at": now()}))


def _rebuild_lexical(folder: Path, chunks: list[Chunk]) -> None:
    staging = folder / f".{LEXICAL}.rebuild"
    LexicalIndex.build([chunk_embedding_text(c) for c in chunks]).save(staging)
    os.replace(staging, folder / LEXICAL)


def _rebuild_vector_index(
    settings: Settings, folder: Path, chunks: list[Chunk], embedder: Embedder, done: Repaired
) -> None:
    """Drop the collection without loading its damaged index (`folder`), then embed
    every chunk into a new one."""
    shutil.rmtree(folder, ignore_errors=True)  # first: Chroma must never load these files
    forget_embedded_clients()
    with contextlib.suppress(Exception):  # chromadb's own NotFoundError tree: gone already
        chroma_client(settings).delete_collection(settings.collection)
    forget_embedded_clients()
    unique = {c.chunk_id: c for c in chunks}  # the same text has one id and one vector
    _reembed(settings, list(unique.values()), embedder, done)


def _reembed(settings: Settings, chunks: list[Chunk], embedder: Embedder, done: Repaired) -> None:
    if (
        settings.chroma_url is None
        and not (settings.data_dir / "chroma" / "chroma.sqlite3").exists()
    ):
        forget_embedded_clients()  # a client opened before the file went is no use
    store = VectorStore(settings)
    step = max(settings.embed_batch_size * 4, 256)
    _ = embedder.model  # loaded before the clock, as in the ingest's embed phase
    for begin in range(0, len(chunks), step):
        part = chunks[begin : begin + step]
        started = time.perf_counter()
        vectors = embedder.embed([chunk_embedding_text(c) for c in part])
        done.embed_seconds += time.perf_counter() - started
        store.upsert(part, vectors)
        done.embedded += len(part)


def prune_reader_cache(layout: Layout, keep: set[str | None]) -> None:
    """Drop the reader's sentence indexes of every version but `keep`, and the cache
    files of older releases (one file per snapshot under cache/extractive/)."""
    SentenceIndexes(layout).prune(keep)
    shutil.rmtree(layout.cache_dir("extractive"), ignore_errors=True)


LOW_SPACE_BYTES = 16 * 1024 * 1024  # a store write failing with less free than this


def disk_full_error(exc: BaseException, data_dir: Path) -> DiskFullError | None:
    """A DiskFullError if `exc` is a write that ran out of space: an ENOSPC anywhere in
    its chain, or a storage error (OS, SQLite, Chroma) while the disk is all but full
    (Chroma reports a full disk as "Error in compaction", without the cause)."""
    seen: BaseException | None = exc
    out_of_space = False
    while seen is not None and not out_of_space:
        text = str(seen)
        out_of_space = (
            (isinstance(seen, OSError) and seen.errno == errno.ENOSPC)
            or "disk is full" in text
            or "No space left" in text
        )
        seen = seen.__cause__ or seen.__context__
    storage = isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in {
        "chromadb",
        "sqlite3",
    }
    free = _free_bytes(data_dir)
    if not out_of_space and not (storage and free is not None and free < LOW_SPACE_BYTES):
        return None
    shown = f" ({free:,} bytes free)" if free is not None else ""
    return DiskFullError(
        f"No space left on the device holding {data_dir}{shown}: the ingest stopped and "
        "committed nothing; the previous version still answers. Free some space and run "
        "the ingest again (it resumes where it stopped)."
    )


def _free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None
