"""The extractive reader answers rather than echoes: reading units (list items, table
rows, headings as context), the kind of fact a question asks for, and the handbook's
own example questions on real parts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.pipeline import run_ingest
from kb.backends.extractive.fact_kinds import asked_kinds, carries, restates
from kb.core.settings import load_settings
from kb.core.text import content_words, reading_units
from kb.search.embedding import Embedder
from kb.service import KnowledgeBase
from tests.conftest import write_corpus

MARKDOWN = """# Deploys

## Change freezes

For 2024 the freezes are:

- **Peak freeze**: from Monday 25 November to Monday 2 December 2024.
- **Holiday freeze**: from Friday 20 December 2024 to Monday 6 January 2025.

During a freeze, only fixes for SEV1 incidents go out.

| Service | Local port |
|---|---|
| lantern | 17500 |
"""

RST = """Retention periods
=================

==================  ==========
Data                Kept for
==================  ==========
Raw events          72 hours
Application logs    30 days
==================  ==========
"""

FAQ = """Money and time

How many days of annual leave do I have?

Ask People Operations; it depends on your contract.

Copyright 2024 Example Ltd.
"""


def units_of(text: str) -> list[tuple[str, str, str]]:
    return [(u.kind, u.context, text[u.start : u.end]) for u in reading_units(text)]


@pytest.mark.integration
def test_list_items_carry_their_section_and_lead_in() -> None:
    units = units_of(MARKDOWN)
    assert units[0] == ("heading", "", "# Deploys")
    assert units[1] == ("heading", "", "## Change freezes")
    peak = next(u for u in units if "Peak freeze" in u[2])
    assert peak[0] == "item"
    assert peak[1] == "Change freezes - For 2024 the freezes are:"
    during = next(u for u in units if u[2].startswith("During a freeze"))
    assert during[:2] == ("sentence", "Change freezes")


@pytest.mark.integration
def test_table_rows_carry_their_header_row() -> None:
    markdown_row = next(u for u in units_of(MARKDOWN) if "17500" in u[2])
    assert markdown_row == ("row", "Change freezes - Service Local port", "| lantern | 17500 |")
    rst = units_of(RST)
    assert rst[0][0] == "heading"
    logs = next(u for u in rst if "30 days" in u[2])
    assert logs[0] == "row"
    assert logs[1] == "Retention periods - Data Kept for"
    assert [u[0] for u in rst].count("rule") == 3


@pytest.mark.integration
def test_an_faq_question_heads_only_its_answer() -> None:
    units = units_of(FAQ)
    assert [u[0] for u in units] == ["heading", "question", "sentence", "sentence"]
    assert units[2][1] == "Money and time - How many days of annual leave do I have?"
    assert units[3][1] == "Money and time"  # the page footer is not part of the answer


@pytest.mark.integration
@pytest.mark.parametrize(
    ("question", "kinds"),
    [
        ("How many replicas does ledgerd run?", {"number"}),
        ("How long are raw events kept?", {"number"}),
        ("When are production deploys frozen?", {"date"}),
        ("In what year was the company founded?", {"date"}),
        ("Who approves a hotfix?", {"name"}),
        ("Which command rolls back a deploy?", set()),
    ],
)
def test_the_kind_of_fact_a_question_asks_for(question: str, kinds: set[str]) -> None:
    assert asked_kinds(question) == kinds


@pytest.mark.integration
def test_a_sentence_carries_a_fact_the_question_does_not_state() -> None:
    number = frozenset({"number"})
    assert carries("Raw events are kept for 72 hours.", number, "How long are raw events kept?")
    assert not carries("Raw events are kept in Kafka.", number, "How long are raw events kept?")
    assert not carries("In 2024 we moved.", number, "What happened in 2024?")
    assert carries("Maeve Okafor approves it.", frozenset({"name"}), "Who approves a hotfix?")


@pytest.mark.integration
def test_a_sentence_that_only_restates_the_question_is_known() -> None:
    question = "How many days of annual leave do engineers get?"
    known = content_words(question)
    kinds = asked_kinds(question)
    assert restates("How many days of annual leave do engineers get?", known, kinds)
    assert restates("Annual leave days for engineers", known, kinds)
    assert not restates("Engineers get 27 days of annual leave a year.", known, kinds)


HANDBOOK = Path(__file__).resolve().parents[1] / "corpora" / "handbook"
PAGES = ("engineering/deploys.md", "engineering/local-dev.md", "faq.html")


@pytest.fixture(scope="module")
def handbook_kb(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Iterator[KnowledgeBase]:
    """Three pages of the bundled handbook (Markdown lists and tables, an HTML FAQ)."""
    base = tmp_path_factory.mktemp("reader")
    root = write_corpus(base / "docs", {page: (HANDBOOK / page).read_text() for page in PAGES})
    settings = load_settings(data_dir=base / "data")
    run_ingest(settings, root, embedder=embedder)
    with KnowledgeBase(settings, embedder=embedder) as kb:
        yield kb


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["long_context", "rag"])
def test_the_page_example_question_is_answered_from_the_deploys_page(
    handbook_kb: KnowledgeBase, mode: str
) -> None:
    answer = handbook_kb.ask("When are production deploys frozen?", mode=mode)
    assert not answer.refused
    # A date or a day: the freeze list, or the deploy window's items (what it gives now).
    assert carries(answer.answer, frozenset({"date"}), "When are production deploys frozen?")
    assert all(c.doc_id == "engineering/deploys.md" for c in answer.citations)
    assert all(not c.text.rstrip().endswith("?") for c in answer.citations)


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["long_context", "rag"])
def test_a_table_row_answers(handbook_kb: KnowledgeBase, mode: str) -> None:
    answer = handbook_kb.ask(
        "On which local port does lantern run in the development stack?", mode=mode
    )
    assert "17500" in answer.answer


@pytest.mark.integration
def test_no_answer_is_a_heading_or_a_question_line(handbook_kb: KnowledgeBase) -> None:
    for question in (
        "How many days of annual leave do I have?",
        "Can I expense a second monitor?",
        "Where are the dashboards?",
    ):
        answer = handbook_kb.ask(question, mode="long_context")
        for citation in answer.citations:
            assert not citation.text.rstrip().endswith("?")
            assert not citation.text.lstrip().startswith("#")
            assert not content_words(citation.text) <= content_words(question)
