"""The extractive reader refuses what its best unit does not answer and follows a name
it was not asked for, on real parts: an unqualified question reads the unqualified
column ("Port", not "Local port"), "how much" is not answered by a duration, and a
question that no unit answers is asked again around the name its best-matching unit
gives ("the cluster that replaced Redshift" -> the cluster's own row). Every answer is
checked against the exact span it cites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kb.backends.extractive.answer_phrase import named_columns, phrase_in
from kb.backends.extractive.fact_kinds import asked_kinds
from kb.backends.extractive.one_hop import answers_a_clause, asked_around, names
from kb.backends.extractive.quantities import asks_amount, without_durations
from kb.core.tables import TableRow
from kb.core.text import content_words
from kb.search.embedding import Embedder
from kb.service import KnowledgeBase
from tests.reader_corpus import ReaderCorpus, cited, reader_corpus

FILES = {
    "overview.md": """# Architecture overview

## Services

| Service | What it does | Port | Language |
|---|---|---|---|
| ledgerd | Loads clean events into the warehouse | 7300 | Python |
| beacon | Alert routing in front of the pager | 7600 | Go |

## Stores

| Store | Technology | Size and layout | Used by |
|---|---|---|---|
| granary | ClickHouse 24.3 | 6 nodes in 3 shards | ledgerd, beacon |
""",
    "local-dev.md": """# Local development

## Ports

| Service | Local port |
|---|---|
| ledgerd | 17300 |
| beacon | 17600 |
""",
    "history.md": """# History

In October 2022 the ClickHouse migration was complete and Redshift was switched off.
""",
    "access.md": """# Production access

## Levels

| Level | What it allows | Longest grant |
|---|---|---|
| prod-read | Read-only access to logs and dashboards | 8 hours |
| prod-admin | Write access to the databases of one service | 2 hours |

## Security training

New joiners complete the security training within their first 14 days; prod-read is
not available until they have.
""",
    "rotation.md": """# On-call rotation

## Escalation

1. If nobody has acknowledged a page after 15 minutes, it escalates to the
   engineering manager on duty (the "EM on duty").

## Pay

