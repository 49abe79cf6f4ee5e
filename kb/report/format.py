"""Labels, number formats and the Section shape shared by the report's renderers."""

from __future__ import annotations

from dataclasses import dataclass, field

Table = list[list[str]]  # the first row is the header


@dataclass(frozen=True, slots=True)
class Section:
    """One section of the report: a heading, paragraphs and an optional table."""

    heading: str
    paragraphs: list[str]
    table: Table = field(default_factory=list)


MODE_LABELS = {
    "long_context": "long context",
    "rag": "retrieval (rag)",
    "auto": "auto",
    "self_route": "self_route",
}
CHART_TITLES = {
    "accuracy_vs_cost": "Accuracy against projected cost per 1,000 questions",
    "latency": "Latency per question",
    "tokens": "Tokens per question",
    "cost_vs_volume": "Projected monthly cost against monthly question volume",
}


def label(mode: str) -> str:
    return MODE_LABELS.get(mode, mode)


def fmt(value: float | int | str | None, kind: str = "num") -> str:
    """A number as the report prints it: pct, s (seconds), usd, int or plain."""
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if kind == "usd":
        return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"
    if kind == "int":
        return f"{value:,.0f}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
