"""The retrieval context on real parts: real Chroma on tmp_path, the bundled model.

Neighbouring chunks of one document are merged into one passage whose citation
points at an exact span of the document; the token budget and `top_k` cap the
context; adaptive hops are a choice, not a different ranking machinery."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.pipeline import run_ingest
from kb.core.settings import Settings, load_settings
from kb.search.embedding import Embedder
from kb.search.passages import build_passages, passages_from_hits, select_within_budget
from kb.search.retrieval import Retriever
from kb.service import KnowledgeBase
from kb.store.corpus import CorpusVersion
from kb.store.vectors import VectorStore
from tests.conftest import write_corpus

# One long document about one subject (its chunks are neighbours that all match),
# one short unrelated document.
SECTIONS = [
    f"Section {n}. The lighthouse keeper logs the lamp's oil level at dusk on day {n}, "
    f"trims the wick of lamp number {n} and records the beam's range in nautical miles. "
    "A fogbound night doubles the watches kept by the lighthouse keeper."
    for n in range(1, 13)
]
DOCS = {
    "lighthouse.md": "# Lighthouse keeping\n\n" + "\n\n".join(SECTIONS) + "\n",
    "bakery.md": "# Bakery\n\nSourdough rises overnight in a cool room.\n",
}


def _ingest(tmp_path: Path, embedder: Embedder, overlap: int) -> Settings:
    root = write_corpus(tmp_path / "docs", DOCS)
    settings = load_settings(
        data_dir=tmp_path / "data", chunk_tokens=48, chunk_overlap=overlap, top_k=100
    )
    run_ingest(settings, root, embedder=embedder)
    settings.corpus_dir = root
    return settings


@pytest.mark.integration
@pytest.mark.parametrize("overlap", [0, 24], ids=["adjacent", "overlapping"])
def test_merged_passages_cite_exact_spans(tmp_path: Path, embedder: Embedder, overlap: int) -> None:
    settings = _ingest(tmp_path, embedder, overlap)
    corpus = CorpusVersion.open(settings.data_dir)
    document = DOCS["lighthouse.md"]
    chunks = corpus.chunks_by_doc["lighthouse.md"]
    assert len(chunks) >= 6
    if overlap:
        assert any(b.start < a.end for a, b in zip(chunks, chunks[1:], strict=False))
    else:  # chunks that only follow each other, across the white space between them
        assert all(b.start > a.end for a, b in zip(chunks, chunks[1:], strict=False))

    retriever = Retriever(corpus, VectorStore(settings), embedder)
    hits = retriever.search("How does the lighthouse keeper log the lamp oil?", 100)
    passages = build_passages(corpus, hits, budget_tokens=100_000, cap=100)

    lighthouse = [p for p in passages if p.doc_id == "lighthouse.md"]
    assert len(lighthouse) == 1, "every chunk of the document was retrieved: one passage"
    merged = lighthouse[0]
    assert (merged.start, merged.end) == (chunks[0].start, chunks[-1].end)
    assert merged.text == document[merged.start : merged.end]
    assert merged.chunk_id == chunks[0].chunk_id
    for passage in passages:  # every passage, merged or not, is an exact span
        source = DOCS[passage.doc_id]
        assert passage.text == source[passage.start : passage.end]
    assert [p.number for p in passages] == list(range(1, len(passages) + 1))
    assert [p.doc_id for p in passages] == sorted(p.doc_id for p in passages)


@pytest.mark.integration
def test_chunks_with_a_hole_between_them_stay_separate(tmp_path: Path, embedder: Embedder) -> None:
    settings = _ingest(tmp_path, embedder, overlap=0)
    corpus = CorpusVersion.open(settings.data_dir)
    retriever = Retriever(corpus, VectorStore(settings), embedder)
    chunks = corpus.chunks_by_doc["lighthouse.md"]
    wanted = {chunks[0].chunk_id, chunks[1].chunk_id, chunks[3].chunk_id}
    hits = [h for h in retriever.search("lighthouse keeper", 100) if h.chunk.chunk_id in wanted]
    passages = build_passages(corpus, hits, budget_tokens=100_000, cap=100)
    assert [(p.start, p.end) for p in passages] == [
        (chunks[0].start, chunks[1].end),
        (chunks[3].start, chunks[3].end),
    ]
    for passage in passages:
        assert passage.text == DOCS["lighthouse.md"][passage.start : passage.end]
    # Without a way to read the document's text, the white space between two chunks
    # is unknown, so they are not joined (the span would not be exact).
    unjoined = passages_from_hits([h for h in hits if h.chunk.chunk_id != chunks[3].chunk_id])
    assert len(unjoined) == 2


@pytest.mark.integration
def test_budget_and_cap_limit_the_context(tmp_path: Path, embedder: Embedder) -> None:
    settings = _ingest(tmp_path, embedder, overlap=0)
    corpus = CorpusVersion.open(settings.data_dir)
    hits = Retriever(corpus, VectorStore(settings), embedder).search("lighthouse lamp", 100)
    assert len(select_within_budget(hits, 100_000, cap=3)) == 3
    small = select_within_budget(hits, 120, cap=100)
    assert 1 <= len(small) < len(hits)
    assert sum(h.chunk.tokens for h in small) <= 120
    assert select_within_budget(hits, 1, cap=100) == hits[:1]  # never an empty context


@pytest.mark.integration
def test_rag_answer_uses_the_budgeted_merged_context(tmp_path: Path, embedder: Embedder) -> None:
    settings = _ingest(tmp_path, embedder, overlap=0)
    settings.rag_context_tokens = 100_000
    with KnowledgeBase(settings, embedder=embedder) as base:
        answer = base.ask("What does a fogbound night double?", mode="rag")
        lighthouse = [p for p in answer.retrieved if p.doc_id == "lighthouse.md"]
        assert len(lighthouse) == 1
        assert lighthouse[0].text == DOCS["lighthouse.md"][lighthouse[0].start : lighthouse[0].end]
        capped = base.ask("What does a fogbound night double?", mode="rag", top_k=2)
        assert sum(len(p.text) for p in capped.retrieved) < len(lighthouse[0].text)


@pytest.mark.integration
def test_hops_setting_is_checked(tmp_path: Path, embedder: Embedder) -> None:
    settings = _ingest(tmp_path, embedder, overlap=0)
    corpus = CorpusVersion.open(settings.data_dir)
    with pytest.raises(ValueError, match="hops must be one of"):
        Retriever(corpus, VectorStore(settings), embedder, hops=3)
    for hops in ("1", "2", "auto"):
        hits = Retriever(corpus, VectorStore(settings), embedder, hops=hops).search("sourdough", 3)
        assert hits[0].chunk.doc_id == "bakery.md"
