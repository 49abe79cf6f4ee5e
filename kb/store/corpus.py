"""The on-disk layout of a corpus: the version folder format, its one writer and its
reader. No other module names these files.

    DATA_DIR/
      current.json              pointer to the committed version (atomic replace)
      versions/<version>/       manifest.json, chunks.jsonl, snapshot.txt, refs.json,
                                lexical.npz (+ derived indexes readers add)
      pending.json              present while an ingest is between writes
      ingest.lock               held by the one ingest that may run
      chroma/                   embedded Chroma (unless KB_CHROMA_URL is set)
      cache/                    answer backends' per-version caches

Readers trust only `current.json`: an ingest writes a whole new version folder
and its vectors first, then swaps the pointer, then deletes what is stale, so
a query always sees one complete version, even if an ingest is killed half-way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from kb.core.errors import CorpusDamagedError, NotIngestedError
from kb.core.models import Chunk, Manifest
from kb.store.lexical import LexicalIndex
from kb.store.snapshot import Snapshot, SnapshotDocument

MANIFEST = "manifest.json"
CHUNKS = "chunks.jsonl"
SNAPSHOT = "snapshot.txt"
REFS = "refs.json"  # the snapshot's reference-to-source map, outside the prompt
LEXICAL = "lexical.npz"


@dataclass(frozen=True)
class Layout:
    data_dir: Path

    @property
    def current(self) -> Path:
        return self.data_dir / "current.json"

    @property
    def pending(self) -> Path:
        return self.data_dir / "pending.json"

    @property
    def lock(self) -> Path:
        return self.data_dir / "ingest.lock"

    @property
    def versions(self) -> Path:
        return self.data_dir / "versions"

    def version_dir(self, version: str) -> Path:
        return self.versions / version

    def cache_dir(self, name: str) -> Path:
        return self.data_dir / "cache" / name

    def current_version(self) -> str | None:
        try:
            return str(json.loads(self.current.read_text("utf-8"))["corpus_version"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, OSError) as exc:
            raise damaged(self.current, exc) from exc


def damaged(path: Path, exc: Exception) -> CorpusDamagedError:
    """The error for an unreadable committed file, naming it and the cure."""
    why = "is missing" if isinstance(exc, FileNotFoundError) else f"is damaged ({exc})"
    return CorpusDamagedError(
        f"{path} {why.splitlines()[0][:200]}. Run `kb check` for the full list and "
        "`kb ingest PATH` to repair the index."
    )


def write_atomic(path: Path, data: str) -> None:
    """Write `path` so that readers see the old text or the new, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class CorpusVersion:
    """One committed corpus version, loaded lazily: manifest, chunks, snapshot, BM25."""

    def __init__(self, layout: Layout, manifest: Manifest) -> None:
        self.layout = layout
        self.manifest = manifest
        self.version = manifest.corpus_version
        self.folder = layout.version_dir(self.version)
        self._lock = threading.Lock()

    @classmethod
    def open(cls, data_dir: Path) -> CorpusVersion:
        layout = Layout(data_dir)
        version = layout.current_version()
        if version is None:
            raise NotIngestedError(
                f"No corpus has been ingested into {data_dir}. Run `kb ingest PATH` first "
                "(or POST /v1/ingest)."
            )
        return cls.at(layout, version)

    @classmethod
    def at(cls, layout: Layout, version: str) -> CorpusVersion:
        """A version folder, committed or not (an ingest reads the one it just wrote)."""
        path = layout.version_dir(version) / MANIFEST
        try:
            manifest = Manifest.model_validate_json(path.read_text("utf-8"))
        except (ValueError, OSError) as exc:  # pydantic's ValidationError is a ValueError
            raise damaged(path, exc) from exc
        return cls(layout, manifest)

    @property
    def corpus_tokens(self) -> int:
        return self.manifest.corpus_tokens

    def chunk_lines(self) -> list[str]:
        """The chunk list as stored, one JSON line per chunk in manifest order."""
        with open(self.folder / CHUNKS, encoding="utf-8") as fh:
            return fh.readlines()

    @cached_property
    def chunks(self) -> list[Chunk]:
        try:
            return [Chunk(**json.loads(line)) for line in self.chunk_lines()]
        except (ValueError, TypeError, OSError) as exc:
            raise damaged(self.folder / CHUNKS, exc) from exc

    @cached_property
    def chunk_ids(self) -> frozenset[str]:
        """Every chunk id (= vector id) of this version, from the manifest alone."""
        return frozenset(cid for doc in self.manifest.documents for cid in doc.chunk_ids)

    @cached_property
    def chunk_rows(self) -> dict[str, int]:
        return {chunk.chunk_id: row for row, chunk in enumerate(self.chunks)}

    @cached_property
    def snapshot(self) -> str:
        """The byte-stable text of every document: the long-context prompt's prefix."""
        try:
            return (self.folder / SNAPSHOT).read_text("utf-8")
        except (ValueError, OSError) as exc:
            raise damaged(self.folder / SNAPSHOT, exc) from exc

    @cached_property
    def lexical(self) -> LexicalIndex:
        path = self.folder / LEXICAL
        try:
            if self.manifest.chunk_count and not path.exists():
                raise FileNotFoundError(path)
            return LexicalIndex.load(path)
        except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile) as exc:
            raise damaged(path, exc) from exc

    @cached_property
    def documents(self) -> list[SnapshotDocument]:
        """Each document's reference number, source and exact span in the snapshot."""
        try:
            rows = json.loads((self.folder / REFS).read_text("utf-8"))
            return [SnapshotDocument(*row) for row in rows]
        except (ValueError, TypeError, OSError) as exc:
            raise damaged(self.folder / REFS, exc) from exc

    @cached_property
    def _by_ref(self) -> dict[str, str]:
        return {str(d.ref): d.doc_id for d in self.documents}

    def doc_id_for(self, reference: str) -> str | None:
        """The document a long-context citation names: by reference number (`12`,
        `§12`) or, from older prompts, by its id."""
        reference = reference.strip().lstrip("§").strip()
        if reference in self._by_ref:
            return self._by_ref[reference]
        return reference if reference in self.chunks_by_doc else None

    @cached_property
    def chunks_by_doc(self) -> dict[str, list[Chunk]]:
        grouped: dict[str, list[Chunk]] = {}
        for chunk in self.chunks:
            grouped.setdefault(chunk.doc_id, []).append(chunk)
        return grouped

    def chunk_at(self, doc_id: str, offset: int) -> str:
        """Id of the chunk of `doc_id` that holds character `offset` ("" if none)."""
        found = ""
        for chunk in self.chunks_by_doc.get(doc_id, []):
            if chunk.start <= offset:
                found = chunk.chunk_id
                if offset < chunk.end:
                    return found
        return found

    def document_spans(self) -> list[tuple[str, int, int]]:
        """(doc_id, start, end) of each document's text inside the snapshot."""
        return [(d.doc_id, d.start, d.end) for d in self.documents]


