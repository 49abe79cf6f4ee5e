"""Writing a finished report to its folder."""

from __future__ import annotations

import json
from pathlib import Path

from kb.report.charts import render_charts
from kb.report.html import render_html
from kb.report.markdown import render_markdown
from kb.report.rows import row_to_json
from kb.report.runner import ReportResult

REPORT_FILES = ("results.jsonl", "summary.json", "report.md", "report.html")


def write_report(result: ReportResult, out_dir: Path) -> list[Path]:
    """Write report.md, report.html, charts/*.svg, results.jsonl and summary.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    charts_dir = out_dir / "charts"
    charts_dir.mkdir(exist_ok=True)
    charts = render_charts(result.summary, result.rows, result.curves)
    written = []
    for name, svg in charts.items():
        path = charts_dir / f"{name}.svg"
        path.write_text(svg, "utf-8")
        written.append(path)
    with open(out_dir / "results.jsonl", "w", encoding="utf-8") as fh:
        for row in result.rows:
            fh.write(json.dumps(row_to_json(row), ensure_ascii=False, sort_keys=True) + "\n")
    (out_dir / "summary.json").write_text(
        json.dumps(result.summary.to_json(), indent=2, ensure_ascii=False) + "\n", "utf-8"
    )
    (out_dir / "report.md").write_text(render_markdown(result.summary, list(charts)), "utf-8")
    (out_dir / "report.html").write_text(render_html(result.summary, charts), "utf-8")
    return written + [out_dir / name for name in REPORT_FILES]
