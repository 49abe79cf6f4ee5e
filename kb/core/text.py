"""Plain-text helpers shared by chunking and the extractive reader: sentence spans
and content words."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from kb.core.tables import table_row_spans

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
    """A light stem: plural and verb endings, then a final "e" and an "-al" noun ending,
    so that "approve", "approves" and "approvals", "freeze" and "freezes" meet."""
    for suffix in ("'s", "ies", "es", "s", "ed", "ing"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    if word.endswith("e") and len(word) >= 5:
        word = word[:-1]
    if word.endswith("al") and len(word) >= 7:
        word = word[:-2]
    return word


def content_words(text: str) -> set[str]:
    """Lower-cased, lightly stemmed words of `text` without stop words."""
    return {_stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS}


def compound_tails(word: str) -> list[str]:
    """The tails of a stemmed compound that a text may write on their own: "hotfix" ->
    "fix", "workload" -> "load" (each at least 3 letters, after a head of at least 3)."""
    return [word[-n:] for n in range(3, len(word) - 2) if word[-n:] not in STOPWORDS]


# ---- reading units: what the extractive reader can answer with ------------------------

UnitKind = Literal["sentence", "item", "row", "heading", "question", "rule"]
ANSWER_KINDS = frozenset({"sentence", "item", "row"})

_RULE = re.compile(r"[\s=\-~^*#+|:_`]+")  # underlines, table borders, separators
_TABLE_CELL_GAP = re.compile(r"\S(?: {2,}|\t+)\S")  # columns of a plain-text table
_MARKER_ONLY = re.compile(r"\d{1,3}[.)]")
_ITEM = re.compile(r"[ \t]*(?:[-*+]|\d+[.)])\s")


@dataclass(frozen=True, slots=True)
class Unit:
    """One sentence, list item, table row or heading of a document, with the text a
    reader needs to understand it alone: its section heading, and a table row's header
    or the line that introduces a list."""

    start: int
    end: int
    kind: UnitKind
    context: str = ""


def reading_units(text: str) -> list[Unit]:
    """The units of `text` in order (see `Unit`). Headings, FAQ question lines and
    table borders are units too: they give context, but never make an answer."""
    spans = _join_table_rows(
        _join_list_markers(
            text,
            [piece for s, e in sentence_spans(text) for piece in _split_table_lines(text, s, e)],
        ),
        table_row_spans(text),
    )
    units: list[Unit] = []
    heading = asked = lead = header = ""
    answered = False  # a unit has followed the last question line
    previous_end = 0
    for number, (start, end) in enumerate(spans):
        line = text[start:end]
        nxt = text[spans[number + 1][0] : spans[number + 1][1]] if number + 1 < len(spans) else ""
        kind = _kind(line, nxt, paragraph_alone=_alone(text, start, end))
        if answered and "\n\n" in text[previous_end:start]:
            asked = ""  # an FAQ question heads its first paragraph only
        previous_end = end
        section = " - ".join(p for p in (heading, asked) if p)
        context = ""
        if kind == "heading":
            heading, asked, lead, header = _clean(line), "", "", ""
        elif kind == "question":
            asked, lead, header, answered = _clean(line), "", "", False
        elif kind == "row":
            if not header:  # the first row of a table names its columns
                header = _clean(line)
                context = section
            else:
                context = " - ".join(p for p in (section, header) if p)
        elif kind != "rule":
            context = " - ".join(p for p in (section, lead if kind == "item" else "") if p)
            header = ""
            if kind == "sentence":
                lead = _clean(line) if line.rstrip().endswith(":") else ""
        answered = answered or kind in ANSWER_KINDS
        units.append(Unit(start, end, kind, context))
    return units


def _join_list_markers(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """A numbered item's marker ("1.") split from its sentence is joined back to it."""
    joined: list[tuple[int, int]] = []
    for start, end in spans:
        if (
            joined
            and _MARKER_ONLY.fullmatch(text, *joined[-1])
            and "\n\n" not in text[joined[-1][1] : start]
        ):
            start = joined.pop()[0]
        joined.append((start, end))
    return joined


def _join_table_rows(
    spans: list[tuple[int, int]], rows: list[tuple[int, int]]
) -> list[tuple[int, int]]:
    """The pieces of one table row (a grid row's lines, a sentence end inside a cell)
    made one span: a row is read whole."""
    if not rows:
        return spans
    joined: list[tuple[int, int]] = []
    at = 0
    for start, end in spans:
        while at < len(rows) and rows[at][1] <= start:
            at += 1
        if at < len(rows) and rows[at][0] <= start and end <= rows[at][1]:
            if joined and joined[-1] == rows[at]:
                continue
            joined.append(rows[at])
        else:
            joined.append((start, end))
    return joined


def _split_table_lines(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """A span holding several lines of a plain-text table, one span per line."""
    lines = text[start:end].split("\n")
    if len(lines) < 2 or sum(bool(_TABLE_CELL_GAP.search(x)) or _is_rule(x) for x in lines) < 2:
        yield start, end
        return
    offset = start
    for line in lines:
        yield from trim(text, offset, offset + len(line))
        offset += len(line) + 1


def _kind(line: str, following: str, *, paragraph_alone: bool) -> UnitKind:
    first = line.lstrip()
    if _is_rule(line):
        return "rule"
    if first.startswith("|") or (_TABLE_CELL_GAP.search(line) and "\n" not in line):
        return "row"
    if first.startswith("#") or (_is_rule(following) and "\n" not in line and len(line) < 120):
        return "heading"
    underlined = line.split("\n")
    if len(underlined) == 2 and _is_rule(underlined[1]):
        return "heading"  # reStructuredText: a title over its underline
    if line.rstrip().endswith("?"):
        return "question"
    if _ITEM.match(line):
        return "item"
    short = len(line) < 80 and "\n" not in line
    if paragraph_alone and short and line.rstrip()[-1:] not in ".!:;,)":
        return "heading"  # a short line standing alone, without a full stop
    return "sentence"


def _alone(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is a paragraph of its own (blank lines or edges around)."""
    before = text[max(0, start - 2) : start]
    after = text[end : end + 2]
    return (start == 0 or before.endswith("\n\n") or before == "\n" * len(before)) and (
        end == len(text) or after.startswith("\n\n") or after.strip() == ""
    )


def _is_rule(line: str) -> bool:
    return bool(line) and _RULE.fullmatch(line) is not None and any(c in line for c in "=-~^")


def _clean(line: str) -> str:
    """A heading or header row as plain words: no markup characters, one line."""
    first = line.split("\n")[0]
    return " ".join(re.sub(r"[#|*`_=>]+", " ", first).split())
