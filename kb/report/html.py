"""report.html: one self-contained file, CSS and SVG inline, no script, nothing fetched."""

from __future__ import annotations

import html
import re

from kb.report.first_screen import key_table, verdict
from kb.report.format import CHART_TITLES, Table
from kb.report.markdown import report_title
from kb.report.sections import headline, sections
from kb.report.summary import ReportSummary

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2rem auto;padding:0 1rem;color:#1d2433;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #dde;
padding-bottom:.2rem}table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #d5d9e2;padding:.3rem .55rem;text-align:right}
th{background:#f3f5f9;text-align:left}td:first-child,td.t{text-align:left}
svg{max-width:100%;height:auto}
.banner{background:#fff6dd;border:1px solid #e8c96a;padding:.6rem .8rem;border-radius:6px}
.warning{background:#fde8e8;border:1px solid #e08a8a;padding:.6rem .8rem;border-radius:6px}
.verdict{font-size:1.25rem;margin:.4rem 0 .2rem}
figure{margin:1.2rem 0}figcaption{font-weight:600;margin-bottom:.3rem}
code{background:#f3f5f9;padding:0 .2rem;border-radius:3px}
"""

_NUMERIC = re.compile(r"^[-–$0-9.,]+(%| ms| s)?( \(.*\))?( escalated)?$")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def _inline(text: str) -> str:
    """Escaped text with `code` and **bold** spans."""
    parts = html.escape(text).split("`")
    marked = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    return _BOLD.sub(r"<strong>\1</strong>", marked)


def _align(cell: str) -> str:
    """Numbers align right (the default); words align left."""
    return "" if _NUMERIC.match(cell) else ' class="t"'


def _table(table: Table) -> str:
    width = len(table[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table[0])
    rows = []
    for row in table[1:]:
        cells = []
        for i, cell in enumerate(row):
            if i == len(row) - 1 and len(row) < width:  # a short row spans the rest
                cells.append(f'<td colspan="{width - len(row) + 1}">{html.escape(cell)}</td>')
            else:
                cells.append(f"<td{_align(cell)}>{html.escape(cell)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render_html(summary: ReportSummary, charts: dict[str, str]) -> str:
    """The whole report as one HTML page."""
    title = html.escape(report_title(summary))
    advice = summary.recommendation
    body = [
        f"<h1>{title}</h1>",
        f'<p class="verdict">{_inline(verdict(summary))}</p>',
        _table(key_table(summary)),
    ]
    if advice.warning:
        body.append(f'<p class="warning"><strong>Warning:</strong> {_inline(advice.warning)}</p>')
    if summary.offline_reader:
        body.append(
            f'<p class="banner">Answers come from <code>'
            f"{html.escape(summary.backend)}</code>, which runs on this machine. All dollar "
            "figures are "
            "<strong>projections from token counts</strong>, not bills.</p>"
        )
    body += ["<h2>Why</h2>", f'<p class="recommendation">{_inline(advice.text)}</p>']
    body.append("<ul>" + "".join(f"<li>{_inline(p)}</li>" for p in headline(summary)) + "</ul>")
    for section in sections(summary):
        body.append(f"<h2>{html.escape(section.heading)}</h2>")
        body += [f"<p>{_inline(p)}</p>" for p in section.paragraphs if p]
        if section.table:
            body.append(_table(section.table))
    body.append("<h2>Charts</h2>")
    for name, svg in charts.items():
        caption = html.escape(CHART_TITLES.get(name, name))
        body.append(f"<figure><figcaption>{caption}</figcaption>{svg}</figure>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Report: {html.escape(summary.title)}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
