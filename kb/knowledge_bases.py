"""Named knowledge bases in one service: where each lives, and which are loaded.

A knowledge base is the single-corpus machinery with derived settings: the
`default` one is KB_DATA_DIR itself (today's layout, taken over as it is), a
named one lives in DATA_DIR/kbs/<name>/ with its own versions, vectors (Chroma
collection COLLECTION-<name>), lexical, snapshot and reader indexes, and the
folder it is re-indexed from in its `kb.json`:

    DATA_DIR/                   the default knowledge base (current.json, versions/, ...)
      keys.json                 scoped API keys (kb.keys)
      kbs/<name>/               one named knowledge base, the same layout
        kb.json                 {"name", "source", "created_at"}

`KnowledgeBases` opens them lazily and keeps at most KB_MAX_LOADED_KBS named
ones loaded, closing the least recently used.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from kb.core.errors import (
    InvalidRequestError,
    KnowledgeBaseExistsError,
    KnowledgeBaseNotFoundError,
)
from kb.core.models import Route
from kb.core.settings import DEFAULT_KB, KB_NAME_PATTERN, KB_NAME_RULE, KBS_FOLDER, Settings
from kb.search.embedding import Embedder
from kb.service import CorpusStatus, KnowledgeBase
from kb.store.corpus import Layout, now, write_atomic
from kb.store.vectors import chroma_client, release_embedded_client

RECORD = "kb.json"
# An evicted knowledge base is closed this long after it leaves the LRU, so that a
# question that picked it up just before finishes on it (questions take seconds).
UNLOAD_GRACE_S = 15.0


def check_name(name: object) -> str:
    """`name` if it is a valid knowledge base name; else InvalidRequestError."""
    if not isinstance(name, str) or not re.match(KB_NAME_PATTERN, name):
        shown = repr(name)[:60]
        raise InvalidRequestError(f"Invalid knowledge base name {shown}: use {KB_NAME_RULE}.")
    return name


def root_settings(settings: Settings) -> Settings:
    """The settings of the default knowledge base, whichever one `settings` is for."""
    if settings.kb_name == DEFAULT_KB:
        return settings
    base_collection = settings.collection.removesuffix(f"-{settings.kb_name}")
    fields = settings.model_dump() | {
        "data_dir": settings.kb_root,
        "collection": base_collection,
        "knowledge_base": None,
    }
    return Settings(**fields)


def settings_for(root: Settings, name: str) -> Settings:
    """The settings of knowledge base `name` under `root` (the default's settings)."""
    if name == DEFAULT_KB:
        return root
    record = _read_record(root.data_dir / KBS_FOLDER / name)
    source = record.get("source")
    fields = root.model_dump() | {
        "knowledge_base": check_name(name),
        "corpus_dir": Path(source) if source else None,
    }
    return Settings(**fields)


def _read_record(folder: Path) -> dict[str, str]:
    try:
        data = json.loads((folder / RECORD).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True, slots=True)
class KnowledgeBaseInfo:
    """What a knowledge base holds, and the path `auto` takes for a short question."""

    name: str
    source: str | None
    created_at: str | None
    ingested: bool
    corpus_version: str | None
    documents: int
    chunks: int
    corpus_tokens: int
    auto_route: Route | None
    loaded: bool
    index_bytes: int


class KnowledgeBases:
    """Every knowledge base of one data directory, opened lazily, LRU-bounded."""

    def __init__(self, settings: Settings, default: KnowledgeBase, *, embedder: Embedder) -> None:
        self.root = root_settings(settings)
        self.default = default
        self.embedder = embedder
        self.max_loaded = settings.max_loaded_kbs
        self._loaded: OrderedDict[str, KnowledgeBase] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def folder(self) -> Path:
        return self.root.data_dir / KBS_FOLDER

    # -- what exists ----------------------------------------------------------------

    def names(self) -> list[str]:
        """The default (when ingested or given a corpus folder), then named ones, sorted."""
        named = []
        if self.folder.is_dir():
            named = sorted(
                p.name for p in self.folder.iterdir() if (p / RECORD).is_file() and _valid(p.name)
            )
        has_default = (
            self.root.corpus_dir is not None or Layout(self.root.data_dir).current.exists()
        )
        return ([DEFAULT_KB] if has_default else []) + named

    def exists(self, name: str) -> bool:
        if name == DEFAULT_KB:
            return True
        return _valid(name) and (self.folder / name / RECORD).is_file()

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._loaded)

    # -- opening --------------------------------------------------------------------

    def get(self, name: str) -> KnowledgeBase:
        """The loaded knowledge base `name` (opening it, and closing the least recently
        used beyond KB_MAX_LOADED_KBS); KnowledgeBaseNotFoundError if there is none."""
        if name == DEFAULT_KB:
            return self.default
        with self._lock:
            if (found := self._loaded.get(name)) is not None:
                self._loaded.move_to_end(name)
                return found
        if not self.exists(name):
            raise not_found(name)
        opened = KnowledgeBase(settings_for(self.root, name), embedder=self.embedder)
        with self._lock:
            if (raced := self._loaded.get(name)) is not None:
                opened.close()
                return raced
            self._loaded[name] = opened
            evicted = []
            while len(self._loaded) > self.max_loaded:
                evicted.append(self._loaded.popitem(last=False)[1])
        for old in evicted:
            _unload_later(old)
        return opened

    def unload(self, name: str) -> None:
        with self._lock:
            found = self._loaded.pop(name, None)
        if found is not None:
            _unload(found)

    def close(self) -> None:
        for name in self.loaded():
            self.unload(name)

    # -- describing, creating, deleting ---------------------------------------------

    def describe(self, name: str) -> KnowledgeBaseInfo:
        if not self.exists(name):
            raise not_found(name)
        settings = settings_for(self.root, name)
        record = _read_record(settings.data_dir) if name != DEFAULT_KB else {}
        source = record.get("source") or (str(settings.corpus_dir) if settings.corpus_dir else None)
        created_at = record.get("created_at")
        if Layout(settings.data_dir).current_version() is None:
            return KnowledgeBaseInfo(
                name, source, created_at, ingested=False, corpus_version=None, documents=0,
                chunks=0, corpus_tokens=0, auto_route=None, loaded=name in self.loaded(),
                index_bytes=0,
            )  # fmt: skip
        status = self._status(name, settings)
        return KnowledgeBaseInfo(
            name,
            source,
            created_at,
            ingested=True,
            corpus_version=status.corpus_version,
            documents=status.documents,
            chunks=status.chunks,
            corpus_tokens=status.corpus_tokens,
            auto_route=status.auto_route,
            loaded=name == DEFAULT_KB or name in self.loaded(),
            index_bytes=_index_bytes(settings.data_dir, status.corpus_version),
        )

    def _status(self, name: str, settings: Settings) -> CorpusStatus:
        """The status from the loaded base, else from a passing one (manifest only):
        describing does not load a base nor push a warm one out."""
        with self._lock:
            found = self.default if name == DEFAULT_KB else self._loaded.get(name)
        if found is not None:
            return found.status()
        with KnowledgeBase(settings, embedder=self.embedder) as passing:
            return passing.status()

    def create(self, name: str, source: Path | None) -> Settings:
        """Record knowledge base `name` (re-indexed from `source`); its settings."""
        if name == DEFAULT_KB:
            raise KnowledgeBaseExistsError("The default knowledge base always exists.")
        check_name(name)
        if source is not None and not source.exists():
            raise InvalidRequestError(f"The source {source} does not exist on the server.")
        folder = self.folder / name
        with self._lock:
            if (folder / RECORD).is_file():
                raise KnowledgeBaseExistsError(
                    f"A knowledge base named {name!r} exists: re-index it with "
                    f"POST /v1/kbs/{name}/ingest, or delete it first."
                )
            folder.mkdir(parents=True, exist_ok=True)
            record = {"name": name, "source": str(source) if source else None, "created_at": now()}
            write_atomic(folder / RECORD, json.dumps(record, indent=2))
        return settings_for(self.root, name)

    def delete(self, name: str) -> None:
        """Remove knowledge base `name`: its folder, and its collection on a Chroma server."""
        if name == DEFAULT_KB:
            raise InvalidRequestError(
                "The default knowledge base cannot be deleted (it is KB_DATA_DIR itself)."
            )
        if not self.exists(name):
            raise not_found(name)
        settings = settings_for(self.root, name)
        self.unload(name)
        (settings.data_dir / RECORD).unlink()  # gone for readers before the rest goes
        if settings.chroma_url:
            with contextlib.suppress(Exception):  # never created: nothing to delete
                chroma_client(settings).delete_collection(settings.collection)
        shutil.rmtree(settings.data_dir, ignore_errors=True)


