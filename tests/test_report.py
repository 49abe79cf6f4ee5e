"""`kb report` end to end on a small slice of hotpotqa-100, and its HTML in Chromium."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.cli import main
from ingest.pipeline import run_ingest
from kb.core.settings import load_settings
from kb.report import ReportOptions
from kb.report.metrics import mean
from kb.report.questions import load_questions
from kb.report.runner import run_report
from kb.report.writer import write_report
from kb.search.embedding import Embedder
from kb.service import KnowledgeBase
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, DATASETS

HOTPOT = DATASETS / "hotpotqa-100"
MODES = ("long_context", "rag", "auto", "self_route")
SLICE = 4  # hotpotqa questions in the slice; their ten paragraphs each form the corpus

pytestmark = pytest.mark.skipif(
    not (HOTPOT / "questions.jsonl").exists(), reason=f"evaluation data missing at {HOTPOT}"
)


def _make_slice(folder: Path) -> tuple[Path, Path]:
    """A corpus of the paragraphs the first SLICE questions draw on, and those questions
    plus one the corpus cannot answer and one retrieval-only question (gold documents,
    no reference answer)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = (HOTPOT / "questions.jsonl").read_text("utf-8").splitlines()[:SLICE]
    records = [json.loads(line) for line in lines]
    wanted = {doc for r in records for doc in r["distractor_doc_ids"] + r["gold_doc_ids"]}
    with open(HOTPOT / "corpus.jsonl", encoding="utf-8") as fh:
        docs = [line for line in fh if json.loads(line)["doc_id"] in wanted]
    corpus = folder / "corpus" / "corpus.jsonl"
    corpus.parent.mkdir()
    corpus.write_text("".join(docs), "utf-8")
    retrieval_only = dict(records[0], qid="retrieval-only-1", answers=[])
    records.append(
        {
            "qid": "unanswerable-1",
            "question": "What is the boiling point of liquid unobtainium on Mars?",
            "answers": [],
            "gold_doc_ids": [],
            "is_impossible": True,
        }
    )
    records.append(retrieval_only)
    questions = folder / "questions.jsonl"
    questions.write_text("".join(json.dumps(r) + "\n" for r in records), "utf-8")
    return corpus, questions


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Path]:
    """One `kb report` run over the slice, through the real CLI, shared by the tests."""
    root = tmp_path_factory.mktemp("report")
    corpus, questions = _make_slice(root)
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("KB_"):
                patch.delenv(name)
        patch.chdir(root)
        run_ingest(load_settings(data_dir=root / "data"), corpus.parent, embedder=embedder)
        code = main(
            [
                "report",
                "--data-dir",
                str(root / "data"),
                "--questions",
                str(questions),
                "--out",
                str(root / "out"),
                "--seed",
                "1",
                "--note",
                "A test slice.",
            ]
        )
    assert code == 0
    yield root / "out"


def _rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text("utf-8").splitlines()]


@pytest.mark.integration
def test_report_writes_all_four_files_and_the_charts(report_dir: Path) -> None:
    for name in ("report.md", "report.html", "results.jsonl", "summary.json"):
        assert (report_dir / name).stat().st_size > 0, name
    charts = sorted(p.name for p in (report_dir / "charts").glob("*.svg"))
    assert charts == ["accuracy_vs_cost.svg", "cost_vs_volume.svg", "latency.svg", "tokens.svg"]
    markdown = (report_dir / "report.md").read_text("utf-8")
    assert "projections from token counts" in markdown
    assert "A test slice." in markdown
    for chart in charts:
        assert f"(charts/{chart})" in markdown


