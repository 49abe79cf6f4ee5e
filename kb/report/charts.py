"""The report's charts as plain, self-contained SVG."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from kb.report.format import CHART_TITLES, MODE_LABELS, fmt
from kb.report.metrics import percentile
from kb.report.projection import CostCurve
from kb.report.rows import AnswerRow, Row
from kb.report.summary import ModeSummary, ReportSummary

VOLUME_RANGE = (100.0, 10_000_000.0)  # questions a month, the cost chart's x axis

# ---- charts (plain SVG) ----------------------------------------------------------------

COLORS = {"long_context": "#1f6fb4", "rag": "#e8731a", "auto": "#2a9d4a", "self_route": "#8a4fbf"}
SHAPES = ("circle", "square", "triangle", "diamond")
FONT = 'font-family="system-ui,sans-serif"'


class _Axis:
    """A linear or log axis mapping data values onto a pixel range."""

    def __init__(self, low: float, high: float, start: float, end: float, log: bool) -> None:
        low, high = float(low), float(high)
        if log:
            low, high = max(low, 1e-12), max(high, low * 10)
            low, high = 10 ** math.floor(math.log10(low)), 10 ** math.ceil(math.log10(high))
        elif high <= low:
            high = low + 1
        self.low, self.high, self.start, self.end, self.log = low, high, start, end, log

    def __call__(self, value: float) -> float:
        if self.log:
            value = max(value, self.low)
            share = math.log10(value / self.low) / math.log10(self.high / self.low)
        else:
            share = (value - self.low) / (self.high - self.low)
        return self.start + share * (self.end - self.start)

    def ticks(self) -> list[float]:
        if self.log:
            first, last = round(math.log10(self.low)), round(math.log10(self.high))
            return [10.0**e for e in range(first, last + 1)]
        step = _nice_step((self.high - self.low) / 5)
        origin = math.ceil(self.low / step) * step
        return [origin + i * step for i in range(int((self.high - origin) / step + 1e-9) + 1)]


def _nice_step(raw: float) -> float:
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _tick_label(value: float, kind: str) -> str:
    if kind == "usd":
        if value >= 1000:
            return f"${value / 1000:g}k" if value < 1e6 else f"${value / 1e6:g}M"
        return f"${value:g}"
    if kind == "pct":
        return f"{100 * value:.0f}%"
    if kind == "s":
        return f"{value * 1000:g} ms" if value < 1 else f"{value:g} s"
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    if value >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def _frame(x: _Axis, y: _Axis, x_kind: str, y_kind: str, x_title: str, y_title: str) -> list[str]:
    parts = []
    for value in x.ticks():
        px = x(value)
        parts.append(
            f'<line x1="{px:.1f}" y1="{y.start:.1f}" x2="{px:.1f}" y2="{y.end:.1f}" '
            'stroke="#e4e7ee"/>'
            f'<text x="{px:.1f}" y="{y.start + 16:.1f}" font-size="11" text-anchor="middle" '
            f"{FONT}>{_tick_label(value, x_kind)}</text>"
        )
    for value in y.ticks():
        py = y(value)
        parts.append(
            f'<line x1="{x.start:.1f}" y1="{py:.1f}" x2="{x.end:.1f}" y2="{py:.1f}" '
            'stroke="#e4e7ee"/>'
            f'<text x="{x.start - 6:.1f}" y="{py + 4:.1f}" font-size="11" text-anchor="end" '
            f"{FONT}>{_tick_label(value, y_kind)}</text>"
        )
    parts.append(
        f'<rect x="{x.start:.1f}" y="{y.end:.1f}" width="{x.end - x.start:.1f}" '
        f'height="{y.start - y.end:.1f}" fill="none" stroke="#9aa3b5"/>'
        f'<text x="{(x.start + x.end) / 2:.1f}" y="{y.start + 34:.1f}" font-size="12" '
        f'text-anchor="middle" {FONT}>{html.escape(x_title)}</text>'
    )
    if y_title:
        parts.append(
            f'<text transform="translate({x.start - 48:.1f},{(y.start + y.end) / 2:.1f}) '
            f'rotate(-90)" font-size="12" text-anchor="middle" {FONT}>{html.escape(y_title)}'
            "</text>"
        )
    return parts


def _marker(shape: str, cx: float, cy: float, color: str, filled: bool, title: str) -> str:
    fill = color if filled else "white"
    style = f'fill="{fill}" stroke="{color}" stroke-width="1.8"'
    tip = f"<title>{html.escape(title)}</title>"
    if shape == "square":
        return (
            f'<rect x="{cx - 5:.1f}" y="{cy - 5:.1f}" width="10" height="10" {style}>{tip}</rect>'
        )
    if shape == "triangle":
        pts = f"{cx:.1f},{cy - 6:.1f} {cx - 6:.1f},{cy + 5:.1f} {cx + 6:.1f},{cy + 5:.1f}"
        return f'<polygon points="{pts}" {style}>{tip}</polygon>'
    if shape == "diamond":
        pts = (
            f"{cx:.1f},{cy - 6:.1f} {cx + 6:.1f},{cy:.1f} "
            f"{cx:.1f},{cy + 6:.1f} {cx - 6:.1f},{cy:.1f}"
        )
        return f'<polygon points="{pts}" {style}>{tip}</polygon>'
    return f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5.5" {style}>{tip}</circle>'


def _svg(width: int, height: int, parts: Sequence[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{html.escape(label)}">'
        f'<rect width="{width}" height="{height}" fill="white"/>' + "".join(parts) + "</svg>"
    )


def _legend(items: Sequence[tuple[str, str]], x: float, y: float) -> list[str]:
    parts = []
    for i, (color, text) in enumerate(items):
        parts.append(
            f'<rect x="{x:.1f}" y="{y + 16 * i - 9:.1f}" width="11" height="11" fill="{color}"/>'
            f'<text x="{x + 16:.1f}" y="{y + 16 * i:.1f}" font-size="11" {FONT}>'
            f"{html.escape(text)}</text>"
        )
    return parts


def render_charts(
    summary: ReportSummary, rows: Sequence[Row], curves: dict[str, dict[str, CostCurve]]
) -> dict[str, str]:
    """The four charts as standalone SVG documents, keyed by file stem."""
    modes = summary.modes_that_ran
    answers = [r for r in rows if isinstance(r, AnswerRow)]
    return {
        "accuracy_vs_cost": _chart_accuracy_cost(summary, modes),
        "latency": _chart_latency(answers, list(modes)),
        "tokens": _chart_tokens(modes),
        "cost_vs_volume": _chart_volume(summary, curves),
    }


def _chart_accuracy_cost(summary: ReportSummary, modes: dict[str, ModeSummary]) -> str:
    width, height = 720, 380
    costs = summary.costs.models
    points = []
    for shape, (model, entry) in zip(SHAPES * 4, costs.items(), strict=False):
        for mode, c in entry.modes.items():
            accuracy = modes[mode].accuracy if mode in modes else None
            if accuracy is None:
                continue
            points.append((c.per_1000_with_cache_usd, accuracy, mode, model, shape, True))
            points.append((c.per_1000_without_cache_usd, accuracy, mode, model, shape, False))
    if not points:
        why = "no answer accuracy (retrieval-only questions)" if costs else "no priced answers"
        return _svg(width, height, [_empty(width, height, why)], "empty")
    values = [p[0] for p in points if p[0] > 0] or [0.01]
    x = _Axis(min(values), max(values), 70, 520, log=True)
    y = _Axis(0.0, 1.0, height - 60, 20, log=False)
    parts = _frame(x, y, "usd", "pct", "projected cost per 1,000 questions (log scale)", "accuracy")
    placed: list[tuple[float, float]] = []
    for cost, accuracy, mode, model, shape, cached in points:
        tip = (
            f"{MODE_LABELS.get(mode, mode)} on {model}, "
            f"{'with' if cached else 'without'} caching: {fmt(cost, 'usd')} per 1,000, "
            f"accuracy {fmt(accuracy, 'pct')}"
        )
        cx, cy = x(cost), y(accuracy)
        shifted = dodge(cx, cy, placed)
        if shifted != cx:
            tip += " (drawn beside a marker with the same values)"
        parts.append(_marker(shape, shifted, cy, COLORS.get(mode, "#555"), cached, tip))
    legend = _legend([(COLORS.get(m, "#555"), MODE_LABELS.get(m, m)) for m in modes], 540, 34)
    top = 34 + 16 * len(modes) + 14
    for i, (shape, model) in enumerate(zip(SHAPES * 4, costs, strict=False)):
        legend.append(_marker(shape, 546, top + 18 * i - 4, "#444", True, model))
        legend.append(
            f'<text x="{556:.1f}" y="{top + 18 * i:.1f}" font-size="11" {FONT}>'
            f"{html.escape(model)}</text>"
        )
    end = top + 18 * len(costs) + 6
    legend.append(
        f'<text x="540" y="{end:.1f}" font-size="11" {FONT}>filled: with caching at</text>'
        f'<text x="540" y="{end + 15:.1f}" font-size="11" {FONT}>'
        f"{summary.costs.monthly_questions:,} questions/month</text>"
        f'<text x="540" y="{end + 30:.1f}" font-size="11" {FONT}>hollow: without caching</text>'
    )
    return _svg(width, height, parts + legend, CHART_TITLES["accuracy_vs_cost"])


MARKER_GAP = 11.0  # px: markers closer than this would hide one another


def dodge(cx: float, cy: float, placed: list[tuple[float, float]]) -> float:
    """The x at which a marker at (cx, cy) hides none already placed: coinciding
    markers (auto and long context on the same numbers) are drawn side by side,
    alternately right and left, so every legend entry has a visible marker."""
    for step in range(40):
        offset = MARKER_GAP * ((step + 1) // 2) * (1 if step % 2 else -1) if step else 0.0
        candidate = cx + offset
        if all(
            abs(candidate - px) >= MARKER_GAP or abs(cy - py) >= MARKER_GAP for px, py in placed
        ):
            placed.append((candidate, cy))
            return candidate
    placed.append((cx, cy))
    return cx


def _empty(width: int, height: int, text: str) -> str:
    return (
        f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" font-size="13" {FONT}>'
        f"{html.escape(text)}</text>"
    )


def _chart_latency(rows: Sequence[AnswerRow], modes: list[str]) -> str:
    width = 720
    lane = 46
    height = 70 + lane * max(len(modes), 1)
    samples = {m: [(r.seconds, r.cold) for r in rows if r.mode == m and r.ok] for m in modes}
    values = [v for s in samples.values() for v, _ in s if v > 0]
    if not values:
        return _svg(width, height, [_empty(width, height, "no timed answers")], "empty")
    x = _Axis(min(values), max(values), 120, width - 30, log=True)
    parts = []
    for value in x.ticks():
        px = x(value)
        parts.append(
            f'<line x1="{px:.1f}" y1="15" x2="{px:.1f}" y2="{height - 45}" stroke="#e4e7ee"/>'
            f'<text x="{px:.1f}" y="{height - 29}" font-size="11" text-anchor="middle" '
            f"{FONT}>{_tick_label(value, 's')}</text>"
        )
    parts.append(
        f'<text x="{(120 + width - 30) / 2}" y="{height - 10}" font-size="12" '
        f'text-anchor="middle" {FONT}>seconds per question (log scale); box p25-p75, '
        "bar p50, whiskers p5-p95, red: cold</text>"
    )
    for i, mode in enumerate(modes):
        centre = 35 + lane * i
        color = COLORS.get(mode, "#555")
        data = samples[mode]
        timings = [v for v, _ in data]
        parts.append(
            f'<text x="112" y="{centre + 4}" font-size="12" text-anchor="end" {FONT}>'
            f"{html.escape(MODE_LABELS.get(mode, mode))}</text>"
        )
        if not timings:
            continue
        q = {p: percentile(timings, p) or 0.0 for p in (5, 25, 50, 75, 95)}
        parts.append(
            f'<line x1="{x(q[5]):.1f}" y1="{centre}" x2="{x(q[95]):.1f}" y2="{centre}" '
            f'stroke="{color}"/>'
            f'<rect x="{x(q[25]):.1f}" y="{centre - 10}" width="{max(x(q[75]) - x(q[25]), 1):.1f}" '
            f'height="20" fill="{color}" fill-opacity="0.18" stroke="{color}"/>'
            f'<line x1="{x(q[50]):.1f}" y1="{centre - 12}" x2="{x(q[50]):.1f}" '
            f'y2="{centre + 12}" stroke="{color}" stroke-width="2.5"/>'
        )
        for n, (value, cold) in enumerate(data):
            jitter = ((n * 7919) % 17 - 8) * 1.2
            parts.append(
                f'<circle cx="{x(value):.1f}" cy="{centre + jitter:.1f}" '
                f'r="{3.5 if cold else 1.8}" '
                f'fill="{"#d62728" if cold else color}" fill-opacity="{0.9 if cold else 0.45}">'
                f"<title>{html.escape(fmt(value, 's'))}{' (cold)' if cold else ''}</title>"
                "</circle>"
            )
    return _svg(width, height, parts, CHART_TITLES["latency"])


def _chart_tokens(modes: dict[str, ModeSummary]) -> str:
    width, lane = 720, 40
    height = 90 + lane * max(len(modes), 1)
    kinds = [
        ("input_tokens", "input (uncached)", "#4c78a8"),
        ("cache_read_tokens", "cache read", "#72b7b2"),
        ("cache_write_tokens", "cache write", "#f58518"),
        ("output_tokens", "output", "#b279a2"),
    ]
    tokens = {mode: m.tokens_per_question for mode, m in modes.items() if m.tokens_per_question}
    totals = [t.total for t in tokens.values()]
    if not totals:
        return _svg(width, height, [_empty(width, height, "no answers")], "empty")
    x = _Axis(0.0, max(totals) * 1.05 or 1.0, 120, width - 210, log=False)
    parts = []
    for value in x.ticks():
        px = x(value)
        parts.append(
            f'<line x1="{px:.1f}" y1="15" x2="{px:.1f}" y2="{height - 60}" stroke="#e4e7ee"/>'
            f'<text x="{px:.1f}" y="{height - 44}" font-size="11" text-anchor="middle" '
            f"{FONT}>{_tick_label(value, 'n')}</text>"
        )
    for i, (mode, t) in enumerate(tokens.items()):
        top = 25 + lane * i
        start = 0.0
        parts.append(
            f'<text x="112" y="{top + 15}" font-size="12" text-anchor="end" {FONT}>'
            f"{html.escape(MODE_LABELS.get(mode, mode))}</text>"
        )
        for key, name, color in kinds:
            value = getattr(t, key) or 0.0
            if value <= 0:
                continue
            parts.append(
                f'<rect x="{x(start):.1f}" y="{top}" '
                f'width="{max(x(start + value) - x(start), 1):.1f}"'
                f' height="22" fill="{color}"><title>{html.escape(name)}: '
                f"{value:,.0f}</title></rect>"
            )
            start += value
        parts.append(
            f'<text x="{x(start) + 6:.1f}" y="{top + 15}" font-size="11" {FONT}>{start:,.0f}</text>'
        )
    parts += [
        f'<text x="{(120 + width - 210) / 2}" y="{height - 26}" font-size="12" '
        f'text-anchor="middle" {FONT}>mean tokens per question</text>'
    ]
    parts += _legend([(c, n) for _, n, c in kinds], width - 125, 30)
    return _svg(width, height, parts, CHART_TITLES["tokens"])


def _chart_volume(summary: ReportSummary, curves: dict[str, dict[str, CostCurve]]) -> str:
    panel_w, panel_h = 345, 300
    models = [m for m in curves if curves[m]]
    columns = min(len(models), 3) or 1
    rows_n = math.ceil(len(models) / columns) if models else 1
    width, height = max(panel_w * columns + 20, 720), panel_h * rows_n + 50
    if not models:
        return _svg(width, height, [_empty(width, height, "no priced modes")], "empty")
    parts: list[str] = []
    for n, model in enumerate(models):
        origin = (20 + panel_w * (n % columns), panel_h * (n // columns))
        parts += _volume_panel(summary, model, curves[model], origin, (panel_w, panel_h))
    legend = [(COLORS.get(m, "#555"), MODE_LABELS.get(m, m)) for m in next(iter(curves.values()))]
    parts += [
        f'<text x="20" y="{height - 28}" font-size="11" {FONT}>'
        + "; ".join(f'<tspan fill="{c}">&#9632;</tspan> {html.escape(t)}' for c, t in legend)
        + "; dashed: long context without caching; dotted: assumed volume; "
        "circle: break-even of cached long context and retrieval</text>",
        f'<text x="20" y="{height - 12}" font-size="11" {FONT}>Projected USD per month '
        "(log scale) from this run's token counts; cache lifetime "
        f"{summary.costs.cache_ttl_minutes:g} min.</text>",
    ]
    return _svg(width, height, parts, CHART_TITLES["cost_vs_volume"])


def _volume_panel(
    summary: ReportSummary,
    model: str,
    by_mode: dict[str, CostCurve],
    origin: tuple[int, int],
    size: tuple[int, int],
) -> list[str]:
    """One price model's monthly cost lines against volume, with its break-evens."""
    (ox, oy), (panel_w, panel_h) = origin, size
    low, high = VOLUME_RANGE
    volumes = [low * (high / low) ** (i / 60) for i in range(61)]
    assumed = summary.costs.monthly_questions
    lines: list[tuple[str, str, bool, list[float]]] = [
        (mode, COLORS.get(mode, "#555"), False, [curve.monthly(v) for v in volumes])
        for mode, curve in by_mode.items()
    ]
    lc = by_mode.get("long_context")
    if lc is not None and lc.prefix_share > 0:
        uncached = [lc.monthly(v, False) for v in volumes]
        lines.append(("long_context", COLORS["long_context"], True, uncached))
    values = [c for _, _, _, cs in lines for c in cs if c > 0] or [1.0]
    x = _Axis(low, high, ox + 60, ox + panel_w - 15, log=True)
    y = _Axis(min(values), max(values), oy + panel_h - 50, oy + 25, log=True)
    parts = _frame(x, y, "n", "usd", "questions per month", "")
    parts.append(
        f'<text x="{ox + 60}" y="{oy + 16}" font-size="12" font-weight="600" {FONT}>'
        f"{html.escape(model)}</text>"
        f'<line x1="{x(assumed):.1f}" y1="{y.start:.1f}" x2="{x(assumed):.1f}" '
        f'y2="{y.end:.1f}" stroke="#888" stroke-dasharray="2 3"><title>assumed volume '
        f"{assumed:,}/month</title></line>"
    )
    for order, (mode, color, dashed, costs) in enumerate(lines):
        pts = " ".join(
            f"{x(v):.1f},{y(c):.1f}" for v, c in zip(volumes, costs, strict=True) if c > 0
        )
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        name = f"{MODE_LABELS.get(mode, mode)}{' without caching' if dashed else ''}"
        parts.append(
            f'<polyline points="{pts}" fill="none" stroke="{color}" '
            f'stroke-width="{max(4.5 - 1.0 * order, 1.5) if not dashed else 2}"{dash}>'
            f"<title>{html.escape(name)}</title></polyline>"
        )
    be = summary.costs.models[model].break_even.get("long_context_cached_vs_rag")
    rag = by_mode.get("rag")
    if be and rag is not None:
        for v in be.volumes_per_month:
            if low <= v <= high:
                parts.append(
                    f'<circle cx="{x(v):.1f}" cy="{y(rag.monthly(v)):.1f}" r="5" fill="none" '
                    f'stroke="#000" stroke-width="1.5"><title>break-even {v:,} questions/month'
                    "</title></circle>"
                )
    return parts
