"""What a unit's similarity score cannot see, weighed for the extractive reader:

- a table row that the question names by its key and by a column ("What language is
  loom written in?" and the row `loom | ... | Python` under "Language"); a question
  without a qualifier of its own does not name a qualified column ("What port ...?"
  names "Port", not "Local port");
- a range or bound that holds the question's quantity ("3,000 EUR" and "Over 1,000
  EUR up to 5,000 EUR"), or misses it;
- a qualifier at the end of the question ("in production", "on a laptop", "in
  London") that the unit's section, title, document name or opening is about, or
  that none of them mentions.

Each is a small addition to the unit's score. A table row or a range the unit itself
states is counted before the refusal threshold: evidence that the unit answers. The
qualifier is not: a document about "Australia" need not answer a question that ends "in
Australia", so it only reorders units that clear the threshold on their own, by
+0.1 / -0.05 among rows and ranges (the production table against the laptop one), by
+0.05 and no penalty for prose.
"""

from __future__ import annotations

import re
from typing import ClassVar

from kb.backends.extractive.answer_phrase import named_columns
from kb.backends.extractive.quantities import fit, quantities
from kb.backends.extractive.reading import Sentence
from kb.core.tables import row_at
from kb.core.text import content_words

TABLE_BONUS = 0.2  # the question names the row's key and one of its columns
KEY_BONUS = 0.0  # ... its key only: not evidence of an answer by itself
RANGE_BONUS = 0.15  # the unit's range holds the question's quantity (minus: misses it)
QUALIFIER_BONUS = 0.1  # the unit's context is about the question's qualifier
QUALIFIER_MISS = 0.05  # ... minus: nothing around the unit mentions it (a larger penalty cost
# more right answers than it saved: "in one batch" is no place)
PROSE_QUALIFIER_BONUS = 0.05  # ... for a unit without a row or range: no penalty either
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

    MOST: ClassVar[float] = TABLE_BONUS + RANGE_BONUS  # what can lift a unit to the threshold

    def __init__(self, question: str) -> None:
        self.question = question
        self.words = content_words(question)
        self.tokens = set(question.split())
        self.quantities = quantities(question)
        self.qualifier = qualifier(question)

    def weigh(
        self, text: str, start: int, end: int, base: int, sentence: Sentence, context: str
    ) -> tuple[float, float]:
        """The unit text[start:end] (document offset `base`)'s added score: (what the
        unit itself shows, a table row or a range, counted before the refusal
        threshold; what its surroundings say about the qualifier, a preference among
        units that clear it)."""
        found = RANGE_BONUS * fit(self.quantities, sentence.text)
        found += self._table(text, start, end)
        if not self.qualifier:
            return found, 0.0
        around = self._qualifier(text, base, sentence, context)
        if found <= 0:  # prose: a tie-breaker only, its document naming a place is no answer
            around = PROSE_QUALIFIER_BONUS if around > 0 else 0.0
        return found, around

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
        columns = named_columns(row, self.question, qualified=bool(self.qualifier))
        return TABLE_BONUS if columns else KEY_BONUS

    def _qualifier(self, text: str, base: int, sentence: Sentence, context: str) -> float:
        """The bonus when the unit or its surroundings (its section, title, document
        name or opening) name the qualifier; the penalty when none of them does."""
        around = content_words(f"{sentence.text} {context} {sentence.title} {sentence.doc_id}")
        opening = content_words(text[-base : -base + INTRO_CHARS]) if base <= 0 else set()
        if self.qualifier & (around | opening):
            return QUALIFIER_BONUS
        return -QUALIFIER_MISS
