"""Named knowledge bases over HTTP: list, describe, create, re-index, delete; query,
documents and ingest per knowledge base; a question across several; scoped keys.

The routes of the single-corpus API (/v1/query, /v1/documents, /v1/ingest,
/v1/corpus) keep answering for the `default` knowledge base. Scopes are checked in
api.keys: a knowledge base the key may not read answers 404 like a missing one.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Query, Response
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from api.deps import Caller, NoCorpusDirError, Operator, ServiceState, State
from api.kb_schemas import (
    CrossQueryRequest,
    CrossQueryResponse,
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyList,
    KnowledgeBaseCreate,
    KnowledgeBaseCreated,
    KnowledgeBaseInfo,
    KnowledgeBaseList,
    dump,
)
from api.keys import require_admin, require_ingest, require_read
from api.routes import QUERY_ERRORS, _query_frames, documents_page, error_responses, to_response
from api.schemas import DocumentsPage, IngestResponse, QueryRequest, QueryResponse
from api.streaming import SSE_HEADERS, prefetched
from ingest import run_ingest
from kb import CrossAnswer, KnowledgeBaseNotFoundError, Turn, ask_across, not_found
from kb.core import IngestBusyError

router = APIRouter(prefix="/v1", tags=["knowledge bases"])
KBName = Annotated[str, PathParam(max_length=64, description="The knowledge base's name.")]
SCOPED = error_responses(401, 404, 422)


def _readable(state: ServiceState, caller: Caller, name: str) -> None:
    """404 unless the knowledge base exists and the caller may read it (the same 404)."""
    require_read(caller, name)
    if not state.knowledge_bases.exists(name):
        raise not_found(name)


def _info(state: ServiceState, name: str) -> KnowledgeBaseInfo:
    return KnowledgeBaseInfo.model_validate(dump(state.knowledge_bases.describe(name)))


@router.get(
    "/kbs",
    summary="List knowledge bases",
    description="The knowledge bases the key may read, each with its documents, tokens and "
    "the path `auto` takes for it and why. Others are not mentioned.",
    response_model=KnowledgeBaseList,
    responses=error_responses(401),
)
async def list_kbs(state: State, caller: Caller) -> KnowledgeBaseList:
    names = caller.readable(state.knowledge_bases.names())
    infos = await anyio.to_thread.run_sync(
        lambda: [_info(state, name) for name in names], limiter=state.query_limiter
    )
    return KnowledgeBaseList(data=infos)


@router.get(
    "/kbs/{name}",
    summary="Describe a knowledge base",
    description="Documents, tokens, the committed version, whether it is loaded, what it "
    "reads from disk when loaded, and the path `auto` takes for it and why.",
    response_model=KnowledgeBaseInfo,
    responses=SCOPED,
)
async def describe_kb(name: KBName, state: State, caller: Caller) -> KnowledgeBaseInfo:
    _readable(state, caller, name)
    return await anyio.to_thread.run_sync(_info, state, name, limiter=state.query_limiter)


@router.post(
    "/kbs",
    status_code=201,
    summary="Create a knowledge base",
    description="Admin key. Records the knowledge base and, when `source` (a folder or file "
    "on the server) is given, indexes it at once.",
    response_model=KnowledgeBaseCreated,
    responses=error_responses(400, 401, 403, 409, 413, 422),
)
async def create_kb(
    body: KnowledgeBaseCreate, state: State, caller: Caller
) -> KnowledgeBaseCreated:
    require_admin(caller)
    source = Path(body.source) if body.source else None
    await anyio.to_thread.run_sync(state.knowledge_bases.create, body.name, source)
    summary = await _ingest(state, body.name) if source is not None else None
    info = await anyio.to_thread.run_sync(_info, state, body.name)
    return KnowledgeBaseCreated(kb=info, ingest=summary)


@router.delete(
    "/kbs/{name}",
    status_code=204,
    summary="Delete a knowledge base",
    description="Admin key. Removes its index and vectors (not its source folder).",
    responses=error_responses(401, 403, 404, 409, 422),
)
async def delete_kb(name: KBName, state: State, caller: Caller) -> Response:
    require_admin(caller)
    lock = state.ingest_lock_of(name)
    if not lock.acquire(blocking=False):
        raise IngestBusyError(f"An ingest into {name!r} is running; delete it afterwards.")
    try:
        await anyio.to_thread.run_sync(state.knowledge_bases.delete, name)
    finally:
        lock.release()
        state.kb_ingest_locks.pop(name, None)
    return Response(status_code=204)


@router.post(
    "/kbs/{name}/ingest",
    summary="Re-index a knowledge base",
    description="A key with ingest scope on it (or admin). Re-indexes its source folder "
    "incrementally, as `kb ingest PATH --kb NAME` does; 403 for a read-only key.",
    response_model=IngestResponse,
    responses=error_responses(401, 403, 404, 409, 422),
)
async def ingest_kb(name: KBName, state: State, caller: Caller) -> IngestResponse:
    require_ingest(caller, name)
    if not state.knowledge_bases.exists(name):
        raise not_found(name)
    return await _ingest(state, name)


async def _ingest(state: ServiceState, name: str) -> IngestResponse:
    base = state.knowledge_bases.get(name)
    source = base.settings.corpus_dir
    if source is None:
        raise NoCorpusDirError(
            f"The knowledge base {name!r} has no source folder: create it with a `source` "
            f"or run `kb ingest PATH --kb {name}` on the server."
        )
    lock = state.ingest_lock_of(name)
    if not lock.acquire(blocking=False):
        raise IngestBusyError(f"A re-index of {name!r} is already running; retry when it ends.")
    try:
        summary = await anyio.to_thread.run_sync(
            partial(run_ingest, base.settings, source, embedder=base.embedder),
            limiter=state.ingest_limiter,
        )
    finally:
        lock.release()
    return IngestResponse.model_validate(summary.model_dump())


@router.post(
    "/kbs/{name}/query",
    summary="Ask one knowledge base",
    description="As POST /v1/query, over knowledge base `name`.",
    response_model=QueryResponse,
    responses=QUERY_ERRORS | SCOPED,
)
async def query_kb(
    name: KBName, body: QueryRequest, state: State, caller: Caller, operator: Operator
) -> QueryResponse | StreamingResponse:
    _readable(state, caller, name)
    base = await anyio.to_thread.run_sync(state.knowledge_bases.get, name)
    turns = [Turn(turn.role, turn.content) for turn in body.history]
    turns.append(Turn("user", body.question))
    if body.stream:
        events = await prefetched(base.stream(turns, body.mode, body.top_k), state.query_limiter)
        return StreamingResponse(
            _query_frames(events, operator), media_type="text/event-stream", headers=SSE_HEADERS
        )
    answer = await anyio.to_thread.run_sync(
        base.ask, turns, body.mode, body.top_k, limiter=state.query_limiter
    )
    return to_response(answer)


@router.get(
    "/kbs/{name}/documents",
    summary="List a knowledge base's documents",
    description="As GET /v1/documents, for knowledge base `name`.",
    response_model=DocumentsPage,
    responses=SCOPED | error_responses(409),
)
async def documents_kb(
    name: KBName,
    state: State,
    caller: Caller,
    offset: Annotated[int, Query(ge=0, description="Index of the first document.")] = 0,
    limit: Annotated[int, Query(ge=1, le=500, description="Most documents (1-500).")] = 50,
) -> DocumentsPage:
    _readable(state, caller, name)
    base = await anyio.to_thread.run_sync(state.knowledge_bases.get, name)
    page = await anyio.to_thread.run_sync(
        base.documents, offset, limit, limiter=state.query_limiter
    )
    return documents_page(page, offset, limit)


@router.post(
    "/kbs/query",
    summary="Ask several knowledge bases",
    description="One question over up to 8 knowledge bases the key may read, in the order "
    "given: each takes long context while its snapshot fits what is left of the "
    "long-context budget, retrieval otherwise. Citations carry their knowledge base; "
    "route, usage and cost come per knowledge base.",
    response_model=CrossQueryResponse,
    responses=QUERY_ERRORS | SCOPED,
)
async def query_across(body: CrossQueryRequest, state: State, caller: Caller) -> CrossQueryResponse:
    names = list(dict.fromkeys(body.kbs))
    for name in names:
        _readable(state, caller, name)

    def ask() -> CrossAnswer:
        bases = [(name, state.knowledge_bases.get(name)) for name in names]  # may load them
        return ask_across(bases, body.question, body.mode, body.top_k)

    joined = await anyio.to_thread.run_sync(ask, limiter=state.query_limiter)
    return CrossQueryResponse(
        answer=joined.answer,
        refused=joined.refused,
        citations=[dump(c.citation) | {"kb": c.kb} for c in joined.citations],  # type: ignore[misc]
        per_kb=[
            {"kb": p.kb, "budget_left": p.budget_left, "result": to_response(p.answer)}  # type: ignore[misc]
            for p in joined.parts
        ],
        usage=dump(joined.usage) | {"total_input_tokens": joined.usage.total_input_tokens},  # type: ignore[arg-type]
        cost_usd=joined.cost_usd,
    )


# ---- scoped keys ----------------------------------------------------------------------


@router.post(
    "/keys",
    status_code=201,
    tags=["keys"],
    summary="Create a scoped key",
    description="Admin key. The new key is in the answer once; the service keeps only its "
    "salted scrypt hash (KB_KEYS_FILE).",
    response_model=KeyCreated,
    responses=error_responses(400, 401, 403, 413, 422),
)
async def create_key(body: KeyCreate, state: State, caller: Caller) -> KeyCreated:
    require_admin(caller)
    key, record = await anyio.to_thread.run_sync(
        partial(
            state.key_store.create, body.kbs, ingest=body.ingest, admin=body.admin, name=body.name
        )
    )
    return KeyCreated(key=key, info=KeyInfo.model_validate(record.public()))


@router.get(
    "/keys",
    tags=["keys"],
    summary="List scoped keys",
    description="Admin key. Ids and scopes, never a key or its hash.",
    response_model=KeyList,
    responses=error_responses(401, 403),
)
async def list_keys(state: State, caller: Caller) -> KeyList:
    require_admin(caller)
    return KeyList(data=[KeyInfo.model_validate(r.public()) for r in state.key_store.records()])


@router.delete(
    "/keys/{key_id}",
    status_code=204,
    tags=["keys"],
    summary="Revoke a scoped key",
    description="Admin key. The key stops working at once in every process that reads the file.",
    responses=error_responses(401, 403, 404, 422),
)
async def delete_key(
    key_id: Annotated[str, PathParam(max_length=64)], state: State, caller: Caller
) -> Response:
    require_admin(caller)
    if not await anyio.to_thread.run_sync(state.key_store.delete, key_id):
        raise KnowledgeBaseNotFoundError(f"No key with id {key_id[:64]!r}.")
    return Response(status_code=204)
