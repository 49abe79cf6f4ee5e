"""Token-aware chunking with exact character spans.

A document is cut into sentence-like units (paragraphs, then sentences; an
over-long unit is cut on token boundaries), and the units are packed greedily
into chunks of at most `chunk_tokens` cl100k tokens, each chunk starting with up
to `overlap` tokens of whole units from the end of the previous one. Every chunk
is an exact slice `text[start:end]` of its document, so a citation can point at
where an answer came from.
"""

from __future__ import annotations

import hashlib

from kb.models import Chunk, Document
from kb.text import sentence_spans, trim
from kb.tokens import encoding


def _split_long(text: str, start: int, end: int, limit: int) -> list[tuple[int, int, int]]:
    """Cut one over-long unit into pieces of at most `limit` tokens, on token edges."""
    enc = encoding()
    tokens = enc.encode(text[start:end], disallowed_special=())
    _, offsets = enc.decode_with_offsets(tokens)
    pieces = []
    for first in range(0, len(tokens), limit):
        last = min(first + limit, len(tokens))
        piece_start = start + offsets[first]
        piece_end = start + offsets[last] if last < len(tokens) else end
        for s, e in trim(text, piece_start, piece_end):
            pieces.append((s, e, last - first))
    return pieces


def chunk_id(doc_id: str, content_hash: str, index: int) -> str:
    """Stable id from the document and its content: unchanged text, unchanged id."""
    return hashlib.sha256(f"{doc_id}\0{content_hash}\0{index}".encode()).hexdigest()[:32]


def chunk_document(
    doc: Document, content_hash: str, chunk_tokens: int, overlap: int
) -> list[Chunk]:
    """Cut `doc` into token-bounded chunks with exact spans (see module doc)."""
    enc = encoding()
    spans = list(sentence_spans(doc.text))
    counts = [len(c) for c in enc.encode_ordinary_batch([doc.text[s:e] for s, e in spans])]
    units: list[tuple[int, int, int]] = []
    for (start, end), count in zip(spans, counts, strict=True):
        if count > chunk_tokens:
            units.extend(_split_long(doc.text, start, end, chunk_tokens))
        else:
            units.append((start, end, count))

    chunks: list[Chunk] = []
    window: list[tuple[int, int, int]] = []
    window_tokens = 0

    def emit() -> None:
        start, end = window[0][0], window[-1][1]
        index = len(chunks)
        chunks.append(
            Chunk(
                chunk_id=chunk_id(doc.doc_id, content_hash, index),
                doc_id=doc.doc_id,
                title=doc.title,
                source=doc.source,
                start=start,
                end=end,
                index=index,
                text=doc.text[start:end],
                tokens=window_tokens,
            )
        )

    fresh = 0  # units in the window that no earlier chunk holds
    for unit in units:
        if window and window_tokens + unit[2] > chunk_tokens:
            emit()
            kept: list[tuple[int, int, int]] = []
            kept_tokens = 0
            for old in reversed(window):
                if kept_tokens + old[2] > overlap or kept_tokens + old[2] + unit[2] > chunk_tokens:
                    break
                kept.insert(0, old)
                kept_tokens += old[2]
            window, window_tokens, fresh = kept, kept_tokens, 0
        window.append(unit)
        window_tokens += unit[2]
        fresh += 1
    if window and fresh:
        emit()
    return chunks
