"""Verify a data directory without changing it: what `kb check` reports and what
`kb ingest` looks at before it trusts the committed version.

A committed version is sound when its pointer parses, every file of its folder
parses and agrees with the manifest (chunk ids and counts, document spans inside
the snapshot, a lexical index of as many rows as chunks) and every chunk of the
manifest has its vector in the store. Each problem found is a `Damage` naming
the file and what `kb ingest` does about it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from kb.core.errors import CorpusDamagedError
from kb.core.models import Chunk, Manifest
from kb.core.settings import Settings
from kb.store import vector_index
from kb.store.corpus import (
    CHUNKS,
    LEXICAL,
    MANIFEST,
    SNAPSHOT,
    CorpusVersion,
    Layout,
    version_id,
    write_atomic,
)
from kb.store.snapshot import SEPARATOR, header
from kb.store.vectors import VectorStore

# What `kb ingest` does about each kind of damage.
REPAIRS = {
    "pointer": "points current.json at the newest complete version (or re-indexes)",
    "manifest": "rebuilds the version from the documents",
    "chunks": "rebuilds the version from the documents",
    "snapshot": "rebuilds the version from the documents",
    "lexical": "rebuilds the lexical (BM25) index from the chunks",
    "vectors": "re-embeds the missing vectors from the chunks",
    "vector-index": "rebuilds the vector index, re-embedding every chunk of the version",
}


@dataclass(frozen=True)
class Damage:
    """One problem: which part, which file, what is wrong."""

    part: str
    path: str
    problem: str

    @property
    def repair(self) -> str:
        return REPAIRS[self.part]

    def __str__(self) -> str:
        return f"{self.path}: {self.problem} (kb ingest {self.repair})"


@dataclass
class CheckReport:
    """What `check_data_dir` found."""

    data_dir: Path
    version: str | None = None
    documents: int = 0
    chunks: int = 0
    missing_vectors: list[str] = field(default_factory=list)
    damage: list[Damage] = field(default_factory=list)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.damage


def check_data_dir(settings: Settings, *, vectors: bool = True) -> CheckReport:
    """Every problem of the committed version of `settings.data_dir` (none: `ok`)."""
    layout = Layout(settings.data_dir)
    report = CheckReport(settings.data_dir, interrupted=layout.pending.exists())
    try:
        report.version = layout.current_version()
    except CorpusDamagedError as exc:
        report.damage.append(Damage("pointer", str(layout.current), exc.message))
        return report
    if report.version is None:
        return report
    if not layout.version_dir(report.version).is_dir():
        problem = f"points at version {report.version}, whose folder is missing"
        report.damage.append(Damage("pointer", str(layout.current), problem))
        return report
    manifest, chunks, damage = check_version_files(layout, report.version)
    report.damage += damage
    if manifest is not None:
        report.documents, report.chunks = len(manifest.documents), manifest.chunk_count
    if vectors and (broken := vector_index_problem(settings)):
        report.damage.append(broken)  # not opened: loading it could crash this process
    elif manifest is not None and vectors:
        ids = [cid for doc in manifest.documents for cid in doc.chunk_ids]
        report.missing_vectors, lost = missing_vectors(settings, ids)
        if lost:
            report.damage.append(Damage("vectors", str(settings.data_dir / "chroma"), lost))
    return report


def check_version_files(
    layout: Layout, version: str
) -> tuple[Manifest | None, list[Chunk] | None, list[Damage]]:
    """The manifest and chunks of one version folder (None where unreadable) and the
    damage found in its files."""
    folder = layout.version_dir(version)
    try:
        corpus = CorpusVersion.at(layout, version)
    except CorpusDamagedError as exc:
        return None, None, [Damage("manifest", str(folder / MANIFEST), exc.message)]
    manifest = corpus.manifest
    damage: list[Damage] = []
    try:
        chunks: list[Chunk] | None = corpus.chunks
    except CorpusDamagedError as exc:
        chunks = None
        damage.append(Damage("chunks", str(folder / CHUNKS), exc.message))
    wanted = [cid for doc in manifest.documents for cid in doc.chunk_ids]
    if chunks is not None and (
        [c.chunk_id for c in chunks] != wanted or len(wanted) != manifest.chunk_count
    ):
        disagree = (
            f"holds {len(chunks)} chunks; the manifest lists {len(wanted)} "
            f"(chunk_count {manifest.chunk_count}): they disagree"
        )
        damage.append(Damage("chunks", str(folder / CHUNKS), disagree))
        chunks = None
    if problem := _snapshot_problem(corpus):
        damage.append(Damage("snapshot", str(folder / SNAPSHOT), problem))
    if chunks is not None and (problem := _lexical_problem(corpus, len(chunks))):
        damage.append(Damage("lexical", str(folder / LEXICAL), problem))
    return manifest, chunks, damage


# In a version folder: the size and modification time of each of its files when the
# folder was last known sound (written by the ingest that committed it, or verified).
VERIFIED = ".verified.json"


def _stamps(folder: Path) -> dict[str, list[int]]:
    stamps = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != VERIFIED:
            stat = path.stat()
            stamps[path.relative_to(folder).as_posix()] = [stat.st_size, stat.st_mtime_ns]
    return stamps


def remember_sound(layout: Layout, version: str) -> None:
    """Note that the files of `version` are sound as they are now."""
    folder = layout.version_dir(version)
    write_atomic(folder / VERIFIED, json.dumps({"version": version, "files": _stamps(folder)}))


def known_sound(layout: Layout, version: str) -> bool:
    """Whether `version` was sound and none of its files changed since (size or
    modification time): `kb ingest` then spares reading them all again. `kb check`
    always reads everything."""
    folder = layout.version_dir(version)
    try:
        noted = json.loads((folder / VERIFIED).read_text("utf-8"))
        return bool(noted == {"version": version, "files": _stamps(folder)})
    except (OSError, ValueError):
        return False


def _snapshot_problem(corpus: CorpusVersion) -> str | None:
    """Each document's header and text where the reference map says."""
    try:
        snapshot = corpus.snapshot
        documents = corpus.documents
    except CorpusDamagedError as exc:
        return exc.message
    entries = corpus.manifest.documents
    if version_id(corpus.manifest.config_key, snapshot, documents) != corpus.folder.name:
        return "its text or reference map differs from what the version was made of"
    if [d.doc_id for d in documents] != [e.doc_id for e in entries]:
        return f"the reference map lists {len(documents)} documents; the manifest {len(entries)}"
    # Versions written before snapshot-v3 repeated every title.
    repeats_titles = corpus.manifest.config_key.endswith("/snapshot-v2")
    previous = ""
    for doc, entry in zip(documents, entries, strict=True):
        text = snapshot[doc.start : doc.end]
        head = header(doc.ref, doc.title, text, previous)
        previous = "" if repeats_titles else doc.title
        intact = (
            len(text) == entry.chars
            and snapshot[doc.start - len(head) : doc.start] == head
            and snapshot[doc.end : doc.end + len(SEPARATOR)] == SEPARATOR
        )
        if not intact:
            return f"the text of {doc.doc_id!r} is not where the reference map says"
    return None


