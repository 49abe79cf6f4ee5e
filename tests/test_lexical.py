"""The BM25 index: rankings as bm25s computes them, and an index assembled from a
previous one (rows copied, only new text tokenized) equal to one built whole."""

from __future__ import annotations

import json
from pathlib import Path

import bm25s
import numpy as np
import pytest

from kb.store.lexical import LexicalIndex, _tokenize
from tests.conftest import DATASETS

HOTPOT = DATASETS / "hotpotqa-100"


def _texts_and_questions() -> tuple[list[str], list[str]]:
    docs = [json.loads(line) for line in (HOTPOT / "corpus.jsonl").read_text("utf-8").splitlines()]
    questions = [
        json.loads(line)["question"]
        for line in (HOTPOT / "questions.jsonl").read_text("utf-8").splitlines()
    ]
    return [f"{d['title']}\n{d['text']}" for d in docs], questions


@pytest.mark.fast
@pytest.mark.skipif(not HOTPOT.exists(), reason="needs ../shared/datasets")
def test_rankings_match_bm25s_and_an_assembled_index_matches_a_whole_build(
    tmp_path: Path,
) -> None:
    texts, questions = _texts_and_questions()
    whole = LexicalIndex.build(texts)
    reference = bm25s.BM25()
    reference.index(_tokenize(texts), show_progress=False)

    # The previous version held the first 600 texts and a text since deleted; the new
    # one keeps 599 of them in another order and adds the rest.
    previous = LexicalIndex.build(["a deleted chunk about zebras", *texts[:600]])
    rows: list[int | str] = [row + 1 for row in range(599)] + texts[599:]
    assembled = LexicalIndex.assemble(rows, previous)
    assembled.save(tmp_path / "lexical.npz")
    loaded = LexicalIndex.load(tmp_path / "lexical.npz")

    same_top = 0
    for question in questions:
        ours = whole.search(question, 10)
        rows_ref, scores_ref = reference.retrieve(
            _tokenize([question]), k=10, show_progress=False, n_threads=1
        )
        theirs = [(int(r), float(s)) for r, s in zip(rows_ref[0], scores_ref[0], strict=True)]
        assert np.allclose([s for _, s in ours], [s for _, s in theirs if s > 0], rtol=1e-5)
        same_top += ours[0][0] == theirs[0][0]
        assert loaded.search(question, 10) == assembled.search(question, 10)
        again = assembled.search(question, 10)
        assert [r for r, _ in again] == [r for r, _ in ours]
        assert np.allclose([s for _, s in again], [s for _, s in ours])
    assert same_top >= len(questions) - 1  # ties may order differently
    assert loaded.search("zebras", 5) == []  # the deleted text's term stays, unused
    assert LexicalIndex.build([]).search("anything", 5) == []
