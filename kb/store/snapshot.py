"""The long-context snapshot: every document of a corpus version in one byte-stable
text, with a few tokens of markup per document.

    §1 Travel Policy
    Employees book rail travel for any trip under four hours. ...

    §2
    Demon Dice, originally published as Chaos Progenitus, is a collectible dice game ...

A document starts on a line of its own: `§`, its reference number (its position in
the snapshot) and its title, left out when the text already begins with it or the
document before has the same title (the paragraphs of one article: the number alone
still opens each, for citations; on short paragraphs a repeated title was most of the
markup). The
reference-to-source map (doc id, title, source, where the text lies in the snapshot)
is kept beside the snapshot, never in the prompt. A document's text cannot open a
document: a line of it that starts with `§` and a digit has that `§` written as
`⸹` (one character for one, so every offset inside a document stays its offset in
the document's own text).

Each document is one segment `header + text + "\\n\\n"`; a header starts with a
non-space character and a segment ends with a line break, so no cl100k token spans
two segments and the snapshot's token count is the sum of its segments' counts.
That lets an ingest count only what changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kb.core.tokens import count_tokens

MARK = "§"
ESCAPED_MARK = "⸹"  # U+2E39 TOP HALF SECTION SIGN: looks alike, never opens a document
SEPARATOR = "\n\n"
_FORGED = re.compile(rf"(?m)^{MARK}(?=\d)")
HEADER = re.compile(rf"(?m)^{MARK}(\d+)(?: ([^\n]*))?\n")


@dataclass(frozen=True, slots=True)
class SnapshotDocument:
    """Where one document's text lies in the snapshot, and what its reference means."""

    ref: int
    doc_id: str
    title: str
    source: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    text: str
    documents: list[SnapshotDocument]
    tokens: int


def escape_text(text: str) -> str:
    """`text` with every line that could pass for a document header defused (same length)."""
    return _FORGED.sub(ESCAPED_MARK, text) if MARK in text else text


def header(ref: int, title: str, text: str, previous_title: str = "") -> str:
    """The line that opens document `ref`; `previous_title`: the title of the document
    before it in the snapshot."""
    title = " ".join(title.split())
    if not title or text.startswith(title) or title == " ".join(previous_title.split()):
        return f"{MARK}{ref}\n"
    return f"{MARK}{ref} {title}\n"


def body(text: str) -> str:
    """The part of a document's segment that does not depend on its position."""
    return escape_text(text) + SEPARATOR


def body_tokens(text: str) -> int:
    """Tokens of a document's body in the snapshot: stored per document, so that an
    ingest counts only the documents that changed."""
    return count_tokens(body(text))


@dataclass(frozen=True, slots=True)
class SnapshotEntry:
    doc_id: str
    title: str
    source: str
    text: str
    body_tokens: int


def build_snapshot(entries: list[SnapshotEntry]) -> Snapshot:
    """The snapshot of `entries` in their order, numbered from 1. Only the short
    headers are counted here; bodies bring their stored counts."""
    parts: list[str] = []
    documents: list[SnapshotDocument] = []
    offset = tokens = 0
    previous = ""
    for ref, entry in enumerate(entries, start=1):
        head = header(ref, entry.title, entry.text, previous)
        previous = entry.title
        start = offset + len(head)
        parts += [head, escape_text(entry.text), SEPARATOR]
        documents.append(
            SnapshotDocument(
                ref, entry.doc_id, entry.title, entry.source, start, start + len(entry.text)
            )
        )
        offset = start + len(entry.text) + len(SEPARATOR)
        tokens += count_tokens(head) + entry.body_tokens
    return Snapshot("".join(parts), documents, tokens)


def parse_snapshot(text: str) -> list[tuple[int, str, int, int]]:
    """(reference, title shown, start, end) of each document's text in a snapshot, for
    a reader that has the text only; with a corpus version, use its `documents`."""
    found = []
    headers = list(HEADER.finditer(text))
    for number, match in enumerate(headers):
        limit = headers[number + 1].start() if number + 1 < len(headers) else len(text)
        end = limit - len(SEPARATOR) if text.endswith(SEPARATOR, 0, limit) else limit
        start = match.end()
        found.append((int(match.group(1)), match.group(2) or "", start, max(end, start)))
    return found
