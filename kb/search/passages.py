"""The retrieval path's context: retrieved chunks become numbered passages.

Chunks are taken best first while their text fits a token budget
(`KB_RAG_CONTEXT_TOKENS`, at most `top_k` chunks), then put in document order, and
chunks of one document that overlap or follow each other are merged into one
passage with one citation. A merged passage is an exact slice of its document:
`text == document_text[start:end]`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kb.core.models import Chunk, Citation
from kb.core.tokens import count_tokens
from kb.search.retrieval import Hit
from kb.store.corpus import CorpusVersion

# What one passage's tags (`<passage number=.. title=.. source=..>` .. `</passage>`) and
# the blank line after it cost, on top of the title's and the source's own tokens.
PASSAGE_MARKUP_TOKENS = 16

# Text of a document between two character offsets (None when it cannot be read).
TextSource = Callable[[str, int, int], str | None]


@dataclass(slots=True)
class _Run:
    """Consecutive chunks of one document that become one passage."""

    first: Chunk
    last: Chunk  # the chunk that ends the run
    start: int
    end: int
    text: str
    score: float


def select_within_budget(hits: Sequence[Hit], budget_tokens: int, cap: int) -> list[Hit]:
    """The best hits (in score order) whose passages fit `budget_tokens`: at most
    `cap` chunks, and always the best one. Text two selected chunks share counts once,
    and each new document pays for its passage tags."""
    chosen: list[Hit] = []
    spans: dict[str, list[tuple[int, int]]] = {}
    used = 0
    for hit in hits[:cap]:
        chunk = hit.chunk
        cost = _new_tokens(chunk, spans.get(chunk.doc_id, []))
        if chunk.doc_id not in spans:
            cost += count_tokens(chunk.title) + count_tokens(chunk.source) + PASSAGE_MARKUP_TOKENS
        if chosen and used + cost > budget_tokens:
            break
        chosen.append(hit)
        spans.setdefault(chunk.doc_id, []).append((chunk.start, chunk.end))
        used += cost
    return chosen


def _new_tokens(chunk: Chunk, taken: list[tuple[int, int]]) -> int:
    """The chunk's tokens, less the share of its characters already taken."""
    length = max(chunk.end - chunk.start, 1)
    shared = sum(max(0, min(end, chunk.end) - max(start, chunk.start)) for start, end in taken)
    return round(chunk.tokens * max(0, length - shared) / length)


def passages_from_hits(hits: Sequence[Hit], text_of: TextSource | None = None) -> list[Citation]:
    """The hits as numbered passages in document order (not score order: reading order
    helps a model follow a document, and the numbers stay stable). Overlapping or
    touching chunks of one document become one passage; chunks that follow each
    other across white space are joined too when `text_of` can read the gap."""
    ordered = sorted(hits, key=lambda h: (h.chunk.doc_id, h.chunk.start))
    runs: list[_Run] = []
    for hit in ordered:
        chunk = hit.chunk
        run = runs[-1] if runs and runs[-1].first.doc_id == chunk.doc_id else None
        joined = _join(run, chunk, text_of) if run is not None else None
        if run is None or joined is None:
            runs.append(_Run(chunk, chunk, chunk.start, chunk.end, chunk.text, hit.score))
            continue
        if chunk.end > run.end:
            run.text, run.end, run.last = joined, chunk.end, chunk
        run.score = max(run.score, hit.score)
    return [
        Citation(
            number=number,
            chunk_id=run.first.chunk_id,
            doc_id=run.first.doc_id,
            title=run.first.title,
            source=run.first.source,
            start=run.start,
            end=run.end,
            text=run.text,
            score=round(run.score, 6),
        )
        for number, run in enumerate(runs, start=1)
    ]


def _join(run: _Run, chunk: Chunk, text_of: TextSource | None) -> str | None:
    """The run's text extended by `chunk`, or None when the two do not join."""
    if chunk.start <= run.end:  # overlapping or touching: the chunk's text is exact
        return run.text + chunk.text[max(0, run.end - chunk.start) :]
    if text_of is None or chunk.index != run.last.index + 1:
        return None
    gap = text_of(chunk.doc_id, run.end, chunk.start)
    if gap is None or gap.strip():  # chunking only ever skips white space between chunks
        return None
    return run.text + gap + chunk.text


def document_text_source(corpus: CorpusVersion) -> TextSource:
    """Reads document text out of the corpus snapshot, trusting a slice only where
    the snapshot holds the document verbatim (checked against the chunks' text)."""
    cache: dict[str, tuple[int, bool]] = {}
    spans: dict[str, int] = {}

    def text_of(doc_id: str, start: int, end: int) -> str | None:
        if not spans:
            spans.update(_document_offsets(corpus))
        if doc_id not in cache:
            cache[doc_id] = _verbatim_offset(corpus, spans, doc_id)
        offset, verbatim = cache[doc_id]
        if not verbatim:
            return None
        return corpus.snapshot[offset + start : offset + end]

    return text_of


def _document_offsets(corpus: CorpusVersion) -> dict[str, int]:
    try:
        return {doc: start for doc, start, _ in corpus.document_spans()}
    except (OSError, ValueError, TypeError):  # no spans file, or another layout
        return {"": -1}


def _verbatim_offset(corpus: CorpusVersion, spans: dict[str, int], doc_id: str) -> tuple[int, bool]:
    if doc_id not in spans:
        return 0, False
    offset = spans[doc_id]
    snapshot = corpus.snapshot
    verbatim = all(
        snapshot[offset + c.start : offset + c.end] == c.text
        for c in corpus.chunks_by_doc.get(doc_id, [])
    )
    return offset, verbatim


def build_passages(
    corpus: CorpusVersion, hits: Sequence[Hit], budget_tokens: int, cap: int
) -> list[Citation]:
    """The retrieval context: the best hits within the token budget, merged and
    numbered in document order."""
    return passages_from_hits(
        select_within_budget(hits, budget_tokens, cap), document_text_source(corpus)
    )
