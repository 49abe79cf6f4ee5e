"""An index of pooled unit vectors (the default ingest) read with its shortlist re-scored
by the units' own vectors (kb/backends/extractive/rescoring.py), on real parts: the
bundled model, the shipped handbook and its questions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from ingest.pipeline import run_ingest
from kb.backends.extractive import ExtractiveBackend
from kb.backends.extractive.index_builder import SentenceIndexes, corpus_documents
from kb.backends.extractive.reading import Reading
from kb.backends.extractive.rescoring import SHORTLIST, OwnUnitVectors, unit_text
from kb.core.models import Answer
from kb.core.settings import Settings, load_settings
from kb.report import load_questions, score_answer
from kb.search.embedding import Embedder
from kb.service import KnowledgeBase
from kb.store.corpus import CorpusVersion, Layout

ROOT = Path(__file__).resolve().parents[1]
HANDBOOK = ROOT / "corpora" / "handbook"
QUESTIONS = ROOT / "corpora" / "handbook.questions.jsonl"


@dataclass(frozen=True)
class Ingested:
    pooled: Settings
    own: Settings


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Ingested:
    """The handbook ingested twice: by default (pooled unit vectors) and with every unit
    embedded alone."""
    base = tmp_path_factory.mktemp("rescoring")
    pooled = load_settings(data_dir=base / "pooled")
    own = load_settings(data_dir=base / "own", reader_vectors="separate")
    assert pooled.reader_vectors == "pooled"  # the default
    for settings in (pooled, own):
        run_ingest(settings, HANDBOOK, embedder=embedder)
    return Ingested(pooled, own)


def whole_reading(settings: Settings) -> Reading:
    """What the reader reads on the long-context path: every unit of the version."""
    corpus = CorpusVersion.open(settings.data_dir)
    index = SentenceIndexes(Layout(settings.data_dir)).load(corpus.version)
    assert index is not None
    docs = corpus_documents(corpus)
    return Reading(
        index,
        np.arange(len(index)),
        {d.doc_id: [(0, d.text)] for d in docs},
        {d.doc_id: (d.title, d.doc_id) for d in docs},
    )


@pytest.mark.integration
def test_the_default_ingest_pools_and_marks_the_vectors_not_the_units_own(
    ingested: Ingested,
) -> None:
    pooled, own = whole_reading(ingested.pooled), whole_reading(ingested.own)
    assert len(pooled.index) == len(own.index) > 900
    assert np.array_equal(pooled.index.text_hash, own.index.text_hash)
    assert own.index.own.all()
    # A unit no embedded chunk held whole is embedded alone, and so marked its own.
    assert 0.9 * len(pooled.index) < (~pooled.index.own).sum() < len(pooled.index)


@pytest.mark.integration
def test_every_unit_text_is_rebuilt_as_the_ingest_embedded_it(ingested: Ingested) -> None:
    reading = whole_reading(ingested.pooled)
    rebuilt = [unit_text(reading, row) for row in range(len(reading.index))]
    assert all(text is not None for text in rebuilt)


@pytest.mark.integration
def test_the_shortlist_gets_the_units_own_similarity_and_the_rest_stays_below(
    ingested: Ingested, embedder: Embedder
) -> None:
    reading, own = whole_reading(ingested.pooled), whole_reading(ingested.own)
    question = embedder.embed_one("How long does the peak change freeze last?")
    pooled_similarity = np.clip(reading.index.dense @ question, 0, 1)
    exact_similarity = np.clip(own.index.dense @ question, 0, 1)
    own_vectors = OwnUnitVectors(embedder)
    out = own_vectors.similarity(reading, pooled_similarity, pooled_similarity, question)

    shortlist = np.argsort(-pooled_similarity, kind="stable")[:SHORTLIST]
    assert own_vectors.embedded == SHORTLIST
    # The units' own vectors, as the separate ingest stored them (float16 on disk).
    assert np.abs(out[shortlist] - exact_similarity[shortlist]).max() < 5e-3
    others = np.setdiff1d(np.flatnonzero(~reading.index.own), shortlist)
    assert out[others].max() <= out[shortlist].min() + 1e-6
    assert not np.allclose(out[others], pooled_similarity[others])  # moved, not left
    kept = np.flatnonzero(reading.index.own)
    assert np.array_equal(out[kept], pooled_similarity[kept])

    again = own_vectors.similarity(reading, pooled_similarity, pooled_similarity, question)
    assert own_vectors.embedded == SHORTLIST  # remembered: nothing embedded again
    assert np.array_equal(again, out)


@pytest.mark.integration
def test_a_passage_reading_rescores_its_own_rows(ingested: Ingested, embedder: Embedder) -> None:
    """The retrieval path reads some documents' passages: positions in `reading.rows`
    are not index rows, and a unit of another document is not re-scored."""
    whole, own = whole_reading(ingested.pooled), whole_reading(ingested.own)
    index = whole.index
    doc_id = "engineering/deploys.md"
    lo, hi = index.doc_rows[doc_id]
    start, end = int(index.start[lo + 3]), int(index.end[hi - 3])
    rows = index.rows_within(doc_id, start, end)
    text = whole.texts[doc_id][0][1]
    reading = Reading(index, rows, {doc_id: [(start, text[start:end])]}, whole.titles)
    assert all(unit_text(reading, int(row)) for row in rows)
    assert unit_text(reading, lo) is None  # before the passage: not in the reading

    question = embedder.embed_one("Who approves a deploy during a freeze?")
    pooled_similarity = np.clip(np.asarray(index.vectors[rows], np.float32) @ question, 0, 1)
    own_vectors = OwnUnitVectors(embedder, shortlist=4)
    out = own_vectors.similarity(reading, pooled_similarity, pooled_similarity, question)
    best = np.argsort(-pooled_similarity, kind="stable")[:4]
    want = np.clip(np.asarray(own.index.vectors[rows[best]], np.float32) @ question, 0, 1)
    assert own_vectors.embedded == int((~index.own[rows[best]]).sum()) > 0
    assert np.abs(out[best] - want).max() < 5e-3


@pytest.fixture(scope="module")
def answers(ingested: Ingested, embedder: Embedder) -> Iterator[dict[str, list[Answer]]]:
    """The long-context answer to each handbook question from the pooled index with and
    without re-scoring, and from the index of the units' own vectors."""
    questions = [q.question for q in load_questions(QUESTIONS)]
    out: dict[str, list[Answer]] = {}
    with KnowledgeBase(ingested.own, embedder=embedder) as kb:
        out["own"] = [kb.ask(q, mode="long_context") for q in questions]
    with KnowledgeBase(ingested.pooled, embedder=embedder) as kb:
        out["rescored"] = [kb.ask(q, mode="long_context") for q in questions]
    with KnowledgeBase(ingested.pooled, embedder=embedder) as kb:
        assert isinstance(kb.backend, ExtractiveBackend)
        kb.backend.own_vectors = OwnUnitVectors(embedder, shortlist=0)  # pooled alone
        out["pooled alone"] = [kb.ask(q, mode="long_context") for q in questions]
    yield out


@pytest.mark.slow
def test_rescored_pooled_vectors_answer_as_the_units_own_vectors_do(
    answers: dict[str, list[Answer]],
) -> None:
    questions = load_questions(QUESTIONS)

    def correct(kind: str) -> int:
        return sum(
            bool(score_answer(q, a.answer, a.refused, [c.doc_id for c in a.citations]).correct)
            for q, a in zip(questions, answers[kind], strict=True)
        )

    def same_as_own(kind: str) -> int:
        pairs = zip(answers[kind], answers["own"], strict=True)
        return sum(a.answer == b.answer for a, b in pairs)

    assert correct("rescored") == correct("own")
    assert same_as_own("rescored") >= len(questions) - 1
    # The re-scoring is what holds it: the pooled vectors alone answer otherwise.
    assert correct("pooled alone") < correct("own")
    assert same_as_own("pooled alone") < same_as_own("rescored")
