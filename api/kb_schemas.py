"""Request and response bodies of the knowledge-base and key routes (api.kb_routes)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import Citation, IngestResponse, QueryResponse, Route, UnicodeStr, Usage
from kb.core import KB_NAME_RULE, TOP_K_MAX, TOP_K_MIN, Mode

NAME_DESCRIPTION = f"The knowledge base's name: {KB_NAME_RULE}."


class KnowledgeBaseCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "handbook", "source": "/srv/docs/handbook"}]},
    )

    name: str = Field(min_length=1, max_length=32, description=NAME_DESCRIPTION)
    source: str | None = Field(
        default=None,
        max_length=4_096,
        description="A folder or file on the server to index now and re-index on "
        "`POST /v1/kbs/{name}/ingest` (omit to create an empty knowledge base).",
    )


class KnowledgeBaseInfo(BaseModel):
    """A knowledge base: what it holds and the path `auto` takes for it, and why."""

    name: str = Field(description=NAME_DESCRIPTION, examples=["handbook"])
    source: str | None = Field(description="The folder it is re-indexed from.")
    created_at: str | None = Field(description="When it was created (ISO 8601, UTC).")
    ingested: bool = Field(description="False until a first ingest has committed.")
    corpus_version: str | None = Field(description="The committed version.")
    documents: int = Field(description="Documents in its committed version.")
    chunks: int = Field(description="Indexed chunks.")
    corpus_tokens: int = Field(description="Tokens of its whole snapshot.")
    auto_route: Route | None = Field(
        description="The path `auto` takes for a short question, and why (null until ingested)."
    )
    loaded: bool = Field(description="Whether this server holds it in memory now.")
    index_bytes: int = Field(
        description="Bytes on disk of its committed version and vectors: what loading reads."
    )


class KnowledgeBaseList(BaseModel):
    data: list[KnowledgeBaseInfo] = Field(description="The knowledge bases the key may read.")


class KnowledgeBaseCreated(BaseModel):
    kb: KnowledgeBaseInfo = Field(description="The new knowledge base.")
    ingest: IngestResponse | None = Field(description="The first ingest, when a source was given.")


class CrossQueryRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"question": "Who approves a hotfix?", "kbs": ["handbook", "hotpotqa"]}]
        },
    )

    question: UnicodeStr = Field(min_length=1, description="The question, in plain text.")
    kbs: list[str] = Field(
        min_length=1,
        max_length=8,
        description="Knowledge bases to answer from, in order: each takes long context while "
        "its snapshot fits what is left of the budget, retrieval otherwise.",
    )
    mode: Mode | None = Field(default=None, description="As in /v1/query, for every base.")
    top_k: int | None = Field(
        default=None,
        ge=TOP_K_MIN,
        le=TOP_K_MAX,
        strict=True,
        description="As in /v1/query: most chunks a retrieving base puts in its prompt.",
    )


class CrossCitation(Citation):
    kb: str = Field(description="The knowledge base the cited document belongs to.")


class CrossPart(BaseModel):
    """One knowledge base's share: its own answer, route, usage and cost."""

    kb: str = Field(description="The knowledge base.")
    budget_left: int = Field(description="Long-context tokens left after this base.")
    result: QueryResponse = Field(description="Its answer, route, usage, cost and timings.")


class CrossQueryResponse(BaseModel):
    answer: str = Field(description="Each base's answer under its name, `[n]` markers unique.")
    refused: bool = Field(description="True when no knowledge base could answer.")
    citations: list[CrossCitation] = Field(description="Every base's citations, with its `kb`.")
    per_kb: list[CrossPart] = Field(description="Route, usage and cost per knowledge base.")
    usage: Usage = Field(description="Tokens over every knowledge base.")
    cost_usd: float | None = Field(description="USD over every base (null if one is unknown).")


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kbs: list[str] = Field(
        min_length=1, max_length=1_000, description="Knowledge bases it may read; `*`: all."
    )
    ingest: bool = Field(default=False, description="May ingest into the bases it reads.")
    admin: bool = Field(default=False, description="May create and delete bases and keys.")
    name: str = Field(default="", max_length=100, description="A note for whom it is.")


class KeyInfo(BaseModel):
    """A scoped key as stored, without its hash: the key itself is never kept."""

    id: str = Field(description="The key's id: the part after `kb-` and before the dot.")
    name: str = Field(description="The note it was created with.")
    kbs: list[str] = Field(description="Knowledge bases it may read; `*`: all.")
    ingest: bool = Field(description="Whether it may ingest into them.")
    admin: bool = Field(description="Whether it may create and delete bases and keys.")
    created_at: str = Field(description="When it was created (ISO 8601, UTC).")


class KeyCreated(BaseModel):
    key: str = Field(description="The key: shown once, stored only as a salted hash.")
    info: KeyInfo = Field(description="Its id and scope.")


class KeyList(BaseModel):
    data: list[KeyInfo] = Field(description="Every key's id and scope.")


def dump(value: Any) -> dict[str, Any]:
    """A dataclass or mapping as a plain dict, for model_validate."""
    from dataclasses import asdict, is_dataclass

    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else dict(value)
