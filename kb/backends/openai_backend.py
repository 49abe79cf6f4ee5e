"""`openai:<model>`: any OpenAI-compatible chat server through the official client.

OpenAI itself, vLLM, llama.cpp's server and Ollama all serve
`/v1/chat/completions`; `KB_BASE_URL` picks the server. The system message holds
only the instructions; the user message holds the documents as a delimited data
block and then the question, so the stable prefix (instructions, then the corpus)
comes first and a provider's prefix cache serves every question on one corpus version, and
`prompt_cache_key` steers those requests to the same cache (OpenAI; other servers
ignore it). Cached tokens are read from `usage.prompt_tokens_details.cached_tokens`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import openai

from kb.backends.base import (
    Completion,
    ProviderBackend,
    StreamDelta,
    api_key_for,
    is_refusal,
    sdk_error,
)
from kb.backends.prompts import Prompt
from kb.core.errors import BackendError
from kb.core.models import Usage
from kb.core.settings import Settings

if TYPE_CHECKING:
    import httpx2
    from openai.types import CompletionUsage


class OpenAIBackend(ProviderBackend):
    """Chat completions through the `openai` client, with native streaming.

    The context window is KB_CONTEXT_WINDOW when set, else the window genai-prices
    records for the model, else 128k; set KB_CONTEXT_WINDOW for a self-hosted
    model whose server runs a smaller window."""

    provider = "openai"
    # When neither KB_CONTEXT_WINDOW nor genai-prices' model table knows the window:
    # the window of the GPT-4o family, common among OpenAI-compatible models.
    context_window = 128_000
    supports_prompt_cache = True

    def __init__(
        self,
        settings: Settings,
        model: str,
        *,
        http_client: httpx2.Client | None = None,
        max_retries: int = 2,
    ) -> None:
        super().__init__(settings, model)
        # OpenAI itself wants max_completion_tokens (reasoning models reject max_tokens);
        # max_tokens is the field every other compatible server understands.
        self._max_tokens_field = "max_tokens" if settings.base_url else "max_completion_tokens"
        self.client = openai.OpenAI(
            api_key=api_key_for(settings, self.provider),
            base_url=settings.base_url,
            timeout=settings.request_timeout,
            max_retries=max_retries,
            http_client=http_client,
        )

    def request(self, prompt: Prompt) -> dict[str, Any]:
        """The request body: instructions as the system message; the data block, then
        the question, as the user message (the cacheable prefix first, the question last).
        A prompt with a reply format asks for structured output (`response_format` with
        a strict JSON schema), which OpenAI and OpenAI-compatible servers enforce."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": prompt.instructions},
                {"role": "user", "content": prompt.user_text},
            ],
            "temperature": 0,
            self._max_tokens_field: self.max_output_tokens,
        }
        if prompt.cache_key:
            body["prompt_cache_key"] = prompt.cache_key
        if prompt.reply_format is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": prompt.reply_format.name,
                    "strict": True,
                    "schema": prompt.reply_format.schema(),
                },
            }
        return body

    def complete(self, prompt: Prompt) -> Completion:
        try:
            response = self.client.chat.completions.create(**self.request(prompt))
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc
        if not response.choices:
            raise BackendError(f"{self.name} returned no answer choices.", **self._scope)
        choice = response.choices[0]
        text = self._checked_text(choice.message.content, choice.finish_reason)
        return Completion(
            text=text,
            usage=usage_from_openai(response.usage),
            model=response.model or self.model,
            refused=is_refusal(text),
        )

    def stream(self, prompt: Prompt) -> Iterator[StreamDelta | Completion]:
        body = self.request(prompt) | {"stream": True, "stream_options": {"include_usage": True}}
        parts: list[str] = []
        usage: CompletionUsage | None = None
        finish_reason: str | None = None
        model = self.model
        try:
            with self.client.chat.completions.create(**body) as chunks:
                for chunk in chunks:
                    model = chunk.model or model
                    usage = chunk.usage or usage
                    for choice in chunk.choices[:1]:
                        finish_reason = choice.finish_reason or finish_reason
                        if choice.delta.content:
                            parts.append(choice.delta.content)
                            yield StreamDelta(choice.delta.content)
        except openai.OpenAIError as exc:
            raise self._error(exc) from exc
        text = self._checked_text("".join(parts), finish_reason)
        yield Completion(
            text=text, usage=usage_from_openai(usage), model=model, refused=is_refusal(text)
        )

    def close(self) -> None:
        self.client.close()

    @property
    def _scope(self) -> dict[str, str]:
        return {"provider": self.provider, "model": self.model}

    def _error(self, exc: Exception) -> BackendError:
        return sdk_error(exc, openai, self, where=str(self.client.base_url), timeout=self.timeout)

    def _checked_text(self, content: str | None, finish_reason: str | None) -> str:
        """The answer text; an empty answer is an error that says why, never a silent ''."""
        text = (content or "").strip()
        if finish_reason == "content_filter":
            raise BackendError(f"{self.name}'s content filter stopped the answer.", **self._scope)
        if not text:
            hint = " Raise KB_MAX_OUTPUT_TOKENS." if finish_reason == "length" else ""
            raise BackendError(
                f"{self.name} returned an empty answer (finish_reason={finish_reason}).{hint}",
                **self._scope,
            )
        return text


def usage_from_openai(usage: CompletionUsage | None) -> Usage:
    """Split `prompt_tokens` into uncached input, cache reads and cache writes (OpenAI
    counts `cached_tokens` and `cache_write_tokens` inside `prompt_tokens`, as
    genai-prices' OpenAI extractor reads them); no usage reported gives zeros."""
    if usage is None:
        return Usage()
    details = usage.prompt_tokens_details
    read = (details.cached_tokens or 0) if details is not None else 0
    written = (details.cache_write_tokens or 0) if details is not None else 0
    return Usage(
        input_tokens=usage.prompt_tokens - read - written,
        cache_read_tokens=read,
        cache_write_tokens=written,
        output_tokens=usage.completion_tokens,
    )
