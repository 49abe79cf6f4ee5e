"""Offline answers a newcomer can trust (issue 21), on real parts: tables read as facts
with their header, a range that holds the question's quantity, a qualifier that picks
production over a laptop, one hop from a role to the person, and a follow-up that keeps
its subject. Every answer is checked against the exact span it cites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kb.backends.extractive.evidence import Evidence
from kb.backends.extractive.quantities import fit, quantities
from kb.backends.extractive.reading import Sentence
from kb.conversation import Turn, subject_of, with_subject
from kb.core.tables import row_at
from kb.core.text import reading_units
from kb.search.embedding import Embedder
from kb.service import KnowledgeBase
from tests.reader_corpus import ReaderCorpus, cited, reader_corpus

FILES = {
    "architecture.md": """# Architecture overview

Numbers here are the production values; staging runs the same services smaller.

## Services

| Service | What it does | Port | Language |
|---|---|---|---|
| ledgerd | Loads clean events into the warehouse | 7300 | Python |
| loom | Batch scheduler for the nightly jobs | 7400 | Python |
| beacon | Alert routing in front of the pager | 7600 | Go |
""",
    "local-dev.md": """# Local development

You can run the whole pipeline on a laptop with Docker.

## Ports

Local services use their usual port plus 10000:

| Service | Local port |
|---|---|
| ledgerd | 17300 |
| loom | 17400 |
| beacon | 17600 |
""",
    "expenses.md": """# Expenses

Claim within 60 days of the purchase.

## Who approves

| Amount of a single claim | Approver |
|---|---|
| Up to 1,000 EUR | Your manager |
| Over 1,000 EUR up to 5,000 EUR | Your director |
| Over 5,000 EUR | The finance committee |
""",
    "team.md": """# The team

The Data Platform team has 11 engineers, led by the Head of Platform, Maeve Okafor.
The team meets every Tuesday.
""",
    "deploys.md": """# Deploys

## Change freezes

During a freeze, only fixes for severe incidents go out, and each needs two
approvals, one of them from the Head of Platform.
""",
    "access.html": """<html><head><title>Production access</title></head><body>
