"""Choosing the path for a question: the whole corpus in a cached prompt, or retrieval.

The rule the product embodies: long context when the corpus snapshot, the
instructions, the question and the answer reserve fit the long-context limit
(the smaller of the budget and the backend's context window); retrieval
otherwise, or when a cached long-context question would cost far more than a
retrieval one. Every decision carries the numbers it compared.
"""

from __future__ import annotations

from dataclasses import dataclass

from kb.errors import InvalidRequestError
from kb.models import Route


@dataclass(frozen=True, slots=True)
class Sizes:
    """The token counts a routing decision compares."""

    corpus_tokens: int
    overhead_tokens: int  # instructions + question + markup around them
    answer_reserve: int
    budget: int
    window: int

    @property
    def needed(self) -> int:
        return self.corpus_tokens + self.overhead_tokens + self.answer_reserve

    @property
    def limit(self) -> int:
        return min(self.budget, self.window)

    @property
    def fits(self) -> bool:
        return self.needed <= self.limit

    def numbers(self) -> dict[str, int | bool]:
        return {
            "corpus_tokens": self.corpus_tokens,
            "overhead_tokens": self.overhead_tokens,
            "answer_reserve": self.answer_reserve,
            "needed_tokens": self.needed,
            "budget_tokens": self.budget,
            "window_tokens": self.window,
            "limit_tokens": self.limit,
            "fits": self.fits,
        }

    def explain(self) -> str:
        relation = "<=" if self.fits else ">"
        bound = f"budget {self.budget:,}"
        if self.window < self.budget:
            bound += f", backend window {self.window:,}"
        return (
            f"corpus {self.corpus_tokens:,} + prompt {self.overhead_tokens:,} + answer reserve "
            f"{self.answer_reserve:,} = {self.needed:,} tokens {relation} limit {self.limit:,} "
            f"({bound})"
        )


@dataclass(frozen=True, slots=True)
class Costs:
    """Expected cost of one question on each path, in USD."""

    long_context: float
    rag: float

    @property
    def ratio(self) -> float:
        return self.long_context / self.rag if self.rag > 0 else float("inf")


def choose_path(
    mode: str, sizes: Sizes, costs: Costs | None = None, max_cost_ratio: float = 20.0
) -> Route:
    """The route for `mode` (`auto`, `long_context` or `rag`; `self_route` starts as
    `rag` and is escalated by the caller). Raises InvalidRequestError when
    `long_context` is forced on a corpus that does not fit."""
    numbers: dict[str, object] = dict(sizes.numbers())
    if costs is not None:
        numbers |= {
            "long_context_cost_usd": round(costs.long_context, 8),
            "rag_cost_usd": round(costs.rag, 8),
            "cost_ratio": round(costs.ratio, 3),
            "max_cost_ratio": max_cost_ratio,
        }
    if mode == "rag":
        return Route(mode, "rag", "retrieval was requested (mode rag)", numbers=numbers)
    if mode == "self_route":
        return Route(
            mode,
            "rag",
            "self_route answers from retrieval first and escalates to long context only "
            "if the passages cannot answer",
            numbers=numbers,
        )
    if mode == "long_context":
        if not sizes.fits:
            raise InvalidRequestError(
                f"The corpus does not fit a long-context prompt: {sizes.explain()}. "
                "Use mode rag or auto, or raise KB_LONG_CONTEXT_BUDGET if the model allows."
            )
        return Route(
            mode, "long_context", f"long context was requested; {sizes.explain()}", numbers=numbers
        )
    if mode != "auto":
        raise InvalidRequestError(
            f"Unknown mode {mode!r}: use auto, long_context, rag or self_route."
        )
    if not sizes.fits:
        return Route(
            mode, "rag", f"{sizes.explain()}: the corpus is too large, so retrieve", numbers=numbers
        )
    if costs is not None and costs.ratio > max_cost_ratio:
        return Route(
            mode,
            "rag",
            f"{sizes.explain()}, but a cached long-context question costs "
            f"${costs.long_context:.6f} against ${costs.rag:.6f} for retrieval "
            f"({costs.ratio:.1f}x > {max_cost_ratio:g}x): retrieve",
            numbers=numbers,
        )
    cost_note = ""
    if costs is not None:
        cost_note = (
            f"; cached long context costs ${costs.long_context:.6f} per question against "
            f"${costs.rag:.6f} for retrieval ({costs.ratio:.1f}x <= {max_cost_ratio:g}x)"
        )
    return Route(
        mode,
        "long_context",
        f"{sizes.explain()}: the whole corpus goes in the cached prompt{cost_note}",
        numbers=numbers,
    )
