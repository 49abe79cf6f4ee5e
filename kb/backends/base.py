"""The answer backend contract: one abstract method, `complete(prompt)`.

Capabilities are class attributes that callers ask instead of comparing provider
names: `context_window` and `supports_prompt_cache` (read by the router), `priced`
(the router weighs cost and answers are priced) and `needs_warm_up` (the service
asks one long-context question before serving). Streaming and refusal detection
are written once here; the prompt a backend is asked lives in `kb.backends.prompts`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, ClassVar

from kb.backends.cost import model_context_window
from kb.backends.prompts import Prompt
from kb.core.errors import (
    BackendAuthError,
    BackendError,
    BackendRateLimitError,
    BackendTimeoutError,
    BackendUnavailableError,
    ContextTooLongError,
    SettingsError,
)
from kb.core.models import Citation, Usage

if TYPE_CHECKING:
    from kb.core.settings import Settings


@dataclass(slots=True)
class Completion:
    """A backend's answer: text, the provider's token usage, and what it cited.

    `citations` is set by backends that locate their sources themselves (the
    extractive reader); otherwise the markers in `text` are resolved by the caller."""

    text: str
    usage: Usage
    model: str
    refused: bool = False
    citations: list[Citation] | None = None


@dataclass(slots=True)
class StreamDelta:
    text: str


class AnswerBackend(ABC):
    """Base of every answer backend. Subclasses implement `complete` only; they may
    override `stream` to stream natively."""

    provider: ClassVar[str] = ""
    context_window: ClassVar[int] = 128_000
    # The long-context prefix is read from a cache after the first question; the router
    # prices it as cache reads when true, as plain input otherwise.
    supports_prompt_cache: ClassVar[bool] = False
    # Answers cost money: the router weighs each path's cost and answers carry a price.
    # An unpriced backend runs on this machine and costs nothing (cost 0).
    priced: ClassVar[bool] = False
    # One long-context question before serving builds a per-corpus cache that would
    # otherwise slow the first question (never true of a priced backend).
    needs_warm_up: ClassVar[bool] = False
    # It refuses below a score threshold (KB_EXTRACTIVE_THRESHOLD) that a report can sweep.
    has_refusal_threshold: ClassVar[bool] = False
    # Writes text (so it can rewrite a follow-up into a standalone question).
    generative: ClassVar[bool] = True

    def __init__(self, model: str) -> None:
        self.model = model

    @property
    def name(self) -> str:
        return f"{self.provider}:{self.model}" if self.model else self.provider

    @property
    def window(self) -> int:
        return self.context_window

    @abstractmethod
    def complete(self, prompt: Prompt) -> Completion:
        """Answer `prompt`; raise a `kb.core.errors.BackendError` subclass on failure."""

    def stream(self, prompt: Prompt) -> Iterator[StreamDelta | Completion]:
        """Deltas of the answer text, then the final Completion (usage included)."""
        completion = self.complete(prompt)
        yield StreamDelta(completion.text)
        yield completion

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients or servers the backend holds."""


class ProviderBackend(AnswerBackend):
    """Set-up shared by the backends behind a provider's SDK. The context window is
    KB_CONTEXT_WINDOW when set, else the window genai-prices records for the model,
    else the class's `context_window`."""

    priced = True

    def __init__(self, settings: Settings, model: str) -> None:
        super().__init__(model)
        self.timeout = settings.request_timeout
        self.max_output_tokens = settings.max_output_tokens
        self._window = (
            settings.context_window
            or model_context_window(self.provider, model)
            or self.context_window
        )

    @property
    def window(self) -> int:
        return self._window


_REFUSAL_PATTERN = re.compile(
    r"^\W*(i cannot answer|i can't answer|i don't know|i do not know"
    r"|not in the (documents|passages))",
    re.IGNORECASE,
)


def is_refusal(text: str) -> bool:
    return not text.strip() or bool(_REFUSAL_PATTERN.match(text.strip()))


# Local servers (llama.cpp, vLLM, Ollama) usually need no key, but the SDKs insist on one.
PLACEHOLDER_KEY = "no-key-needed"


def api_key_for(settings: Settings, provider: str) -> str:
    """KB_API_KEY, or a placeholder for a server behind KB_BASE_URL that needs none."""
    if settings.api_key:
        return settings.api_key
    if settings.base_url:
        return PLACEHOLDER_KEY
    raise SettingsError(
        f"KB_BACKEND={provider}:<model> needs an API key: set KB_API_KEY "
        "(or KB_BASE_URL for a local server that needs none)."
    )


# Words by which OpenAI, Anthropic, vLLM and llama.cpp say a prompt is too long.
_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "exceed_context_size",
    "context length",
    "context window",
    "context size",
    "prompt is too long",
    "too many tokens",
)


def sdk_error(
    exc: Exception, sdk: ModuleType, backend: AnswerBackend, *, where: str, timeout: float
) -> BackendError:
    """Translate an `openai` or `anthropic` SDK exception (the two share one design)
    into the typed error that says what to do. `where` names the server reached."""
    name, scope = backend.name, {"provider": backend.provider, "model": backend.model}
    if isinstance(exc, sdk.APITimeoutError):
        return BackendTimeoutError(
            f"{name} did not answer within {timeout:g} s. Raise KB_REQUEST_TIMEOUT, "
            "or ask in rag mode for a shorter prompt.",
            **scope,
        )
    if isinstance(exc, sdk.APIConnectionError):
        return BackendUnavailableError(
            f"Could not reach {name} at {where} ({exc.__cause__ or exc}). Check that the "
            "server is running and that KB_BASE_URL is right.",
            **scope,
        )
    if not isinstance(exc, sdk.APIStatusError):
        return BackendError(f"{name} failed: {exc}", **scope)
    status: int = exc.status_code
    body = exc.body.get("error", exc.body) if isinstance(exc.body, dict) else {}
    body = body if isinstance(body, dict) else {}
    kind, code, message = body.get("type"), body.get("code"), body.get("message")
    detail = f"HTTP {status}{f' {kind}' if kind else ''}{f': {message}' if message else ''}"
    words = " ".join(str(part) for part in (kind, code, message) if part).lower()
    if status in (401, 403):
        return BackendAuthError(
            f"{name} rejected the API key ({detail}). Set a valid key in KB_API_KEY.", **scope
        )
    if status == 429:
        advice = (
            "The key's quota is used up: check the account's plan and billing."
            if "quota" in words
            else "Wait and retry, send fewer questions at once, or raise the key's rate limit."
        )
        return BackendRateLimitError(f"{name} is throttling requests ({detail}). {advice}", **scope)
    if status == 413 or (status == 400 and any(marker in words for marker in _CONTEXT_MARKERS)):
        return ContextTooLongError(
            f"The prompt does not fit {name}'s context window ({detail}). Ask in rag mode, "
            "lower KB_LONG_CONTEXT_BUDGET, or set KB_CONTEXT_WINDOW to the model's real "
            "window so that the router retrieves instead.",
            **scope,
        )
    if status == 404:
        return BackendError(
            f"{name} was not found at {where} ({detail}). Check the model name and "
            "KB_BASE_URL (an OpenAI-compatible URL usually ends in /v1).",
            **scope,
        )
    if status >= 500:
        return BackendUnavailableError(
            f"{name} failed on the provider's side ({detail}). Retry in a moment.", **scope
        )
    return BackendError(f"{name} rejected the request ({detail}).", **scope)
