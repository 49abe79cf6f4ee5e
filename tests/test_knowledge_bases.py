"""Named knowledge bases with real parts: derived settings, the CLI's `--kb`, the
in-place take-over of a single-corpus data dir, lazy loading with an LRU bound, and a
question across knowledge bases routed per base within one budget."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from api.cli import main
from ingest.pipeline import run_ingest
from kb.across import ask_across
from kb.core.errors import InvalidRequestError, KnowledgeBaseNotFoundError, SettingsError
from kb.core.settings import load_settings
from kb.keys import KeyStore
from kb.knowledge_bases import KnowledgeBases, check_name, record_source, root_settings
from kb.search.embedding import Embedder
from kb.service import KnowledgeBase
from kb.store.vectors import forget_embedded_clients
from tests.chroma_server import ChromaServer
from tests.conftest import write_corpus
from tests.live_server import HANDBOOK, make_settings

TRAVEL = {
    "travel/hotels.md": "# Hotels\n\nThe nightly hotel cap in Lisbon is 180 euros.\n"
    "Breakfast is included in every booking made through the travel desk.\n",
    "travel/trains.md": "# Trains\n\nFirst class is allowed on trains longer than four hours.\n",
}
HOTEL_LISBON = "What is the hotel cap in Lisbon?"
LAB = {
    "lab/freezers.md": "# Freezers\n\nThe minus eighty freezer in room 4 is checked every Monday.\n"
    "An alarm on it pages the lab manager within two minutes.\n",
    "lab/visitors.md": "# Visitors\n\n"
    "The nightly hotel cap for lab visitors in Basel is 150 francs.\n",
}


def ingest_named(root: Path, name: str, files: dict[str, str], embedder: Embedder) -> Path:
    """Ingest `files` into knowledge base `name` under `root/data`, as `kb ingest --kb` does."""
    corpus = write_corpus(root / "corpora" / name, dict(files))
    settings = make_settings(root, data_dir=root / "data", knowledge_base=name)
    record_source(settings, corpus)
    run_ingest(settings, corpus, embedder=embedder)
    return corpus


# ---- names and settings ------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("name", ["", "UPPER", "-lead", "trail-", "a b", "../x", "x" * 33, "é"])
def test_bad_names_are_refused_with_the_rule(name: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequestError, match="lowercase letters"):
        check_name(name)
    with pytest.raises(SettingsError, match="KB_KNOWLEDGE_BASE"):
        load_settings(data_dir=tmp_path, knowledge_base=name)


@pytest.mark.integration
def test_a_named_base_derives_its_folder_and_collection(tmp_path: Path) -> None:
    default = load_settings(data_dir=tmp_path)
    named = load_settings(data_dir=tmp_path, knowledge_base="travel")
    assert (default.data_dir, default.collection) == (tmp_path, "kb_chunks")
    assert (named.data_dir, named.collection) == (tmp_path / "kbs" / "travel", "kb_chunks-travel")
    assert named.kb_root == tmp_path and named.keys_path() == tmp_path / "keys.json"
    again = root_settings(named)  # and back
    assert (again.data_dir, again.collection, again.kb_name) == (tmp_path, "kb_chunks", "default")
    assert load_settings(data_dir=tmp_path, knowledge_base="default").data_dir == tmp_path


# ---- the CLI ----------------------------------------------------------------------------


@pytest.mark.integration
def test_cli_ingest_check_and_list_per_knowledge_base(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    travel = write_corpus(tmp_path / "travel", dict(TRAVEL))
    assert main(["ingest", str(travel), "--kb", "travel", "--data-dir", str(data), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["documents"] == 2 and summary["chunks_embedded"] > 0
    assert (data / "kbs" / "travel" / "current.json").is_file()
    assert not (data / "current.json").exists()  # the default one is untouched
    record = json.loads((data / "kbs" / "travel" / "kb.json").read_text())
    assert record["source"] == str(travel.resolve())

    assert main(["check", "--kb", "travel", "--data-dir", str(data)]) == 0
    assert "every chunk has its vector" in capsys.readouterr().out
    assert main(["ask", "--local", "--kb", "travel", "--data-dir", str(data), "--json",
                 "What is the hotel cap in Lisbon?"]) == 0  # fmt: skip
    answer = json.loads(capsys.readouterr().out)
    assert "180 euros" in answer["answer"] and answer["route"]["path"] == "long_context"
    assert main(["kbs", "--data-dir", str(data)]) == 0
    listed = capsys.readouterr().out
    assert listed.startswith("travel: 2 documents") and "auto: long_context" in listed

    assert main(["ingest", str(travel), "--kb", "Bad Name", "--data-dir", str(data)]) == 2
    assert "Invalid knowledge base name 'Bad Name'" in capsys.readouterr().err


@pytest.mark.integration
def test_an_existing_data_dir_is_taken_over_with_nothing_re_embedded(
    tmp_path: Path, embedder: Embedder
) -> None:
    """A single-corpus data dir written before knowledge bases is the default one:
    same folder, same collection, and a re-ingest embeds 0 chunks."""
    corpus = write_corpus(tmp_path / "handbook", dict(HANDBOOK))
    old = make_settings(tmp_path, data_dir=tmp_path / "data")  # today's single-corpus layout
    first = run_ingest(old, corpus, embedder=embedder)
    assert first.chunks_embedded > 0
    ingest_named(tmp_path, "travel", TRAVEL, embedder)  # a named one beside it

    again = run_ingest(old, corpus, embedder=embedder)
    assert (again.chunks_embedded, again.corpus_version) == (0, first.corpus_version)
    with KnowledgeBase(old, embedder=embedder) as default:
        bases = KnowledgeBases(old, default, embedder=embedder)
        assert bases.names() == ["default", "travel"]
        info = bases.describe("default")
        assert (info.chunks, info.corpus_version) == (first.chunks, first.corpus_version)
        answer = default.ask("When are production deploys frozen?")
    assert "Friday 15:00" in answer.answer


# ---- lazy loading, the LRU bound, delete --------------------------------------------------


@pytest.mark.integration
def test_bases_load_lazily_and_the_least_recently_used_is_closed(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chromadb.api.shared_system_client import SharedSystemClient

    import kb.knowledge_bases

    monkeypatch.setattr(kb.knowledge_bases, "UNLOAD_GRACE_S", 0.0)
    ingest_named(tmp_path, "travel", TRAVEL, embedder)
    ingest_named(tmp_path, "lab", LAB, embedder)
    forget_embedded_clients()  # as if `kb ingest` had run in its own process
    settings = make_settings(tmp_path, data_dir=tmp_path / "data", max_loaded_kbs=1)
    travel_vectors = str(tmp_path / "data" / "kbs" / "travel" / "chroma")
    with KnowledgeBase(settings, embedder=embedder) as default:
        bases = KnowledgeBases(settings, default, embedder=embedder)
        assert bases.loaded() == []  # nothing until asked
        assert bases.describe("lab").loaded is False  # describing does not load
        travel = bases.get("travel")
        assert "180 euros" in travel.ask("What is the hotel cap in Lisbon?", mode="rag").answer
        assert bases.loaded() == ["travel"] and travel.loaded_store() is not None
        assert travel_vectors in SharedSystemClient._identifier_to_system
        lab = bases.get("lab")
        assert "every Monday" in lab.ask("When is the minus eighty freezer checked?").answer
        assert bases.loaded() == ["lab"]  # travel was closed to stay within 1
        deadline = time.monotonic() + 10
        while travel_vectors in SharedSystemClient._identifier_to_system:
            assert time.monotonic() < deadline, "the evicted base kept its vector index"
            time.sleep(0.05)
        reopened = bases.get("travel")
        assert reopened is not travel and bases.loaded() == ["travel"]
        assert "180 euros" in reopened.ask("What is the hotel cap in Lisbon?", mode="rag").answer

        bases.delete("lab")
        assert bases.names() == ["travel"] and not (tmp_path / "data" / "kbs" / "lab").exists()
        with pytest.raises(KnowledgeBaseNotFoundError, match="No knowledge base named lab"):
            bases.get("lab")
        with pytest.raises(InvalidRequestError, match="cannot be deleted"):
            bases.delete("default")


# ---- a question across knowledge bases --------------------------------------------------


@pytest.mark.integration
def test_a_question_across_bases_routes_each_within_the_budget_and_cites_both(
    tmp_path: Path, embedder: Embedder
) -> None:
    ingest_named(tmp_path, "travel", TRAVEL, embedder)
    ingest_named(tmp_path, "lab", LAB, embedder)
    probe = make_settings(tmp_path, data_dir=tmp_path / "data", answer_reserve=600)
    with KnowledgeBase(probe, embedder=embedder) as default:
        bases = KnowledgeBases(probe, default, embedder=embedder)
        question = "What is the nightly hotel cap?"  # each base has its own
        travel_needs = bases.get("travel").sizes(bases.get("travel").corpus(), question).needed
        lab_needs = bases.get("lab").sizes(bases.get("lab").corpus(), question).needed
    # A budget where travel fits, but lab no longer fits in what travel leaves.
    budget = travel_needs + lab_needs - 1
    assert budget >= 1_000 and travel_needs <= budget
    settings = make_settings(
        tmp_path, data_dir=tmp_path / "data", answer_reserve=600, long_context_budget=budget
    )
    with KnowledgeBase(settings, embedder=embedder) as default:
        bases = KnowledgeBases(settings, default, embedder=embedder)
        joined = ask_across([(n, bases.get(n)) for n in ("travel", "lab")], question)
    travel, lab = joined.parts
    assert travel.answer.route.path == "long_context"
    assert "tokens of the budget were left" in travel.answer.route.reason
    assert lab.answer.route.path == "rag"
    assert "only" in lab.answer.route.reason and "so it retrieves" in lab.answer.route.reason
    assert {c.kb for c in joined.citations} == {"travel", "lab"}
    assert "travel: " in joined.answer and "lab: " in joined.answer
    assert "180 euros" in joined.answer and "150 francs" in joined.answer
    numbers = [c.citation.number for c in joined.citations]
    assert numbers == list(range(1, len(numbers) + 1))  # unique across bases
    total = sum(p.answer.usage.total_input_tokens for p in joined.parts)
    assert joined.usage.total_input_tokens == total > 0
    with pytest.raises(InvalidRequestError, match="1 to 8"):
        ask_across([], question)


@pytest.mark.integration
def test_cli_keys_are_printed_once_and_stored_as_salted_hashes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    assert main(["keys", "create", "--kb", "travel", "--ingest", "--data-dir", data]) == 0
    out = capsys.readouterr()
    key = out.out.strip()
    assert key.startswith("kb-") and "reads travel; ingest" in out.err
    stored = (tmp_path / "data" / "keys.json").read_text()
    assert key.split(".")[1] not in stored and key not in stored
    store = KeyStore(tmp_path / "data" / "keys.json")
    access = store.verify(key)
    assert access is not None and access.can_ingest("travel") and not access.can_read("lab")
    assert store.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert main(["keys", "list", "--data-dir", data]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["kbs"] == ["travel"] and "hash" not in listed
    assert main(["keys", "delete", listed["id"], "--data-dir", data]) == 0
    assert store.verify(key) is None  # revoked: the file changed
    assert main(["keys", "create", "--kb", "Bad Name", "--data-dir", data]) == 2


@pytest.mark.integration
def test_on_a_chroma_server_each_base_has_its_own_collection(
    chroma_server: ChromaServer, tmp_path: Path, embedder: Embedder
) -> None:
    import chromadb

    root = tmp_path / "data"
    for name, files in (("travel", TRAVEL), ("lab", LAB)):
        corpus = write_corpus(tmp_path / name, dict(files))
        settings = make_settings(
            tmp_path, data_dir=root, knowledge_base=name, chroma_url=chroma_server.url
        )
        record_source(settings, corpus)
        run_ingest(settings, corpus, embedder=embedder)
    host, port = chroma_server.url.removeprefix("http://").split(":")
    client = chromadb.HttpClient(host=host, port=int(port))
    names = {c.name for c in client.list_collections()}
    assert {"kb_chunks-travel", "kb_chunks-lab"} <= names
    settings = make_settings(tmp_path, data_dir=root, chroma_url=chroma_server.url)
    with KnowledgeBase(settings, embedder=embedder) as default:
        bases = KnowledgeBases(settings, default, embedder=embedder)
        assert "180 euros" in bases.get("travel").ask(HOTEL_LISBON, mode="rag").answer
        bases.delete("travel")
    assert "kb_chunks-travel" not in {c.name for c in client.list_collections()}
    assert "kb_chunks-lab" in {c.name for c in client.list_collections()}
