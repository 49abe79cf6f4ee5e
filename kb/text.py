"""Plain-text helpers shared by chunking and the extractive reader: sentence spans
and content words."""

from __future__ import annotations

import re
from collections.abc import Iterator

_PARAGRAPH = re.compile(r"\n\s*\n")
# A sentence ends at . ! or ? (after any closing quote or bracket) before white space
# and a capital, digit or opening mark.
_SENTENCE_END = re.compile(
    r"(?<=[.!?])([\"')\]]*)\s+(?=[A-Z0-9\"'(\[])"
    # A line break inside a paragraph ends a unit only before a list item, heading,
    # quote or table row: hard-wrapped prose stays one sentence.
    r"|\n(?=[ \t]*(?:[-*+#>|]|\d+[.)]\s))"
)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is
    it its itself just me more most my myself no nor not now of off on once only or other our
    ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours yourself
    yourselves also did does many much one two s t""".split()
)


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int]]:
    """Spans of the sentences (and lines) of `text[start:end]`, paragraph by paragraph,
    white space trimmed."""
    end = len(text) if end is None else end
    piece = start
    for match in _PARAGRAPH.finditer(text, start, end):
        yield from _sentences(text, piece, match.start())
        piece = match.end()
    yield from _sentences(text, piece, end)


def _sentences(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    piece = start
    for match in _SENTENCE_END.finditer(text, start, end):
        yield from trim(text, piece, match.start() + len(match.group(1) or ""))
        piece = match.end()
    yield from trim(text, piece, end)


def trim(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The span without leading and trailing white space (nothing if it is all space)."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        yield start, end


def _stem(word: str) -> str:
    for suffix in ("'s", "ies", "es", "s", "ed", "ing"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return word


def content_words(text: str) -> set[str]:
    """Lower-cased, lightly stemmed words of `text` without stop words."""
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS}
