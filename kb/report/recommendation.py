"""The report's opening paragraph: long context or retrieval for this corpus, this
backend and the assumed monthly volume, decided from the measured accuracy and
evidence coverage of the two forced paths against their cost difference.

The rule, in order:

1. Quality first. Each question answered by both forced paths is compared; a path
   is better when the questions only it got right outnumber those only the other
   got right beyond chance (a sign test: |a - b| > 2 sqrt(a + b), about 95%).
   Accuracy decides; evidence coverage (all gold documents in the reader's
   context) decides when accuracy does not.
2. Better long context is recommended unless its cached monthly cost is more than
   `KB_AUTO_MAX_COST_RATIO` times retrieval's (the router's own limit); then
   retrieval, with the trade-off stated.
3. Neither better: the cheaper path at the volume; with a backend that costs
   nothing, the path with the higher evidence coverage, then the faster one.

The router's `auto` choice for the corpus is stated beside it, with a warning when
the two disagree. `record_for_router` stores the recommendation for `auto` to follow
(`kb report --record`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kb.core.errors import InvalidRequestError
from kb.core.models import Manifest
from kb.recorded import RecordedRecommendation, record_recommendation
from kb.report.summary import (
    AutoChoice,
    CostSummary,
    ModeSummary,
    Recommendation,
    ReportSummary,
)

if TYPE_CHECKING:
    from kb.report.rows import AnswerRow

LABELS = {"long_context": "long context", "rag": "retrieval"}


@dataclass(frozen=True, slots=True)
class Paired:
    """One yes/no outcome (answered right, evidence covered) of the questions both forced
    paths answered: how many, and how many came out yes on one path only."""

    questions: int
    long_context_only: int
    rag_only: int

    @classmethod
    def of(cls, rows: Sequence[AnswerRow], outcome: Callable[[AnswerRow], bool | None]) -> Paired:
        by_mode: dict[str, dict[str, bool]] = {"long_context": {}, "rag": {}}
        for row in rows:
            value = outcome(row) if row.ok else None
            if row.mode in by_mode and value is not None:
                by_mode[row.mode][row.qid] = bool(value)
        lc, rag = by_mode["long_context"], by_mode["rag"]
        both = lc.keys() & rag.keys()
        return cls(
            questions=len(both),
            long_context_only=sum(lc[q] and not rag[q] for q in both),
            rag_only=sum(rag[q] and not lc[q] for q in both),
        )

    @property
    def winner(self) -> str | None:
        """The path that did better beyond chance, or None."""
        a, b = self.long_context_only, self.rag_only
        if a == b or abs(a - b) <= 2 * math.sqrt(a + b):
            return None
        return "long_context" if a > b else "rag"

    def describe(self, outcome: str = "right") -> str:
        verdict = "beyond chance" if self.winner else "within chance"
        return (
            f"{self.long_context_only} {outcome} only with long context, {self.rag_only} only "
            f"with retrieval: {verdict}"
        )


@dataclass(frozen=True, slots=True)
class _Prices:
    model: str
    long_context: float  # monthly USD at the volume, with caching
    rag: float

    @property
    def ratio(self) -> float:
        return self.long_context / self.rag if self.rag > 0 else math.inf


def recommend(
    modes: dict[str, ModeSummary],
    costs: CostSummary,
    auto: AutoChoice,
    backend: str,
    accuracy: Paired,
    coverage: Paired,
    *,
    cost_model: str | None,
    max_cost_ratio: float,
) -> Recommendation:
    """The recommendation for the run's backend; `cost_model` is the backend's own
    price model, or None when its answers cost nothing (the projection on the first
    price model is then added as what a priced model would change)."""
    volume = costs.monthly_questions
    lc, rag = modes.get("long_context"), modes.get("rag")
    if lc is None or rag is None or not lc.ran or not rag.ran:
        return _incomplete(lc, rag, auto, backend)
    quality = accuracy.winner or coverage.winner
    better = "answers better" if accuracy.winner else "holds the evidence more often"
    own = _prices(costs, cost_model)
    path, why = _choose(quality, better, own, lc, rag, max_cost_ratio)
    text = [
        f"**Recommendation: {LABELS[path]}** for this corpus with the `{backend}` backend at "
        f"{volume:,} questions a month.",
        _quality_sentence(lc, rag, accuracy, coverage),
        _cost_sentence(own, volume) if own else "With this backend both paths cost nothing.",
        why,
    ]
    if own is None:
        projected = _prices(costs, next(iter(costs.models), None))
        if projected is not None:
            other, _ = _choose(quality, better, projected, lc, rag, max_cost_ratio)
            text.append(
                f"With a priced model the cost counts: projected on {projected.model}, "
                + _cost_sentence(projected, volume, lead=False)
                + (
                    f" There the recommendation would be {LABELS[other]}."
                    if other != path
                    else f" The recommendation would still be {LABELS[path]}."
                )
            )
    return _with_auto(path, " ".join(text), auto, own.model if own else None)


def _prices(costs: CostSummary, model: str | None) -> _Prices | None:
    entry = costs.models.get(model) if model else None
    if model is None or entry is None or "long_context" not in entry.modes:
        return None
    if "rag" not in entry.modes:
        return None
    return _Prices(
        model,
        entry.modes["long_context"].monthly_with_cache_usd,
        entry.modes["rag"].monthly_with_cache_usd,
    )


def _choose(
    quality: str | None,
    better: str,
    prices: _Prices | None,
    lc: ModeSummary,
    rag: ModeSummary,
    max_cost_ratio: float,
) -> tuple[str, str]:
    """(path, the reason in one sentence) by the rule in the module docstring."""
    if quality == "rag":
        return "rag", f"Retrieval {better} here, so it is the choice whatever the cost."
    if quality == "long_context":
        if prices is None:
            return "long_context", f"Long context {better} and costs nothing more here."
        if prices.ratio <= max_cost_ratio:
            return "long_context", (
                f"Long context {better} and costs no more than {max_cost_ratio:g}x retrieval "
                "(the router's limit), so it is worth it."
            )
        return "rag", (
            f"Long context {better} but costs {prices.ratio:.1f}x retrieval, over the "
            f"router's limit of {max_cost_ratio:g}x: retrieval, unless that is worth "
            f"${prices.long_context - prices.rag:,.2f} more a month."
        )
    if prices is not None and prices.long_context != prices.rag:
        cheaper = "long_context" if prices.long_context < prices.rag else "rag"
        return cheaper, (
            f"Neither path answers better beyond chance, so the cheaper one: {LABELS[cheaper]}."
        )
    lc_cov, rag_cov = lc.evidence_coverage or 0.0, rag.evidence_coverage or 0.0
    if lc_cov != rag_cov:
        better = "long_context" if lc_cov > rag_cov else "rag"
        return better, (
            "Neither path answers better beyond chance and they cost the same, so the one "
            f"whose context holds the evidence more often: {LABELS[better]}."
        )
    lc_p50 = lc.latency_s.p50 if lc.latency_s else None
    rag_p50 = rag.latency_s.p50 if rag.latency_s else None
    faster = "rag" if (rag_p50 or 0.0) < (lc_p50 or 0.0) else "long_context"
    return faster, (
        "Neither path answers better and they cost the same and hold the evidence "
        f"equally often, so the faster one: {LABELS[faster]}."
    )


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _quality_sentence(lc: ModeSummary, rag: ModeSummary, accuracy: Paired, coverage: Paired) -> str:
    text = (
        f"Measured accuracy: long context {_pct(lc.accuracy)}, retrieval {_pct(rag.accuracy)} "
        f"({accuracy.describe()}, over {accuracy.questions} questions)."
    )
    if coverage.questions:
        text += (
            f" Every gold document was in the reader's context for {_pct(lc.evidence_coverage)} "
            f"of the questions with long context and {_pct(rag.evidence_coverage)} with "
            f"retrieval ({coverage.describe('covered')})."
        )
    return text


def _cost_sentence(prices: _Prices, volume: int, *, lead: bool = True) -> str:
    text = (
        f"cached long context costs ${prices.long_context:,.2f} a month against "
        f"${prices.rag:,.2f} for retrieval ({prices.ratio:.1f}x) at {volume:,} questions."
    )
    return f"On {prices.model}, {text}" if lead else text


def _incomplete(
    lc: ModeSummary | None, rag: ModeSummary | None, auto: AutoChoice, backend: str
) -> Recommendation:
    if lc is not None and not lc.ran and rag is not None and rag.ran:
        text = (
            f"**Recommendation: retrieval** for this corpus with the `{backend}` backend: "
            f"long context could not run ({lc.first_error})."
        )
        return _with_auto("rag", text, auto, None)
    text = (
        "No recommendation: it needs both forced paths, so run the modes long_context and rag "
        "(the default --modes)."
    )
    return Recommendation(path=None, text=text, cost_model=None)


def _with_auto(path: str, text: str, auto: AutoChoice, cost_model: str | None) -> Recommendation:
    share = (
        f"; it sent {_pct(auto.long_context_share)} of this run's auto questions to long context"
        if auto.long_context_share is not None
        else ""
    )
    text += f" The router's auto mode chooses {LABELS[auto.path]} for this corpus{share}."
    warning = None
    if auto.path != path:
        warning = (
            f"auto chooses {LABELS[auto.path]} ({auto.reason}) but this report recommends "
            f"{LABELS[path]}: ask with mode {path} (or KB_DEFAULT_MODE={path}), or revisit "
            "KB_AUTO_MAX_COST_RATIO and KB_LONG_CONTEXT_BUDGET."
        )
    return Recommendation(path=path, text=text, cost_model=cost_model, warning=warning)


def record_for_router(
    data_dir: Path, manifest: Manifest, summary: ReportSummary, report: str
) -> RecordedRecommendation:
    """Record the report's recommendation for `auto` (`kb report --record`), with the
    numbers behind it: accuracy and evidence coverage per path, and the p50 seconds.
    Raises InvalidRequestError when the corpus changed during the run."""
    if manifest.corpus_version != summary.corpus.version:
        raise InvalidRequestError(
            f"The corpus changed during the run ({summary.corpus.version} measured, "
            f"{manifest.corpus_version} now): run the report again to record it."
        )
    numbers: dict[str, float | None] = {}
    for mode in ("long_context", "rag"):
        m = summary.modes.get(mode)
        if m is not None and m.ran:
            numbers[f"{mode}_accuracy"] = m.accuracy
            numbers[f"{mode}_evidence_coverage"] = m.evidence_coverage
            numbers[f"{mode}_p50_s"] = m.latency_s.p50 if m.latency_s else None
    return record_recommendation(
        data_dir,
        manifest,
        path=summary.recommendation.path,
        backend=summary.backend,
        report=report,
        numbers=numbers,
    )
