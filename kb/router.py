"""Choosing the path for a question: the whole corpus in a cached prompt, or retrieval.

The rule the product embodies: long context when the corpus snapshot, the
instructions, the question and the answer reserve fit the long-context limit
(the smaller of the budget and the backend's context window); retrieval
otherwise, or when a cached long-context question would cost far more than a
retrieval one. self_route retrieves first and escalates to long context when the
passages cannot answer. A report's recorded recommendation (`kb report --record`)
overrides auto's rule while the backend is the one it measured and the corpus has not
drifted past KB_RECOMMENDATION_MAX_DRIFT. Every decision carries the numbers it compared, and
`Router` makes all of them: the service only asks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from kb.backends.cost import estimate_cost
from kb.backends.prompts import INSTRUCTIONS_LONG_CONTEXT, INSTRUCTIONS_RAG
from kb.core.errors import InvalidRequestError
from kb.core.models import Manifest, Route, Usage
from kb.core.settings import check_mode
from kb.core.tokens import count_tokens
from kb.recorded import RecordedRecommendation, load_recommendation, measure_drift

if TYPE_CHECKING:
    from kb.backends.base import AnswerBackend
    from kb.core.settings import Settings

PROMPT_MARKUP_TOKENS = 16  # role markers, separators and the question's label
TYPICAL_OUTPUT_TOKENS = 200  # for the per-question cost estimate the router compares


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
    `rag`; `Router.after_retrieval` escalates it). Raises InvalidRequestError when
    `long_context` is forced on a corpus that does not fit."""
    numbers = _numbers(sizes, costs, max_cost_ratio)
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
    return _auto(check_mode(mode), sizes, costs, max_cost_ratio, numbers)


def _numbers(sizes: Sizes, costs: Costs | None, max_cost_ratio: float) -> dict[str, object]:
    """What a decision compared: the sizes, and the costs when known."""
    numbers: dict[str, object] = dict(sizes.numbers())
    if costs is not None:
        numbers |= {
            "long_context_cost_usd": round(costs.long_context, 8),
            "rag_cost_usd": round(costs.rag, 8),
            "cost_ratio": round(costs.ratio, 3),
            "max_cost_ratio": max_cost_ratio,
        }
    return numbers


def _auto(
    mode: str,
    sizes: Sizes,
    costs: Costs | None,
    max_cost_ratio: float,
    numbers: dict[str, object],
) -> Route:
    """`auto`: long context when the corpus fits and is not far dearer than retrieval."""
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


def follow_recorded(
    route: Route,
    sizes: Sizes,
    recorded: RecordedRecommendation,
    manifest: Manifest,
    backend: str,
    max_drift: float,
) -> Route:
    """`auto` with a recorded recommendation: follow it while it was measured with this
    backend and the corpus has drifted no more than `max_drift` (share of documents
    and of tokens) from the measured version; otherwise keep the size/cost `route`
    and say why the recommendation no longer applies."""
    said = f"report {recorded.report} recommended {recorded.path}"
    if recorded.backend != backend:
        why = f"{said} for backend {recorded.backend}, not {backend}"
        return replace(route, reason=f"{route.reason} ({why}, so the size/cost rule decides)")
    drift = measure_drift(recorded, manifest)
    numbers = dict(route.numbers) | {
        "recorded_report": recorded.report,
        "recorded_path": recorded.path,
        "recorded_corpus_version": recorded.corpus_version,
        "drift_share": round(drift.share, 4),
        "max_drift_share": max_drift,
    }
    since = f"on corpus version {recorded.corpus_version}; {drift.explain()}"
    if drift.share > max_drift:
        why = f"{said} {since}, past the {max_drift:.0%} drift limit"
        return replace(
            route, reason=f"{route.reason} ({why}, so the size/cost rule decides)", numbers=numbers
        )
    if recorded.path == "long_context" and not sizes.fits:
        why = f"{said}, but {sizes.explain()}"
        return replace(route, reason=f"{route.reason} ({why})", numbers=numbers)
    measured = ", ".join(f"{k} {v:.3g}" for k, v in recorded.numbers.items() if v is not None)
    return Route(
        route.mode,
        "long_context" if recorded.path == "long_context" else "rag",
        f"following the recorded recommendation: {said} with {backend} {since}, within the "
        f"{max_drift:.0%} drift limit" + (f" (measured: {measured})" if measured else ""),
        numbers=numbers,
    )


