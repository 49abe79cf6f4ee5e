"""The reader's words: a compound the question uses and the text shortens to its tail
("hotfix" / "fixes"), and a name the question does not already say, each answered with
exact citation spans on both paths (real model, real Chroma)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from kb.backends.extractive.index_builder import build_index
from kb.backends.extractive.reader import TAIL_SHARE, _tail_overlap
from kb.backends.extractive.sentence_index import DocumentText, SentenceIndex, hash64
from kb.core.text import compound_tails, content_words
from kb.search.embedding import Embedder
from tests.reader_corpus import ReaderCorpus, cited, reader_corpus

FILES: dict[str, str | bytes] = {
    "deploys.md": "# Deploys\n\nEvery change ships through the pipeline, hotfixes included.\n\n"
    "## Freezes\n\nDuring a freeze, only fixes for SEV1 incidents go out, and each needs "
    "the approval of the release captain.\n",
    "borders.md": "# Borders\n\nThe county lines run along the river; moving them needs "
    "the approval of the council.\n",
    "teams.md": "# Teams\n\nThe Release team is led by the Head of Release, Ada Brandt.\n",
}
MODES = ["long_context", "rag"]


@pytest.fixture(scope="module")
def ingested(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Iterator[ReaderCorpus]:
    with reader_corpus(tmp_path_factory, "words", FILES, embedder) as done:
        yield done


def asked(ingested: ReaderCorpus, question: str, mode: str) -> tuple[str, list[tuple[str, str]]]:
    """The answer's text and its citations, each span checked."""
    answer = ingested.kb.ask(question, mode=mode)
    return answer.answer, cited(answer, ingested.texts)


@pytest.mark.integration
@pytest.mark.parametrize("mode", MODES)
def test_a_compound_the_text_shortens_to_its_tail_is_found(
    ingested: ReaderCorpus, mode: str
) -> None:
    text, citations = asked(ingested, "Who approves a hotfix during the freeze?", mode)
    assert "release captain" in text
    assert citations[0] == (
        "deploys.md",
        "During a freeze, only fixes for SEV1 incidents go out, and each needs the approval "
        "of the release captain.",
    )


@pytest.mark.integration
@pytest.mark.parametrize("mode", MODES)
def test_a_name_the_question_already_says_is_not_the_answer(
    ingested: ReaderCorpus, mode: str
) -> None:
    text, citations = asked(ingested, "Who is the Head of Release?", mode)
    assert text.startswith("Ada Brandt — ")  # not "The Release" (the question's own word)
    assert citations == [
        ("teams.md", "The Release team is led by the Head of Release, Ada Brandt.")
    ]


@pytest.mark.integration
def test_a_tail_counts_only_where_its_document_writes_the_compound(embedder: Embedder) -> None:
    docs = [DocumentText(name, name, str(text)) for name, text in sorted(FILES.items())]
    index = build_index(docs, embedder)
    stems = content_words("hotfix coastline")
    assert "fix" in compound_tails("hotfix") and "line" in compound_tails("coastline")
    holding = index.docs_holding(hash64("hotfix"))
    assert [index.doc_ids[d] for d in holding] == ["deploys.md"]
    weights = {hash64(s): 1.0 for s in stems}
    rows = np.arange(len(index))
    earned = _tail_overlap(index, rows, stems, weights)
    fixes = [e for r, e in zip(rows, earned, strict=True) if " fixes " in _unit(index, int(r))]
    lines = [e for r, e in zip(rows, earned, strict=True) if " lines " in _unit(index, int(r))]
    assert fixes == [TAIL_SHARE] and lines == [0.0]  # no document says "coastline"


def _unit(index: SentenceIndex, row: int) -> str:
    """The text of unit `row` (the documents are the module's FILES)."""
    doc = index.doc_ids[int(index.doc[row])]
    return str(FILES[doc])[int(index.start[row]) : int(index.end[row])]
