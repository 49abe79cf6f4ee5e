"""kb as a library: the public names of `kb` (README, "Using kb as a library") are
enough to ingest, ask, follow up, stream, search and list documents, on real parts."""

from __future__ import annotations

from pathlib import Path

import pytest

import kb
from ingest import run_ingest
from kb import Answer, InvalidRequestError, KnowledgeBase, Turn, load_settings
from kb.backends import StreamDelta
from kb.search import Embedder
from tests.conftest import write_corpus

DOCS: dict[str, str | bytes] = {
    "kettle.md": "# Kettles\n\nThe office kettle is descaled every second Tuesday.",
    "bikes.md": "# Bikes\n\nBicycles are parked in the basement rack behind door 4.",
}


@pytest.fixture
def base(tmp_path: Path, embedder: Embedder) -> KnowledgeBase:
    settings = load_settings(data_dir=tmp_path / "data")
    run_ingest(settings, write_corpus(tmp_path / "docs", DOCS), embedder=embedder)
    return KnowledgeBase(settings, embedder=embedder)


@pytest.mark.integration
def test_the_facade_asks_searches_and_lists(base: KnowledgeBase) -> None:
    with base:
        answer = base.ask("Where are bicycles parked?")
        assert "basement rack" in answer.answer
        assert [c.doc_id for c in answer.citations] == ["bikes.md"]
        assert answer.route.path == "long_context"  # two documents fit the budget

        events = list(base.stream("Where are bicycles parked?", mode="rag"))
        final = events[-1]
        assert isinstance(final, Answer) and final.route.path == "rag"
        assert all(isinstance(e, StreamDelta) for e in events[:-1])

        found = base.search("descaling the kettle", top_k=1)
        assert [p.doc_id for p in found.passages] == ["kettle.md"]
        assert found.corpus_version == base.corpus().version

        listed = base.documents(offset=1, limit=5)
        assert (listed.total, [d.doc_id for d in listed.documents]) == (2, ["kettle.md"])
        assert base.document_text("kettle.md") == DOCS["kettle.md"]  # as ingested
        assert base.document_text("nope.md") is None


@pytest.mark.integration
def test_a_conversation_is_asked_through_the_same_call(base: KnowledgeBase) -> None:
    turns = [
        Turn("user", "How often is the office kettle descaled?"),
        Turn("assistant", "Every second Tuesday."),
        Turn("user", "Where are bicycles parked?"),  # a new topic: asked as written
    ]
    answer = base.ask(turns, mode="rag")
    assert "basement rack" in answer.answer and answer.standalone_question is None
    # A follow-up that leans on the conversation: the offline reader cannot rewrite it,
    # so retrieval gets the recent user turns, latest last.
    follow_up = base.ask([*turns, Turn("assistant", answer.answer), Turn("user", "And then?")])
    assert follow_up.standalone_method == "recent_turns"
    assert follow_up.standalone_question == (
        "How often is the office kettle descaled? Where are bicycles parked? And then?"
    )
    with pytest.raises(InvalidRequestError, match="empty"):
        base.search("   ")


@pytest.mark.fast
def test_the_public_names_are_the_documented_ones() -> None:
    for name in ("KnowledgeBase", "Settings", "load_settings", "Answer", "Turn", "KBError"):
        assert name in kb.__all__ and hasattr(kb, name)
    assert issubclass(kb.InvalidRequestError, kb.KBError)
