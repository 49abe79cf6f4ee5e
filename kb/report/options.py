"""What a report runs and how it prices it: `ReportOptions` and its defaults, defined
once for the library and the `kb report` command."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kb.core.errors import InvalidRequestError
from kb.core.settings import MODES

DEFAULT_MODES = ("long_context", "rag", "auto", "self_route")
DEFAULT_PRICE_MODELS = (
    "openai:gpt-4.1-mini",
    "anthropic:claude-sonnet-4-5",
    "google:gemini-2.5-flash",
)
DEFAULT_CACHE_TTL_MINUTES = 5.0
DEFAULT_MONTHLY_QUESTIONS = 100_000
RECALL_KS = (5, 20)


@dataclass(frozen=True)
class ReportOptions:
    """What to run and how to price it."""

    questions_path: Path
    modes: tuple[str, ...] = DEFAULT_MODES
    limit: int | None = None
    seed: int = 0
    top_k: int | None = None
    price_models: tuple[str, ...] = DEFAULT_PRICE_MODELS
    recall_ks: tuple[int, ...] = RECALL_KS
    cache_ttl_minutes: float = DEFAULT_CACHE_TTL_MINUTES
    monthly_questions: int = DEFAULT_MONTHLY_QUESTIONS
    threshold_sweep: bool = True
    notes: tuple[str, ...] = ()
    title: str | None = None
    judge: str | None = None  # provider:model; None: the run's backend when generative
    # Every question in one mode before the next mode (else a balanced Latin square per
    # question): for a local server whose one prompt-cache slot a question in another
    # mode would evict.
    grouped_modes: bool = False

    def __post_init__(self) -> None:
        unknown = [m for m in self.modes if m not in MODES]
        if unknown or not self.modes:
            raise InvalidRequestError(
                f"Unknown mode(s) {', '.join(unknown) or '(none given)'}: use {', '.join(MODES)}."
            )
        if self.monthly_questions < 1:
            raise InvalidRequestError("The assumed monthly volume must be at least 1.")
        if self.cache_ttl_minutes <= 0:
            raise InvalidRequestError("The cache lifetime must be positive.")
        if not self.recall_ks or any(k < 1 for k in self.recall_ks):
            raise InvalidRequestError("recall@k needs at least one k, each k >= 1.")

    @property
    def dataset_name(self) -> str:
        """The report's title: `--title`, else the evaluation set's name, i.e. the file
        name without `.questions.jsonl` (`handbook.questions.jsonl` -> handbook), or its
        folder when the file is plainly `questions.jsonl` (`hotpotqa-100/questions.jsonl`)."""
        if self.title:
            return self.title
        stem = self.questions_path.name.removesuffix(".jsonl").removesuffix(".questions")
        if stem in ("", "questions"):
            return self.questions_path.resolve().parent.name or stem
        return stem
