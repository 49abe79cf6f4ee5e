"""The report's renderers and its recommendation on a hand-built summary: no datasets,
no model, no index, milliseconds."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from kb.core.models import Usage
from kb.report.charts import dodge, render_charts
from kb.report.cost_summary import model_rates
from kb.report.html import render_html
from kb.report.markdown import render_markdown
from kb.report.metrics import QuestionScore, ThresholdPoint
from kb.report.projection import TokenMix, cost_curve
from kb.report.recommendation import Paired, recommend
from kb.report.rows import AnswerRow
from kb.report.summary import (
    Assumptions,
    AutoChoice,
    BreakEvenSummary,
    CorpusInfo,
    CostSummary,
    Latency,
    Machine,
    ModeCost,
    ModelCosts,
    ModeSummary,
    RecallAtK,
    Recommendation,
    ReportSummary,
    RunSettings,
    TokenMeans,
)

pytestmark = pytest.mark.fast  # no datasets, no model, no index

MODEL = "openai:gpt-4.1-mini"


def _mode(accuracy: float, coverage: float, p50: float, lc_share: float) -> ModeSummary:
    return ModeSummary(
        questions=10,
        errors=0,
        answered=9,
        accuracy=accuracy,
        accuracy_questions=9,
        exact_match=0.1,
        f1=0.3,
        contains=accuracy,
        refusal_accuracy=1.0,
        false_refusal_rate=0.1,
        citation_precision=0.8,
        citation_recall=0.7,
        evidence_coverage=coverage,
        evidence_questions=8,
        latency_s=Latency(p50, p50 * 2, p50, 0, None, p50 if lc_share else None, p50),
        tokens_per_question=TokenMeans(300.0, 9000.0 * lc_share, 0.0, 40.0),
        long_context_share=lc_share,
        escalation_share=0.0,
        run_cost_usd=0.0,
    )


def _cost(per_1000: float, monthly: float) -> ModeCost:
    return ModeCost(per_1000 * 3, per_1000, per_1000 * 0.9, monthly, monthly * 3, 1.0, 0.001)


def _summary(**changes: object) -> ReportSummary:
    modes = {
        "long_context": _mode(0.62, 1.0, 0.05, 1.0),
        "rag": _mode(0.55, 0.9, 0.04, 0.0),
        "auto": _mode(0.62, 1.0, 0.052, 1.0),
        "self_route": ModeSummary(questions=10, errors=10, first_error="BackendError: down"),
    }
    costs = CostSummary(
        projection=True,
        monthly_questions=100_000,
        cache_ttl_minutes=5.0,
        cache_lifetimes_per_month=8640.0,
        long_context_prompt_tokens=9100,
        models={
            MODEL: ModelCosts(
                modes={"long_context": _cost(2.5, 250.0), "rag": _cost(0.3, 30.0)},
                break_even={
                    "long_context_cached_vs_rag": BreakEvenSummary(
                        [],
                        ["retrieval"],
                        "retrieval",
                        "retrieval",
                        "retrieval is cheaper at every volume",
                    )
                },
                context_window=1_000_000,
                rates=model_rates(MODEL, 9100),
            )
        },
    )
    summary = ReportSummary(
        title="handbook",
        generated_at="2026-12-01 22:00 UTC",
        questions_file="corpora/handbook.questions.jsonl",
        questions=10,
        answerable=7,
        unanswerable=2,
        retrieval_only=1,
        with_gold_docs=10,
        seed=0,
        limit=None,
        modes_run=list(modes),
        backend="extractive",
        offline_reader=True,
        settings=RunSettings(8, 200_000, 1024, 0.5, 200, 30),
        corpus=CorpusInfo("abc123", "corpora/handbook", 12, 40, 9000, True, 1.0),
        assumptions=Assumptions(5.0, 100_000, [MODEL], "genai-prices (bundled)"),
        notes=["A hand-built summary."],
        run_seconds=12.0,
        retrieval_recall={"5": RecallAtK(0.8, 0.85), "20": RecallAtK(0.95, 0.97)},
        retrieval_search_p50_s=0.02,
        modes=modes,
        threshold_tradeoff={
            "rag": [ThresholdPoint(t, 0.5, 0.1, 0.6) for t in (0.4, 0.5, 0.6)],
        },
        long_context_rag_same_answer=0.8,
        costs=costs,
        machine=Machine(2, 1.5, 1.7),
        warm_up_s={"long_context": 1.2, "rag": 0.3, "auto": 0.05},
        auto=AutoChoice("long_context", "the corpus fits", 1.0),
        recommendation=Recommendation(
            "rag",
            "**Recommendation: retrieval** because of the numbers.",
            MODEL,
            warning="auto chooses long context but this report recommends retrieval",
        ),
    )
    return replace(summary, **changes)  # type: ignore[arg-type]


def _rows() -> list[AnswerRow]:
    rows = []
    for i, mode in enumerate(("long_context", "rag", "auto")):
        for q in range(5):
            rows.append(
                AnswerRow(
                    mode=mode,
                    qid=f"q{q}",
                    question="?",
                    answers=["a"],
                    is_impossible=False,
                    retrieval_only=False,
                    gold_doc_ids=["d"],
                    order=i,
                    timings={"total_s": 0.01 * (q + 1)},
                    usage=Usage(input_tokens=300, output_tokens=40),
                    scores=QuestionScore(0.0, 0.0, 1.0, True, False, 1.0, 1.0),
                    path="rag" if mode == "rag" else "long_context",
                )
            )
    return rows


def _curves() -> dict[str, dict[str, object]]:
    def pricer(model: str, usage: Usage) -> float:
        return (
            1e-6 * usage.input_tokens
            + 2.5e-7 * usage.cache_read_tokens
            + 1e-6 * (usage.cache_write_tokens)
        )

    return {
        MODEL: {
            "long_context": cost_curve("long_context", MODEL, [TokenMix(300, 9000, 40)], pricer, 5),
            "rag": cost_curve("rag", MODEL, [TokenMix(1900, 0, 40)], pricer, 5),
        }
    }


def test_markdown_opens_with_a_one_line_verdict_its_numbers_then_the_reasoning() -> None:
    text = render_markdown(_summary(), ["latency"])
    lines = text.splitlines()
    assert lines[0] == "# Long context or retrieval: handbook"
    assert lines[2] == (
        "**Retrieval** for this corpus with `extractive` (against long context): accuracy 55.0% "
        "vs 62.0%; $30.00 vs $250.00 a month on openai:gpt-4.1-mini."
    )
    assert lines[4] == (
        "| mode | accuracy (95% interval) | evidence coverage | cost a month "
        "(openai:gpt-4.1-mini, cached, 100,000 q) | p50 latency |"
    )
    # Wilson 95% intervals: 0.62 of 9 questions, 1.0 of 8.
    assert (
        lines[6]
        == "| long context | 62.0% (32-85%, n=9) | 100.0% (68-100%, n=8) | $250.00 | 50 ms |"
    )
    assert lines[7].startswith("| retrieval (rag) | 55.0% (26-81%, n=9) | 90.0% (56-98%, n=8)")
    assert "| self_route |" not in "\n".join(lines[4:10])  # only modes that ran
    warning = lines.index("## Why") - 4
    assert lines[warning].startswith("> **Warning:** auto chooses long context")
    assert (
        lines[lines.index("## Why") + 2] == "**Recommendation: retrieval** because of the numbers."
    )
    assert "projections from token counts" in text
    assert "No judge: `extractive` does not write text" in text  # offline: as before
    assert "| self_route | not run: BackendError: down |" in text
    assert "1 retrieval-only" in text and "retrieval-only questions" in text
    assert "Note: A hand-built summary." in text
    assert "![Latency per question](charts/latency.svg)" in text
    assert "0.500 (current)" in text
    assert "/work/" not in text


def test_html_is_one_self_contained_page() -> None:
    charts = render_charts(_summary(), _rows(), _curves())  # type: ignore[arg-type]
    page = render_html(_summary(), charts)
    assert "<script" not in page.lower()
    assert page.count("<svg") == 4
    assert '<p class="warning"><strong>Warning:</strong>' in page
    assert "<strong>Recommendation: retrieval</strong>" in page
    assert "<title>Report: handbook</title>" in page
    assert set(re.findall(r"https?://[^\s\"'<>)]+", page)) == {"http://www.w3.org/2000/svg"}
    # The row of a mode that did not run spans the rest of the table.
    assert '<td colspan="10">not run: BackendError: down</td>' in page


def test_coinciding_markers_are_drawn_side_by_side() -> None:
    placed: list[tuple[float, float]] = []
    assert [dodge(100.0, 50.0, placed) for _ in range(3)] == [100.0, 111.0, 89.0]
    assert dodge(300.0, 50.0, placed) == 300.0  # far enough: not moved
    assert dodge(100.0, 200.0, placed) == 100.0  # another accuracy: not moved
    # auto priced exactly like long context: both markers visible, auto's said so.
    base = _summary()
    entry = base.costs.models[MODEL]
    same = replace(entry, modes={**entry.modes, "auto": entry.modes["long_context"]})
    summary = _summary(costs=replace(base.costs, models={MODEL: same}))
    svg = render_charts(summary, _rows(), _curves())["accuracy_vs_cost"]  # type: ignore[arg-type]
    ns = "{http://www.w3.org/2000/svg}"
    markers = [
        (e.get("cx"), e.get("cy"), e.get("x"), e.get("points"))
        for e in ET.fromstring(svg).iter()
        if "per 1,000" in (e.findtext(f"{ns}title") or "")
    ]
    assert len(markers) == len(set(markers)) == 6  # 3 modes, with and without caching
    assert svg.count("drawn beside a marker with the same values") == 2


def test_charts_are_valid_svg_with_one_mark_per_answer() -> None:
    charts = render_charts(_summary(), _rows(), _curves())  # type: ignore[arg-type]
    assert list(charts) == ["accuracy_vs_cost", "latency", "tokens", "cost_vs_volume"]
    ns = "{http://www.w3.org/2000/svg}"
    for svg in charts.values():
        assert ET.fromstring(svg).tag == f"{ns}svg"
    latency = ET.fromstring(charts["latency"])
    assert len([c for c in latency.iter(f"{ns}circle")]) == 15  # 3 modes x 5 answers
    # Two markers per mode and price model (with and without caching), three modes ran.
    accuracy = ET.fromstring(charts["accuracy_vs_cost"])
    assert len([t for t in accuracy.iter(f"{ns}title") if "per 1,000" in (t.text or "")]) == 4


def test_a_summary_without_priced_models_renders_without_cost_sections() -> None:
    empty = replace(_summary().costs, models={})
    summary = _summary(costs=empty, threshold_tradeoff={})
    text = render_markdown(summary, [])
    assert "## Cost per 1,000" not in text and "## Break-even" not in text
    assert "## Refusal threshold" not in text
    charts = render_charts(summary, [], {})
    assert "no priced answers" in charts["accuracy_vs_cost"]


# ---- the recommendation ------------------------------------------------------------------


def _paired(lc_only: int, rag_only: int, n: int = 100) -> Paired:
    return Paired(questions=n, long_context_only=lc_only, rag_only=rag_only)


def test_paired_winner_is_a_sign_test() -> None:
    assert _paired(5, 0).winner == "long_context"  # 5 > 2 * sqrt(5) = 4.47
    assert _paired(3, 0).winner is None  # 3 <= 2 * sqrt(3) = 3.46
    assert _paired(2, 12).winner == "rag"  # 10 > 2 * sqrt(14) = 7.48
    assert _paired(6, 6).winner is None and _paired(0, 0).winner is None


def _advise(
    accuracy: Paired,
    coverage: Paired,
    *,
    priced: bool,
    auto: str = "long_context",
    lc_month: float = 250.0,
    rag_month: float = 30.0,
) -> Recommendation:
    base = _summary()
    entry = replace(
        base.costs.models[MODEL],
        modes={"long_context": _cost(2.5, lc_month), "rag": _cost(0.3, rag_month)},
    )
    costs = replace(base.costs, models={MODEL: entry})
    return recommend(
        base.modes,
        costs,
        AutoChoice(auto, "the corpus fits", 1.0),
        MODEL if priced else "extractive",
        accuracy,
        coverage,
        cost_model=MODEL if priced else None,
        max_cost_ratio=20.0,
    )


def test_better_retrieval_wins_whatever_the_cost() -> None:
    advice = _advise(_paired(1, 15), _paired(0, 0), priced=True, lc_month=10.0)
    assert advice.path == "rag" and advice.text.startswith("**Recommendation: retrieval**")
    assert "1 right only with long context, 15 only with retrieval: beyond chance" in advice.text
    assert advice.warning is not None and "auto chooses long context" in advice.warning


def test_better_long_context_within_the_routers_cost_ratio_wins() -> None:
    advice = _advise(_paired(15, 1), _paired(0, 0), priced=True)  # 250 / 30 = 8.3x
    assert advice.path == "long_context" and advice.warning is None
    assert "$250.00 a month against $30.00 for retrieval (8.3x) at 100,000 questions" in advice.text


def test_better_long_context_over_the_cost_ratio_states_the_trade_off() -> None:
    advice = _advise(_paired(15, 1), _paired(0, 0), priced=True, lc_month=900.0)
    assert advice.path == "rag"
    assert "costs 30.0x retrieval" in advice.text and "worth $870.00 more a month" in advice.text


def test_long_context_holding_the_evidence_wins_on_a_free_backend_and_says_why() -> None:
    advice = _advise(_paired(0, 0), _paired(25, 0), priced=False)
    assert advice.path == "long_context"
    assert "25 covered only with long context, 0 only with retrieval: beyond chance" in advice.text
    assert "Long context holds the evidence more often and costs nothing more here." in advice.text


def test_equal_quality_takes_the_cheaper_path_when_priced() -> None:
    advice = _advise(_paired(4, 3), _paired(2, 1), priced=True, auto="rag")
    assert advice.path == "rag" and advice.warning is None
    assert "Neither path answers better beyond chance, so the cheaper one" in advice.text


def test_a_free_backend_decides_by_evidence_and_says_what_a_price_would_change() -> None:
    advice = _advise(_paired(4, 3), _paired(2, 1), priced=False)
    # Long context's coverage is 100% against 90%: it holds the evidence more often.
    assert advice.path == "long_context" and advice.warning is None
    assert "With this backend both paths cost nothing." in advice.text
    assert f"projected on {MODEL}" in advice.text
    assert "There the recommendation would be retrieval." in advice.text
    assert "auto mode chooses long context for this corpus" in advice.text


def test_no_recommendation_without_both_forced_paths() -> None:
    base = _summary()
    modes = {"auto": base.modes["auto"]}
    advice = recommend(
        modes,
        base.costs,
        base.auto,
        "extractive",
        _paired(0, 0),
        _paired(0, 0),
        cost_model=None,
        max_cost_ratio=20.0,
    )
    assert advice.path is None and "run the modes long_context and rag" in advice.text
    lc_failed = {"long_context": base.modes["self_route"], "rag": base.modes["rag"]}
    advice = recommend(
        lc_failed,
        base.costs,
        base.auto,
        "extractive",
        _paired(0, 0),
        _paired(0, 0),
        cost_model=None,
        max_cost_ratio=20.0,
    )
    assert advice.path == "rag" and "long context could not run (BackendError: down)" in advice.text


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_balanced_orders_put_every_mode_in_every_place_and_after_every_other(n: int) -> None:
    from collections import Counter

    from kb.report.runner import balanced_orders

    orders = balanced_orders(n)
    assert all(sorted(order) == list(range(n)) for order in orders)
    places = Counter((place, item) for order in orders for place, item in enumerate(order))
    assert len(set(places.values())) == 1 and len(places) == n * n
    follows = Counter(pair for order in orders for pair in zip(order, order[1:], strict=False))
    # Every ordered pair (a directly before b) occurs, and equally often.
    assert len(follows) == n * (n - 1) and len(set(follows.values())) <= 1


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("corpora/handbook.questions.jsonl", "handbook"),
        ("datasets/hotpotqa-100/questions.jsonl", "hotpotqa-100"),
        ("sets/faq.jsonl", "faq"),
    ],
)
def test_the_title_is_the_datasets_name(name: str, title: str) -> None:
    from pathlib import Path

    from kb.report import ReportOptions

    assert ReportOptions(questions_path=Path(name)).dataset_name == title
    assert ReportOptions(questions_path=Path(name), title="Mine").dataset_name == "Mine"
