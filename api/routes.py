"""The kb routes: query (JSON or SSE), re-index, corpus status, documents, health.

Each handler makes one call into `kb` (or the ingest pipeline) on a worker thread,
so the event loop keeps serving while a question or a re-index runs.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import asdict
from functools import partial
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, StreamingResponse

from api.deps import (
    KB,
    Credentials,
    IngestAuth,
    NoCorpusDirError,
    Operator,
    QueryAuth,
    ServiceState,
    State,
    key_matches,
    shown_error,
    shown_root,
)
from api.schemas import (
    CorpusResponse,
    DocumentInfo,
    DocumentsPage,
    ErrorResponse,
    Health,
    IngestResponse,
    QueryRequest,
    QueryResponse,
    Readiness,
    error_payload,
)
from api.streaming import SSE_HEADERS, prefetched, sse
from ingest import run_ingest
from kb import Answer, DocumentList, Turn
from kb.backends import StreamDelta
from kb.core import IngestBusyError, KBError

logger = logging.getLogger("api")
router = APIRouter()


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    meaning = {
        400: "Malformed JSON or an unusable request.",
        401: "Missing or wrong API key (see the ServiceKey security scheme).",
        403: "Ingest over HTTP is disabled (no KB_SERVICE_API_KEY configured).",
        404: "No such kb model name.",
        409: "No corpus ingested yet, no corpus folder configured, or an ingest is running.",
        413: "The body is larger than KB_MAX_BODY_BYTES.",
        422: "A field is invalid: the message says which and how to fix it.",
        502: "The answer backend failed or rejected the request.",
        503: "The answer backend is unavailable or throttling.",
        504: "The answer backend did not answer in time.",
    }
    return {code: {"model": ErrorResponse, "description": meaning[code]} for code in codes}


QUERY_ERRORS = error_responses(400, 401, 409, 413, 422, 502, 503, 504)

SSE_EXAMPLE = (
    'event: delta\ndata: {"text": "Production deploys are frozen from Friday 15:00 [1]"}\n\n'
    'event: answer\ndata: {"answer": "Production deploys are frozen from Friday 15:00 [1]", '
    '"refused": false, "citations": [...], "route": {...}, "usage": {...}, ...}\n\n'
)


def to_response(answer: Answer) -> QueryResponse:
    return QueryResponse.model_validate(answer.to_dict())


@router.post(
    "/v1/query",
    tags=["query"],
    summary="Ask a question",
    description="Answer a question from the ingested corpus with cited passages, the path "
    "that answered and why, token usage (cached and not), cost and timings. With "
    '`"stream": true` the answer comes as server-sent events (`text/event-stream`).',
    response_model=QueryResponse,
    responses={
        200: {
            "description": "The answer (JSON), or with `stream: true` an SSE stream of "
            "`delta` frames, then one `answer` frame (or an `error` frame).",
            "content": {"text/event-stream": {"example": SSE_EXAMPLE}},
        },
        **QUERY_ERRORS,
    },
    dependencies=[QueryAuth],
)
async def query(
    body: QueryRequest, state: State, operator: Operator
) -> QueryResponse | StreamingResponse:
    turns = [Turn(turn.role, turn.content) for turn in body.history]
    turns.append(Turn("user", body.question))
    if body.stream:
        events = await prefetched(
            state.kb.stream(turns, body.mode, body.top_k), state.query_limiter
        )
        return StreamingResponse(
            _query_frames(events, operator), media_type="text/event-stream", headers=SSE_HEADERS
        )
    answer = await anyio.to_thread.run_sync(
        state.kb.ask, turns, body.mode, body.top_k, limiter=state.query_limiter
    )
    return to_response(answer)


async def _query_frames(
    events: AsyncIterator[StreamDelta | Answer], operator: bool
) -> AsyncIterator[str]:
    try:
        async for event in events:
            if isinstance(event, Answer):
                yield sse(to_response(event).model_dump(mode="json"), "answer")
            else:
                yield sse({"text": event.text}, "delta")
    except KBError as exc:
        yield sse(error_payload(*shown_error(exc, operator)), "error")
    except Exception:
        logger.exception("a streamed answer failed")
        yield sse(error_payload("InternalError", "The answer failed; see the server log."), "error")


@router.post(
    "/v1/ingest",
    tags=["corpus"],
    summary="Re-index the corpus folder",
    description="Re-index KB_CORPUS_DIR with the same incremental pipeline as `kb ingest`: "
    "only changed documents are re-embedded, deleted ones disappear. Runs on a worker "
    "thread; questions keep being answered meanwhile, each from one committed version. "
    "One ingest at a time (409 otherwise). Always needs the service key.",
    response_model=IngestResponse,
    responses=error_responses(400, 401, 403, 409, 413),
    dependencies=[IngestAuth],
)
async def ingest(state: State) -> IngestResponse:
    corpus_dir = state.settings.corpus_dir
    if corpus_dir is None:
        raise NoCorpusDirError(
            "No corpus folder is configured: set KB_CORPUS_DIR to the folder to re-index and "
            "restart the service (or run `kb ingest PATH`)."
        )
    if not state.ingest_lock.acquire(blocking=False):
        raise IngestBusyError(
            "A re-index is already running in this service; wait for it to finish and retry "
            "(GET /v1/corpus shows ingest_running)."
        )
    try:
        summary = await anyio.to_thread.run_sync(
            partial(run_ingest, state.settings, corpus_dir, embedder=state.kb.embedder),
            limiter=state.ingest_limiter,
        )
    finally:
        state.ingest_lock.release()
    if summary.corpus_version != summary.previous_version:
        state.start_warm_up()  # load the new version's indexes before questions need them
    return IngestResponse.model_validate(summary.model_dump())


@router.get(
    "/v1/corpus",
    tags=["corpus"],
    summary="Corpus status",
    description="Documents, chunks, tokens, the committed version, the last ingest, and "
    "which path `auto` would pick now and why. `corpus_root` is the folder's name; its "
    "whole path only with the service key.",
    response_model=CorpusResponse,
    responses=error_responses(401, 409),
    dependencies=[QueryAuth],
)
async def corpus(state: State, operator: Operator) -> CorpusResponse:
    status = await anyio.to_thread.run_sync(state.kb.status, limiter=state.query_limiter)
    shown = {"corpus_root": shown_root(status.corpus_root, operator)}
    return CorpusResponse.model_validate(
        asdict(status) | shown | {"ingest_running": state.ingest_running}
    )


@router.get(
    "/v1/documents",
    tags=["corpus"],
    summary="List documents",
    description="The documents of the committed corpus, in document-id order, one page at a time.",
    response_model=DocumentsPage,
    responses=error_responses(401, 409, 422),
    dependencies=[QueryAuth],
)
async def documents(
    kb: KB,
    state: State,
    offset: Annotated[int, Query(ge=0, description="Index of the first document.")] = 0,
    limit: Annotated[int, Query(ge=1, le=500, description="Most documents (1-500).")] = 50,
) -> DocumentsPage:
    page = await anyio.to_thread.run_sync(kb.documents, offset, limit, limiter=state.query_limiter)
    return documents_page(page, offset, limit)


def documents_page(page: DocumentList, offset: int, limit: int) -> DocumentsPage:
    """One page of documents as GET /v1/documents and its per-base twin answer it."""
    return DocumentsPage(
        corpus_version=page.corpus_version,
        total=page.total,
        offset=offset,
        limit=limit,
        items=[
            DocumentInfo(
                doc_id=doc.doc_id,
                title=doc.title,
                source=doc.source,
                tokens=doc.tokens,
                chunks=len(doc.chunk_ids),
            )
            for doc in page.documents
        ],
    )


@router.get(
    "/healthz",
    tags=["health"],
    summary="Liveness",
    description="200 while the process serves requests.",
    response_model=Health,
)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    tags=["health"],
    summary="Readiness",
    description="200 when a corpus is committed and the embedding model and indexes are "
    "loaded; 503 with the reason otherwise. Remote answer backends are not called. When "
    "KB_SERVICE_API_KEY is set, a probe without the key gets only `ready` and `reason` "
    "(`ready` or `not ready`).",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready; `reason` says why."}},
)
async def readyz(state: State, credentials: Credentials) -> Readiness | JSONResponse:
    readiness = readiness_of(state)
    status = 200 if readiness.ready else 503
    expected = state.settings.service_api_key
    if expected and not (credentials and key_matches(credentials.credentials, expected)):
        # Probes need no key; what is indexed, and where, is for those who hold it.
        terse = Readiness(ready=readiness.ready, reason="ready" if readiness.ready else "not ready")
        return JSONResponse(terse.model_dump(exclude_none=True), status_code=status)
    if readiness.ready:
        return readiness
    return JSONResponse(readiness.model_dump(), status_code=status)


def readiness_of(state: ServiceState) -> Readiness:
    backend = state.kb.backend.name
    try:
        version = state.kb.layout.current_version()
    except KBError as exc:  # a damaged current.json
        return Readiness(ready=False, reason=exc.message, corpus_version=None, backend=backend)
    if state.warmup_error is not None and state.warm.is_set():
        # The failure may have passed (a full disk with space freed since): try again.
        reason = f"warm-up failed: {state.warmup_error}; retrying"
        state.warmup_error = None
        state.warm.clear()
        state.start_warm_up()
    elif not state.warm.is_set():
        reason = "warming up: loading the embedding model and the indexes"
    elif version is None:
        reason = (
            f"no corpus has been ingested into {state.settings.data_dir}: run "
            "`kb ingest PATH` or POST /v1/ingest"
        )
    elif lost := _lost_vectors(state):
        reason = lost
    else:
        reason = "ready"
    return Readiness(
        ready=reason == "ready",
        reason=reason,
        corpus_version=version,
        backend=backend,
        warm_version=state.kb.warm_version,
    )


def _lost_vectors(state: ServiceState) -> str | None:
    """Why questions cannot be answered from the store, if it has lost vectors."""
    try:
        corpus = state.kb.corpus()
        held = state.kb.store.count()
    except KBError as exc:
        return exc.message
    except Exception as exc:  # chromadb's own errors
        return f"the vector store cannot be read ({type(exc).__name__}); run `kb check`"
    if held < corpus.manifest.chunk_count:
        return (
            f"the vector store holds {held} vectors but version {corpus.version} has "
            f"{corpus.manifest.chunk_count} chunks: vectors were lost; run `kb ingest PATH` "
            "to re-embed them"
        )
    return None
