"""What route handlers receive: the service state, the knowledge base, settings, and
the API-key checks, as `Annotated[..., Depends(...)]` aliases.

Auth policy: `KB_SERVICE_API_KEY` is a bearer key. It always protects
`POST /v1/ingest`; with no key configured, ingest over HTTP is refused (403)
rather than left open, whatever the bind address (run `kb ingest` on the host
instead). Queries (`/v1/query`, `/v1/chat/completions`, `/v1/corpus`,
`/v1/documents`, `/v1/models`) need the key only when
`KB_REQUIRE_KEY_FOR_QUERIES` is true. Keys are compared with `hmac.compare_digest`.
Once scoped keys exist (api.keys, kb.keys), every request needs a key, and these routes
(the default knowledge base's) need one that may read `default` (and ingest, for ingest).
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Annotated

import anyio
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.keys import access_of, require_ingest, require_read
from kb import Access, AuthError, KeyStore, KnowledgeBase, KnowledgeBases
from kb.core import DEFAULT_KB, BackendError, KBError, Settings, UserError

logger = logging.getLogger("api")

# Questions run on their own small thread pool: on a 2-core machine more threads
# only contend for the same cores (torch, numpy) and stretch every latency.
QUERY_THREADS = 4
VERSION_POLL_SECONDS = 1.0  # how often the server looks for a newly committed version


class IngestDisabledError(AuthError):
    """Ingest over HTTP is off because no service key is configured."""

    http_status = 403


class NoCorpusDirError(UserError):
    """`POST /v1/ingest` has no folder to re-index."""

    http_status = 409


@dataclass
class ServiceState:
    """Everything the app holds for its lifetime, on `app.state.service`."""

    settings: Settings
    kb: KnowledgeBase
    started_at: int = field(default_factory=lambda: int(time.time()))
    ingest_lock: threading.Lock = field(default_factory=threading.Lock)
    warm: threading.Event = field(default_factory=threading.Event)
    warmup_error: str | None = None
    query_limiter: anyio.CapacityLimiter | None = None
    ingest_limiter: anyio.CapacityLimiter | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    # ---- knowledge bases and scoped keys ----
    kbs: KnowledgeBases | None = None
    keys: KeyStore | None = None
    kb_ingest_locks: dict[str, threading.Lock] = field(default_factory=dict)

    @property
    def knowledge_bases(self) -> KnowledgeBases:
        assert self.kbs is not None, "create_app sets kbs"
        return self.kbs

    @property
    def key_store(self) -> KeyStore:
        assert self.keys is not None, "create_app sets keys"
        return self.keys

    def ingest_lock_of(self, name: str) -> threading.Lock:
        """The lock that keeps one ingest at a time per knowledge base in this service."""
        if name == DEFAULT_KB:
            return self.ingest_lock
        return self.kb_ingest_locks.setdefault(name, threading.Lock())

    @property
    def ingest_running(self) -> bool:
        return self.ingest_lock.locked()

    def start_warm_up(self) -> None:
        threading.Thread(target=self.warm_up, name="kb-warm-up", daemon=True).start()

    def follow_versions(self, every: float = VERSION_POLL_SECONDS) -> threading.Thread:
        """Warm each version an ingest commits, from this process or another (a `kb
        ingest` on the host, or on another machine over shared storage), a moment
        after its pointer changes: the first question on it then costs what the
        tenth does. Stops when `stopping` is set."""

        def follow() -> None:
            while not self.stopping.wait(every):
                try:
                    version = self.kb.layout.current_version()
                except Exception:  # a damaged pointer: readiness reports it
                    continue
                if version not in (None, self.kb.warm_version) and self.warm.is_set():
                    self.warm_up()  # still ready meanwhile: questions load what they need

        thread = threading.Thread(target=follow, name="kb-follow-versions", daemon=True)
        thread.start()
        return thread

    def warm_up(self) -> None:
        """Warm the knowledge base before the first question (at start, and after each
        re-index): see `KnowledgeBase.warm_up`. With the offline extractive backend
        this builds (or loads from disk) its sentence index of the corpus, so no
        question builds it and retrieval questions reuse its sentence vectors
        (hotpotqa-100: ~0.36 s -> ~0.08 s CPU per question); over pooled unit vectors
        (the default) a question still embeds the shortlisted units no earlier question
        did (docs/answering.md)."""
        try:
            self.kb.warm_up()
        except KBError as exc:  # says what to do: no traceback needed
            logger.warning("warm-up failed: %s", exc.message)
            self.warmup_error = f"{type(exc).__name__}: {exc.message}"
        except Exception as exc:
            logger.exception("warm-up failed")
            self.warmup_error = f"{type(exc).__name__}: {exc}"
        finally:
            self.warm.set()


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


State = Annotated[ServiceState, Depends(get_state)]


def get_kb(state: State) -> KnowledgeBase:
    return state.kb


def get_settings(state: State) -> Settings:
    return state.settings


KB = Annotated[KnowledgeBase, Depends(get_kb)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ServiceKey",
    description="KB_SERVICE_API_KEY, sent as `Authorization: Bearer <key>`. Always required "
    "for POST /v1/ingest; for queries only when KB_REQUIRE_KEY_FOR_QUERIES is true.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def key_matches(provided: str, expected: str) -> bool:
    """Constant-time comparison, so response timing does not leak the key."""
    return hmac.compare_digest(provided.encode("utf-8"), expected.encode("utf-8"))


def _check_key(credentials: HTTPAuthorizationCredentials | None, expected: str) -> None:
    if credentials is None or not credentials.credentials:
        raise AuthError(
            "This endpoint needs the service API key: send the header "
            "'Authorization: Bearer <KB_SERVICE_API_KEY>'."
        )
    if not key_matches(credentials.credentials, expected):
        raise AuthError(
            "The API key is wrong: send the value of KB_SERVICE_API_KEY as "
            "'Authorization: Bearer <key>'."
        )


# ---- scoped keys ----
def get_access(state: State, credentials: Credentials) -> Access:
    """The caller's scope (api.keys): the service key, a scoped key, or open queries."""
    return access_of(state.settings, state.key_store, credentials)


