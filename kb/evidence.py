"""What a unit's similarity score cannot see, weighed for the extractive reader:

- a table row that the question names by its key and by a column ("What language is
  loom written in?" and the row `loom | ... | Python` under "Language");
- a range or bound that holds the question's quantity ("3,000 EUR" and "Over 1,000
  EUR up to 5,000 EUR"), or misses it;
- a qualifier at the end of the question ("in production", "on a laptop", "in
  London") that the unit's section, title, document name or opening is about, or
  that none of them mentions.

Each is a small addition to the unit's score, counted before the refusal threshold:
they are evidence that the unit answers, not a preference among answers only.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar

from kb.answer_phrase import named_columns
from kb.quantities import fit, quantities
from kb.tables import row_at
from kb.text import content_words

if TYPE_CHECKING:
    from kb.backends.extractive import Sentence

TABLE_BONUS = 0.2  # the question names the row's key and one of its columns
KEY_BONUS = 0.0  # ... its key only: not evidence of an answer by itself
RANGE_BONUS = 0.15  # the unit's range holds the question's quantity (minus: misses it)
QUALIFIER_BONUS = 0.1  # the unit's context is about the question's qualifier
QUALIFIER_MISS = 0.05  # ... minus: nothing around the unit mentions it (a larger penalty cost
# more right answers than it saved: "in one batch" is no place)
INTRO_CHARS = 400  # a document's opening, read as context for all its units

_QUALIFIER = re.compile(
    r"\b(?:in|on|at|for|inside|outside|under|during)\s+(?:the |a |an |our |my )?"
    r"([A-Za-z][\w-]*(?: [A-Za-z][\w-]*)?)\s*\??\s*$"
)
_QUESTION_WORDS = frozenset("what which who whom whose where when why how".split())
_SYMBOL = re.compile(r"[\s\"'`‘’“”]+")


def qualifier(question: str) -> set[str]:
    """The content words of a trailing qualifier ("... in production?")."""
    match = _QUALIFIER.search(question)
    if not match or match.group(1).split()[0].lower() in _QUESTION_WORDS:
        return set()
    return content_words(match.group(1))


class Evidence:
    """The question's cues, weighed against one unit at a time."""

    MOST: ClassVar[float] = TABLE_BONUS + RANGE_BONUS + QUALIFIER_BONUS

    def __init__(self, question: str) -> None:
        self.question = question
        self.words = content_words(question)
        self.tokens = set(question.split())
        self.quantities = quantities(question)
        self.qualifier = qualifier(question)

    def weigh(
        self, text: str, start: int, end: int, base: int, sentence: Sentence, context: str
    ) -> float:
        """The unit text[start:end] (document offset `base`)'s added score."""
        found = RANGE_BONUS * fit(self.quantities, sentence.text)
        found += self._table(text, start, end)
        if self.qualifier:
            found += self._qualifier(text, base, sentence, context)
        return found

    def _table(self, text: str, start: int, end: int) -> float:
        unit = text[start:end]
        if not (unit.lstrip().startswith("|") or ("  " in unit and "\n" not in unit)):
            return 0.0
        row = row_at(text, start, end)
        if row is None or len(row.cells) < 2:
            return 0.0
        key = content_words(row.cells[0])
        symbol = _SYMBOL.sub("", row.cells[0])
        named = (key and key <= self.words) or (
            not key and symbol and any(_SYMBOL.sub("", t) == symbol for t in self.tokens)
        )
        if not named:
            return 0.0
        return TABLE_BONUS if named_columns(row, self.question) else KEY_BONUS

    def _qualifier(self, text: str, base: int, sentence: Sentence, context: str) -> float:
        """The bonus when the unit's surroundings (its section, title, document name or
        opening; the score already reads the unit itself) name the qualifier."""
        around = content_words(f"{context} {sentence.title} {sentence.doc_id}")
        opening = content_words(text[-base : -base + INTRO_CHARS]) if base <= 0 else set()
        if self.qualifier & (around | opening):
            return QUALIFIER_BONUS
        return -QUALIFIER_MISS
