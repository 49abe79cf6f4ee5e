"""report.md: the one-line verdict and its numbers first, then the reasoning, the
findings, the sections as Markdown tables and the charts linked from charts/."""

from __future__ import annotations

from collections.abc import Sequence

from kb.report.first_screen import key_table, verdict
from kb.report.format import CHART_TITLES, Table
from kb.report.sections import headline, sections
from kb.report.summary import ReportSummary


def report_title(summary: ReportSummary) -> str:
    return f"Long context or retrieval: {summary.title}"


def render_markdown(summary: ReportSummary, chart_names: Sequence[str]) -> str:
    """The whole report as Markdown."""
    lines = [f"# {report_title(summary)}", "", verdict(summary), ""]
    lines += _table(key_table(summary)) + [""]
    if summary.recommendation.warning:
        lines += [f"> **Warning:** {summary.recommendation.warning}", ""]
    if summary.offline_reader:
        lines += [
            f"> Answers come from `{summary.backend}`, which runs on this machine. All dollar "
            "figures are **projections from token counts**, not bills.",
            "",
        ]
    lines += ["## Why", "", summary.recommendation.text, ""]
    lines += [f"- {point}" for point in headline(summary)] + [""]
    for section in sections(summary):
        lines += [f"## {section.heading}", ""]
        for paragraph in filter(None, section.paragraphs):
            lines += [paragraph, ""]
        if section.table:
            lines += _table(section.table) + [""]
    lines += ["## Charts", ""]
    for name in chart_names:
        lines += [f"![{CHART_TITLES.get(name, name)}](charts/{name}.svg)", ""]
    return "\n".join(lines)


def _table(table: Table) -> list[str]:
    header = table[0]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table[1:]:
        cells = [c.replace("|", "\\|") for c in row] + [""] * (len(header) - len(row))
        lines.append("| " + " | ".join(cells[: len(header)]) + " |")
    return lines