@pytest.mark.integration
def test_results_hold_one_answer_per_question_and_mode(report_dir: Path) -> None:
    rows = _rows(report_dir)
    answers = [r for r in rows if r["kind"] == "answer"]
    assert sorted((r["mode"], r["qid"]) for r in answers) == sorted(
        (mode, qid) for mode in MODES for qid in {r["qid"] for r in answers}
    )
    assert len({r["qid"] for r in answers}) == SLICE + 2
    assert all(r["error"] is None for r in answers)
    # The best score is recorded for every answer, refusals included (from the sweep).
    assert all(isinstance(r["best_score"], float) for r in answers)
    # Retrieval probes for every question with gold documents that is not unanswerable,
    # the retrieval-only one included.
    probes = [r for r in rows if r["kind"] == "retrieval"]
    assert len(probes) == SLICE + 1 and all(set(r["recall"]) == {"5", "20"} for r in probes)
    sweep = [r for r in rows if r["kind"] == "threshold_sweep"]
    assert {r["path"] for r in sweep} == {"long_context", "rag"}
    # The warm-up built the long-context prompt cache, so no timed question is cold.
    assert not any(r["cold"] for r in answers)
    # The modes ran in balanced orders: with 6 questions every mode ran first.
    orders: dict[str, dict[int, str]] = {}
    for r in answers:
        orders.setdefault(r["qid"], {})[r["order"]] = r["mode"]
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders.values())
    assert {o[0] for o in orders.values()} == set(MODES)
    # Evidence coverage per answer: long context holds the whole corpus.
    for r in answers:
        if r["is_impossible"]:
            assert r["evidence_covered"] is None
        elif r["path"] == "long_context":
            assert r["evidence_covered"] is True
        else:
            inside = set(r["gold_doc_ids"]) <= set(r["retrieved_doc_ids"])
            assert r["evidence_covered"] == inside
    only = [r for r in answers if r["retrieval_only"]]
    assert len(only) == len(MODES) and all(r["scores"]["correct"] is None for r in only)


@pytest.mark.integration
def test_summary_recomputes_from_the_raw_results(report_dir: Path) -> None:
    summary = json.loads((report_dir / "summary.json").read_text("utf-8"))
    rows = _rows(report_dir)
    assert list(summary["modes"]) == list(MODES)
    assert summary["retrieval_only"] == 1 and summary["warm_up_s"].keys() == set(MODES)
    for mode, metrics in summary["modes"].items():
        mine = [r for r in rows if r["kind"] == "answer" and r["mode"] == mode]
        graded = [r for r in mine if not r["retrieval_only"]]
        assert metrics["accuracy"] == round(mean(float(r["scores"]["correct"]) for r in graded), 4)
        covered = [float(r["evidence_covered"]) for r in mine if not r["is_impossible"]]
        assert metrics["evidence_coverage"] == round(mean(covered), 4)
        assert metrics["evidence_questions"] == SLICE + 1
        impossible = [float(r["refused"]) for r in mine if r["is_impossible"]]
        assert metrics["refusal_accuracy"] == round(mean(impossible), 4)
        tokens = mean(float(r["usage"]["input_tokens"]) for r in mine)
        assert metrics["tokens_per_question"]["input_tokens"] == round(tokens, 1)
    assert summary["modes"]["long_context"]["long_context_share"] == 1.0
    assert summary["modes"]["long_context"]["evidence_coverage"] == 1.0
    assert summary["modes"]["rag"]["long_context_share"] == 0.0
    probes = [r for r in rows if r["kind"] == "retrieval"]
    assert summary["retrieval_recall"]["20"]["all_gold"] == round(
        mean(r["recall"]["20"]["all_gold"] for r in probes), 4
    )
    # No path of this machine: the files are named relative to the working directory.
    assert summary["questions_file"] == "questions.jsonl"
    assert summary["corpus"]["root"] == "corpus"
    assert summary["title"] == report_dir.parent.name
    advice = summary["recommendation"]
    assert advice["path"] in ("long_context", "rag") and advice["cost_model"] is None
    assert summary["auto"]["path"] == "long_context"
    markdown = (report_dir / "report.md").read_text("utf-8").splitlines()
    assert markdown[markdown.index("## Why") + 2] == advice["text"]
    assert advice["text"].startswith("**Recommendation: ")
    assert markdown[2].startswith(("**Long context** for this corpus", "**Retrieval** for this"))
    costs = summary["costs"]
    assert costs["projection"] is True
    assert len(costs["models"]) == 3
    for entry in costs["models"].values():
        lc, rag = entry["modes"]["long_context"], entry["modes"]["rag"]
        # The corpus prefix makes a long-context question dearer than a retrieval one,
        # and caching makes it cheaper than sending the corpus uncached.
        assert lc["per_1000_warm_cache_usd"] < lc["per_1000_without_cache_usd"]
        assert rag["per_1000_with_cache_usd"] == rag["per_1000_without_cache_usd"]
        assert "long_context_cached_vs_rag" in entry["break_even"]


