"""What a team lead reads in ten seconds: a one-line verdict and the small table of
the numbers behind it (accuracy per path with its 95% interval, evidence coverage,
cost a month, median latency). The reasoning follows below it in the report."""

from __future__ import annotations

import math

from kb.report.format import Table, fmt, label
from kb.report.summary import ModeSummary, ReportSummary

PATH_NAMES = {"long_context": "Long context", "rag": "Retrieval"}
Z95 = 1.96


def wilson(share: float | None, n: int) -> tuple[float, float] | None:
    """The 95% Wilson score interval of a share measured on n questions."""
    if share is None or n < 1:
        return None
    centre = (share + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(share * (1 - share) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def with_interval(share: float | None, n: int) -> str:
    """`77.6% (66-86%, n=58)`, or the dash of a missing value."""
    interval = wilson(share, n)
    if share is None or interval is None:
        return fmt(None)
    low, high = interval
    return f"{fmt(share, 'pct')} ({100 * low:.0f}-{100 * high:.0f}%, n={n})"


def verdict(s: ReportSummary) -> str:
    """One line: the recommended path and the two or three numbers that decided it."""
    path = s.recommendation.path
    if path is None:
        return "**No verdict**: the run lacks one of the two paths (see below)."
    other = "rag" if path == "long_context" else "long_context"
    chosen, against = s.modes.get(path), s.modes.get(other)
    facts = []
    if chosen and against and chosen.accuracy is not None and against.accuracy is not None:
        facts.append(f"accuracy {fmt(chosen.accuracy, 'pct')} vs {fmt(against.accuracy, 'pct')}")
    elif chosen and against:
        facts.append(
            f"evidence coverage {fmt(chosen.evidence_coverage, 'pct')} vs "
            f"{fmt(against.evidence_coverage, 'pct')} (retrieval-only questions: no "
            "answer accuracy)"
        )
    model = _cost_model(s)
    costs = s.costs.models[model].modes if model else {}
    if path in costs and other in costs:
        facts.append(
            f"{fmt(costs[path].monthly_with_cache_usd, 'usd')} vs "
            f"{fmt(costs[other].monthly_with_cache_usd, 'usd')} a month on {model}"
        )
    versus = f" (against {PATH_NAMES[other].lower()})" if facts else ""
    return f"**{PATH_NAMES[path]}** for this corpus with `{s.backend}`{versus}" + (
        f": {'; '.join(facts)}." if facts else "."
    )


def key_table(s: ReportSummary) -> Table:
    """The numbers behind the verdict, one row per mode that ran."""
    model = _cost_model(s)
    costs = s.costs.models[model].modes if model else {}
    money = (
        f"cost a month ({model}, cached, {s.costs.monthly_questions:,} q)"
        if model
        else ("cost a month")
    )
    table = [["mode", "accuracy (95% interval)", "evidence coverage", money, "p50 latency"]]
    for mode, m in s.modes_that_ran.items():
        cost = costs.get(mode)
        table.append(
            [
                label(mode),
                with_interval(m.accuracy, m.accuracy_questions),
                with_interval(m.evidence_coverage, m.evidence_questions),
                fmt(cost.monthly_with_cache_usd if cost else None, "usd"),
                fmt(_p50(m), "s"),
            ]
        )
    return table


def _p50(m: ModeSummary) -> float | None:
    return m.latency_s.p50 if m.latency_s else None


def _cost_model(s: ReportSummary) -> str | None:
    model = s.recommendation.cost_model or next(iter(s.costs.models), None)
    return model if model in s.costs.models else None
