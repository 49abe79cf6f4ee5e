"""The extractive reader's sentence index: built at ingest on real parts (real model,
real Chroma), incremental by unit text, pruned with old versions, and read by the
first question without embedding anything but the question."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.pipeline import run_ingest
from kb.backends.extractive.index_builder import SentenceIndexes, build_index
from kb.backends.extractive.rescoring import SHORTLIST
from kb.core.settings import Settings, load_settings
from kb.search.embedding import Embedder
from kb.service import KnowledgeBase
from kb.store.corpus import Layout
from tests.conftest import write_corpus

DOCS = {
    "oncall.md": "# On-call\n\nThe on-call engineer must acknowledge a page within 5 minutes. "
    "Pages that are not acknowledged escalate to the secondary after 15 minutes.\n",
    "deploys.md": "# Deploys\n\nProduction deploys run through the Conveyor pipeline.\n\n"
    "## Change freezes\n\nFor 2024 the freezes are:\n\n"
    "- **Peak freeze**: from Monday 25 November to Monday 2 December 2024.\n"
    "- **Holiday freeze**: from Friday 20 December 2024 to Monday 6 January 2025.\n",
    "ports.md": "# Local ports\n\n| Service | Local port |\n|---|---|\n| tally | 17100 |\n"
    "| lantern | 17500 |\n",
}


@pytest.fixture(params=["pooled", "separate"])
def ingested(
    request: pytest.FixtureRequest, tmp_path: Path, embedder: Embedder
) -> tuple[Settings, Path]:
    """DOCS ingested with unit vectors pooled from the chunks (the default) or embedded
    each alone."""
    root = write_corpus(tmp_path / "docs", DOCS)
    settings = load_settings(data_dir=tmp_path / "data", reader_vectors=request.param)
    run_ingest(settings, root, embedder=embedder)
    return settings, root


@pytest.mark.integration
def test_a_committed_version_has_its_sentence_index(ingested: tuple[Settings, Path]) -> None:
    settings, _ = ingested
    layout = Layout(settings.data_dir)
    version = layout.current_version()
    assert version is not None
    index = SentenceIndexes(layout).load(version)
    assert index is not None
    assert sorted(index.doc_ids) == sorted(DOCS)
    assert len(index) >= 8  # headings, sentences, items and rows of three documents


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["rag", "long_context"])
def test_the_first_question_after_an_ingest_embeds_only_the_question(
    ingested: tuple[Settings, Path], embedder: Embedder, mode: str
) -> None:
    """... and, over pooled unit vectors, the units it shortlists (all of these few)."""
    settings, _ = ingested
    layout = Layout(settings.data_dir)
    index = SentenceIndexes(layout).load(layout.current_version() or "")
    assert index is not None
    pooled = int((~index.own).sum())
    assert (pooled > 0) == (settings.reader_vectors == "pooled")
    with KnowledgeBase(settings, embedder=embedder) as base:
        before = embedder.texts_embedded
        answer = base.ask(f"On which local port does lantern run ({mode}, {pooled})?", mode=mode)
        shortlisted = embedder.texts_embedded - before - 1
        if mode == "long_context":
            assert shortlisted == min(pooled, SHORTLIST)
        else:  # the pooled units of the passages retrieved
            assert shortlisted <= pooled and (shortlisted > 0) == (pooled > 0)
        before = embedder.texts_embedded
        base.ask(f"Which port is lantern's locally ({mode}, {pooled})?", mode=mode)
        if mode == "long_context":  # every unit's own vector is known by now
            assert embedder.texts_embedded - before == 1
    assert "17500" in answer.answer
    assert answer.usage.cache_write_tokens == 0
    if mode == "long_context":
        assert answer.usage.cache_read_tokens > 0


@pytest.mark.integration
def test_an_edit_embeds_only_new_units_and_a_rename_none(
    ingested: tuple[Settings, Path], embedder: Embedder
) -> None:
    settings, root = ingested
    oncall = root / "oncall.md"
    oncall.write_text(DOCS["oncall.md"] + "\nHandover is on Mondays at 10:00.\n")
    before = embedder.texts_embedded
    summary = run_ingest(settings, root, embedder=embedder)
    # The changed document's chunks, plus its one new sentence: nothing else.
    if settings.reader_vectors == "pooled":  # the sentence from the chunk's pass
        assert (summary.sentences_pooled, summary.sentences_embedded) == (1, 0)
        assert embedder.texts_embedded - before == summary.chunks_embedded
    else:
        assert (summary.sentences_pooled, summary.sentences_embedded) == (0, 1)
        assert embedder.texts_embedded - before == summary.chunks_embedded + 1

    oncall.rename(root / "on-call.md")
    before = embedder.texts_embedded
    summary = run_ingest(settings, root, embedder=embedder)
    assert summary.added == 1 and summary.removed == 1
    assert embedder.texts_embedded - before == summary.chunks_embedded  # no unit re-embedded


@pytest.mark.integration
def test_only_the_committed_and_the_previous_version_keep_an_index(
    ingested: tuple[Settings, Path], embedder: Embedder
) -> None:
    settings, root = ingested
    layout = Layout(settings.data_dir)
    versions = [layout.current_version()]
    for n in range(2):
        (root / "oncall.md").write_text(DOCS["oncall.md"] + f"\nEdit number {n + 1}.\n")
        run_ingest(settings, root, embedder=embedder)
        versions.append(layout.current_version())
    folders = sorted(p.name for p in SentenceIndexes(layout).root.iterdir())
    assert folders == sorted(v for v in versions[1:] if v)


@pytest.mark.integration
def test_an_index_grown_from_the_previous_one_equals_one_built_afresh(
    embedder: Embedder,
) -> None:
    import numpy as np

    from kb.backends.extractive.index_builder import SentenceIndexSummary
    from kb.backends.extractive.sentence_index import DocumentText

    first = [DocumentText(name, name.removesuffix(".md"), text) for name, text in DOCS.items()]
    second = [
        DocumentText("deploys.md", "deploys", DOCS["deploys.md"] + "\nRollbacks need no ticket.\n"),
        DocumentText("moved/oncall.md", "oncall", DOCS["oncall.md"]),  # renamed, same text
        DocumentText("new.md", "new", "# New\n\nBadges are renewed every year.\n"),
    ]  # ports.md removed
    previous = build_index(first, embedder)
    summary = SentenceIndexSummary()
    grown = build_index(second, embedder, previous, summary=summary)
    fresh = build_index(second, embedder)

    assert grown.doc_ids == fresh.doc_ids
    for column in ("doc", "start", "end", "kind", "text_hash", "doc_hash", "word_ptr", "words"):
        assert np.array_equal(grown.column(column), fresh.column(column)), column
    assert np.array_equal(grown.df_words, fresh.df_words)
    assert np.array_equal(grown.df_counts, fresh.df_counts)
    assert [grown.context_of(r) for r in range(len(grown))] == [
        fresh.context_of(r) for r in range(len(fresh))
    ]
    assert np.abs(grown.dense - fresh.dense).max() < 2e-3  # float16 vectors, same model
    # Embedded: the appended sentence and the new document's units, nothing else.
    new_units = sum(1 for r in range(len(fresh)) if fresh.doc_ids[fresh.doc[r]] == "new.md")
    assert summary.embedded == 1 + new_units
    assert summary.reused == len(fresh) - summary.embedded


@pytest.mark.integration
def test_whether_a_vector_is_the_units_own_survives_growing_and_saving(
    tmp_path: Path, embedder: Embedder
) -> None:
    import numpy as np

    from kb.backends.extractive.sentence_index import (
        DocumentText,
        SentenceIndex,
        hash64,
        unit_embedding_text,
    )
    from kb.core.text import reading_units

    first = [DocumentText(name, name.removesuffix(".md"), text) for name, text in DOCS.items()]
    # The units of oncall.md and deploys.md come pooled (any unit vector will do here).
    stand_in = embedder.embed(["a pooled vector"])[0]
    pooled = {
        hash64(unit_embedding_text(doc.title, unit, doc.text)): stand_in
        for doc in first
        if doc.doc_id != "ports.md"
        for unit in reading_units(doc.text)
    }
    previous = build_index(first, embedder, pooled=pooled)
    by_doc = {d: previous.own[lo:hi] for d, (lo, hi) in previous.doc_rows.items()}
    assert not by_doc["oncall.md"].any() and not by_doc["deploys.md"].any()
    assert by_doc["ports.md"].all()

    second = [
        DocumentText("deploys.md", "deploys", DOCS["deploys.md"] + "\nRollbacks need no ticket.\n"),
        DocumentText("moved/oncall.md", "oncall", DOCS["oncall.md"]),  # copied as a block
    ]
    grown = build_index(second, embedder, previous)
    lo, hi = grown.doc_rows["moved/oncall.md"]
    assert not grown.own[lo:hi].any()
    lo, hi = grown.doc_rows["deploys.md"]
    # Units reused by their text keep their mark; the new sentence was embedded alone.
    assert grown.own[lo:hi].tolist() == [False] * (hi - lo - 1) + [True]

    grown.save(tmp_path / "index")
    loaded = SentenceIndex.load(tmp_path / "index")
    assert loaded is not None
    assert loaded.own.dtype == bool and np.array_equal(loaded.own, grown.own)
