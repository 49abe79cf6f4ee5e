"""Quantities in questions and the ranges units state: "a claim of 3,000 EUR" against
"Over 1,000 EUR up to 5,000 EUR", "a 7-hour flight" against "flights of 6 hours or
more". Rules on numbers, bound words and unit words; no model call.

`fit` says whether a unit's bounds hold the question's quantity (1), state bounds in
the same unit that do not hold it (-1), or say nothing about it (0). `measure` names
what a "how long / how often" question wants (a duration), and `has_measure` whether a
text gives one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from kb.core.text import STOPWORDS

_NUMBER = r"(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)"
_UNIT = r"(?:[ -]?(%|[A-Za-z]{1,12}))?"
_QUANTITY = re.compile(_NUMBER + _UNIT)
_UPPER = re.compile(
    r"\b(up to|at most|no more than|within|under|below|less than|fewer than|shorter than)\s+"
    + _NUMBER
    + _UNIT,
    re.IGNORECASE,
)
_LOWER = re.compile(
    r"\b(over|above|more than|at least|longer than|exceeding|from)\s+" + _NUMBER + _UNIT,
    re.IGNORECASE,
)
_OR_MORE = re.compile(_NUMBER + _UNIT + r"\s+or (more|longer|above|over|less|fewer|under)\b")
_BETWEEN = re.compile(r"\b" + _NUMBER + r"\s*(?:-|–|to)\s*" + _NUMBER + _UNIT)
_INCLUSIVE = {"up to", "at most", "no more than", "within", "at least", "from"}
_SPAN = r"\b\d[\d,.]*\s*(?:-\s*)?(?:seconds?|minutes?|hours?|days?|weeks?|months?|years?|ms|s|h)\b"
_DURATION = re.compile(_SPAN, re.IGNORECASE)
_FREQUENCY = re.compile(
    _SPAN + r"|\b(?:hourly|daily|nightly|weekly|monthly|quarterly|yearly|annually)\b",
    re.IGNORECASE,
)
_ASKS_AMOUNT = re.compile(r"\bhow much\b(?! (?:time|longer|later|earlier|sooner)\b)", re.IGNORECASE)
_ASKS_FREQUENCY = re.compile(r"\bhow (?:often|frequently)\b", re.IGNORECASE)
_ASKS_DURATION = re.compile(
    r"\bhow (?:long|often|frequently|soon)\b|\bwithin how\b|\bfor how long\b", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class Quantity:
    value: float
    unit: str  # lower-case, singular; '' when none follows the number


def _unit(word: str | None) -> str:
    """The unit word after a number, singular; '' for none, and for a function word
    ("between 2004 and 2014": "and" is no unit, so 2004 stays a year)."""
    word = (word or "").lower()
    if len(word) > 1 and word in STOPWORDS:
        return ""
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def _value(number: str) -> float:
    return float(number.replace(",", ""))


def quantities(text: str) -> list[Quantity]:
    """The quantities a question states ("3,000 EUR", "7-hour"), years left out."""
    out = []
    for match in _QUANTITY.finditer(text):
        value, unit = _value(match.group(1)), _unit(match.group(2))
        if not unit and 1900 <= value <= 2100:
            continue
        out.append(Quantity(value, unit))
    return out


def _bounds(text: str) -> dict[str, tuple[float, bool, float, bool]]:
    """Per unit, the interval (low, low included, high, high included) the text states."""
    found: dict[str, list[float | bool]] = {}

    def interval(unit: str) -> list[float | bool]:
        return found.setdefault(unit, [-math.inf, False, math.inf, False])

    for match in _UPPER.finditer(text):
        bound = interval(_unit(match.group(3)))
        bound[2], bound[3] = _value(match.group(2)), match.group(1).lower() in _INCLUSIVE
    for match in _LOWER.finditer(text):
        bound = interval(_unit(match.group(3)))
        bound[0], bound[1] = _value(match.group(2)), match.group(1).lower() in _INCLUSIVE
    for match in _OR_MORE.finditer(text):
        bound = interval(_unit(match.group(2)))
        at = 0 if match.group(3) in ("more", "longer", "above", "over") else 2
        bound[at], bound[at + 1] = _value(match.group(1)), True
    for match in _BETWEEN.finditer(text):
        bound = interval(_unit(match.group(3)))
        bound[:] = [_value(match.group(1)), True, _value(match.group(2)), True]
    return {unit: (float(b[0]), bool(b[1]), float(b[2]), bool(b[3])) for unit, b in found.items()}


def _holds(bound: tuple[float, bool, float, bool], value: float) -> bool:
    low, low_in, high, high_in = bound
    above = value > low or (low_in and value == low)
    below = value < high or (high_in and value == high)
    return above and below


def fit(asked: list[Quantity], text: str) -> float:
    """How well the text's bounds hold a quantity the question states: from 0.5 (a wide
    range holds it) to 1 (a bound right next to it); -1 if the text states bounds in
    the same unit that hold none of them; 0 if it says nothing about them."""
    if not asked:
        return 0.0
    bounds = _bounds(text)
    verdict = 0.0
    for quantity in asked:
        for unit, bound in bounds.items():
            if unit and quantity.unit and unit != quantity.unit:
                continue
            if _holds(bound, quantity.value):
                return max(verdict, 0.5 + 0.5 * _tightness(bound, quantity.value))
            verdict = min(verdict, -1.0) if verdict <= 0 else verdict
    return verdict


def _tightness(bound: tuple[float, bool, float, bool], value: float) -> float:
    """1 when a bound lies at the value, falling to 0 as the nearest one moves away."""
    scale = abs(value) or 1.0
    nearest = min(abs(value - bound[0]), abs(bound[2] - value))
    return max(0.0, 1.0 - nearest / scale)


def asks_duration(question: str) -> bool:
    return bool(_ASKS_DURATION.search(question))


def asks_amount(question: str) -> bool:
    """Whether the question asks "how much" of something other than time."""
    return bool(_ASKS_AMOUNT.search(question))


def without_durations(text: str) -> str:
    """`text` with its durations ("15 minutes") blanked: what is left may answer "how
    much" (a duration does not say how much an allowance is)."""
    return _DURATION.sub(" ", text)


def has_duration(text: str, question: str = "") -> bool:
    """Whether `text` gives a duration ("35 days"; for "how often", "nightly" too)."""
    pattern = _FREQUENCY if _ASKS_FREQUENCY.search(question) else _DURATION
    return bool(pattern.search(text))


def first_duration(text: str, question: str = "") -> str:
    pattern = _FREQUENCY if _ASKS_FREQUENCY.search(question) else _DURATION
    match = pattern.search(text)
    return match.group(0) if match else ""