class Router:
    """Every routing decision for one backend under one settings object: the sizes
    and costs it compares, the first route, and self_route's escalation."""

    def __init__(self, settings: Settings, backend: AnswerBackend) -> None:
        self.settings = settings
        self.backend = backend

    def sizes(self, corpus_tokens: int, question: str) -> Sizes:
        return Sizes(
            corpus_tokens=corpus_tokens,
            overhead_tokens=count_tokens(INSTRUCTIONS_LONG_CONTEXT)
            + count_tokens(question)
            + PROMPT_MARKUP_TOKENS,
            answer_reserve=self.settings.answer_reserve,
            budget=self.settings.long_context_budget,
            window=self.settings.context_window or self.backend.window,
        )

    def costs(self, sizes: Sizes, question: str, top_k: int) -> Costs | None:
        """Expected USD per question on each path, when the backend is priced and its
        price is known. The long-context prefix counts as a cache read when the
        backend caches prompts, as plain input otherwise."""
        if not self.backend.priced:
            return None
        question_tokens = count_tokens(question) + PROMPT_MARKUP_TOKENS
        prefix_tokens = sizes.corpus_tokens + count_tokens(INSTRUCTIONS_LONG_CONTEXT)
        cached = self.backend.supports_prompt_cache
        long_context = self._price(
            Usage(
                input_tokens=question_tokens + (0 if cached else prefix_tokens),
                cache_read_tokens=prefix_tokens if cached else 0,
                output_tokens=TYPICAL_OUTPUT_TOKENS,
            )
        )
        rag = self._price(
            Usage(
                input_tokens=question_tokens
                + count_tokens(INSTRUCTIONS_RAG)
                + min(self.settings.rag_context_tokens, top_k * self.settings.chunk_tokens),
                output_tokens=TYPICAL_OUTPUT_TOKENS,
            )
        )
        if long_context is None or rag is None:
            return None
        return Costs(long_context=long_context, rag=rag)

    def route(
        self,
        corpus_tokens: int,
        mode: str,
        question: str,
        top_k: int,
        manifest: Manifest | None = None,
    ) -> Route:
        """The path a question in `mode` takes first. For `auto` on a corpus whose
        `manifest` is given, a recorded report recommendation decides while it holds
        (see `follow_recorded`)."""
        sizes = self.sizes(corpus_tokens, question)
        route = choose_path(
            mode, sizes, self.costs(sizes, question, top_k), self.settings.auto_max_cost_ratio
        )
        if route.mode != "auto" or manifest is None:
            return route
        recorded = load_recommendation(self.settings.data_dir)
        if recorded is None:
            return route
        return follow_recorded(
            route,
            sizes,
            recorded,
            manifest,
            self.backend.name,
            self.settings.recommendation_max_drift,
        )

    @staticmethod
    def may_escalate(route: Route) -> bool:
        """Whether the first answer on `route` may yet be replaced: self_route's
        retrieval attempt, which `after_retrieval` keeps or escalates."""
        return route.mode == "self_route" and route.path == "rag"

    def after_retrieval(
        self, route: Route, corpus_tokens: int, question: str, *, refused: bool
    ) -> Route:
        """self_route's second decision, once retrieval has answered: keep its answer,
        or escalate a refusal to long context when the corpus fits. A new Route."""
        if not refused:
            return replace(
                route, reason="retrieval's passages answered, so no escalation was needed"
            )
        sizes = self.sizes(corpus_tokens, question)
        if not sizes.fits:
            return replace(
                route,
                reason=f"retrieval's passages could not answer and the corpus does not fit "
                f"long context ({sizes.explain()}), so the refusal stands",
            )
        return Route(
            route.mode,
            "long_context",
            f"retrieval's passages could not answer, so escalated to long context: "
            f"{sizes.explain()}",
            fallback=True,
            numbers=route.numbers,
        )

    def _price(self, usage: Usage) -> float | None:
        return estimate_cost(self.backend.name, usage, overrides=self.settings.price_overrides)
