"""The app factory: `create_app(settings)` builds the FastAPI app over one KnowledgeBase.

Errors become HTTP in one place each: kb errors by their `http_status` (a
`SettingsError`, which only the operator can fix, as a 500 with its details in the
server log), request
validation as 400/422, unknown routes as 404, oversized bodies as 413 (before the
body reaches a handler), and anything unexpected as a logged, generic 500. Every
error body has the shape `{"error": {"type", "message"}}`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import kb_routes, openai_routes, routes
from api.deps import QUERY_THREADS, ServiceState, holds_service_key, shown_error
from api.docs import add_docs
from api.logs import quiet_library_loggers
from api.mcp_server import mount_http as mount_mcp_http
from api.schemas import error_payload
from kb import KeyStore, KnowledgeBase, KnowledgeBases
from kb.backends import AnswerBackend
from kb.core import BackendError, KBError, Settings, SettingsError, load_settings
from kb.search import Embedder, set_embedding_threads, threads_for

logger = logging.getLogger("api")
STATIC_DIR = Path(__file__).resolve().parent / "static"

DESCRIPTION = """\
Answers questions over your documents with cited sources, choosing per corpus and per
question between the whole corpus in a cached long-context prompt and retrieval.

* `POST /v1/query` asks (JSON, or server-sent events with `stream: true`).
* `POST /v1/chat/completions` and `GET /v1/models` make it usable from any OpenAI client.
* `/mcp` serves the same knowledge base to MCP clients (streamable HTTP).
* `POST /v1/ingest` re-indexes the configured folder; `GET /v1/corpus` and
  `GET /v1/documents` describe what is indexed.
* `/v1/kbs` lists, describes, creates and deletes named knowledge bases;
  `/v1/kbs/{name}/query`, `/documents` and `/ingest` work on one, `POST /v1/kbs/query`
  asks several. `/v1/keys` manages keys scoped to them (admin key).

Errors always look like `{"error": {"type": "...", "message": "..."}}`.
"""

TAGS = [
    {"name": "query", "description": "Ask questions; get answers with citations."},
    {"name": "corpus", "description": "Re-index and inspect the corpus."},
    {"name": "openai", "description": "OpenAI-compatible chat completions and models."},
    {"name": "knowledge bases", "description": "Named knowledge bases, one route each."},
    {"name": "keys", "description": "API keys scoped to knowledge bases (admin key)."},
    {"name": "health", "description": "Liveness and readiness probes."},
]


def create_app(
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    backend: AnswerBackend | None = None,
) -> FastAPI:
    """A FastAPI app serving `settings.data_dir`. `embedder` lets tests share one loaded
    model; `backend` replaces the one `settings.backend` names."""
    quiet_library_loggers()
    knowledge_base = KnowledgeBase(settings, backend=backend, embedder=embedder)
    state = ServiceState(settings=settings, kb=knowledge_base)
    # ---- knowledge bases and scoped keys ----
    state.kbs = KnowledgeBases(settings, knowledge_base, embedder=knowledge_base.embedder)
    state.keys = KeyStore(settings.keys_path())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.query_limiter = anyio.CapacityLimiter(QUERY_THREADS)
        state.ingest_limiter = anyio.CapacityLimiter(1)
        state.start_warm_up()
        state.follow_versions()
        try:
            async with mcp_sessions.run():
                yield
        finally:
            state.stopping.set()
            state.knowledge_bases.close()  # issue 19: the named ones loaded
            state.kb.close()

    app = FastAPI(
        title="kb: a knowledge service",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        docs_url=None,  # served offline by api.docs
        redoc_url=None,
    )
    app.state.service = state
    app.include_router(routes.router)
    app.include_router(openai_routes.router)
    app.include_router(kb_routes.router)  # issue 19: /v1/kbs, /v1/keys
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    add_docs(app)
    mcp_sessions = mount_mcp_http(
        app, knowledge_base, lambda: state.ingest_running, state.knowledge_bases
    )

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.add_exception_handler(KBError, _kb_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(CatchAllMiddleware)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` (each worker process reads KB_* itself)."""
    settings = load_settings()
    limit_embedding_threads(settings)
    return create_app(settings)


def limit_embedding_threads(settings: Settings) -> None:
    """Bound the embedding model's threads in a serving process (1 unless
    KB_EMBED_THREADS says otherwise). Concurrency comes from the query threads; with one
    model thread per core each matrix product's threads spin against the other
    questions' and other processes' (2 cores, 4 questions at once: 1.7 s instead of
    0.36 s CPU per question)."""
    set_embedding_threads(threads_for(settings, "questions"))


# ---- errors -------------------------------------------------------------------------


