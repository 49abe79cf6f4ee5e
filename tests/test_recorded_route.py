"""`auto` follows a report's recorded recommendation while the backend is the one it
measured and the corpus stays within the drift share; past it, or on another backend,
the size/cost rule decides and the route says why. Real ingest, Chroma and router; a
scripted backend where a paid provider would stand."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.pipeline import run_ingest
from kb.core.settings import load_settings
from kb.recorded import RECORD_FILE, load_recommendation, measure_drift, record_recommendation
from kb.search.embedding import Embedder
from kb.service import KnowledgeBase
from kb.store.corpus import CorpusVersion
from tests.conftest import write_corpus
from tests.scripted import ScriptedBackend

DOCS = {
    f"{name}.md": f"# {name.title()}\n\n" + " ".join([sentence] * 6)
    for name, sentence in {
        "deploys": "Deploys go out on Tuesdays after the checks pass.",
        "travel": "Train travel is preferred for trips under 600 km.",
        "security": "Secrets rotate every 90 days in the keyring vault.",
        "oncall": "The primary on-call engineer hands over on Mondays.",
        "glossary": "Lantern is the dashboard service; Sieve consumes events.",
    }.items()
}
MAX_DRIFT = 0.3  # stated for this five-document corpus: one edited document is 20%


@pytest.mark.integration
def test_auto_follows_a_recorded_recommendation_until_drift_or_another_backend(
    tmp_path: Path, embedder: Embedder
) -> None:
    root = write_corpus(tmp_path / "docs", DOCS)
    settings = load_settings(data_dir=tmp_path / "data").model_copy(
        update={"recommendation_max_drift": MAX_DRIFT}
    )
    run_ingest(settings, root, embedder=embedder)

    def auto(model: str = "test") -> tuple[str, str]:
        with KnowledgeBase(settings, backend=ScriptedBackend(model=model), embedder=embedder) as kb:
            route = kb.ask("When do deploys go out?", mode="auto").route
        return route.path, route.reason

    # The corpus fits, so the size/cost rule says long context.
    assert auto()[0] == "long_context"
    manifest = CorpusVersion.open(settings.data_dir).manifest
    record_recommendation(
        settings.data_dir,
        manifest,
        path="rag",
        backend="scripted:test",
        report="'handbook' (reports/x)",
        numbers={"rag_accuracy": 0.9, "long_context_accuracy": 0.7},
    )
    path, reason = auto()
    assert path == "rag"
    assert reason.startswith(
        "following the recorded recommendation: report 'handbook' (reports/x) recommended rag "
        f"with scripted:test on corpus version {manifest.corpus_version}; 0 document(s) changed"
    )
    assert "rag_accuracy 0.9" in reason

    # A small edit: one document of five (20% <= 30%), still followed.
    (root / "travel.md").write_text(DOCS["travel.md"] + "\n\nVisas are booked by HR.\n")
    run_ingest(settings, root, embedder=embedder)
    path, reason = auto()
    assert path == "rag" and "1 document(s) changed since (20.0% of documents" in reason

    # Another backend: the record does not apply.
    path, reason = auto(model="other")
    assert path == "long_context"
    assert (
        "recommended rag for backend scripted:test, not scripted:other, so the size/cost "
        "rule decides" in reason
    )

    # A second edited document: 40% of the documents, past the 30% limit.
    (root / "security.md").write_text(DOCS["security.md"] + "\n\nKeys are 4096 bits.\n")
    run_ingest(settings, root, embedder=embedder)
    path, reason = auto()
    assert path == "long_context"
    assert "2 document(s) changed since (40.0% of documents" in reason
    assert "past the 30% drift limit, so the size/cost rule decides" in reason


@pytest.mark.integration
def test_drift_counts_added_changed_and_removed_documents(
    tmp_path: Path, embedder: Embedder
) -> None:
    root = write_corpus(tmp_path / "docs", DOCS)
    settings = load_settings(data_dir=tmp_path / "data")
    run_ingest(settings, root, embedder=embedder)
    before = CorpusVersion.open(settings.data_dir).manifest
    record_recommendation(
        settings.data_dir, before, path="long_context", backend="b", report="r", numbers={}
    )
    recorded = load_recommendation(settings.data_dir)
    assert recorded is not None and recorded.path == "long_context"
    (root / "glossary.md").unlink()
    (root / "new.md").write_text("# New\n\nA new page about the build cache.\n")
    run_ingest(settings, root, embedder=embedder)
    drift = measure_drift(recorded, CorpusVersion.open(settings.data_dir).manifest)
    assert drift.documents == 2 and drift.documents_share == 0.4
    glossary = next(d for d in before.documents if d.doc_id == "glossary.md")
    assert drift.tokens_share > glossary.tokens / before.corpus_tokens
    (settings.data_dir / RECORD_FILE).write_text("not json")
    assert load_recommendation(settings.data_dir) is None
