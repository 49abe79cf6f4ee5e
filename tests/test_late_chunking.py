"""Reader unit vectors pooled from the chunks' forward passes
(kb/backends/extractive/late_chunking.py), with the real bundled model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ingest.pipeline import run_ingest
from kb.backends.extractive.index_builder import SentenceIndexes
from kb.core.settings import load_settings
from kb.search.embedding import Embedder
from kb.store.corpus import CorpusVersion, Layout
from tests.conftest import write_corpus

SENTENCES = [
    "Trains are booked for trips under four hours.",
    "The nightly hotel limit in Lisbon is 140 euros, breakfast included.",
    "Kettles are descaled every second Tuesday by the facilities team.",
]


def _spans(text: str, parts: list[str]) -> list[tuple[int, int]]:
    return [(text.index(p), text.index(p) + len(p)) for p in parts]


@pytest.mark.integration
def test_the_text_vector_from_token_embeddings_is_the_models_own(embedder: Embedder) -> None:
    texts = [" ".join(SENTENCES), SENTENCES[0]]
    vectors, _ = embedder.embed_with_spans(texts, [[], []])
    assert np.abs(vectors - embedder.embed(texts)).max() < 1e-5


@pytest.mark.integration
def test_each_pooled_span_resembles_its_own_sentence_most(embedder: Embedder) -> None:
    text = "Company handbook\n" + " ".join(SENTENCES)
    _, (pooled,) = embedder.embed_with_spans([text], [_spans(text, SENTENCES)], [16])
    assert pooled.shape == (3, 384)
    assert np.allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-5)
    similarity = pooled @ embedder.embed(SENTENCES).T
    # Context bleeds in (the cost in reader accuracy the README gives), but each span
    # stays close to its own sentence and, on average, closer than to the others.
    assert (np.diag(similarity) > 0.5).all()
    assert np.diag(similarity).mean() > similarity[~np.eye(3, dtype=bool)].mean() + 0.15


@pytest.mark.integration
def test_a_span_past_the_models_length_limit_gets_no_vector(embedder: Embedder) -> None:
    filler = " ".join(["The meeting room on floor three seats twelve people."] * 40)
    text = f"{SENTENCES[0]} {filler} {SENTENCES[1]}"
    _, (pooled,) = embedder.embed_with_spans([text], [_spans(text, [SENTENCES[0], SENTENCES[1]])])
    assert pooled[0].any() and not pooled[1].any()  # the model saw 256 tokens only


@pytest.mark.integration
def test_a_pooled_ingest_embeds_only_units_no_chunk_held_whole(
    tmp_path: Path, embedder: Embedder
) -> None:
    long = " ".join(f"Rule {n} of the office: desks are cleared on Friday." for n in range(40))
    corpus = write_corpus(
        tmp_path / "docs",
        {"travel.md": "# Travel\n\n" + " ".join(SENTENCES), "office.md": f"# Office\n\n{long}"},
    )
    separate = load_settings(data_dir=tmp_path / "separate", reader_vectors="separate")
    default = run_ingest(separate, corpus, embedder=embedder)
    assert default.sentences_pooled == 0 and default.sentences_embedded > 0

    settings = load_settings(data_dir=tmp_path / "data")  # pooled: the default
    before = embedder.texts_embedded
    summary = run_ingest(settings, corpus, embedder=embedder)
    assert summary.sentences_pooled > default.sentences_embedded / 2
    # Every text the model saw is a chunk or a unit no chunk held whole: all counted.
    assert embedder.texts_embedded - before == summary.chunks_embedded + summary.sentences_embedded
    version = CorpusVersion.open(settings.data_dir)
    index = SentenceIndexes(Layout(settings.data_dir)).load(version.version)
    assert index is not None
    assert len(index) == summary.sentences_pooled + summary.sentences_embedded
    norms = np.linalg.norm(np.asarray(index.vectors, dtype=np.float32), axis=1)
    assert np.allclose(norms, 1.0, atol=1e-2)  # float16 on disk
