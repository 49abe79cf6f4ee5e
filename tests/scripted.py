"""A scripted answer backend for fast, deterministic tests of the question path
(in the spirit of pydantic-ai's `FunctionModel`): the test says what the backend
answers to each prompt, and every prompt it was asked is kept for assertions.

It stands where a paid provider would, so the rest of the path (corpus, router,
retrieval, prompts, citations, pricing) runs for real.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from kb.backends.base import AnswerBackend, Completion, StreamDelta, is_refusal
from kb.backends.prompts import REFUSAL, Prompt
from kb.core.models import Usage
from kb.core.tokens import count_tokens

# The answer text to a prompt, or a whole Completion (to script usage or own citations).
Reply = Callable[[Prompt], str | Completion]


def refuse_on_rag(prompt: Prompt) -> str:
    """Refuse from passages, answer from the whole corpus: drives self_route's escalation."""
    return REFUSAL if prompt.path == "rag" else "From the corpus [doc:deploys.md]."


def cite_first(prompt: Prompt) -> str:
    """Answer citing the first passage (or the first document of the corpus)."""
    if prompt.path == "rag":
        return f"From the passages [{prompt.passages[0].number}]."
    assert prompt.corpus is not None
    return f"From the corpus [doc:{prompt.corpus.chunks[0].doc_id}]."


class ScriptedBackend(AnswerBackend):
    """Answers with `reply(prompt)`; streams it word by word. Usage counts the
    prompt's tokens as a provider would (the long-context prefix as a cache read
    once a corpus version has been asked). Free and unpriced, like a local model."""

    provider = "scripted"
    supports_prompt_cache = True

    def __init__(self, reply: Reply = cite_first, model: str = "test") -> None:
        super().__init__(model)
        self.reply = reply
        self.prompts: list[Prompt] = []
        self.streamed: list[Prompt] = []
        self._cached: set[str] = set()

    def complete(self, prompt: Prompt) -> Completion:
        self.prompts.append(prompt)
        reply = self.reply(prompt)
        if isinstance(reply, Completion):
            return reply
        return Completion(reply, self._usage(prompt, reply), self.model, refused=is_refusal(reply))

    def stream(self, prompt: Prompt) -> Iterator[StreamDelta | Completion]:
        self.streamed.append(prompt)
        completion = self.complete(prompt)
        words = completion.text.split(" ")
        for number, word in enumerate(words):
            yield StreamDelta(word if number == 0 else f" {word}")
        yield completion

    def _usage(self, prompt: Prompt, text: str) -> Usage:
        question = count_tokens(prompt.question_text)
        output = count_tokens(text)
        if not prompt.cache_key:
            return Usage(input_tokens=count_tokens(prompt.prefix) + question, output_tokens=output)
        prefix = count_tokens(prompt.prefix)
        hit = prompt.cache_key in self._cached
        self._cached.add(prompt.cache_key)
        return Usage(
            input_tokens=question,
            cache_read_tokens=prefix if hit else 0,
            cache_write_tokens=0 if hit else prefix,
            output_tokens=output,
        )


class PricedScriptedBackend(ScriptedBackend):
    """The scripted backend billed like a provider: prices come from the test's
    KB_PRICE_OVERRIDES entry for `scripted:<model>`."""

    priced = True


class UncachedScriptedBackend(PricedScriptedBackend):
    """A priced backend without a prompt cache: the router prices the corpus as input."""

    supports_prompt_cache = False


class WarmingScriptedBackend(ScriptedBackend):
    """A free backend that asks to be warmed before serving, like the extractive reader."""

    needs_warm_up = True
