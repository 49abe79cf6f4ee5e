"""The HTTP contract: one pydantic schema per direction, with descriptions and examples.

Requests are validated here (shape and ranges); what depends on settings (the
question length limit) is checked by `kb` and comes back as a typed error.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from kb.core import TOP_K_MAX, TOP_K_MIN, Mode

MODEL_NAME_CHARS = 256  # a chat request's `model`, echoed in every chunk of a stream

EXAMPLE_CITATION: dict[str, Any] = {
    "number": 1,
    "chunk_id": "deploys-3f2a9c1e-0002",
    "doc_id": "engineering/deploys.md",
    "title": "Deploys",
    "source": "engineering/deploys.md",
    "start": 812,
    "end": 917,
    "text": "Production deploys are frozen from Friday 15:00 until Monday 09:00 UTC.",
    "score": 0.71,
}
EXAMPLE_ROUTE: dict[str, Any] = {
    "mode": "auto",
    "path": "long_context",
    "reason": "corpus 41,203 + prompt 112 + answer reserve 1,024 = 42,339 tokens <= limit "
    "200,000 (budget 200,000, backend window 100,000,000): the whole corpus fits, so "
    "read it whole from the cached prompt",
    "fallback": False,
    "numbers": {"corpus_tokens": 41203, "needed_tokens": 42339, "limit_tokens": 200000},
}
EXAMPLE_USAGE: dict[str, Any] = {
    "input_tokens": 118,
    "cache_read_tokens": 41203,
    "cache_write_tokens": 0,
    "output_tokens": 19,
    "total_input_tokens": 41321,
}


def _valid_unicode(text: str) -> str:
    """JSON may carry a lone surrogate (`"\\ud800"`); no answer can be encoded with one."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"not valid Unicode: a lone surrogate at character {exc.start}; send UTF-8 text"
        ) from exc
    return text


# A string field that refuses lone surrogates (pydantic passes them through a plain
# `str` without constraints, and they fail later, when the answer is encoded).
UnicodeStr = Annotated[str, AfterValidator(_valid_unicode)]


# ---- errors -------------------------------------------------------------------


class ErrorBody(BaseModel):
    type: str = Field(
        description="What kind of error: a kb error class name such as `InvalidRequestError`, "
        "`AuthError`, `IngestBusyError`, `BackendTimeoutError`, or `PayloadTooLargeError`, "
        "`NotFoundError`, `InternalError`.",
        examples=["InvalidRequestError"],
    )
    message: str = Field(
        description="What went wrong and what to do about it.",
        examples=["top_k: Input should be less than or equal to 100 (got 500)"],
    )


class ErrorResponse(BaseModel):
    """Every error the API returns has this one shape (also OpenAI's error shape)."""

    error: ErrorBody = Field(description="What went wrong.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "type": "InvalidRequestError",
                        "message": "top_k: Input should be less than or equal to 100 (got 500)",
                    }
                }
            ]
        }
    )


# ---- query --------------------------------------------------------------------


class Turn(BaseModel):
    """One earlier message of a conversation."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"] = Field(description="Who wrote it.", examples=["user"])
    content: str = Field(
        max_length=20_000, description="Its text.", examples=["Who maintains the rotation?"]
    )


class QueryRequest(BaseModel):
    """A question for the knowledge service."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"question": "When are production deploys frozen?"},
                {"question": "Who approves a hotfix?", "mode": "rag", "top_k": 5, "stream": True},
            ]
        },
    )

    question: str = Field(
        min_length=1,
        description="The question, in plain text. At most KB_MAX_QUESTION_CHARS characters "
        "(4,000 by default).",
        examples=["When are production deploys frozen?"],
    )
    mode: Mode | None = Field(
        default=None,
        description="`auto` (the router picks per corpus and question), `long_context` (the "
        "whole corpus from the cached prompt), `rag` (retrieve passages) or "
        "`self_route` (retrieve first, escalate to long context if the passages cannot "
        "answer). Default: KB_DEFAULT_MODE.",
        examples=["auto"],
    )
    top_k: int | None = Field(
        default=None,
        ge=TOP_K_MIN,
        le=TOP_K_MAX,
        strict=True,
        description=f"Most chunks the retrieval path puts in the prompt ({TOP_K_MIN}-{TOP_K_MAX}), "
        "within KB_RAG_CONTEXT_TOKENS (neighbouring chunks of a document merge into one "
        "passage); a JSON integer (not a string or a boolean). Default: KB_TOP_K.",
        examples=[8],
    )
    history: list[Turn] = Field(
        default_factory=list,
        max_length=50,
        description="Earlier turns of the conversation, oldest first (the web page sends "
        "them). With history, `question` is a follow-up: it is made standalone before "
        "routing and retrieval (see `standalone_question` in the response).",
    )
    stream: bool = Field(
        default=False,
        strict=True,
        description="A JSON boolean. Answer as server-sent events: `event: delta` frames carrying "
        '`{"text": ...}`, then one `event: answer` frame with the full QueryResponse, or '
        "`event: error` with an ErrorResponse if the answer fails mid-way.",
    )


