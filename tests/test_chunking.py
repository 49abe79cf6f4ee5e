"""Chunking: token bounds measured with tiktoken, exact spans, overlap, stable ids."""

from __future__ import annotations

import json
from functools import cache

import pytest

from ingest.chunking import chunk_document
from ingest.pipeline import content_hash
from kb.core.models import Chunk, Document
from kb.core.tokens import count_tokens
from tests.conftest import DATASETS

HOTPOT = DATASETS / "hotpotqa-100" / "corpus.jsonl"


@cache
def _documents() -> tuple[Document, ...]:
    """Real paragraphs (hotpotqa), a long multi-paragraph text and hard cases."""
    docs = []
    with open(HOTPOT, encoding="utf-8") as fh:
        for _, line in zip(range(60), fh, strict=False):
            record = json.loads(line)
            docs.append(Document(record["doc_id"], record["title"], "hotpot", record["text"]))
    long_text = "\n\n".join(d.text for d in docs[:25])
    docs.append(Document("joined", "Joined", "joined.md", long_text))
    code = "\n".join(f"    def f{n}(x):\n        return x * {n}  # note" for n in range(60))
    docs.append(Document("code", "Code", "code.md", "Example:\n\n" + code))
    run_on = " ".join(f"word{n}" for n in range(1_500))  # one sentence far over any bound
    docs.append(Document("run-on", "Run on", "run.txt", f"Start. {run_on} End."))
    docs.append(Document("nospace", "No space", "n.txt", "x" * 3_000 + "\n\nTail sentence."))
    return tuple(docs)


def _chunks(doc: Document, size: int, overlap: int) -> list[Chunk]:
    return chunk_document(doc, "model/format", size, overlap)


SIZES = [(200, 30), (64, 16), (32, 0)]


@pytest.mark.fast
@pytest.mark.parametrize(("size", "overlap"), SIZES)
def test_chunks_are_exact_spans_within_the_token_bound(size: int, overlap: int) -> None:
    for doc in _documents():
        chunks = _chunks(doc, size, overlap)
        assert chunks, doc.doc_id
        for index, chunk in enumerate(chunks):
            assert chunk.text == doc.text[chunk.start : chunk.end]
            assert chunk.text == chunk.text.strip() and chunk.text
            assert chunk.tokens == count_tokens(chunk.text)
            assert chunk.tokens <= size, (doc.doc_id, index, chunk.tokens)
            assert chunk.index == index
            assert (chunk.doc_id, chunk.title, chunk.source) == (doc.doc_id, doc.title, doc.source)


@pytest.mark.fast
@pytest.mark.parametrize(("size", "overlap"), SIZES)
def test_chunks_cover_the_document_in_order(size: int, overlap: int) -> None:
    for doc in _documents():
        chunks = _chunks(doc, size, overlap)
        covered = [False] * len(doc.text)
        for chunk in chunks:
            covered[chunk.start : chunk.end] = [True] * (chunk.end - chunk.start)
        missed = [i for i, hit in enumerate(covered) if not hit and not doc.text[i].isspace()]
        assert missed == [], doc.doc_id
        assert chunks[0].start == 0 and chunks[-1].end == len(doc.text)
        for before, after in zip(chunks, chunks[1:], strict=False):
            assert before.start < after.start and before.end < after.end


@pytest.mark.fast
@pytest.mark.parametrize(("size", "overlap"), SIZES)
def test_overlap_is_bounded_whole_units_from_the_previous_chunk(size: int, overlap: int) -> None:
    overlapping = 0
    for doc in _documents():
        chunks = _chunks(doc, size, overlap)
        for before, after in zip(chunks, chunks[1:], strict=False):
            if after.start < before.end:
                overlapping += 1
                shared = doc.text[after.start : before.end]
                assert count_tokens(shared) <= overlap
                assert before.text.endswith(shared)
            else:
                # no overlap: the next chunk starts past the previous one's end
                assert not doc.text[before.end : after.start].strip()
    if overlap:
        assert overlapping > 0
    else:
        assert overlapping == 0


@pytest.mark.fast
def test_a_short_document_is_one_chunk() -> None:
    doc = Document("short", "Short", "s.md", "One sentence. Two sentences.")
    (chunk,) = _chunks(doc, 200, 30)
    assert (chunk.start, chunk.end, chunk.text) == (0, len(doc.text), doc.text)


@pytest.mark.fast
def test_paragraph_breaks_count_towards_the_bound() -> None:
    # 40 one-word paragraphs: each "\n\n" is a token of its own in cl100k.
    doc = Document("paras", "P", "p.md", "\n\n".join(f"Item{n}." for n in range(40)))
    for chunk in _chunks(doc, 32, 0):
        assert count_tokens(chunk.text) <= 32


@pytest.mark.fast
def test_ids_are_stable_for_the_same_content_and_change_with_it() -> None:
    doc = _documents()[60]  # the long joined text
    first = _chunks(doc, 200, 30)
    again = _chunks(Document(doc.doc_id, doc.title, doc.source, doc.text), 200, 30)
    assert [c.chunk_id for c in first] == [c.chunk_id for c in again]
    assert len({c.chunk_id for c in first}) == len(first)

    # Ids are text keys: an appended line changes the last chunk or adds one, no more.
    edited = Document(doc.doc_id, doc.title, doc.source, doc.text + "\n\nA new closing line.")
    changed = _chunks(edited, 200, 30)
    assert [c.chunk_id for c in changed[: len(first) - 1]] == [c.chunk_id for c in first[:-1]]
    assert 1 <= len({c.chunk_id for c in changed} - {c.chunk_id for c in first}) <= 2

    # The same text under another id or path has the same ids (one vector serves both);
    # under another title it does not (the title is embedded with the text).
    other = Document("other-id", doc.title, "elsewhere/p.md", doc.text)
    assert [c.chunk_id for c in _chunks(other, 200, 30)] == [c.chunk_id for c in first]
    retitled = Document(doc.doc_id, "Another title", doc.source, doc.text)
    assert not {c.chunk_id for c in first} & {c.chunk_id for c in _chunks(retitled, 200, 30)}


@pytest.mark.fast
def test_content_hash_covers_title_source_and_text() -> None:
    base = Document("d", "T", "s.md", "text")
    variants = [
        Document("d", "T2", "s.md", "text"),
        Document("d", "T", "s2.md", "text"),
        Document("d", "T", "s.md", "text!"),
    ]
    assert content_hash(base) == content_hash(Document("d", "T", "s.md", "text"))
    assert len({content_hash(v) for v in variants} | {content_hash(base)}) == 4