@pytest.mark.integration
def test_a_seed_fixes_the_sample_and_the_answers(
    tmp_path: Path, embedder: Embedder, report_dir: Path
) -> None:
    data = report_dir.parent / "data"
    questions = report_dir.parent / "questions.jsonl"
    settings = load_settings(data_dir=data)

    def answers(seed: int) -> list[tuple[str, str]]:
        options = ReportOptions(
            questions_path=questions, modes=("rag",), limit=3, seed=seed, threshold_sweep=False
        )
        with KnowledgeBase(settings, embedder=embedder) as base:
            result = run_report(base, options)
        return [(r.qid, r.answer) for r in result.rows if r.kind == "answer"]

    first = answers(5)
    assert first == answers(5)
    assert len(first) == 3
    assert {qid for qid, _ in first} <= {q.qid for q in load_questions(questions)}


@pytest.mark.integration
def test_a_corpus_over_the_budget_reports_long_context_as_not_run(
    tmp_path: Path, embedder: Embedder, report_dir: Path
) -> None:
    settings = load_settings(data_dir=report_dir.parent / "data", long_context_budget=1_000)
    options = ReportOptions(
        questions_path=report_dir.parent / "questions.jsonl",
        modes=("long_context", "auto", "self_route"),
        limit=2,
    )
    with KnowledgeBase(settings, embedder=embedder) as base:
        result = run_report(base, options)
    modes = result.summary.modes
    assert modes["long_context"].errors == 2 and not modes["long_context"].ran
    assert "does not fit" in (modes["long_context"].first_error or "")
    assert modes["auto"].long_context_share == 0.0
    assert modes["self_route"].escalation_share == 0.0
    assert list(result.summary.threshold_tradeoff) == ["rag"]
    assert set(result.summary.costs.models["openai:gpt-4.1-mini"].modes) == {"auto", "self_route"}
    # Without forced retrieval in the run there is nothing to recommend against.
    assert result.summary.recommendation.path is None
    write_report(result, tmp_path / "out")
    assert "not run: InvalidRequestError" in (tmp_path / "out" / "report.md").read_text("utf-8")


@pytest.mark.integration
def test_html_is_self_contained(report_dir: Path) -> None:
    page = (report_dir / "report.html").read_text("utf-8")
    assert "<script" not in page.lower()
    assert page.count("<svg") == 4
    # The only URL is the SVG namespace: nothing is fetched.
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert urls == {"http://www.w3.org/2000/svg"}


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed")
def test_html_renders_in_headless_chromium(report_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    shot = report_dir / "report.png"
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.goto((report_dir / "report.html").as_uri())
            page.screenshot(path=str(shot), full_page=True)
            boxes = [svg.bounding_box() for svg in page.query_selector_all("svg")]
            tables = page.query_selector_all("table")
            title = page.title()
        finally:
            browser.close()
    assert title.startswith("Report:")
    assert len(boxes) == 4
    assert all(box is not None and box["width"] > 300 and box["height"] > 100 for box in boxes)
    assert len(tables) >= 4
    assert requests == [(report_dir / "report.html").as_uri()]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 50_000