class Citation(BaseModel):
    """A numbered source of the answer: an exact character span of one document."""

    number: int = Field(description="The marker number used in the answer text, `[n]`.")
    chunk_id: str = Field(description="The indexed chunk that holds the span.")
    doc_id: str = Field(description="Stable id of the document.")
    title: str = Field(description="Title of the document.")
    source: str = Field(description="Where the document came from (path relative to the corpus).")
    start: int = Field(description="Start offset of the span in the document's text (chars).")
    end: int = Field(description="End offset (exclusive) of the span in the document's text.")
    text: str = Field(description="The cited text itself.")
    score: float | None = Field(
        default=None, description="How well the span matched (backend-specific)."
    )

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_CITATION]})


class Route(BaseModel):
    """Which path answered and why, with the numbers the decision compared."""

    mode: str = Field(description="The mode that was asked for.", examples=["auto"])
    path: Literal["long_context", "rag"] = Field(description="The path that answered.")
    reason: str = Field(description="Why this path, in one sentence with the numbers.")
    fallback: bool = Field(
        default=False,
        description="True when `self_route` escalated from retrieval to long context.",
    )
    numbers: dict[str, Any] = Field(
        default_factory=dict,
        description="Token counts (and costs, for priced backends) the router compared.",
    )

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_ROUTE]})


class Usage(BaseModel):
    """Tokens of one answer, split the way providers bill them."""

    input_tokens: int = Field(description="Prompt tokens billed at the full input price.")
    cache_read_tokens: int = Field(description="Prompt tokens read from the prompt cache.")
    cache_write_tokens: int = Field(description="Prompt tokens written to the prompt cache.")
    output_tokens: int = Field(description="Tokens of the answer.")
    total_input_tokens: int = Field(description="All prompt tokens: input + cache read + write.")

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_USAGE]})


class StandaloneQuestion(BaseModel):
    """The question a conversation's last turn was asked as (shared by the query and chat
    responses)."""

    standalone_question: str | None = Field(
        default=None,
        description="For a follow-up in a conversation: the standalone question that was "
        "routed and retrieved with (null for a single question).",
        examples=["When did the platform team last review the on-call rotation?"],
    )
    standalone_method: Literal["as_is", "rewrite", "subject", "recent_turns"] | None = Field(
        default=None,
        description="How it was made: `as_is` (the first question), `rewrite` (one short "
        "call to a generative backend), `subject` (the offline reader: the previous "
        "question's subject in place of the follow-up's pronoun) or `recent_turns` (the "
        "offline reader: the recent user turns joined into one retrieval query).",
    )


class QueryResponse(StandaloneQuestion):
    """An answer with its sources, the route and why, usage, cost and timings."""

    answer: str = Field(
        description="The answer text with `[n]` markers pointing into `citations`, or a "
        "refusal when the corpus does not answer the question.",
        examples=["Production deploys are frozen from Friday 15:00 until Monday 09:00 UTC. [1]"],
    )
    refused: bool = Field(description="True when the backend declined to answer.")
    citations: list[Citation] = Field(description="The sources the answer cites, by number.")
    route: Route = Field(description="Which path answered and why.")
    usage: Usage = Field(description="Tokens of the answer, split the way providers bill them.")
    cost_usd: float | None = Field(
        description="What the answer cost in USD (0 for the offline backend; null when "
        "the model has no known price).",
        examples=[0.0],
    )
    backend: str = Field(
        description="The answer backend, `provider:model`.", examples=["extractive"]
    )
    corpus_version: str = Field(
        description="The committed corpus version the whole answer was read from.",
        examples=["5d41402abc4b2a76"],
    )
    timings: dict[str, float] = Field(
        description="Seconds spent per stage: `retrieve_s`, `generate_s`, `escalate_s`, `total_s`.",
        examples=[{"retrieve_s": 0.041, "generate_s": 0.052, "total_s": 0.097}],
    )
    retrieved: list[Citation] = Field(
        default_factory=list,
        description="The passages retrieval put in the prompt, in prompt order (empty on the "
        "long-context path).",
    )