Caller = Annotated[Access, Depends(get_access)]


def require_query_key(state: State, credentials: Credentials) -> None:
    """Queries need the key only when KB_REQUIRE_KEY_FOR_QUERIES is set (or, once scoped
    keys exist, a key that may read the default knowledge base)."""
    settings = state.settings
    if state.keys is not None and state.keys.any():
        require_read(get_access(state, credentials), DEFAULT_KB)
        return
    if settings.require_key_for_queries and settings.service_api_key:
        _check_key(credentials, settings.service_api_key)


def require_ingest_key(state: State, credentials: Credentials) -> None:
    """Ingest always needs the key; with no key configured it is refused outright."""
    settings = state.settings
    if state.keys is not None and state.keys.any():
        require_ingest(get_access(state, credentials), DEFAULT_KB)
        return
    if not settings.service_api_key:
        raise IngestDisabledError(
            "POST /v1/ingest is disabled because no KB_SERVICE_API_KEY is configured. "
            "Set KB_SERVICE_API_KEY and send it as 'Authorization: Bearer <key>', or run "
            "`kb ingest PATH` on the server."
        )
    _check_key(credentials, settings.service_api_key)


def holds_service_key(settings: Settings, authorization: str) -> bool:
    """Whether an `Authorization` header carries KB_SERVICE_API_KEY, the operator's key.
    Only such a caller is shown internal detail: the corpus folder's absolute path, the
    upstream URL and what the upstream server answered."""
    expected = settings.service_api_key
    scheme, _, token = authorization.partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return key_matches(token.strip(), expected)


def is_operator(request: Request, settings: SettingsDep) -> bool:
    return holds_service_key(settings, request.headers.get("authorization", ""))


Operator = Annotated[bool, Depends(is_operator)]


def shown_error(exc: KBError, operator: bool, settings: Settings | None = None) -> tuple[str, str]:
    """(type, message) of `exc` as a caller may see it. Without the service key: a
    backend failure without the upstream URL or body, and the data and corpus folders
    named, not spelled out (given `settings`)."""
    if operator:
        return exc.kind, exc.message
    if isinstance(exc, BackendError):
        return exc.kind, exc.public_message
    message = exc.message
    if settings is not None:
        for folder, name in (
            (settings.data_dir, "the data directory"),
            (settings.corpus_dir, "the corpus folder"),
        ):
            if folder is not None:
                for spelled in {str(folder), str(folder.resolve())}:
                    message = message.replace(spelled, name)
    return exc.kind, message


def shown_root(corpus_root: str, operator: bool) -> str:
    """The corpus folder as a caller may see it: its name, or its whole path for the
    operator."""
    return corpus_root if operator else PurePath(corpus_root).name


QueryAuth = Depends(require_query_key)
IngestAuth = Depends(require_ingest_key)
