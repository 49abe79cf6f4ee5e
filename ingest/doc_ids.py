"""What a document id and a title may be.

An id is how a document is known across versions, in citations and in the
manifest: it is NFC-normalised (so `café.md` typed on macOS and on Linux is one
document), it holds no control characters (NUL breaks file formats and logs) and
it has a length a person can read. A title is copied into every chunk of its
document, so it is capped: a 100 KB title would make the index grow with the
number of chunks, not with the text.
"""

from __future__ import annotations

import unicodedata

MAX_ID_CHARS = 512
MAX_TITLE_CHARS = 200


class BadIdError(ValueError):
    """The id cannot be used; the message says why."""


def valid_unicode(text: str) -> bool:
    """False if `text` holds a lone surrogate (JSON allows `"\\ud800"`; UTF-8 does not)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def normalize_id(raw: str) -> str:
    """`raw` in NFC, or BadIdError saying what is wrong with it."""
    if not valid_unicode(raw):
        raise BadIdError("id is not valid Unicode (a lone surrogate or undecodable file name)")
    doc_id = unicodedata.normalize("NFC", raw)
    if len(doc_id) > MAX_ID_CHARS:
        raise BadIdError(f"id is {len(doc_id):,} characters long, over the {MAX_ID_CHARS} allowed")
    for char in doc_id:
        if unicodedata.category(char) == "Cc":
            raise BadIdError(f"id holds the control character U+{ord(char):04X}")
    return doc_id


def cap_title(title: str) -> str:
    """`title` on one line, NFC, at most MAX_TITLE_CHARS characters (cut with an ellipsis)."""
    title = " ".join(unicodedata.normalize("NFC", title).split())
    if len(title) <= MAX_TITLE_CHARS:
        return title
    return title[: MAX_TITLE_CHARS - 1].rstrip() + "…"
