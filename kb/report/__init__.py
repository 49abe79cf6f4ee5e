"""The comparison report: an evaluation set run through each mode, measured, priced,
and turned into a recommendation.

    options.py         ReportOptions and the defaults the `kb report` command shows
    questions.py       the evaluation-set format and its loader
    metrics.py         answer, citation, recall and evidence metrics per question
    projection.py      cost curves per price model and the break-even volumes
    runner.py          run_report: warm-up, retrieval probes, answers, threshold sweep
    rows.py            the raw records (results.jsonl)
    summarize.py       rows -> the typed ReportSummary (summary.json)
    summary.py         the summary's dataclasses
    recommendation.py  long context or retrieval, and why
    sections.py        the report's sections, shared by the renderers
    markdown.py, html.py, charts.py   report.md, report.html, charts/*.svg
    writer.py          write_report: the folder

This module imports nothing heavy, so the CLI can read the defaults cheaply; import
`kb.report.runner` and `kb.report.writer` to run and write a report.
"""

from kb.report.options import (
    DEFAULT_CACHE_TTL_MINUTES,
    DEFAULT_MODES,
    DEFAULT_MONTHLY_QUESTIONS,
    DEFAULT_PRICE_MODELS,
    ReportOptions,
)

__all__ = [
    "DEFAULT_CACHE_TTL_MINUTES",
    "DEFAULT_MODES",
    "DEFAULT_MONTHLY_QUESTIONS",
    "DEFAULT_PRICE_MODELS",
    "ReportOptions",
]
