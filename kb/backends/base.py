"""The answer backend contract: one abstract method, `complete(prompt)`.

Capabilities are class attributes the router reads (`context_window`,
`supports_prompt_cache`); streaming, refusal detection and citation parsing are
written once here.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

from kb.models import Citation, Usage

if TYPE_CHECKING:
    from kb.corpus import CorpusVersion

REFUSAL = "I cannot answer this from the provided documents."

INSTRUCTIONS_LONG_CONTEXT = f"""You answer questions using only the documents below.
Each document is wrapped in <document id="..." title="..." source="..."> tags.
Answer briefly and precisely. After each statement, cite the supporting document by its id
in square brackets, for example [doc:Some_Id]. If the documents do not contain the answer,
reply exactly: {REFUSAL}"""

INSTRUCTIONS_RAG = f"""You answer questions using only the numbered passages below.
Answer briefly and precisely. After each statement, cite the passages that support it by
number in square brackets, for example [1] or [2][3]. If the passages do not contain the
answer, reply exactly: {REFUSAL}"""


@dataclass(slots=True)
class Prompt:
    """What a backend is asked: a stable prefix (instructions + context), then the question.

    `context` is the corpus snapshot for the long-context path (byte-identical for
    every question on one corpus version) or the numbered passages for retrieval."""

    path: Literal["long_context", "rag"]
    instructions: str
    context: str
    question: str
    cache_key: str | None = None
    passages: list[Citation] = field(default_factory=list)
    corpus: CorpusVersion | None = None

    @property
    def prefix(self) -> str:
        """The cacheable part, sent first: instructions, then the context."""
        return f"{self.instructions}\n\n{self.context}"


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
    supports_prompt_cache: ClassVar[bool] = False

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
        """Answer `prompt`; raise a `kb.errors.BackendError` subclass on failure."""

    def stream(self, prompt: Prompt) -> Iterator[StreamDelta | Completion]:
        """Deltas of the answer text, then the final Completion (usage included)."""
        completion = self.complete(prompt)
        yield StreamDelta(completion.text)
        yield completion

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients or servers the backend holds."""


_REFUSAL_PATTERN = re.compile(
    r"^\W*(i cannot answer|i can't answer|i don't know|i do not know"
    r"|not in the (documents|passages))",
    re.IGNORECASE,
)


def is_refusal(text: str) -> bool:
    return not text.strip() or bool(_REFUSAL_PATTERN.match(text.strip()))