<h1>Production access</h1>
<p>Access to production is granted for a limited time.</p>
<table>
<thead><tr><th>Level</th><th>What it allows</th><th>Longest grant</th></tr></thead>
<tbody>
<tr><td>prod-read</td><td>Read-only access to logs and dashboards</td><td>8 hours</td></tr>
<tr><td>prod-admin</td><td>Write access to the cluster and databases of one service</td>
<td>2 hours</td></tr>
</tbody></table>
</body></html>""",
}
MODES = ["long_context", "rag"]


@pytest.fixture(scope="module")
def ingested(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Iterator[ReaderCorpus]:
    with reader_corpus(tmp_path_factory, "facts", FILES, embedder) as done:
        yield done


@pytest.fixture(scope="module")
def texts(ingested: ReaderCorpus) -> dict[str, str]:
    return ingested.texts


@pytest.fixture(scope="module")
def kb(ingested: ReaderCorpus) -> KnowledgeBase:
    return ingested.kb


@pytest.mark.integration
@pytest.mark.parametrize("mode", MODES)
def test_a_table_row_with_a_range_answers_a_quantity(
    kb: KnowledgeBase, texts: dict[str, str], mode: str
) -> None:
    answer = kb.ask("Who approves a single expense claim of 3,000 EUR?", mode=mode)
    assert answer.answer.startswith("Your director — Over 1,000 EUR up to 5,000 EUR")
    assert "|" not in answer.answer
    assert cited(answer, texts)[0] == (
        "expenses.md",
        "| Over 1,000 EUR up to 5,000 EUR | Your director |",
    )


@pytest.mark.integration
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("question", "port", "doc_id", "row"),
    [
        (
            "What port does ledgerd listen on in production?",
            "7300",
            "architecture.md",
            "| ledgerd | Loads clean events into the warehouse | 7300 | Python |",
        ),
        (
            "What port does ledgerd listen on on a laptop?",
            "17300",
            "local-dev.md",
            "| ledgerd | 17300 |",
        ),
    ],
)
def test_production_and_laptop_pick_their_own_table(
    kb: KnowledgeBase,
    texts: dict[str, str],
    mode: str,
    question: str,
    port: str,
    doc_id: str,
    row: str,
) -> None:
    answer = kb.ask(question, mode=mode)
    assert answer.answer.startswith(f"{port} — ledgerd — ")
    assert cited(answer, texts)[0] == (doc_id, row)


@pytest.mark.integration
@pytest.mark.parametrize("mode", MODES)
def test_a_role_is_followed_to_the_person(
    kb: KnowledgeBase, texts: dict[str, str], mode: str
) -> None:
    answer = kb.ask("Who approves a fix during a freeze?", mode=mode)
    assert answer.answer.startswith("Maeve Okafor — During a freeze")
    (first_doc, first), (second_doc, second) = cited(answer, texts)
    assert first_doc == "deploys.md" and first.endswith("from the Head of Platform.")
    assert second_doc == "team.md" and "the Head of Platform, Maeve Okafor" in second


@pytest.mark.integration
@pytest.mark.parametrize("mode", MODES)
def test_a_follow_up_without_a_subject_keeps_the_previous_one(
    kb: KnowledgeBase, texts: dict[str, str], mode: str
) -> None:
    turns = [
        Turn("user", "What does prod-admin access allow?"),
        Turn("assistant", "Write access to the cluster and databases of one service [1]"),
        Turn("user", "How long can it last?"),
    ]
    assert kb.ask("How long can it last?", mode=mode).refused
    answer = kb.ask(turns, mode)
    assert answer.standalone_method == "subject"
    assert answer.standalone_question == "How long can prod-admin access last?"
    assert answer.answer.startswith("2 hours — prod-admin — ")
    doc_id, row = cited(answer, texts)[0]
    assert doc_id == "access.html" and row.startswith("| prod-admin |") and "2 hours" in row


@pytest.mark.integration
def test_subjects_are_taken_from_questions_with_an_auxiliary() -> None:
    assert subject_of("What does prod-admin access allow?") == "prod-admin access"
    assert subject_of("How long is the review window?") == "the review window"
    assert subject_of("Who runs the portal?") == ""
    assert with_subject("How long do its grants last?", "What does the portal do?") == (
        "How long do the portal's grants last?"
    )
    assert with_subject("What about staging?", "What does the portal do?") == ""


@pytest.mark.integration
def test_ranges_hold_or_miss_a_quantity() -> None:
    asked = quantities("a claim of 3,000 EUR on a 7-hour flight in 2024")
    assert [(q.value, q.unit) for q in asked] == [(3000.0, "eur"), (7.0, "hour")]
    assert fit(asked, "Over 1,000 EUR up to 5,000 EUR") > 0
    assert fit(asked, "Up to 1,000 EUR") == -1
    assert fit(asked, "flights of 6 hours or more") > fit(asked, "flights over 3 hours") > 0
    assert fit(asked, "Claims older than 60 days") == 0


@pytest.mark.integration
def test_a_function_word_after_a_year_is_no_unit() -> None:
    # "2004 and": "and" is no unit, so 2004 is a year and no range is weighed for it.
    assert quantities("What happened to the rate between 2004 and 2014?") == []
    assert fit(quantities("from 2004 to 2014"), "The rate from 2000 to 2005 rose.") == 0


@pytest.mark.integration
def test_a_qualifier_only_breaks_ties_between_prose_units() -> None:
    # The qualifier weighs fully among table rows or ranges the question names ("in
    # production" vs "on a laptop"); for prose it is a small tie-breaker and never a
    # penalty: a document about Paris need not answer a question ending "in Paris". It is
    # returned apart, as it never lifts a unit to the refusal threshold.
    evidence = Evidence("What is the cap on a hotel in Paris?")
    text = "The cap is 180 EUR."
    sentence = Sentence("travel.md", "Travel", "travel.md", 0, len(text), text)
    found, around = evidence.weigh(text, 0, len(text), 0, sentence, "Paris")
    assert found == 0 and 0 < around <= 0.05
    assert evidence.weigh(text, 0, len(text), 0, sentence, "Rome") == (0.0, 0.0)


GRID = """Options:

+--------+---------------------------+
| Option | Meaning                   |
|========|===========================|
| "'^'"  | Forces the field to be    |
|        | centered. Rarely used.    |
+--------+---------------------------+
| "'<'"  | Left-aligned.             |
+--------+---------------------------+
"""
SIMPLE = """Retention
=========

==============  ========
Data            Kept for
==============  ========
Traces          7 days
Raw archive     35 days
==============  ========
"""


@pytest.mark.integration
def test_a_grid_row_of_several_lines_is_one_unit_read_with_its_header() -> None:
    rows = [u for u in reading_units(GRID) if u.kind == "row"]
    centered = next(u for u in rows if "'^'" in GRID[u.start : u.end])
    assert GRID[centered.start : centered.end].endswith("centered. Rarely used.    |")
    row = row_at(GRID, centered.start, centered.end)
    assert row is not None
    assert row.readable() == "\"'^'\" — Meaning: Forces the field to be centered. Rarely used."


@pytest.mark.integration
def test_a_simple_table_row_is_read_with_its_header() -> None:
    start = SIMPLE.index("Raw archive")
    row = row_at(SIMPLE, start, SIMPLE.index("\n", start))
    assert row is not None and row.readable() == "Raw archive — Kept for: 35 days"
