"""The knowledge base as an MCP server, on the official MCP Python SDK.

Agents and IDE assistants (Claude Desktop, Cursor, ...) get three tools and the
documents:

- `ask`: an answer with its route (which path answered and why) and citations, each
  an exact character span of a document;
- `search`: the passages retrieval finds for a query, cited the same way, no answer;
- `corpus_status`: documents, chunks, tokens, version and the path `auto` would pick;
- `knowledge_bases`: the knowledge bases the caller may read, each with the path `auto`
  takes and why; `ask`, `search` and `corpus_status` take one as `kb` (default: the
  default knowledge base);
- resources `kb://documents/{doc_id}`: each document's text.

Two transports: stdio (`kb mcp`, one process per client) and streamable HTTP at
`/mcp` beside the HTTP API in `kb serve` (stateless, JSON responses), behind the
same key check as the API's queries (`KB_REQUIRE_KEY_FOR_QUERIES`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import asdict
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp_types import Resource as MCPResource
from pydantic import BaseModel, Field
from starlette.datastructures import Headers
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import get_access, shown_error, shown_root
from api.kb_schemas import KnowledgeBaseInfo, KnowledgeBaseList, dump
from api.keys import require_read
from api.logs import quiet_library_loggers
from api.mcp_bounds import MCP_BODY_BYTES, read_bounded, replay, request_problem
from api.routes import to_response
from api.schemas import Citation, CorpusResponse, QueryResponse, Turn, error_payload
from kb import ADMIN, NOBODY, Access, KnowledgeBase, KnowledgeBases, __version__
from kb import Turn as ConversationTurn
from kb.core import DEFAULT_KB, KBError, Mode, Settings, load_settings

HTTP_PATH = "/mcp"
HISTORY_TURNS = 50  # turns of `ask`'s history, as on /v1/query
DOCUMENT_URI = "kb://documents/{+doc_id}"
INSTRUCTIONS = (
    "Answers questions over a team's documents with cited sources. Use `ask` for an "
    "answer (it says which path answered and cites exact spans), `search` to read the "
    "passages about a topic yourself, `corpus_status` to see what is indexed. Each "
    "document is also a resource, kb://documents/<doc_id>."
)


class SearchResult(BaseModel):
    """What `search` returns: the passages, numbered in document order."""

    query: str = Field(description="The query as searched.")
    corpus_version: str = Field(description="The corpus version the passages come from.")
    passages: list[Citation] = Field(description="The passages, each an exact span.")


class KBServer(MCPServer):
    """An MCPServer whose resource list is the committed corpus's documents now."""

    def __init__(self, kb: KnowledgeBase, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kb = kb

    async def list_resources(self) -> list[MCPResource]:
        corpus = await anyio.to_thread.run_sync(self.kb.corpus)
        return [
            MCPResource(
                uri=document_uri(doc.doc_id),
                name=doc.doc_id,
                title=doc.title,
                description=f"{doc.source}, {doc.tokens:,} tokens",
                mime_type="text/plain",
            )
            for doc in corpus.manifest.documents
        ]


def document_uri(doc_id: str) -> str:
    return DOCUMENT_URI.replace("{+doc_id}", doc_id)


# ---- knowledge bases ----
# The caller's scope for this request: set by the key check in front of /mcp, and to
# ADMIN for `kb mcp` (stdio: the local user). Unset means no access at all.
CALLER: ContextVar[Access] = ContextVar("kb_mcp_caller", default=NOBODY)
KB_ARGUMENT = "The knowledge base (see the `knowledge_bases` tool); default: the default one."


class Picker:
    """The knowledge base a tool call names, if the caller may read it (else the same
    'no such knowledge base' as for a missing one)."""

    def __init__(self, kb: KnowledgeBase, bases: KnowledgeBases) -> None:
        self.kb = kb
        self.bases = bases

    def __call__(self, name: str | None) -> KnowledgeBase:
        name = name or DEFAULT_KB
        require_read(CALLER.get(), name)
        return self.bases.get(name)

    def readable(self) -> KnowledgeBaseList:
        names = CALLER.get().readable(self.bases.names())
        infos = [KnowledgeBaseInfo.model_validate(dump(self.bases.describe(n))) for n in names]
        return KnowledgeBaseList(data=infos)


def build_server(
    kb: KnowledgeBase,
    ingest_running: Callable[[], bool] = lambda: False,
    bases: KnowledgeBases | None = None,
) -> KBServer:
    """The MCP server over `kb` (and the other knowledge bases of `bases`): tools `ask`,
    `search`, `corpus_status`, `knowledge_bases`, and the default one's documents."""
    server = KBServer(kb, name="kb", version=__version__, instructions=INSTRUCTIONS)
    pick = Picker(kb, bases or KnowledgeBases(kb.settings, kb, embedder=kb.embedder))
    _question_tools(server, pick)
    _corpus_tools(server, pick, ingest_running)

    @server.resource(DOCUMENT_URI, name="document", mime_type="text/plain")
    def document(doc_id: str) -> str:
        """The text of one document of the corpus, by its id."""
        text: str | None = _call(kb.document_text, doc_id)
        if text is None:
            raise ResourceError(f"No document {doc_id!r} in the corpus; resources/list names them.")
        return text

    return server


def _question_tools(server: KBServer, pick: Picker) -> None:
    @server.tool(
        description="Answer a question from the documents, with citations (exact spans) "
        "and the route: which path answered (long context or retrieval) and why. "
        "`history`: earlier turns of a conversation, oldest first, for a follow-up."
    )
    def ask(
        question: str,
        mode: Mode | None = None,
        top_k: int | None = None,
        history: list[Turn] | None = None,
        kb: str | None = Field(None, description=KB_ARGUMENT),
    ) -> QueryResponse:
        if len(history or []) > HISTORY_TURNS:
            raise ToolError(f"history has {len(history or [])} turns; at most {HISTORY_TURNS}.")
        base = _call(pick, kb)
        turns = [ConversationTurn(t.role, t.content) for t in history or []]
        turns.append(ConversationTurn("user", question))
        return to_response(_call(base.ask, turns, mode, top_k))

    @server.tool(
        description="Search the documents: the passages retrieval finds for `query`, "
        "numbered and cited with exact spans, without an answer."
    )
    def search(
        query: str, top_k: int | None = None, kb: str | None = Field(None, description=KB_ARGUMENT)
    ) -> SearchResult:
        if not query.strip():
            raise ToolError("Send a non-empty query.")
        base = _call(pick, kb)
        if len(query.strip()) > base.settings.max_question_chars:
            raise ToolError(
                f"The query has {len(query.strip()):,} characters; the limit is "
                f"{base.settings.max_question_chars:,} (KB_MAX_QUESTION_CHARS)."
            )
        found = _call(base.search, query.strip(), top_k)
        return SearchResult(
            query=found.query,
            corpus_version=found.corpus_version,
            passages=[Citation.model_validate(asdict(p)) for p in found.passages],
        )


def _corpus_tools(server: KBServer, pick: Picker, ingest_running: Callable[[], bool]) -> None:
    @server.tool(
        description="What is indexed: documents, chunks, tokens, the corpus version, the "
        "last ingest, the backend and the path `auto` would pick now, and why."
    )
    def corpus_status(kb: str | None = Field(None, description=KB_ARGUMENT)) -> CorpusResponse:
        status = _call(_call(pick, kb).status)
        shown = {"corpus_root": shown_root(status.corpus_root, operator=False)}
        return CorpusResponse.model_validate(
            asdict(status) | shown | {"ingest_running": ingest_running()}
        )

    @server.tool(
        description="The knowledge bases you may read: documents, tokens, and the path "
        "`auto` takes for each (long context or retrieval) and why. Pass a name as `kb` "
        "to `ask`, `search` or `corpus_status`."
    )
    def knowledge_bases() -> KnowledgeBaseList:
        return _call(pick.readable)  # type: ignore[no-any-return]


def _call(func: Callable[..., Any], *args: Any) -> Any:
    """Run a kb call; its errors reach the client as a tool error with their message (a
    backend's without its URL or upstream answer: MCP clients never hold the service key)."""
    try:
        return func(*args)
    except KBError as exc:
        kind, message = shown_error(exc, operator=False)
        raise ToolError(f"{kind}: {message}") from exc


# ---- streamable HTTP beside `kb serve` ---------------------------------------------


class _McpEdge:
    """In front of the MCP endpoint: the caller's scope (`get_access`, so a missing or
    wrong key is the same 401 as on /v1/query), then the request's
    bounds (`mcp_bounds`: body size, names, URIs), each a 4xx before the SDK reads it."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
        credentials = (
            HTTPAuthorizationCredentials(scheme=scheme, credentials=token.strip())
            if scheme.lower() == "bearer" and token.strip()
            else None
        )
        state = scope["app"].state.service  # scoped keys live on the app state
        caller = CALLER.set(get_access(state, credentials))  # raises AuthError -> 401
        try:
            body = await read_bounded(receive, MCP_BODY_BYTES)
            if body is None:
                too_big = f"An MCP request may have at most {MCP_BODY_BYTES:,} bytes."
                await _refuse(scope, send, 413, "PayloadTooLargeError", too_big)
                return
            if (problem := request_problem(body)) is not None:
                await _refuse(scope, send, 422, "InvalidRequestError", problem)
                return
            await self.app(scope, replay(body, receive), send)
        finally:
            CALLER.reset(caller)


async def _refuse(scope: Scope, send: Send, status: int, kind: str, message: str) -> None:
    async def nothing() -> Message:
        return {"type": "http.disconnect"}

    await JSONResponse(error_payload(kind, message), status)(scope, nothing, send)


def mount_http(
    app: FastAPI,
    kb: KnowledgeBase,
    ingest_running: Callable[[], bool],
    bases: KnowledgeBases | None = None,
) -> Any:
    """Serve MCP over streamable HTTP at `/mcp` on `app`. Returns the session manager,
    whose `run()` the app's lifespan must enter."""
    server = build_server(kb, ingest_running, bases)
    server.streamable_http_app(
        streamable_http_path=HTTP_PATH,
        stateless_http=True,
        json_response=True,
        host=kb.settings.host,
    )
    manager: StreamableHTTPSessionManager = server.session_manager
    endpoint = _McpEdge(StreamableHTTPASGIApp(manager), kb.settings)
    app.router.routes.append(Route(HTTP_PATH, endpoint=endpoint))
    return manager


# ---- `kb mcp` ------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Serve over stdio until the client closes the pipe. Stdout carries the protocol."""
    settings = load_settings(data_dir=args.data_dir, backend=args.backend)
    quiet_library_loggers()
    with KnowledgeBase(settings) as kb:
        kb.corpus()  # fail now, with the CLI's message, if nothing is ingested
        CALLER.set(ADMIN)  # the local user may read every knowledge base
        anyio.run(build_server(kb).run_stdio_async)
    return 0