def not_found(name: str) -> KnowledgeBaseNotFoundError:
    """The one answer for a missing knowledge base and for one the caller may not read."""
    shown = name if _valid(name) else repr(name)[:40]
    return KnowledgeBaseNotFoundError(
        f"No knowledge base named {shown}: GET /v1/kbs lists those your key may read."
    )


def _valid(name: str) -> bool:
    return bool(re.match(KB_NAME_PATTERN, name))


def _unload(knowledge_base: KnowledgeBase) -> None:
    """Close a knowledge base and release its embedded Chroma system (its vector index)."""
    store = knowledge_base.loaded_store()
    knowledge_base.close()
    if store is not None and not knowledge_base.settings.chroma_url:
        with contextlib.suppress(Exception):  # already stopped: nothing to release
            release_embedded_client(store.client)


def _unload_later(knowledge_base: KnowledgeBase) -> None:
    """Unload an evicted knowledge base once questions already running on it are done."""
    timer = threading.Timer(UNLOAD_GRACE_S, _unload, args=(knowledge_base,))
    timer.daemon = True
    timer.start()


def _index_bytes(data_dir: Path, version: str) -> int:
    """Bytes on disk of what loading a version reads: its folder and the vector store."""
    total = 0
    for folder in (Layout(data_dir).version_dir(version), data_dir / "chroma"):
        if folder.is_dir():
            total += sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return total


def record_source(settings: Settings, source: Path) -> None:
    """Create or update the record of the named knowledge base `settings` is for, with
    the folder it is ingested from (what `POST /v1/kbs/{name}/ingest` re-indexes)."""
    folder = settings.data_dir
    record = _read_record(folder)
    resolved = str(source.resolve())
    if record.get("source") == resolved:
        return
    folder.mkdir(parents=True, exist_ok=True)
    record = {"name": settings.kb_name, "source": resolved, "created_at": now()} | {
        k: v for k, v in record.items() if k == "created_at"
    }
    write_atomic(folder / RECORD, json.dumps(record, indent=2))
