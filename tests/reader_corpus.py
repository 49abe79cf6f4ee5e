"""A small corpus ingested once per test module, for the reader's tests: the documents'
texts as loaded and a KnowledgeBase over them; `cited` checks every citation's span."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from ingest.loaders import load_corpus
from ingest.pipeline import run_ingest
from kb.core.models import Answer
from kb.core.settings import load_settings
from kb.search.embedding import Embedder
from kb.service import KnowledgeBase
from tests.conftest import write_corpus


@dataclass(frozen=True)
class ReaderCorpus:
    texts: dict[str, str]  # doc_id -> the document's text as the loader read it
    kb: KnowledgeBase


@contextmanager
def reader_corpus(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    files: Mapping[str, str | bytes],
    embedder: Embedder,
) -> Iterator[ReaderCorpus]:
    """`files` written, ingested into a data dir of their own and opened."""
    root = tmp_path_factory.mktemp(name)
    corpus = write_corpus(root / "docs", dict(files))
    settings = load_settings(data_dir=root / "data")
    run_ingest(settings, corpus, embedder=embedder)
    texts = {d.doc_id: d.text for d in load_corpus(corpus, 1_000_000).documents}
    with KnowledgeBase(settings, embedder=embedder) as kb:
        yield ReaderCorpus(texts, kb)


def cited(answer: Answer, texts: dict[str, str]) -> list[tuple[str, str]]:
    """(doc_id, cited text) of each citation, after checking that its span is exact."""
    for citation in answer.citations:
        assert texts[citation.doc_id][citation.start : citation.end] == citation.text
    return [(c.doc_id, c.text) for c in answer.citations]
