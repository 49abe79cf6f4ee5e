"""The errors the knowledge service raises, as one small tree.

    KBError                      root: anything this package raises on purpose
    ├── UserError                the caller can fix it (HTTP 4xx, CLI exit 2)
    │   ├── SettingsError        a KB_* setting or option is invalid (its fixer is the
    │   │                        operator: the CLI exits 2, the API answers 500)
    │   ├── NotIngestedError     no corpus in the data directory yet
    │   ├── InvalidRequestError  a question, mode, top-k or body is unusable
    │   └── AuthError            missing or wrong API key for the service
    ├── IngestError              ingestion could not run (HTTP 409/500, CLI exit 1)
    │   └── IngestBusyError      another ingest holds the data directory
    └── BackendError             the answer backend failed (HTTP 502/503/504)
        ├── BackendAuthError     the provider rejected the key
        ├── BackendRateLimitError  the provider is throttling us
        ├── ContextTooLongError  the prompt does not fit the model
        ├── BackendTimeoutError  the provider did not answer in time
        └── BackendUnavailableError  the provider could not be reached

Each error carries a message that says what to do; `http_status` tells the
edge (API or CLI) how to present it.
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


class AuthError(UserError):
    http_status = 401


class IngestError(KBError):
    http_status = 500


class IngestBusyError(IngestError):
    http_status = 409


class BackendError(KBError):
    http_status = 502

    def __init__(self, message: str, *, provider: str = "", model: str = "") -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model


class BackendAuthError(BackendError):
    http_status = 502


class BackendRateLimitError(BackendError):
    http_status = 503


class ContextTooLongError(BackendError):
    http_status = 502


class BackendTimeoutError(BackendError):
    http_status = 504


class BackendUnavailableError(BackendError):
    http_status = 503