- The primary is paid 350 EUR for every week on call, within 30 days.
""",
}
MODES = ["long_context", "rag"]


@pytest.fixture(scope="module")
def ingested(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Iterator[ReaderCorpus]:
    with reader_corpus(tmp_path_factory, "bridges", FILES, embedder) as done:
        yield done


@pytest.fixture(scope="module")
def texts(ingested: ReaderCorpus) -> dict[str, str]:
    return ingested.texts


@pytest.fixture(scope="module")
def kb(ingested: ReaderCorpus) -> KnowledgeBase:
    return ingested.kb


@pytest.mark.integration
@pytest.mark.parametrize("mode", MODES)
def test_an_unqualified_question_reads_the_unqualified_column(
    kb: KnowledgeBase, texts: dict[str, str], mode: str
) -> None:
    answer = kb.ask("What port does beacon listen on?", mode=mode)
    assert answer.answer.startswith("7600 — beacon — ")
    assert cited(answer, texts)[0] == (
        "overview.md",
        "| beacon | Alert routing in front of the pager | 7600 | Go |",
    )
    local = kb.ask("What local port does beacon use?", mode=mode)
    assert local.answer.startswith("17600 — beacon — Local port: 17600")


@pytest.mark.integration
@pytest.mark.parametrize("mode", MODES)
def test_how_much_is_not_answered_by_a_duration(
    kb: KnowledgeBase, texts: dict[str, str], mode: str
) -> None:
    assert kb.ask("How much is the on-call allowance for the EM on duty?", mode=mode).refused
    answer = kb.ask("How much is the primary paid for a week on call?", mode=mode)
    assert answer.answer.startswith("350 EUR — The primary is paid")
    assert cited(answer, texts)[0] == (
        "rotation.md",
        "- The primary is paid 350 EUR for every week on call, within 30 days.",
    )


@pytest.mark.integration
@pytest.mark.parametrize("mode", MODES)
def test_a_name_the_question_lacks_is_followed_once(
    kb: KnowledgeBase, texts: dict[str, str], mode: str
) -> None:
    answer = kb.ask("How many nodes does the cluster that replaced Redshift have?", mode=mode)
    assert answer.answer.startswith("6 nodes in 3 shards — ")
    (bridge_doc, bridge), (doc_id, row) = cited(answer, texts)
    assert bridge_doc == "history.md" and "Redshift was switched off" in bridge
    assert doc_id == "overview.md" and row.startswith("| granary | ClickHouse 24.3 |")


@pytest.mark.integration
@pytest.mark.parametrize("mode", MODES)
def test_a_unit_that_only_answers_a_relative_clause_is_a_bridge(
    kb: KnowledgeBase, texts: dict[str, str], mode: str
) -> None:
    question = (
        "How long can the access level that becomes available once a new joiner finishes "
        "security training be granted for at most?"
    )
    answer = kb.ask(question, mode=mode)
    assert answer.answer.startswith("8 hours — ")
    (bridge_doc, bridge), (doc_id, row) = cited(answer, texts)
    assert bridge_doc == doc_id == "access.md" and bridge.startswith("New joiners complete")
    assert row == "| prod-read | Read-only access to logs and dashboards | 8 hours |"


@pytest.mark.integration
@pytest.mark.parametrize("mode", MODES)
def test_a_row_that_answers_the_clause_leads_to_its_key_elsewhere(
    kb: KnowledgeBase, texts: dict[str, str], mode: str
) -> None:
    question = "What local port does the service that loads clean events into the warehouse use?"
    answer = kb.ask(question, mode=mode)
    assert answer.answer.startswith("17300 — ")
    assert cited(answer, texts) == [
        ("overview.md", "| ledgerd | Loads clean events into the warehouse | 7300 | Python |"),
        ("local-dev.md", "| ledgerd | 17300 |"),
    ]


@pytest.mark.integration
def test_a_header_that_qualifies_the_asked_word_names_another_column() -> None:
    production = TableRow(0, 0, ("beacon", "Alert routing", "7600"), ("Service", "What", "Port"))
    laptop = TableRow(0, 0, ("beacon", "17600"), ("Service", "Local port"))
    grant = TableRow(0, 0, ("prod-admin", "2 hours"), ("Level", "Longest grant"))
    unqualified = "What port does beacon listen on?"
    assert named_columns(production, unqualified, qualified=False) == [2]
    assert named_columns(laptop, unqualified, qualified=False) == []
    # A question with a qualifier of its own ("on a laptop") may mean the qualified column.
    assert named_columns(laptop, "What port does beacon use on a laptop?") == [1]
    assert named_columns(laptop, "What local port does beacon use?", qualified=False) == [1]
    assert named_columns(grant, "What is the longest grant of prod-admin?", qualified=False) == [1]


@pytest.mark.integration
def test_how_much_asks_for_an_amount_not_a_time() -> None:
    assert asks_amount("How much is the weekly allowance?")
    assert not asks_amount("How much time does a review take?")
    assert not asks_amount("How long is a review?")
    assert without_durations("after 15 minutes, 350 EUR").split() == ["after", ",", "350", "EUR"]


@pytest.mark.integration
def test_the_question_is_asked_again_around_the_bridging_name() -> None:
    bridge = "In October 2022 the ClickHouse migration was complete and Redshift was switched off."
    assert names(bridge, "How many nodes does the cluster that replaced Redshift have?") == [
        "ClickHouse"
    ]
    held = content_words(bridge)
    assert (
        asked_around("How many nodes does the cluster that replaced Redshift have?", held, "X")
        == "How many nodes does the cluster X have?"
    )
    office = "The headquarters is in Dublin and the second office is in Lisbon."
    assert names(office, "What is the hotel cap in the city of the second office?")[0] == ("Lisbon")


@pytest.mark.integration
def test_a_unit_answers_a_clause_when_it_holds_none_of_the_rest() -> None:
    question = "How long can the level that a new joiner gets after training be granted?"
    assert answers_a_clause(question, "A new joiner gets prod-read after training.")
    assert not answers_a_clause(question, "A new joiner gets the prod-read level after training.")
    assert not answers_a_clause(
        "Where are the credentials kept?", "The credentials are kept in a safe."
    )
    # The clause's pronoun may stand a few words before the first word a unit holds.
    far = "On which local port does the service that loads clean events into ClickHouse run?"
    assert answers_a_clause(far, "| ClickHouse (HTTP) | 18123 |")


@pytest.mark.integration
def test_a_count_leads_with_what_the_question_counts() -> None:
    kinds = asked_kinds("How many nodes does granary have?")
    assert phrase_in("ClickHouse 24.3 on 6 nodes.", "How many nodes?", kinds) == "6 nodes"
