"""Answer backends, chosen by one `provider:model` setting (see `get_backend`).

    base.py               the contract: `complete(prompt)`, capability flags
    prompts.py            what a backend is asked: instructions, `Prompt`, the contexts
    cost.py               what an answer costs, and each model's context window
    openai_backend.py     any OpenAI-compatible server (`openai:<model>`)
    anthropic_backend.py  Claude (`anthropic:<model>`)
    local.py              a local GGUF model on the real llama.cpp server (`local`)
    extractive/           the offline default reader (`extractive`)

May import `kb.core`, `kb.store` and `kb.search`.
"""

from __future__ import annotations

from kb.backends.base import AnswerBackend, Completion, StreamDelta
from kb.backends.prompts import Prompt
from kb.core.errors import SettingsError
from kb.core.settings import Settings
from kb.search.embedding import Embedder

__all__ = ["AnswerBackend", "Completion", "Prompt", "StreamDelta", "get_backend"]


def get_backend(
    settings: Settings, spec: str | None = None, *, embedder: Embedder | None = None
) -> AnswerBackend:
    """Build the backend named by `spec` (default `settings.backend`): `extractive`,
    `openai:<model>`, `anthropic:<model>` or `local[:<path.gguf>]`. `embedder` is the
    embedding model the extractive reader reads with (default: the shared one).

    Each SDK is imported only in its own branch."""
    spec = (spec or settings.backend).strip()
    provider, _, model = spec.partition(":")
    if provider == "extractive":
        from kb.backends.extractive.reader import ExtractiveBackend

        return ExtractiveBackend(settings, embedder=embedder)
    if provider == "openai":
        if not model:
            raise SettingsError("KB_BACKEND=openai needs a model, e.g. openai:gpt-4o-mini")
        from kb.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(settings, model)
    if provider == "anthropic":
        if not model:
            raise SettingsError(
                "KB_BACKEND=anthropic needs a model, e.g. anthropic:claude-sonnet-4-5"
            )
        from kb.backends.anthropic_backend import AnthropicBackend

        return AnthropicBackend(settings, model)
    if provider == "local":
        from kb.backends.local import LocalBackend

        return LocalBackend(settings, model or None)
    raise SettingsError(
        f"Unknown backend {spec!r}: use extractive, openai:<model>, anthropic:<model> "
        "or local[:<model.gguf>]"
    )