class StreamDelta(BaseModel):
    """Data of an `event: delta` frame of a streamed query."""

    text: str = Field(description="The next piece of the answer text.")


# ---- ingest and corpus ----------------------------------------------------------


class SkippedFile(BaseModel):
    path: str = Field(
        description="The file, relative to the corpus folder.", examples=["scans/contract.pdf"]
    )
    reason: str = Field(
        description="Why it was not indexed.", examples=["PDF has no text layer (scanned?)"]
    )


class IngestResponse(BaseModel):
    """What a re-index did: documents added, changed, removed, and the new corpus version."""

    added: int = Field(description="New documents.")
    changed: int = Field(description="Documents whose content changed (re-chunked, re-embedded).")
    removed: int = Field(description="Documents no longer in the folder (deleted from the index).")
    unchanged: int = Field(description="Documents skipped because their content hash matched.")
    skipped: list[SkippedFile] = Field(description="Files that could not be indexed, and why.")
    chunks_embedded: int = Field(description="Chunks embedded by this run.")
    chunks_reused: int = Field(
        description="New chunks whose vectors the store already held (the same text seen "
        "before: a renamed, moved or copied document, or an interrupted run)."
    )
    chunks_deleted: int = Field(description="Stale chunks deleted from the vector store.")
    documents: int = Field(description="Documents in the committed corpus.")
    chunks: int = Field(description="Chunks in the committed corpus.")
    corpus_tokens: int = Field(description="Tokens of the whole corpus snapshot (cl100k).")
    text_tokens: int = Field(
        description="Tokens of the documents' own text; corpus_tokens minus this is the "
        "long-context markup (one short `§N Title` line per document)."
    )
    corpus_version: str = Field(description="The version now committed.")
    previous_version: str | None = Field(description="The version before this run, if any.")
    resumed: bool = Field(description="True when this run finished an interrupted one.")
    seconds: float = Field(description="Wall time of the run.")
    embed_seconds: float = Field(description="Part of it spent in the embedding model.")
    added_ids: list[str] = Field(description="Ids of the added documents.")
    changed_ids: list[str] = Field(description="Ids of the changed documents.")
    removed_ids: list[str] = Field(description="Ids of the removed documents.")
    repaired: list[str] = Field(
        default_factory=list,
        description="Damage found in the committed index before this run and how it was "
        "repaired (a restored pointer, a rebuilt BM25 index, re-embedded vectors...).",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "added": 1,
                    "changed": 1,
                    "removed": 0,
                    "unchanged": 12,
                    "skipped": [],
                    "chunks_embedded": 9,
                    "chunks_reused": 0,
                    "chunks_deleted": 4,
                    "documents": 14,
                    "chunks": 203,
                    "corpus_tokens": 41203,
                    "text_tokens": 39880,
                    "corpus_version": "5d41402abc4b2a76",
                    "previous_version": "7d793037a0760186",
                    "resumed": False,
                    "seconds": 2.41,
                    "embed_seconds": 1.87,
                    "added_ids": ["oncall/escalation.md"],
                    "changed_ids": ["engineering/deploys.md"],
                    "removed_ids": [],
                }
            ]
        }
    )


class CorpusResponse(BaseModel):
    """The committed corpus now, and the path `auto` would pick for it."""

    documents: int = Field(description="Documents in the corpus.", examples=[14])
    chunks: int = Field(description="Indexed chunks.", examples=[203])
    corpus_tokens: int = Field(description="Tokens of the whole corpus snapshot.", examples=[41203])
    corpus_version: str = Field(description="The committed version.", examples=["5d41402abc4b2a76"])
    last_ingest: str = Field(
        description="When this version was written (ISO 8601, UTC).",
        examples=["2025-05-01T09:30:00+00:00"],
    )
    corpus_root: str = Field(description="The folder or file it was ingested from.")
    embedding_model: str = Field(description="The embedding model of its vectors.")
    backend: str = Field(description="The answer backend.", examples=["extractive"])
    auto_route: Route = Field(
        description="The path `auto` would pick now (for a short question), and why."
    )
    ingest_running: bool = Field(description="True while a `POST /v1/ingest` is running here.")