async def _kb_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KBError)
    if isinstance(exc, SettingsError):
        # The operator's to fix, not the caller's: the details (paths, values) stay in the log.
        logger.error("the service is misconfigured: %s", exc.message)
        message = "The service is misconfigured (a KB_* setting); the server log says which."
        return JSONResponse(error_payload(exc.kind, message), status_code=500)
    headers: dict[str, str] = {}
    if exc.http_status == 401:
        given = "authorization" in request.headers
        headers["WWW-Authenticate"] = (
            'Bearer realm="kb", error="invalid_token"' if given else 'Bearer realm="kb"'
        )
    if isinstance(exc, BackendError):
        logger.warning("backend %s failed: %s: %s", exc.provider or "?", exc.kind, exc.message)
    settings: Settings = request.app.state.service.settings
    operator = holds_service_key(settings, request.headers.get("authorization", ""))
    return JSONResponse(
        error_payload(*shown_error(exc, operator, settings)),
        status_code=exc.http_status,
        headers=headers,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    broken = [err for err in errors if err.get("type") == "json_invalid"]
    if broken:
        detail = str(broken[0].get("ctx", {}).get("error", "invalid JSON"))
        return JSONResponse(
            error_payload(
                "MalformedJSONError",
                f"The body is not valid JSON ({detail}): send a JSON object such as "
                '{"question": "..."} with Content-Type: application/json.',
            ),
            status_code=400,
        )
    return JSONResponse(
        error_payload("InvalidRequestError", "; ".join(_describe(err) for err in errors)),
        status_code=422,
    )


def _describe(err: Any) -> str:
    """`field: problem (got value)` for one pydantic error."""
    loc = [str(part) for part in err.get("loc", ()) if part != "body"]
    where = ".".join(loc) if loc else "body"
    message = f"{where}: {err.get('msg', 'invalid')}"
    if err.get("type") == "missing" and where == "body":
        return 'body: a JSON body is required, e.g. {"question": "..."}'
    if err.get("type") == "extra_forbidden":
        return f"{where}: unknown field; remove it (check its spelling)"
    if "input" in err and err.get("type") != "missing" and not isinstance(err["input"], dict):
        shown = repr(err["input"])
        message += f" (got {shown[:80]}{'...' if len(shown) > 80 else ''})"
    return message


_HTTP_TYPES = {404: "NotFoundError", 405: "MethodNotAllowedError"}


def _unparsable_body(cause: BaseException | None) -> str | None:
    """What is wrong with a body FastAPI could not parse (it says only "error parsing")."""
    if isinstance(cause, UnicodeDecodeError):
        return (
            f"The body is not valid UTF-8 (byte {cause.start} is {cause.object[cause.start]:#04x})"
            ": send JSON text encoded as UTF-8."
        )
    if isinstance(cause, ValueError) and "integer string conversion" in str(cause):
        return (
            f"The body holds an integer with more than {sys.get_int_max_str_digits():,} "
            'digits: send numbers as small JSON integers, e.g. {"top_k": 8}.'
        )
    if isinstance(cause, RecursionError):
        return (
            "The body's JSON is nested too deeply to read: send a JSON object such as "
            '{"question": "..."}.'
        )
    return None


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = str(exc.detail)
    if exc.status_code == 400 and (problem := _unparsable_body(exc.__cause__)):
        return JSONResponse(error_payload("MalformedJSONError", problem), status_code=400)
    if exc.status_code == 404 and message == "Not Found":
        message = f"No such route: {request.method} {request.url.path}. The API is at /docs."
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}; see /docs."
    return JSONResponse(
        error_payload(_HTTP_TYPES.get(exc.status_code, "HTTPError"), message),
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _send_error(send: Send, status: int, kind: str, message: str) -> None:
    response = JSONResponse(error_payload(kind, message), status_code=status)
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


# ---- middleware ----------------------------------------------------------------------


class BodyLimitMiddleware:
    """413 for bodies over `max_bytes`: by Content-Length before reading, and by the
    bytes actually received otherwise (chunked uploads, lying headers)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await _send_error(send, 400, "InvalidRequestError", "Content-Length is invalid.")
                return
            if int(declared) > self.max_bytes:
                await self._too_large(send, f"{int(declared):,} bytes")
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._too_large(send, f"more than {self.max_bytes:,} bytes")
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        buffered: Message | None = {
            "type": "http.request",
            "body": b"".join(chunks),
            "more_body": False,
        }

        async def replay() -> Message:
            nonlocal buffered
            if buffered is not None:
                message, buffered = buffered, None
                return message
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send, size: str) -> None:
        await _send_error(
            send,
            413,
            "PayloadTooLargeError",
            f"The request body is {size}; the limit is {self.max_bytes:,} bytes "
            "(KB_MAX_BODY_BYTES). Send a shorter question or message list.",
        )


# The page loads its script and style from /static and talks only to this origin;
# nothing may frame it (clickjacking) and no response is sniffed into another type.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


class SecurityHeadersMiddleware:
    """`nosniff` on every response; a Content-Security-Policy that forbids framing on the
    web page and its static files (/docs serves the installed Swagger UI files under its
    own headers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        page = path == "/" or path.startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                if page:
                    headers["Content-Security-Policy"] = PAGE_POLICY
                    headers["X-Frame-Options"] = "DENY"
                    headers["Referrer-Policy"] = "no-referrer"
            await send(message)

        await self.app(scope, receive, with_headers)


class CatchAllMiddleware:
    """Anything unexpected: log it with its traceback, answer a generic 500 JSON."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise  # headers are out; all we can do is drop the connection
            await _send_error(
                send,
                500,
                "InternalError",
                "The service failed unexpectedly; the error is in the server log.",
            )
