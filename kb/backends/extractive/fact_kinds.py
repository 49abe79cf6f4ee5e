"""Cheap signals for the extractive reader: which kind of fact a question asks for
(a number, a date, a name), whether a sentence carries it, and whether a sentence
only restates the question. Rules on the question word and the sentence's digits,
dates and capitalised words; no model call."""

from __future__ import annotations

import re

from kb.core.text import content_words

FactKind = str  # "number", "date" or "name"

_ASKS_NUMBER = re.compile(
    r"\bhow (?:many|much|long|often|old|far|large|big|high|low|fast|soon|late|early|"
    r"frequently|small|short|wide|deep|heavy)\b"
    r"|\bwhat (?:percentage|percent|share|number|amount|size|fraction|proportion|ratio|"
    r"price|cost|port|version|limit|maximum|minimum)\b|\bwithin how\b",
    re.IGNORECASE,
)
_ASKS_DATE = re.compile(
    r"^\W*when\b|\bwhen (?:is|are|was|were|do|does|did|will|should|must|can)\b"
    r"|\b(?:what|which|in what|on what|by what) (?:year|date|day|month|time|hour|decade|century)\b"
    r"|\bby when\b|\bsince when\b",
    re.IGNORECASE,
)
_ASKS_NAME = re.compile(
    r"^\W*(?:who|whom|whose)\b|\bwho (?:is|was|are|were|owns|approves)\b", re.IGNORECASE
)

_NUMBER_WORDS = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy "
    "eighty ninety hundred thousand million billion trillion half quarter twice thrice "
    "dozen dozens hundreds thousands millions several few single double triple once"
).split()
_FREQUENCY_WORDS = (
    "hourly nightly daily weekly fortnightly monthly quarterly yearly annually".split()
)
_NUMBER = re.compile(
    r"\d+(?:[.,:]\d+)*|\b(?:" + "|".join(_NUMBER_WORDS + _FREQUENCY_WORDS) + r")\b",
    re.IGNORECASE,
)
_MONTHS = (
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
).split()
_DAYS = "monday tuesday wednesday thursday friday saturday sunday weekend weekday".split()
_DATE = re.compile(
    r"\b(?:1[0-9]{3}|20[0-9]{2})s?\b|\b\d{1,2}:\d{2}\b|\b(?:"
    + "|".join(_MONTHS + _DAYS)
    + r")\b|\b(?:daily|weekly|monthly|yearly|annually|quarterly|century|decade)\b",
    re.IGNORECASE,
)
_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+(?:[-'][A-Za-z]+)?\b")

RESTATE_SHARE = 0.75  # a unit whose words are mostly the question's restates it ...


def asked_kinds(question: str) -> frozenset[FactKind]:
    """The kinds of fact the question's wording asks for (may be empty)."""
    kinds = set()
    if _ASKS_NUMBER.search(question):
        kinds.add("number")
    if _ASKS_DATE.search(question):
        kinds.add("date")
    if _ASKS_NAME.search(question):
        kinds.add("name")
    return frozenset(kinds)


def carries(text: str, kinds: frozenset[FactKind], question: str) -> bool:
    """Whether `text` holds a fact of one of `kinds` that the question does not."""
    asked = {w.lower() for w in re.findall(r"\w+", question)}
    if "number" in kinds and any(m.group(0).lower() not in asked for m in _NUMBER.finditer(text)):
        return True
    if "date" in kinds and any(m.group(0).lower() not in asked for m in _DATE.finditer(text)):
        return True
    return "name" in kinds and any(
        m.group(0).lower() not in asked for m in _CAPITALISED.finditer(text)
    )


def restates(text: str, known_words: set[str], kinds: frozenset[FactKind]) -> bool:
    """Whether `text` says nothing beyond `known_words` (the question's and the title's
    words): no new word at all, or ... mostly known words and none of the asked-for
    kind of fact."""
    words = content_words(text)
    new = words - known_words
    if not new:
        return True
    if kinds and len(words) >= 4 and 1 - len(new) / len(words) >= RESTATE_SHARE:
        # The new words as written: their stems ("thre") no longer read as a number.
        written = [word for word in re.findall(r"\w+", text) if content_words(word) & new]
        return not carries(" ".join(written), kinds, "")
    return False