def version_id(config_key: str, snapshot_text: str, documents: Iterable[SnapshotDocument]) -> str:
    """A version's name: the hash of what decides it (the configuration, the snapshot
    and its reference map), so the same documents give the same version back and a
    folder whose snapshot or map was altered no longer matches its name."""
    refs = "\n".join(f"{d.doc_id}\0{d.source}" for d in documents)  # a rename: only the map
    return hashlib.sha256(f"{config_key}\0{snapshot_text}\0{refs}".encode()).hexdigest()[:16]


def chunk_line(chunk: Chunk) -> str:
    return json.dumps(asdict(chunk), ensure_ascii=False) + "\n"


class VersionWriter:
    """Writes one version folder, whole or not at all: files go to a staging folder
    renamed into place, so a folder under `versions/` is always complete."""

    def __init__(self, layout: Layout, version: str) -> None:
        self.layout = layout
        self.version = version
        self.folder = layout.version_dir(version)

    def complete(self) -> Manifest | None:
        """The manifest of this exact version if an earlier run already wrote it."""
        path = self.folder / MANIFEST
        return Manifest.model_validate_json(path.read_text("utf-8")) if path.exists() else None

    def write(
        self,
        manifest: Manifest,
        snapshot: Snapshot,
        chunk_lines: Iterable[str],
        lexical: LexicalIndex,
    ) -> None:
        staging = self.folder.with_name(f".{self.version}.staging")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        (staging / SNAPSHOT).write_text(snapshot.text, "utf-8")
        refs = [[d.ref, d.doc_id, d.title, d.source, d.start, d.end] for d in snapshot.documents]
        (staging / REFS).write_text(json.dumps(refs, ensure_ascii=False), "utf-8")
        with open(staging / CHUNKS, "w", encoding="utf-8") as fh:
            fh.writelines(chunk_lines)
        lexical.save(staging / LEXICAL)
        (staging / MANIFEST).write_text(manifest.model_dump_json(), "utf-8")  # last: the seal
        staging.rename(self.folder)

    def commit(self) -> None:
        """Point `current.json` at this version: readers switch to it atomically."""
        write_atomic(
            self.layout.current,
            json.dumps({"corpus_version": self.version, "committed_at": now()}),
        )


def prune_versions(layout: Layout, keep: set[str | None]) -> None:
    """Delete every version folder but `keep` (and staging leftovers of killed runs)."""
    for folder in layout.versions.iterdir():
        if folder.name not in keep:
            shutil.rmtree(folder, ignore_errors=True)
