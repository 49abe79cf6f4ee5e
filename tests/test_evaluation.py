"""Each evaluation metric, the question-set loader and the cost projection on small
cases computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kb.backends.cost import estimate_cost
from kb.core.errors import InvalidRequestError, SettingsError
from kb.core.models import Usage
from kb.report.metrics import (
    citation_precision_recall,
    contains_answer,
    evidence_covered,
    exact_match,
    mean,
    normalize_answer,
    percentile,
    recall_at_k,
    score_answer,
    strip_citation_markers,
    threshold_tradeoff,
    token_f1,
)
from kb.report.projection import MINUTES_PER_MONTH, TokenMix, break_even, cost_curve
from kb.report.questions import EvalQuestion, load_questions, sample_questions

pytestmark = pytest.mark.fast

# ---- the evaluation set ----------------------------------------------------------------


def _write(path: Path, records: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", "utf-8")
    return path


def test_load_questions_reads_the_datasets_format(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "q.jsonl",
        [
            {
                "qid": "a",
                "question": " Who? ",
                "answers": ["Rollo"],
                "gold_doc_ids": ["N#p0", "N#p0"],
                "article": "Normans",
            },
            {"qid": "b", "question": "Why?", "answers": [], "is_impossible": True},
            {"qid": "c", "question": "When?", "answers": []},
        ],
    )
    first, second, third = load_questions(path)
    assert first == EvalQuestion("a", "Who?", ("Rollo",), ("N#p0",), False, {"article": "Normans"})
    assert second.is_impossible and second.answers == ()
    assert third.is_impossible  # no answers and no flag: unanswerable


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "invalid JSON"),
        ('["a list"]', "JSON object"),
        ('{"qid": "x", "question": ""}', '"question"'),
        ('{"qid": "x", "question": "q", "answers": "Rollo"}', '"answers"'),
        ('{"qid": "x", "question": "q", "answers": [], "is_impossible": false}', "needs at least"),
    ],
)
def test_load_questions_names_the_bad_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"qid": "ok", "question": "q", "answers": ["a"]}\n' + line + "\n", "utf-8")
    with pytest.raises(InvalidRequestError, match=problem) as caught:
        load_questions(path)
    assert f"{path}:2" in caught.value.message


def test_load_questions_rejects_repeated_ids_and_empty_files(tmp_path: Path) -> None:
    record = {"qid": "a", "question": "q", "answers": ["x"]}
    with pytest.raises(InvalidRequestError, match="appears twice"):
        load_questions(_write(tmp_path / "dup.jsonl", [record, record]))
    (tmp_path / "empty.jsonl").write_text("\n", "utf-8")
    with pytest.raises(InvalidRequestError, match="no questions"):
        load_questions(tmp_path / "empty.jsonl")
    with pytest.raises(InvalidRequestError, match="does not exist"):
        load_questions(tmp_path / "missing.jsonl")


def test_sample_is_seeded_and_keeps_file_order() -> None:
    questions = [EvalQuestion(str(i), f"q{i}", ("a",)) for i in range(50)]
    first = sample_questions(questions, 10, seed=3)
    assert first == sample_questions(questions, 10, seed=3)
    assert [q.qid for q in first] == sorted((q.qid for q in first), key=int)
    assert len({q.qid for q in first}) == 10
    seeds = {tuple(q.qid for q in sample_questions(questions, 10, seed=s)) for s in range(5)}
    assert len(seeds) > 1  # the seed changes the sample
    assert sample_questions(questions, None, seed=3) == questions
    assert sample_questions(questions, 500, seed=3) == questions
    with pytest.raises(InvalidRequestError):
        sample_questions(questions, 0, seed=3)


# ---- text metrics ------------------------------------------------------------------------


def test_normalisation_and_marker_stripping() -> None:
    assert normalize_answer("The  Cat's, hat!") == "cats hat"
    assert normalize_answer("An apple a day") == "apple day"
    assert (
        strip_citation_markers("Paris is big. [1] It is old. [2][doc:Some Id]")
        == "Paris is big. It is old."
    )


def test_exact_match_takes_the_best_reference() -> None:
    assert exact_match("the Rollo.", ["Rollo"]) == 1.0
    assert exact_match("Rollo the Walker", ["Rollo", "Hrolf"]) == 0.0
    assert exact_match("Hrolf", ["Rollo", "hrolf"]) == 1.0
    assert exact_match("anything", []) == 0.0


def test_token_f1_by_hand() -> None:
    # prediction denmark/and/norway against denmark/iceland/and/norway:
    # 3 common tokens, precision 3/3, recall 3/4, F1 = 2*1*0.75/1.75 = 6/7.
    assert token_f1("Denmark and Norway", ["Denmark, Iceland and Norway"]) == pytest.approx(6 / 7)
    # Repeated tokens count once per occurrence: cat cat dog vs cat dog dog -> 2 common,
    # precision 2/3, recall 2/3, F1 2/3.
    assert token_f1("cat cat dog", ["cat dog dog"]) == pytest.approx(2 / 3)
    # The best reference wins.
    assert token_f1("cat", ["dog", "cat"]) == 1.0
    assert token_f1("bird", ["dog"]) == 0.0
    # Only articles on both sides normalise to nothing: equal.
    assert token_f1("the", ["a"]) == 1.0


def test_contains_works_on_word_boundaries() -> None:
    assert contains_answer("He was born in France. [1]", ["France"]) == 1.0
    assert contains_answer("She moved to New York City.", ["new york"]) == 1.0
    assert contains_answer("I know the answer", ["no"]) == 0.0
    assert contains_answer("Francesca", ["France"]) == 0.0
    assert contains_answer("anything", ["", "the"]) == 0.0


# ---- per-question scores -----------------------------------------------------------------


def test_citation_precision_and_recall() -> None:
    assert citation_precision_recall(["A", "B", "C", "A"], ["A", "D"]) == (1 / 3, 1 / 2)
    assert citation_precision_recall([], ["A"]) == (None, 0.0)
    assert citation_precision_recall(["A"], []) == (0.0, None)


def test_score_answer_for_answerable_and_unanswerable_questions() -> None:
    answerable = EvalQuestion("q", "Who?", ("Rollo",), ("A", "B"))
    good = score_answer(answerable, "Their leader was Rollo. [1]", False, ["A", "C"])
    assert (good.exact_match, good.contains, good.correct) == (0.0, 1.0, True)
    # their/leader/was/rollo against rollo: precision 1/4, recall 1, F1 = 0.5 / 1.25.
    assert good.f1 == pytest.approx(0.4)
    assert (good.citation_precision, good.citation_recall) == (0.5, 0.5)

    refused = score_answer(answerable, "I cannot answer this.", True, ["A"])
    assert (refused.exact_match, refused.f1, refused.contains, refused.correct) == (0, 0, 0, False)
    assert (refused.citation_precision, refused.citation_recall) == (None, 0.0)

    impossible = EvalQuestion("u", "Why?", (), ("A",), is_impossible=True)
    assert score_answer(impossible, "", True, []).correct
    wrong = score_answer(impossible, "Because. [1]", False, ["A"])
    assert not wrong.correct and wrong.exact_match is None and wrong.citation_recall is None


def test_a_retrieval_only_question_loads_and_gets_no_answer_score(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "q.jsonl",
        [
            {"qid": "r", "question": "Where is the rota?", "gold_doc_ids": ["oncall.md"]},
            {
                "qid": "r2",
                "question": "Who?",
                "answers": [],
                "gold_doc_ids": ["a"],
                "is_impossible": False,
            },
        ],
    )
    first, second = load_questions(path)
    for question in (first, second):
        assert question.retrieval_only and question.has_evidence and not question.is_impossible
    score = score_answer(first, "The rota is in the wiki. [1]", False, ["oncall.md"])
    assert score.correct is None and score.contains is None and score.citation_recall is None
    # Without gold documents there is nothing to score it on: still an error.
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"qid": "x", "question": "q", "is_impossible": false}\n', "utf-8")
    with pytest.raises(InvalidRequestError, match="retrieval-only"):
        load_questions(bad)


def test_evidence_coverage_needs_every_gold_document() -> None:
    assert evidence_covered(["A", "B"], ["B", "C", "A"])
    assert not evidence_covered(["A", "B"], ["A", "C"])
    with pytest.raises(InvalidRequestError):
        evidence_covered([], ["A"])


def test_recall_at_k_counts_documents_of_the_top_chunks() -> None:
    ranked = ["A", "B", "A", "C", "D"]
    assert recall_at_k(ranked, ["C", "A"], 3) == (0.0, 0.5)
    assert recall_at_k(ranked, ["C", "A"], 4) == (1.0, 1.0)
    assert recall_at_k(ranked, ["Z"], 5) == (0.0, 0.0)
    with pytest.raises(InvalidRequestError):
        recall_at_k(ranked, [], 5)


def test_percentiles_and_means() -> None:
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)  # rank 2.85 -> 3 + 0.85
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None
    assert mean([1.0, None, 2.0]) == 1.5
    assert mean([None]) is None


def test_threshold_tradeoff_by_hand() -> None:
    # (is_impossible, best score, right when answered)
    scored = [(True, 0.2, False), (True, 0.6, False), (False, 0.5, True), (False, 0.3, False)]
    low, middle, high = threshold_tradeoff(scored, [0.1, 0.4, 0.7])
    assert (low.refusal_accuracy, low.false_refusal_rate, low.accuracy) == (0.0, 0.0, 0.25)
    # at 0.4: refuses 0.2 (right) and 0.3 (a false refusal); answers 0.5 rightly.
    assert (middle.refusal_accuracy, middle.false_refusal_rate, middle.accuracy) == (
        0.5,
        0.5,
        0.5,
    )
    assert (high.refusal_accuracy, high.false_refusal_rate, high.accuracy) == (1.0, 1.0, 0.5)


# ---- cost projection ----------------------------------------------------------------------


def _toy_pricer(model: str, usage: Usage) -> float | None:
    """$ per token: input 0.001, cache read 0.0001, cache write 0.00125, output 0.005."""
    if model != "toy:model":
        return None
    return (
        usage.input_tokens * 0.001
        + usage.cache_read_tokens * 0.0001
        + usage.cache_write_tokens * 0.00125
        + usage.output_tokens * 0.005
    )


LC = TokenMix(input_tokens=100, prefix_tokens=10_000, output_tokens=20)
RAG = TokenMix(input_tokens=5_000, prefix_tokens=0, output_tokens=20)


def test_token_mix_prices_the_prefix_three_ways() -> None:
    mix = TokenMix.from_usage(
        Usage(input_tokens=100, cache_read_tokens=9_000, cache_write_tokens=1_000, output_tokens=20)
    )
    assert mix == LC
    assert _toy_pricer("toy:model", mix.usage("read")) == pytest.approx(0.1 + 1.0 + 0.1)
    assert _toy_pricer("toy:model", mix.usage("write")) == pytest.approx(0.1 + 12.5 + 0.1)
    assert _toy_pricer("toy:model", mix.usage("input")) == pytest.approx(10.1 + 0.1)


def test_cost_curve_by_hand() -> None:
    # A 60-minute cache: 720 lifetimes a month.
    lc = cost_curve("long_context", "toy:model", [LC], _toy_pricer, cache_ttl_minutes=60)
    assert lc.windows_per_month == 720
    assert (lc.warm, lc.write_surcharge, lc.prefix_share) == pytest.approx((1.2, 11.5, 1.0))
    assert lc.uncached_per_question == pytest.approx(10.2)
    # Below 720 questions every one writes: 100 * 12.7.
    assert lc.monthly(100) == pytest.approx(1270)
    # Above, 720 writes and the rest reads: 10,000 * 1.2 + 720 * 11.5.
    assert lc.monthly(10_000) == pytest.approx(20_280)
    assert lc.per_1000(10_000) == pytest.approx(2_028)
    assert lc.monthly(10_000, cached=False) == pytest.approx(102_000)

    # Half the questions send the prefix (self_route escalating half the time).
    mixed = cost_curve("self_route", "toy:model", [LC, RAG], _toy_pricer, cache_ttl_minutes=60)
    assert (mixed.warm, mixed.prefix_share, mixed.kink) == pytest.approx((3.15, 0.5, 1440))
    assert mixed.monthly(1_000) == pytest.approx(1_000 * 3.15 + 500 * 11.5)


def test_cost_curve_refuses_unknown_models_and_empty_runs() -> None:
    with pytest.raises(SettingsError, match="No price"):
        cost_curve("rag", "toy:other", [RAG], _toy_pricer, 5)
    with pytest.raises(InvalidRequestError):
        cost_curve("rag", "toy:model", [], _toy_pricer, 5)


def test_break_even_by_hand() -> None:
    lc = cost_curve("long_context", "toy:model", [LC], _toy_pricer, cache_ttl_minutes=60)
    rag = cost_curve("rag", "toy:model", [RAG], _toy_pricer, cache_ttl_minutes=60)
    # Below 720: 12.7 V against 5.1 V. Above: 1.2 V + 8,280 = 5.1 V at V = 8,280 / 3.9.
    found = break_even(lc.monthly, rag.monthly, [lc.kink, rag.kink], ("lc", "rag"))
    assert found.volumes == pytest.approx((8_280 / 3.9,))
    assert found.sides == ("rag", "lc")
    assert "rag is cheaper below 2,123" in found.explain()

    # Caching pays once 1.2 V + 8,280 < 10.2 V, i.e. above 920 questions.
    caching = break_even(
        lc.monthly, lambda v: lc.monthly(v, cached=False), [lc.kink], ("cache", "none")
    )
    assert caching.volumes == pytest.approx((920,))
    assert caching.sides == ("none", "cache")

    # A cheap corpus read against costly retrieval: long context wins everywhere.
    pricey = cost_curve(
        "rag", "toy:model", [TokenMix(20_000, 0, 20)], _toy_pricer, cache_ttl_minutes=60
    )
    always = break_even(lc.monthly, pricey.monthly, [lc.kink], ("lc", "rag"))
    assert (always.volumes, always.sides) == ((), ("lc",))
    assert always.explain() == "lc is cheaper at every volume"


def test_break_even_with_real_prices_where_writes_cost_like_input() -> None:
    """OpenAI bills a cache write like plain input, so caching and no caching cost the
    same while every question writes, and caching wins once lifetimes fill up."""
    lc = cost_curve(
        "long_context", "openai:gpt-4.1-mini", [LC], lambda m, u: estimate_cost(m, u), 5
    )
    assert lc.write_surcharge > 0
    assert lc.monthly(100) == pytest.approx(lc.monthly(100, cached=False))
    found = break_even(
        lc.monthly, lambda v: lc.monthly(v, cached=False), [lc.kink], ("cache", "none")
    )
    assert found.volumes == pytest.approx((MINUTES_PER_MONTH / 5,))
    assert found.sides == ("equal", "cache")
    assert found.explain().startswith("both cost the same below 8,640")