class DocumentInfo(BaseModel):
    doc_id: str = Field(
        description="Stable id of the document.", examples=["engineering/deploys.md"]
    )
    title: str = Field(description="Its title.", examples=["Deploys"])
    source: str = Field(description="Where it came from.", examples=["engineering/deploys.md"])
    tokens: int = Field(description="Tokens of its chunks.", examples=[1830])
    chunks: int = Field(description="How many chunks it was cut into.", examples=[10])


class DocumentsPage(BaseModel):
    """One page of the corpus's documents, in document-id order."""

    corpus_version: str = Field(description="The version the page was read from.")
    total: int = Field(description="Documents in the corpus.", examples=[14])
    offset: int = Field(description="Index of the first item.", examples=[0])
    limit: int = Field(description="Most items per page.", examples=[50])
    items: list[DocumentInfo] = Field(description="The documents of this page.")


class Health(BaseModel):
    status: Literal["ok"] = Field(
        description="Always `ok` while the process serves requests.", examples=["ok"]
    )


class Readiness(BaseModel):
    """Whether the service can answer: a corpus is committed, its vectors are all in the
    store and the backend is warm. When KB_SERVICE_API_KEY is set, a probe without the
    key gets `ready` and a `reason` of `ready` or `not ready`, nothing more."""

    ready: bool = Field(description="True when questions can be answered.")
    reason: str = Field(
        description="Why not (or `ready`).",
        examples=["no corpus has been ingested: run `kb ingest PATH` or POST /v1/ingest"],
    )
    corpus_version: str | None = Field(
        default=None, description="The committed version, if any (only with the key)."
    )
    backend: str | None = Field(
        default=None, description="The answer backend (only with the key).", examples=["extractive"]
    )
    warm_version: str | None = Field(
        default=None,
        description="The version whose indexes this process has loaded and warmed (only "
        "with the key). "
        "The server loads each newly committed version within about a second, from "
        "whichever process or host committed it.",
    )


# ---- OpenAI-compatible chat ---------------------------------------------------------


class ContentPart(BaseModel):
    """A part of a message in OpenAI's list form; only `text` parts are read."""

    model_config = ConfigDict(extra="allow")

    type: UnicodeStr = Field(
        description="`text` (other part types are ignored).", examples=["text"]
    )
    text: UnicodeStr | None = Field(default=None, description="The text of a `text` part.")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"] = Field(
        description="Who wrote the message; the last `user` message is the question, "
        "earlier `user` and `assistant` messages are its conversation.",
        examples=["user"],
    )
    content: str | list[ContentPart] | None = Field(
        default=None,
        description="The text, or a list of content parts.",
        examples=["What is Sieve?"],
    )

    @field_validator("content")
    @classmethod
    def _content_is_unicode(cls, content: str | list[ContentPart] | None) -> object:
        return _valid_unicode(content) if isinstance(content, str) else content


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = Field(
        default=False,
        strict=True,
        description="Send a last chunk with `usage` (and empty `choices`) before [DONE].",
        examples=[True],
    )


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request. The last `user` message is the question; earlier
    `user` and `assistant` turns make a follow-up standalone before routing (the
    `kb.standalone_question` of the response shows the result). `model` picks the mode
    (`kb-auto`, `kb-rag`, `kb-long_context`, `kb-self_route`); any other name uses the
    default mode. Other OpenAI parameters (temperature, max_tokens, ...) are accepted and
    ignored."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "model": "kb-rag",
                    "messages": [{"role": "user", "content": "When are deploys frozen?"}],
                }
            ]
        },
    )

    model: UnicodeStr = Field(
        default="kb-auto",
        description=f"`kb-<mode>` or any name (default mode), at most {MODEL_NAME_CHARS} "
        "characters (it is echoed in every streamed chunk).",
    )
    messages: list[ChatMessage] = Field(min_length=1, description="The conversation so far.")
    stream: bool = Field(
        default=False,
        strict=True,
        description="A JSON boolean: stream `chat.completion.chunk` events (SSE).",
    )
    stream_options: StreamOptions | None = Field(default=None, description="Streaming options.")

    @field_validator("model")
    @classmethod
    def _model_is_short(cls, model: str) -> str:
        # Not `max_length`: that constraint reads the string before the lone-surrogate check.
        if len(model) > MODEL_NAME_CHARS:
            raise ValueError(
                f"at most {MODEL_NAME_CHARS} characters (got {len(model):,}): use `kb-<mode>`"
            )
        return model


