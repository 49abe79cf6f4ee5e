"""Typed values passed between layers: documents, chunks, the manifest, answers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

RoutePath = Literal["long_context", "rag"]


@dataclass(frozen=True, slots=True)
class Document:
    """One loaded document: its stable id, a title, where it came from, its text."""

    doc_id: str
    title: str
    source: str
    text: str


@dataclass(frozen=True, slots=True)
class Chunk:
    """A token-bounded piece of a document with its exact character span."""

    chunk_id: str
    doc_id: str
    title: str
    source: str
    start: int
    end: int
    index: int
    text: str
    tokens: int

    def metadata(self) -> dict[str, str | int]:
        return {
            "doc_id": self.doc_id,
            "title": self.title,
            "source": self.source,
            "start": self.start,
            "end": self.end,
            "chunk_index": self.index,
            "tokens": self.tokens,
        }


class ManifestDoc(BaseModel):
    doc_id: str
    title: str
    source: str
    content_hash: str
    tokens: int
    chars: int
    chunk_ids: list[str]
    body_tokens: int = -1  # tokens of its text in the snapshot (markup and header excluded)


class Manifest(BaseModel):
    """The committed state of one corpus version: what every reader trusts."""

    corpus_version: str
    created_at: str
    config_key: str
    corpus_root: str
    corpus_tokens: int
    text_tokens: int = 0  # the documents' own tokens: corpus_tokens minus the markup
    documents: list[ManifestDoc]
    chunk_count: int
    embedding_model: str

    def by_id(self) -> dict[str, ManifestDoc]:
        return {doc.doc_id: doc for doc in self.documents}


class SkippedFile(BaseModel):
    path: str
    reason: str


class IngestSummary(BaseModel):
    """What an ingest did; `kb ingest --json` and `POST /v1/ingest` return it."""

    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[SkippedFile] = Field(default_factory=list)
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_deleted: int = 0
    # The reader's sentence index of the new version (kb/backends/extractive/sentence_index.py).
    sentences_embedded: int = 0
    sentences_reused: int = 0
    sentences_pooled: int = 0  # from the chunks' forward passes, no model call of their own
    vectors_repaired: int = 0  # chunk vectors a repair re-embedded before the ingest
    documents: int = 0
    chunks: int = 0
    corpus_tokens: int = 0
    text_tokens: int = 0
    corpus_version: str = ""
    previous_version: str | None = None
    resumed: bool = False
    seconds: float = 0.0
    embed_seconds: float = 0.0
    added_ids: list[str] = Field(default_factory=list)
    changed_ids: list[str] = Field(default_factory=list)
    removed_ids: list[str] = Field(default_factory=list)
    repaired: list[str] = Field(default_factory=list)


# ---- query side -----------------------------------------------------------


@dataclass(slots=True)
class Citation:
    """A numbered source of an answer, pointing at an exact span of a document."""

    number: int
    chunk_id: str
    doc_id: str
    title: str
    source: str
    start: int
    end: int
    text: str
    score: float | None = None


@dataclass(slots=True)
class Usage:
    """Tokens of one answer, split the way providers bill them."""

    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens


@dataclass(frozen=True, slots=True)
class Route:
    """Which path answered and why, with the numbers that decided it. Frozen: a later
    decision (self_route's escalation) makes a new Route."""

    mode: str
    path: RoutePath
    reason: str
    fallback: bool = False
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Answer:
    answer: str
    refused: bool
    citations: list[Citation]
    route: Route
    usage: Usage
    cost_usd: float | None
    backend: str
    corpus_version: str
    timings: dict[str, float] = field(default_factory=dict)
    retrieved: list[Citation] = field(default_factory=list)
    # Set when the question was the last turn of a conversation (kb.conversation):
    # the question routed and retrieved with, and how it was made.
    standalone_question: str | None = None
    standalone_method: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of `kb ask --json` (and, field for field, of the API)."""
        data = asdict(self)
        data["usage"]["total_input_tokens"] = self.usage.total_input_tokens
        return data


@dataclass
class SearchResult:
    """What `KnowledgeBase.search` found: numbered passages, cited with exact spans."""

    query: str
    corpus_version: str
    passages: list[Citation]


@dataclass
class DocumentList:
    """A page of a corpus version's documents (`KnowledgeBase.documents`)."""

    corpus_version: str
    total: int
    documents: list[ManifestDoc]
