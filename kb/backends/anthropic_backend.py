"""`anthropic:<model>`: Claude through the official `anthropic` client.

The system prompt holds only the instructions. The one user message is two
blocks: the documents as a delimited data block, then the question. On the
long-context path the data block (the corpus snapshot) carries
`cache_control: {"type": "ephemeral"}`, which caches everything up to and
including it (the instructions too), so each later question on the same corpus
version reads the corpus from the cache. Retrieved passages change with every
question, so on the retrieval path nothing is marked.
Usage comes from `input_tokens` (uncached), `cache_creation_input_tokens`,
`cache_read_input_tokens` and `output_tokens`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import anthropic

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
    from anthropic.types import Message


class AnthropicBackend(ProviderBackend):
    """Messages through the `anthropic` client, with native streaming.

    `KB_BASE_URL`, when set, is the server root (the client appends /v1/messages)."""

    provider = "anthropic"
    # When neither KB_CONTEXT_WINDOW nor genai-prices knows the model: Claude's standard window.
    context_window = 200_000
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
        self.client = anthropic.Anthropic(
            api_key=api_key_for(settings, self.provider),
            base_url=settings.base_url,
            timeout=settings.request_timeout,
            max_retries=max_retries,
            http_client=http_client,
        )

    def request(self, prompt: Prompt) -> dict[str, Any]:
        """The request body: the instructions as the system prompt; the data block
        (cache-marked on the long-context path), then the question, as the user turn."""
        content: list[dict[str, Any]] = []
        if prompt.context:  # the API rejects an empty text block
            block: dict[str, Any] = {"type": "text", "text": prompt.context}
            if prompt.path == "long_context":
                block["cache_control"] = {"type": "ephemeral"}
            content.append(block)
        content.append({"type": "text", "text": prompt.question_text})
        # No temperature: the Messages API of this SDK generation has no sampling knobs.
        return {
            "model": self.model,
            "max_tokens": self.max_output_tokens,
            "system": [{"type": "text", "text": prompt.instructions}],
            "messages": [{"role": "user", "content": content}],
        }

    def complete(self, prompt: Prompt) -> Completion:
        try:
            message = self.client.messages.create(**self.request(prompt))
        except anthropic.AnthropicError as exc:
            raise self._error(exc) from exc
        return self._completion(message)

    def stream(self, prompt: Prompt) -> Iterator[StreamDelta | Completion]:
        try:
            with self.client.messages.stream(**self.request(prompt)) as events:
                for text in events.text_stream:
                    if text:
                        yield StreamDelta(text)
                message = events.get_final_message()
        except anthropic.AnthropicError as exc:
            raise self._error(exc) from exc
        yield self._completion(message)

    def close(self) -> None:
        self.client.close()

    def _error(self, exc: Exception) -> BackendError:
        return sdk_error(
            exc, anthropic, self, where=str(self.client.base_url), timeout=self.timeout
        )

    def _completion(self, message: Message) -> Completion:
        text = "".join(block.text for block in message.content if block.type == "text").strip()
        scope = {"provider": self.provider, "model": self.model}
        if not text and message.stop_reason != "refusal":
            hint = " Raise KB_MAX_OUTPUT_TOKENS." if message.stop_reason == "max_tokens" else ""
            raise BackendError(
                f"{self.name} returned an empty answer (stop_reason={message.stop_reason}).{hint}",
                **scope,
            )
        return Completion(
            text=text,
            usage=usage_from_anthropic(message),
            model=message.model or self.model,
            refused=message.stop_reason == "refusal" or is_refusal(text),
        )


def usage_from_anthropic(message: Message) -> Usage:
    """Anthropic already reports uncached input, cache writes and cache reads apart."""
    usage = message.usage
    return Usage(
        input_tokens=usage.input_tokens or 0,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
    )