class ChatResponseMessage(BaseModel):
    role: Literal["assistant"] = Field(default="assistant", description="Always `assistant`.")
    content: str = Field(
        description="The answer, then a blank line and a `Sources:` list "
        "(`[n] title (source, chars start-end)`) when it cites anything.",
        examples=[
            "Production deploys are frozen from Friday 15:00 until Monday 09:00 UTC. [1]\n\n"
            "Sources:\n[1] Deploys (engineering/deploys.md, chars 812-917)"
        ],
    )


class ChatChoice(BaseModel):
    index: int = Field(default=0, description="Always 0: one answer per request.", examples=[0])
    message: ChatResponseMessage = Field(description="The answer.")
    finish_reason: Literal["stop"] = Field(default="stop", description="Always `stop`.")


class PromptTokensDetails(BaseModel):
    cached_tokens: int = Field(
        description="Prompt tokens read from the prompt cache.", examples=[41203]
    )


class ChatUsage(BaseModel):
    prompt_tokens: int = Field(description="All prompt tokens, cached or not.", examples=[41321])
    completion_tokens: int = Field(description="Tokens of the answer.", examples=[19])
    total_tokens: int = Field(description="prompt_tokens + completion_tokens.", examples=[41340])
    prompt_tokens_details: PromptTokensDetails = Field(
        description="`cached_tokens`: the part of prompt_tokens read from the prompt cache."
    )


class KBDetails(StandaloneQuestion):
    """What a plain OpenAI response cannot carry: the route, cost, version and timings."""

    route: Route = Field(description="Which path answered and why.")
    refused: bool = Field(description="True when the backend declined to answer.")
    cost_usd: float | None = Field(description="USD (null when the price is unknown).")
    backend: str = Field(description="The answer backend.", examples=["extractive"])
    corpus_version: str = Field(description="The corpus version the answer was read from.")
    timings: dict[str, float] = Field(description="Seconds per stage, as in /v1/query.")
    usage: Usage = Field(description="The usage split the kb way (cache read and write apart).")


class ChatCompletionResponse(BaseModel):
    """OpenAI's `chat.completion`, plus two extra top-level fields OpenAI clients ignore
    but can read (`response.model_extra["citations"]` in the `openai` Python client):
    `citations` (the same objects as in /v1/query) and `kb` (route, cost, version)."""

    id: str = Field(description="Unique id of this completion.", examples=["chatcmpl-5f0c6e0a"])
    object: Literal["chat.completion"] = Field(
        default="chat.completion", description="Always `chat.completion`."
    )
    created: int = Field(description="Unix time of the answer.")
    model: str = Field(description="The model name the request asked for.", examples=["kb-rag"])
    system_fingerprint: str = Field(
        description="`kb-<corpus_version>`: changes whenever the corpus does."
    )
    choices: list[ChatChoice] = Field(description="One choice: the answer.")
    usage: ChatUsage = Field(description="OpenAI-shaped usage, cached tokens included.")
    citations: list[Citation] = Field(description="The cited sources, as in /v1/query.")
    kb: KBDetails = Field(description="Route, cost, corpus version and timings.")


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int = 0
    delta: ChatDelta
    finish_reason: Literal["stop"] | None = None


class ChatCompletionChunk(BaseModel):
    """One `data:` frame of a streamed chat completion. The frame with `finish_reason`
    also carries `citations` and `kb`; with `stream_options.include_usage` a last frame
    has empty `choices` and the `usage`; then `data: [DONE]`."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChatChunkChoice]
    usage: ChatUsage | None = None
    citations: list[Citation] | None = None
    kb: KBDetails | None = None


class ModelCard(BaseModel):
    id: str = Field(description="`kb-<mode>`.", examples=["kb-rag"])
    object: Literal["model"] = Field(default="model", description="Always `model`.")
    created: int = Field(description="Unix time the service started.")
    owned_by: str = Field(default="kb", description="Always `kb`.")
    description: str = Field(description="What the model name selects.")


class ModelList(BaseModel):
    """The kb-* model names, one per mode, for OpenAI clients and chat front-ends."""

    object: Literal["list"] = Field(default="list", description="Always `list`.")
    data: list[ModelCard] = Field(description="One model per mode.")


def error_payload(kind: str, message: str) -> dict[str, Any]:
    """The one error shape, as JSON-ready data: `{"error": {"type", "message"}}`."""
    return ErrorResponse(error=ErrorBody(type=kind, message=message)).model_dump()
