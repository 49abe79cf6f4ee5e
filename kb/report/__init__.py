"""The comparison report: an evaluation set run through each mode, measured, priced,
and turned into a recommendation.

    options.py         ReportOptions and the defaults the `kb report` command shows
    questions.py       the evaluation-set format and its loader
    metrics.py         answer, citation, recall and evidence metrics per question
    projection.py      cost curves per price model and the break-even volumes
    cost_summary.py    the run's token mixes priced per model and mode (the summary's costs)
    runner.py          run_report: warm-up, retrieval probes, answers, threshold sweep
    rows.py            the raw records (results.jsonl)
    summarize.py       rows -> the typed ReportSummary (summary.json)
    summary.py         the summary's dataclasses
    recommendation.py  long context or retrieval, and why
    sections.py        the report's sections, shared by the renderers
    markdown.py, html.py, charts.py   report.md, report.html, charts/*.svg
    writer.py          write_report: the folder

    generate.py, generated.py, known_items.py, sampling.py   `kb questions`: an
                       evaluation set written from the corpus itself
    judge.py           a judge model's verdicts on generative answers

Sits above the question path (it asks through `kb.KnowledgeBase`).
"""

from kb.report.generate import (
    MAX_REQUESTS,
    REQUESTS_PER_QUESTION,
    Shares,
    check_count,
    check_max_requests,
    generate_questions,
)
from kb.report.generated import write_generated
from kb.report.metrics import recall_at_k, score_answer
from kb.report.options import (
    DEFAULT_CACHE_TTL_MINUTES,
    DEFAULT_MODES,
    DEFAULT_MONTHLY_QUESTIONS,
    DEFAULT_PRICE_MODELS,
    ReportOptions,
)
from kb.report.questions import EvalQuestion, load_questions, sample_questions
from kb.report.recommendation import record_for_router
from kb.report.rows import AnswerRow
from kb.report.runner import ReportResult, run_report
from kb.report.writer import write_report

__all__ = [
    "DEFAULT_CACHE_TTL_MINUTES",
    "DEFAULT_MODES",
    "DEFAULT_MONTHLY_QUESTIONS",
    "DEFAULT_PRICE_MODELS",
    "MAX_REQUESTS",
    "REQUESTS_PER_QUESTION",
    "AnswerRow",
    "EvalQuestion",
    "ReportOptions",
    "ReportResult",
    "Shares",
    "check_count",
    "check_max_requests",
    "generate_questions",
    "load_questions",
    "recall_at_k",
    "record_for_router",
    "run_report",
    "sample_questions",
    "score_answer",
    "write_generated",
    "write_report",
]
