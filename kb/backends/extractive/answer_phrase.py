"""The phrase, then the support: what the extractive reader shows for the unit it
answers with. It leads with the shortest span that answers (the cell of a table row
under the column the question names, a number with its unit, a date, a name) and
keeps the unit, in readable form, as its support: a table row as "key — Column:
value", a list item without its marker, wrapped lines and indentation made one line.
The citation keeps the unit's exact span; only what is shown is reshaped."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kb.backends.extractive.fact_kinds import FactKind
from kb.backends.extractive.quantities import asks_duration, first_duration
from kb.core.tables import TableRow, row_at
from kb.core.text import content_words

_MARKER = re.compile(r"[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]+")
_MARKUP = re.compile(r"\*\*|__|`")
_AMOUNT = re.compile(
    r"(?<![\w.])(?:[$€£])?\d[\d,]*(?:\.\d+)?(?:\s?(?:%|x\b|[A-Z]{3}\b|[a-z]{1,12}\b(?! of\b)))?"
)
_DATE = re.compile(
    r"\b(?:(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday) )?\d{1,2} "
    r"(?:January|February|March|April|May|June|July|August|September|October|November|"
    r"December)(?: \d{4})?\b|\b(?:January|February|March|April|May|June|July|August|"
    r"September|October|November|December) \d{4}\b|\b\d{1,2}:\d{2}(?: UTC)?\b|\b1[89]\d\d\b"
    r"|\b20\d\d\b"
)
_NAME = re.compile(r"\b[A-Z][\w'-]+(?: (?:of |the |de |van |von )?[A-Z][\w'-]+)+")
_UNIT_WORDS = frozenset("and or of to in on at for the a an is are was were".split())


@dataclass(frozen=True, slots=True)
class Shown:
    """What is shown for one cited unit: the answering phrase ('' when none is
    shorter than the unit) and the unit as readable text."""

    phrase: str
    support: str


def readable(text: str) -> str:
    """A unit's text as shown: no list marker, no emphasis marks, one line."""
    text = _MARKER.sub("", text, count=1) if _MARKER.match(text) else text
    return " ".join(_MARKUP.sub("", text).split())


def shown(document: str, start: int, end: int, question: str, kinds: frozenset[FactKind]) -> Shown:
    """The phrase and support for the unit document[start:end]."""
    row = row_at(document, start, end) if document[start:end].lstrip().startswith("|") else None
    if row is None and "\n" not in document[start:end].strip() and "  " in document[start:end]:
        row = row_at(document, start, end)
    if row is not None and len(row.cells) >= 2:
        cell = answering_cell(row, question) or _cell_of_kind(row, question, kinds)
        return Shown(readable(cell), readable(row.readable()))
    support = readable(document[start:end])
    return Shown(phrase_in(support, question, kinds), support)


def _cell_of_kind(row: TableRow, question: str, kinds: frozenset[FactKind]) -> str:
    """The first cell after the row's key that holds a fact of the asked kind, one
    that counts what the question names first ("6 nodes" for "How many nodes")."""
    asked = content_words(question)
    phrases = [(cell, phrase_in(cell + " .", question, kinds)) for cell in row.cells[1:] if cell]
    found = [cell for cell, phrase in phrases if phrase]
    named = [
        cell for cell, phrase in phrases if phrase and content_words(phrase.split()[-1]) & asked
    ]
    return (named or found or [""])[0]


def _named(header: str, asked: set[str]) -> int:
    """How many of the question's words a column header names (approves ~ Approver)."""
    words = content_words(header)
    return sum(
        any(
            w == a or (min(len(w), len(a)) >= 4 and (w.startswith(a) or a.startswith(w)))
            for a in asked
        )
        for w in words
    )


def named_columns(row: TableRow, question: str, *, qualified: bool = True) -> list[int]:
    """The columns after the key whose header names a word of the question; with
    `qualified` False (a question without a qualifier of its own), not those whose
    header qualifies that word with one the question lacks ("Local port" for "What port
    ...": a variant of the column the question did not ask for)."""
    asked = content_words(question)
    return [
        i
        for i in range(1, min(len(row.cells), len(row.header)))
        if row.header[i]
        and _named(row.header[i], asked)
        and (qualified or not _qualified(row.header[i], asked))
    ]


def _qualified(header: str, asked: set[str]) -> bool:
    """Whether a content word the question does not name stands right before one it
    names in `header` ("Local port" against "What port ...")."""
    words = [w for w in re.findall(r"[a-z0-9]+", header.lower())]
    for before, word in zip(words, words[1:], strict=False):
        if content_words(before) and not _named(before, asked) and _named(word, asked):
            return True
    return False


def answering_cell(row: TableRow, question: str) -> str:
    """The cell under a column the question names ("What port..." -> the Port cell),
    unless the question holds it already; '' if no column is named."""
    asked = content_words(question)
    best, best_hits = "", 0
    for i, cell in enumerate(row.cells[1:], start=1):
        name = row.header[i] if i < len(row.header) else ""
        hits = _named(name, asked)
        if cell and hits > best_hits and not content_words(cell) <= asked:
            best, best_hits = cell, hits
    return best


def phrase_in(text: str, question: str, kinds: frozenset[FactKind]) -> str:
    """The shortest span of `text` of the asked kind that the question does not hold
    ('' if none): a duration for "how long", a number with its unit, a date, a name."""
    asked = question.lower()
    if asks_duration(question):
        duration = first_duration(text, question)
        if duration and duration.lower() not in asked:
            return duration
    patterns = {"number": _AMOUNT, "date": _DATE, "name": _NAME}
    for kind in ("number", "date", "name"):
        if kind not in kinds:
            continue
        spans = []
        for match in patterns[kind].finditer(text):
            found = _with_range(text, match, patterns[kind])
            words = found.split()
            if words[-1].lower() in _UNIT_WORDS:
                found = " ".join(words[:-1])
            if found and found.lower() not in asked and len(found) < len(text):
                spans.append(found)
        if kind == "name":  # a name the question already says, even in part, is no answer
            spans = [f for f in spans if not content_words(f) & content_words(question)]
        # A count of what the question names first: "6 nodes" for "How many nodes ...?"
        named = [f for f in spans if content_words(f.split()[-1]) & content_words(question)]
        if named or spans:
            return (named or spans)[0]
    return ""


def _with_range(text: str, match: re.Match[str], pattern: re.Pattern[str]) -> str:
    """The match, extended to "A and B" / "A to B" / "A-B" when a second one follows."""
    found = match.group(0).strip()
    joined = re.match(r"\s*(?:and|to|-|–)\s*", text[match.end() :])
    if joined:
        second = pattern.match(text, match.end() + joined.end())
        if second:
            return text[match.start() : second.end()].strip()
    return found