def _lexical_problem(corpus: CorpusVersion, rows: int) -> str | None:
    try:
        held = corpus.lexical.size
    except CorpusDamagedError as exc:
        return exc.message
    if held != rows:
        return f"indexes {held} rows; the version has {rows} chunks"
    return None


def vector_index_problem(settings: Settings) -> Damage | None:
    """Damage to the embedded store's persisted vector index, as `kb check` lists it."""
    found = vector_index.vector_index_problem(settings)
    return Damage("vector-index", str(found[0]), found[1]) if found else None


def missing_vectors(settings: Settings, ids: list[str]) -> tuple[list[str], str | None]:
    """The chunk ids without a vector in the store, and a problem if any are missing.
    (Chunks of the same text share an id, so `ids` may repeat one.)"""
    ids = list(dict.fromkeys(ids))
    if not ids:
        return [], None
    sqlite = settings.data_dir / "chroma" / "chroma.sqlite3"
    if settings.chroma_url is None and not sqlite.exists():
        return list(ids), f"{sqlite.name} is missing: all {len(ids)} vectors are gone"
    try:
        found = VectorStore(settings).existing(ids)
    except Exception as exc:  # chromadb raises its own tree and sqlite's
        return list(ids), f"the vector store cannot be read ({type(exc).__name__}: {exc})"
    missing = [cid for cid in ids if cid not in found]
    if missing:
        return missing, f"{len(missing)} of {len(ids)} chunks have no vector in the store"
    return [], None
