"""The on-disk layout of a corpus and the read side of a committed version.

    DATA_DIR/
      current.json              pointer to the committed version (atomic replace)
      versions/<version>/       manifest.json, chunks.jsonl, snapshot.txt, bm25/
      pending.json              present while an ingest is between writes
      ingest.lock               held by the one ingest that may run
      chroma/                   embedded Chroma (unless KB_CHROMA_URL is set)
      cache/                    answer backends' per-version caches

Readers trust only `current.json`: an ingest writes a whole new version folder
and its vectors first, then swaps the pointer, then deletes what is stale, so
a query always sees one complete version, even if an ingest is killed half-way.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from kb.errors import NotIngestedError
from kb.lexical import LexicalIndex
from kb.models import Chunk, Manifest


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


def write_atomic(path: Path, data: str) -> None:
    """Write `path` so that readers see the old text or the new, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _escape(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("\n", " ")


def document_header(doc_id: str, title: str, source: str) -> str:
    return (
        f'<document id="{_escape(doc_id)}" title="{_escape(title)}" source="{_escape(source)}">\n'
    )


DOCUMENT_FOOTER = "\n</document>\n\n"


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
        manifest = Manifest.model_validate_json(
            (layout.version_dir(version) / "manifest.json").read_text("utf-8")
        )
        return cls(layout, manifest)

    @property
    def corpus_tokens(self) -> int:
        return self.manifest.corpus_tokens

    @cached_property
    def chunks(self) -> list[Chunk]:
        with open(self.folder / "chunks.jsonl", encoding="utf-8") as fh:
            return [Chunk(**json.loads(line)) for line in fh]

    @cached_property
    def chunk_rows(self) -> dict[str, int]:
        return {chunk.chunk_id: row for row, chunk in enumerate(self.chunks)}

    @cached_property
    def snapshot(self) -> str:
        """The byte-stable text of every document: the long-context prompt's prefix."""
        return (self.folder / "snapshot.txt").read_text("utf-8")

    @cached_property
    def lexical(self) -> LexicalIndex:
        return LexicalIndex.load(self.folder / "bm25", len(self.chunks))

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
        spans: list[tuple[str, int, int]] = json.loads(
            (self.folder / "snapshot_spans.json").read_text("utf-8")
        )
        return spans
