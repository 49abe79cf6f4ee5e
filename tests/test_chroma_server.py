"""The same ingest against a real Chroma server (`chroma run` on loopback), the path
to a distributed deployment: `KB_CHROMA_URL` switches the store to `HttpClient`."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.chunking import chunk_embedding_text
from ingest.pipeline import run_ingest
from kb.core.errors import SettingsError
from kb.core.settings import Settings, load_settings
from kb.search.embedding import Embedder
from kb.store.corpus import CorpusVersion
from kb.store.vectors import VectorStore
from tests.chroma_server import ChromaServer
from tests.conftest import write_corpus


def _assert_server_matches_manifest(settings: Settings) -> set[str]:
    corpus = CorpusVersion.open(settings.data_dir)
    wanted = {cid for doc in corpus.manifest.documents for cid in doc.chunk_ids}
    store = VectorStore(settings)
    assert store.all_ids() == wanted
    assert store.count() == corpus.manifest.chunk_count
    return wanted


@pytest.mark.integration
def test_ingest_and_incremental_change_against_a_chroma_server(
    chroma_server: ChromaServer,
    tmp_path: Path,
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KB_CHROMA_URL", chroma_server.url)
    settings = load_settings(data_dir=tmp_path / "data", chunk_tokens=48, chunk_overlap=8)
    assert settings.chroma_url == chroma_server.url
    corpus = write_corpus(
        tmp_path / "corpus",
        {
            "rail.md": "# Rail\n\nTrains are booked for trips under four hours. "
            "The travel desk books them within a day.",
            "hotel.md": "# Hotels\n\nThe nightly limit is 140 euros.",
            "meals.txt": "Meals are reimbursed at 45 euros a day.",
        },
    )

    first = run_ingest(settings, corpus, embedder=embedder)
    assert first.added == 3 and first.chunks_embedded == first.chunks
    old = _assert_server_matches_manifest(settings)
    assert not (settings.data_dir / "chroma").exists()  # nothing went to embedded Chroma
    store = VectorStore(settings)
    (hotel,) = [c for c in CorpusVersion.open(settings.data_dir).chunks if c.doc_id == "hotel.md"]
    hits = store.query(embedder.embed_one(chunk_embedding_text(hotel)), 1)
    assert hits[0][0] == hotel.chunk_id and hits[0][1] > 0.99

    before = embedder.texts_embedded
    again = run_ingest(settings, corpus, embedder=embedder)
    assert embedder.texts_embedded == before and again.chunks_embedded == 0

    (corpus / "hotel.md").write_text("# Hotels\n\nThe nightly limit is 150 euros.", "utf-8")
    (corpus / "meals.txt").unlink()
    (corpus / "taxi.md").write_text("# Taxis\n\nTaxis need a receipt.", "utf-8")
    changed = run_ingest(settings, corpus, embedder=embedder)
    assert (changed.added, changed.changed, changed.removed) == (1, 1, 1)
    embedded = embedder.texts_embedded - before - changed.sentences_embedded
    assert changed.chunks_embedded == embedded == 2
    assert changed.chunks_deleted == 2
    live = _assert_server_matches_manifest(settings)
    assert len(old & live) == first.chunks - 2  # rail.md kept its chunk

    # The server persisted them: a restart on the same path serves the same chunks.
    chroma_server.stop()
    chroma_server.start()
    assert _assert_server_matches_manifest(settings) == live


@pytest.mark.integration
def test_a_malformed_chroma_url_is_a_settings_error(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data", chroma_url="localhost:8000")
    with pytest.raises(SettingsError, match="KB_CHROMA_URL must look like http://host:port"):
        VectorStore(settings)
