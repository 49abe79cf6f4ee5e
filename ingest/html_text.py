"""Visible text of an HTML page in one streaming pass, in time linear in its size.

A tree parser (BeautifulSoup) walks up the tree for every text node: ten thousand
nested `<div>`s took seconds and a 3 MB page of them minutes and gigabytes. This
reader never builds a tree; it keeps a few counters (inside `<pre>`, inside a
hidden element) and lays the text out as a browser would: white space inside
text collapses, block elements break lines, inline markup (`<b>`, `<a>`) stays
inside its sentence, `<script>`, `<style>`, `<noscript>`, `<template>` and the
`<head>` are not text. A page that still takes longer than `PARSE_SECONDS` is
refused with `HtmlTooSlowError`.
"""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser

PARSE_SECONDS = 20.0
FEED_CHARS = 65_536  # the deadline is checked between pieces of this size

_HIDDEN = frozenset({"script", "style", "noscript", "template"})
_BLOCKS = frozenset(
    "address article aside blockquote div dl figure figcaption footer form h1 h2 h3 h4 h5 "
    "h6 header hr main nav ol p pre section table ul".split()
)
_LINES = frozenset({"br", "dd", "dt", "li"})
_CELLS = frozenset({"td", "th"})
_SPACE = re.compile(r"\s+")
_LINE_SPACE = re.compile(r"[ \t\xa0]+")


class HtmlTooSlowError(Exception):
    """The page did not parse within the time bound."""


class _TextReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0  # depth inside hidden elements
        self.pre = 0
        self.table = 0  # depth inside tables: a row is laid out as a Markdown `|` row
        self.in_head = False
        self.title: list[str] | None = None  # the first <title>'s text, while inside it
        self.h1: list[str] | None = None  # the first <h1>'s text, while inside it
        self.title_text: str | None = None
        self.h1_text: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag == "head":
            self.in_head = True
        elif tag == "body":
            self.in_head = False
        elif tag == "title" and self.title_text is None:
            self.title = []
        elif tag == "h1" and self.h1_text is None:
            self.h1 = []
        if tag == "pre":
            self.pre += 1
        if self._table_tag(tag, starts=True):
            return
        if tag in _BLOCKS:
            self._emit("\n\n")
        elif tag in _LINES:
            self._emit("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self._emit("\n\n\n\n")
        elif tag in _LINES:
            self._emit("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag == "head":
            self.in_head = False
        elif tag == "title" and self.title is not None:
            self.title_text, self.title = " ".join(self.title), None
        elif tag == "h1" and self.h1 is not None:
            self.h1_text, self.h1 = " ".join(self.h1), None
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if self._table_tag(tag, starts=False):
            return
        if tag in _BLOCKS:
            self._emit("\n\n")

    def _table_tag(self, tag: str, *, starts: bool) -> bool:
        """Lay a table out as `| cell | cell |` lines, one a row; block elements inside a
        cell do not break its row. Whether `tag` was handled here."""
        if tag == "table":
            self.table = self.table + 1 if starts else max(0, self.table - 1)
            self._emit("\n\n")
            return True
        if not self.table:
            return False
        if tag == "tr":
            self._emit("\n|" if starts else "")
        elif tag in _CELLS:
            self._emit(" " if starts else " |")
        elif tag in _BLOCKS or tag in _LINES:
            self._emit(" ")
        return True

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        for capture in (self.title, self.h1):
            if capture is not None and data.strip():
                capture.append(data.strip())
        if self.title is not None:
            return  # a title is not body text
        self._emit(data if self.pre else _SPACE.sub(" ", data))

    def _emit(self, text: str) -> None:
        if not self.hidden and not self.in_head:
            self.parts.append(text)


def html_text(html: str, fallback_title: str) -> tuple[str, str]:
    """(visible text, title) of `html`: the `<title>`, else the first `<h1>`, else
    `fallback_title`. Raises HtmlTooSlowError past PARSE_SECONDS."""
    reader = _TextReader()
    deadline = time.monotonic() + PARSE_SECONDS
    for start in range(0, len(html), FEED_CHARS):
        reader.feed(html[start : start + FEED_CHARS])
        if time.monotonic() > deadline:
            raise HtmlTooSlowError(
                f"HTML page took more than {PARSE_SECONDS:.0f} s to read "
                f"(stopped at character {start + FEED_CHARS:,} of {len(html):,})"
            )
    reader.close()
    title = reader.title_text or reader.h1_text or ""
    text = "".join(reader.parts)
    lines = [_LINE_SPACE.sub(" ", line).strip() for line in text.splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return text, title or fallback_title
