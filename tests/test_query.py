"""The query layer on real parts: a small corpus in real Chroma, the real model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.pipeline import run_ingest
from kb.backends.extractive import ExtractiveBackend
from kb.backends.extractive.rescoring import SHORTLIST
from kb.backends.prompts import INSTRUCTIONS_LONG_CONTEXT
from kb.core.errors import InvalidRequestError, NotIngestedError
from kb.core.settings import Settings, load_settings
from kb.search.embedding import Embedder
from kb.service import KnowledgeBase
from tests.conftest import write_corpus

DOCS = {
    "oncall.md": "# On-call\n\nThe on-call engineer must acknowledge a page within 5 minutes. "
    "Pages that are not acknowledged escalate to the secondary after 15 minutes.\n\n"
    "Handover happens every Monday at 10:00 in the #ops channel.",
    "deploys.md": "# Deploys\n\nProduction deploys run through the Conveyor pipeline. "
    "A deploy is frozen on Fridays after 14:00. Rollbacks use the command conveyor revert "
    "and take about four minutes.",
    "retention.txt": "Data retention\n\nRaw event logs are kept for 30 days. Aggregated "
    "metrics are kept for 13 months. Customer exports are deleted after 7 days.",
    "travel.rst": "Travel\n======\n\nEconomy class is the default for flights under six hours. "
    "Hotel nights are reimbursed up to 180 euros in Berlin.",
}


@pytest.fixture(scope="module")
def corpus_settings(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Settings:
    base = tmp_path_factory.mktemp("query")
    root = write_corpus(base / "docs", DOCS)
    settings = load_settings(data_dir=base / "data")
    run_ingest(settings, root, embedder=embedder)
    settings.corpus_dir = root
    return settings


@pytest.fixture
def base(corpus_settings: Settings, embedder: Embedder) -> KnowledgeBase:
    return KnowledgeBase(corpus_settings, embedder=embedder)


@pytest.mark.integration
def test_rag_answer_cites_the_sentence_that_answers(base: KnowledgeBase) -> None:
    answer = base.ask("How long are raw event logs kept?", mode="rag")
    assert not answer.refused
    assert answer.route.path == "rag"
    assert "30 days" in answer.answer
    cited = answer.citations[0]
    assert cited.doc_id == "retention.txt"
    # The citation's span is exactly the cited sentence in the document's text.
    document = (base.settings.corpus_dir / "retention.txt").read_text()  # type: ignore[operator]
    assert document[cited.start : cited.end] == cited.text
    assert "30 days" in cited.text
    assert [p.number for p in answer.retrieved] == list(range(1, len(answer.retrieved) + 1))


@pytest.mark.integration
def test_long_context_prefix_is_byte_identical_across_questions(base: KnowledgeBase) -> None:
    from kb.backends.prompts import long_context_prompt

    corpus = base.corpus()
    first = long_context_prompt(corpus, "When is handover?")
    second = long_context_prompt(corpus, "What is the hotel limit in Berlin?")
    assert first.prefix.encode() == second.prefix.encode()
    assert first.prefix.startswith(INSTRUCTIONS_LONG_CONTEXT)
    for ref, doc in enumerate(corpus.documents, start=1):
        assert doc.doc_id in DOCS and doc.ref == ref
        assert first.context[doc.start : doc.end] == DOCS[doc.doc_id].strip()
        assert first.context[: doc.start].endswith("\n") and f"§{ref}" in first.context
    assert first.cache_key == second.cache_key == f"kb-{corpus.version}"


@pytest.mark.integration
def test_prefix_changes_when_a_document_changes(tmp_path: Path, embedder: Embedder) -> None:
    root = write_corpus(tmp_path / "docs", DOCS)
    settings = load_settings(data_dir=tmp_path / "data")
    run_ingest(settings, root, embedder=embedder)
    from kb.backends.prompts import long_context_prompt

    with KnowledgeBase(settings, embedder=embedder) as base:
        before = long_context_prompt(base.corpus(), "q").prefix
        (root / "travel.rst").write_text(DOCS["travel.rst"].replace("180", "210"))
        run_ingest(settings, root, embedder=embedder)
        after = long_context_prompt(base.corpus(), "q").prefix
    assert before != after
    assert "210 euros" in after and "180 euros" in before


@pytest.mark.integration
def test_extractive_second_long_context_question_reads_its_cache(
    corpus_settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    settings = corpus_settings.model_copy(update={"data_dir": corpus_settings.data_dir})
    with KnowledgeBase(settings, embedder=embedder) as base:
        corpus_tokens = base.corpus().corpus_tokens
        first = base.ask("When does handover happen?", mode="long_context")
        before = embedder.texts_embedded
        second = base.ask("How much is a hotel night in Berlin?", mode="long_context")
        embedded = embedder.texts_embedded - before
    assert first.route.path == second.route.path == "long_context"
    if first.usage.cache_write_tokens:  # a fresh index was written by this question
        assert first.usage.cache_write_tokens == corpus_tokens
    assert second.usage.cache_read_tokens == corpus_tokens
    assert second.usage.cache_write_tokens == 0
    assert embedded == 1  # only the question: the corpus was not re-encoded
    assert "180 euros" in second.answer


@pytest.mark.integration
def test_extractive_cache_survives_a_new_process(
    corpus_settings: Settings, embedder: Embedder
) -> None:
    with KnowledgeBase(corpus_settings, embedder=embedder) as base:
        base.ask("When does handover happen?", mode="long_context")
    # A new KnowledgeBase (as a new process would) loads the index from disk.
    with KnowledgeBase(corpus_settings, embedder=embedder) as fresh:
        assert isinstance(fresh.backend, ExtractiveBackend)
        before = embedder.texts_embedded
        answer = fresh.ask("Which pipeline runs production deploys?", mode="long_context")
        # The question, and the pooled units it shortlisted (embedded once per
        # process, `rescoring`): the corpus was not encoded again.
        shortlisted = fresh.backend.own_vectors.embedded
        assert 0 < shortlisted <= SHORTLIST
        assert embedder.texts_embedded - before == 1 + shortlisted
    assert answer.usage.cache_read_tokens > 0 and answer.usage.cache_write_tokens == 0
    assert "Conveyor" in answer.answer


@pytest.mark.integration
def test_refuses_when_nothing_answers(base: KnowledgeBase) -> None:
    answer = base.ask("What is the boiling point of liquid nitrogen on Jupiter?", mode="rag")
    assert answer.refused
    assert answer.citations == []
    assert "cannot answer" in answer.answer


@pytest.mark.integration
def test_self_route_escalates_only_on_a_refusal(base: KnowledgeBase) -> None:
    answered = base.ask("How long are customer exports kept before deletion?", mode="self_route")
    assert answered.route.path == "rag" and not answered.route.fallback
    refused = base.ask(
        "What is the boiling point of liquid nitrogen on Jupiter?", mode="self_route"
    )
    assert refused.route.fallback and refused.route.path == "long_context"
    assert "escalated to long context" in refused.route.reason
    # Both calls are counted: the retrieval attempt and the long-context one.
    assert refused.usage.input_tokens > 0
    assert refused.usage.cache_read_tokens + refused.usage.cache_write_tokens > 0


@pytest.mark.integration
def test_auto_retrieves_when_the_budget_is_too_small(
    corpus_settings: Settings, embedder: Embedder
) -> None:
    small = corpus_settings.model_copy(update={"long_context_budget": 1_000})
    with KnowledgeBase(small, embedder=embedder) as base:
        answer = base.ask("How long are raw event logs kept?")
        assert answer.route.mode == "auto" and answer.route.path == "rag"
        assert answer.route.numbers["limit_tokens"] == 1_000
        with pytest.raises(InvalidRequestError, match="does not fit"):
            base.ask("How long are raw event logs kept?", mode="long_context")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("question", "mode", "top_k", "message"),
    [
        ("   ", None, None, "question is empty"),
        ("x" * 5_000, None, None, "limit is 4,000"),
        ("ok?", "fastest", None, "Unknown mode"),
        ("ok?", None, 0, "top_k must be between 1 and 100"),
    ],
)
def test_bad_requests_are_clear_errors(
    base: KnowledgeBase, question: str, mode: str | None, top_k: int | None, message: str
) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        base.ask(question, mode=mode, top_k=top_k)


@pytest.mark.integration
def test_asking_before_any_ingest_says_what_to_do(settings: Settings, embedder: Embedder) -> None:
    with (
        KnowledgeBase(settings, embedder=embedder) as base,
        pytest.raises(NotIngestedError, match="kb ingest"),
    ):
        base.ask("anything?")


@pytest.mark.integration
def test_kb_ask_json(corpus_settings: Settings) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "api.cli",
            "ask",
            "When is the deploy freeze?",
            "--mode",
            "rag",
            "--json",
            "--data-dir",
            str(corpus_settings.data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"answer", "refused", "citations", "route", "usage", "cost_usd"} <= data.keys()
    assert data["route"]["mode"] == "rag" and data["route"]["reason"]
    assert "Fridays after 14:00" in data["answer"]
    citation = data["citations"][0]
    assert {"doc_id", "title", "source", "start", "end", "text"} <= citation.keys()
    assert citation["doc_id"] == "deploys.md"
    assert data["cost_usd"] == 0.0


@pytest.mark.integration
def test_kb_ask_reports_errors_without_a_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "ask", "anything?", "--data-dir", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "kb ingest" in result.stderr
