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

from kb.core.models import Chunk, Document
from kb.core.text import sentence_spans, trim
from kb.core.tokens import count_tokens, encode, encoding


def _split_long(text: str, start: int, end: int, limit: int) -> list[tuple[int, int, int]]:
    """Cut one over-long unit into pieces of at most `limit` tokens, on token edges."""
    enc = encoding()
    tokens = encode(text[start:end])
    _, offsets = enc.decode_with_offsets(tokens)
    pieces = []
    first = 0
    while first < len(tokens):
        last = min(first + limit, len(tokens))
        while True:  # a piece re-tokenized alone can need a token or two more
            piece_start = start + offsets[first]
            piece_end = start + offsets[last] if last < len(tokens) else end
            span = next(trim(text, piece_start, piece_end), None)
            count = count_tokens(text[span[0] : span[1]]) if span else 0
            if count <= limit or last - first <= 1:
                break
            last -= 1
        if span:
            pieces.append((span[0], span[1], count))
        first = last
    return pieces


def embedding_text(title: str, text: str) -> str:
    """What the model sees of a chunk: the title gives it its subject."""
    return f"{title}\n{text}"


def chunk_embedding_text(chunk: Chunk) -> str:
    """What the model sees of `chunk` (and what its id is the hash of)."""
    return embedding_text(chunk.title, chunk.text)


def chunk_id(key: str, title: str, text: str) -> str:
    """The chunk's text key: the hash of what is embedded (and of `key`, the model and
    format), so the same text under another document, name or folder has the same
    id, and its vector is never computed twice."""
    return hashlib.sha256(f"{key}\0{embedding_text(title, text)}".encode()).hexdigest()[:32]


def _units(text: str, chunk_tokens: int) -> list[tuple[int, int, int]]:
    """The text's sentence units as (start, end, tokens), a unit over `chunk_tokens`
    split. A unit costs its tokens plus those of the white space before it (a
    paragraph break is a token too), so a packed chunk's real count stays within the
    bound."""
    spans = list(sentence_spans(text))
    leads = [s for s, _ in spans[:1]] + [e for _, e in spans[:-1]]
    own = [count_tokens(text[s:e]) for s, e in spans]
    led = [count_tokens(text[lead:e]) for lead, (_, e) in zip(leads, spans, strict=True)]
    units: list[tuple[int, int, int]] = []
    for (start, end), alone, joined in zip(spans, own, led, strict=True):
        if alone > chunk_tokens:
            units.extend(_split_long(text, start, end, chunk_tokens))
        else:
            units.append((start, end, max(alone, joined)))
    return units


def chunk_document(doc: Document, key: str, chunk_tokens: int, overlap: int) -> list[Chunk]:
    """Cut `doc` into token-bounded chunks with exact spans (see module doc). Greedy
    packing from the start: text appended to a document changes only its last chunk
    (or adds one), so an append re-embeds one or two chunks."""
    units = _units(doc.text, chunk_tokens)
    chunks: list[Chunk] = []
    window: list[tuple[int, int, int]] = []
    window_tokens = 0

    def emit() -> None:
        start, end = window[0][0], window[-1][1]
        index = len(chunks)
        chunks.append(
            Chunk(
                chunk_id=chunk_id(key, doc.title, doc.text[start:end]),
                doc_id=doc.doc_id,
                title=doc.title,
                source=doc.source,
                start=start,
                end=end,
                index=index,
                text=doc.text[start:end],
                tokens=count_tokens(doc.text[start:end]),
            )
        )

    def fits(start: int, end: int, estimate: int) -> bool:
        # The sum of unit counts is close but not exact (tokens can merge across
        # units): reject on it, accept only on the exact count of the joined text.
        if estimate > chunk_tokens + 8:
            return False
        return count_tokens(doc.text[start:end]) <= chunk_tokens

    fresh = 0  # units in the window that no earlier chunk holds
    for unit in units:
        if window and not fits(window[0][0], unit[1], window_tokens + unit[2]):
            emit()
            kept: list[tuple[int, int, int]] = []
            kept_tokens = 0
            for old in reversed(window):
                if kept_tokens + old[2] > overlap or not fits(
                    old[0], unit[1], kept_tokens + old[2] + unit[2]
                ):
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
