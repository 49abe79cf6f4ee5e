"""The errors the knowledge service raises, as one small tree.

    KBError                      root: anything this package raises on purpose
    ├── UserError                the caller can fix it (HTTP 4xx, CLI exit 2)
    │   ├── SettingsError        a KB_* setting or option is invalid (its fixer is the
    │   │                        operator: the CLI exits 2, the API answers 500)
    │   ├── NotIngestedError     no corpus in the data directory yet
    │   ├── InvalidRequestError  a question, mode, top-k or body is unusable
    │   ├── NoQuestionsKeptError  question writing kept none (why, and what to try)
    │   ├── AuthError            missing or wrong API key for the service
    │   │   └── ScopeError       the key may not do this (ingest, administer): HTTP 403
    │   ├── KnowledgeBaseNotFoundError  no such knowledge base, or not one the key
    │   │                        may read (the same 404 either way)
    │   └── KnowledgeBaseExistsError    creating a knowledge base that exists (409)
    ├── IngestError              ingestion could not run (HTTP 409/500, CLI exit 1)
    │   ├── IngestBusyError      another ingest holds the data directory
    │   └── DiskFullError        no space left while writing; nothing was committed
    ├── CorpusDamagedError       a committed file is unreadable (HTTP 503; `kb ingest` repairs)
    ├── ServiceError             a running `kb serve` (KB_URL) failed or was not reached
    └── BackendError             the answer backend failed (HTTP 502/503/504)
        ├── BackendAuthError     the provider rejected the key
        ├── BackendRateLimitError  the provider is throttling us
        ├── ContextTooLongError  the prompt does not fit the model
        ├── BackendTimeoutError  the provider did not answer in time
        └── BackendUnavailableError  the provider could not be reached

Each error carries a message that says what to do; `http_status` tells the
edge (API or CLI) how to present it. A backend error's message names the server it
reached and what that server said; `public_message` says what happened without
either, for callers who do not hold the service key.
"""

from __future__ import annotations


class KBError(Exception):
    """Root of every error the service raises on purpose."""

    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def kind(self) -> str:
        return type(self).__name__


class UserError(KBError):
    http_status = 400


class SettingsError(UserError):
    """A setting the operator must fix. On the command line the operator is the caller
    (exit 2, like any user error); an HTTP caller cannot fix it, so the API answers a
    500 that points at the server log (`api.app`)."""


class NotIngestedError(UserError):
    http_status = 409


class InvalidRequestError(UserError):
    http_status = 422


class NoQuestionsKeptError(UserError):
    """Writing an evaluation set from the corpus kept no question: the message says
    why (the requests made, why writing stopped, what the filters dropped) and what to
    try. Nothing is written, so no empty set reaches `kb report`."""

    http_status = 422


class AuthError(UserError):
    http_status = 401


# ---- knowledge bases and scoped keys ----


class ScopeError(AuthError):
    """The key is valid but its scope does not cover this (ingest, administer)."""

    http_status = 403


class KnowledgeBaseNotFoundError(UserError):
    """No knowledge base by that name, or none the caller's key may read: the two are
    answered alike, so a key never learns what exists beyond its scope."""

    http_status = 404


class KnowledgeBaseExistsError(UserError):
    http_status = 409


class IngestError(KBError):
    http_status = 500


class IngestBusyError(IngestError):
    http_status = 409


class DiskFullError(IngestError):
    http_status = 507


class CorpusDamagedError(KBError):
    """A file of the committed corpus is missing or unreadable; the message names it."""

    http_status = 503


class ServiceError(KBError):
    """A running `kb serve` that `kb ask` / `kb chat` talk to (KB_URL) could not be
    reached, or answered with an error; `http_status` is its status (0: unreachable)."""

    def __init__(self, message: str, *, http_status: int = 0, kind: str = "") -> None:
        super().__init__(message)
        self.http_status = http_status
        self._kind = kind

    @property
    def kind(self) -> str:
        return self._kind or type(self).__name__


class BackendError(KBError):
    http_status = 502
    public_message = "The answer backend failed; the server log has the details."

    def __init__(self, message: str, *, provider: str = "", model: str = "") -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model


class BackendAuthError(BackendError):
    http_status = 502
    public_message = (
        "The answer backend rejected the service's credentials; the operator must fix "
        "KB_API_KEY (the server log has the details)."
    )


class BackendRateLimitError(BackendError):
    http_status = 503
    public_message = "The answer backend is throttling requests; wait and retry."


class ContextTooLongError(BackendError):
    http_status = 502
    public_message = "The prompt does not fit the answer backend's context window; ask in rag mode."


class BackendTimeoutError(BackendError):
    http_status = 504
    public_message = (
        "The answer backend did not answer in time; retry, or ask in rag mode for a shorter prompt."
    )


class BackendUnavailableError(BackendError):
    http_status = 503
    public_message = "The answer backend is unavailable; retry in a moment."
