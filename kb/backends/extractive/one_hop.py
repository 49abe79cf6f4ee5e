"""One hop, offline: when the unit that best matches a question answers with a role,
a term or a name the question does not hold ("the Head of Platform", a bucket), the
reader looks that phrase up once more in what it was given and answers with the unit
that resolves it, citing both. No model call: the phrase is found by its form (a
capitalised role with a connecting word, an identifier such as `fh-quarry-raw`), and
the resolving unit by where the phrase stands in it (next to a person's name, or in a
unit that gives the asked-for kind of fact).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from kb.backends.extractive.fact_kinds import asked_kinds, carries
from kb.backends.extractive.quantities import asks_duration, has_duration
from kb.backends.extractive.reading import Reading, Sentence
from kb.backends.extractive.sentence_index import hash64
from kb.backends.prompts import Prompt
from kb.core.text import content_words

MAX_TERMS = 3  # phrases of the bridging unit looked up
MAX_HITS = 40  # occurrences of one phrase examined
LEADS = 3  # best-matching units whose terms are looked up
RESOLVER_SHARE = 0.5  # a resolving unit scores at least this share of its bridge

_ROLE = re.compile(r"\b[A-Z][a-z]+(?: (?:of|for|and|in) (?:the )?[A-Z][\w-]*)+")
_IDENTIFIER = re.compile(r"(?<![\w.-])[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)+(?![\w-])")
_CODE = re.compile(r"`+([^`\s]{3,})`+")
_PERSON = r"[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?(?: [A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?){1,2}"
_STOP_NAME = frozenset("The This That These Those A An In On At For And Or Of".split())


@dataclass(frozen=True, slots=True)
class Resolution:
    """Where in a document the phrase is resolved, and what resolves it."""

    doc_id: str
    position: int  # of the phrase's occurrence, in the document's own offsets
    answer: str  # the name next to a role ('' for a term: the unit answers)


def roles(text: str, question: str) -> list[str]:
    """Capitalised phrases with a connecting word ("Head of Platform", "Director of
    Engineering") that the question does not hold: titles that name a person elsewhere."""
    asked = question.lower()
    found = [m.group(0) for m in _ROLE.finditer(text)]
    return [r for r in dict.fromkeys(found) if r.lower() not in asked][:MAX_TERMS]


def terms(text: str, question: str) -> list[str]:
    """Names of things in `text` that the question does not hold and that other units
    say more about: code spans (`fh-quarry-raw`) and identifiers with a dot, an
    underscore or a digit (events.raw.v3)."""
    asked = question.lower()
    found = [m.group(1) for m in _CODE.finditer(text)]
    found += [
        m.group(0)
        for m in _IDENTIFIER.finditer(text)
        if len(m.group(0)) >= 5 and re.search(r"[._\d]", m.group(0))
    ]
    return [t for t in dict.fromkeys(found) if t.lower() not in asked][:MAX_TERMS]


def named_person(text: str, role: str) -> str:
    """A person's name in apposition to `role` in `text` ("the Head of Platform, Maeve
    Okafor", "Maeve Okafor, Head of Platform", "Head of Platform: Maeve Okafor"); ''
    if there is none."""
    escaped = re.escape(role)
    after = re.search(escaped + r"(?:,|:| is)\s+(" + _PERSON + r")\b", text)
    before = re.search(r"\b(" + _PERSON + r"),?\s+(?:the |our |is the )?" + escaped, text)
    for match in (after, before):
        if match:
            words = [w for w in match.group(1).split() if w not in _STOP_NAME]
            if len(words) >= 2 and role.split()[0] not in words:
                return " ".join(words)
    return ""


def occurrences(texts: dict[str, list[tuple[int, str]]], phrase: str) -> list[tuple[str, int, str]]:
    """(doc_id, position in the document, the text around it) of each occurrence of
    `phrase` in the pieces of context the reader holds (doc_id -> (base, text))."""
    found: list[tuple[str, int, str]] = []
    pattern = re.compile(re.escape(phrase), re.IGNORECASE)
    for doc_id, pieces in texts.items():
        for base, text in pieces:
            for match in pattern.finditer(text):
                around = text[max(0, match.start() - 200) : match.end() + 200]
                found.append((doc_id, match.start() + base, around))
                if len(found) >= MAX_HITS:
                    return found
    return found


def resolve_role(texts: dict[str, list[tuple[int, str]]], role: str) -> Resolution | None:
    """The first occurrence of `role` that names the person holding it."""
    for doc_id, position, around in occurrences(texts, role):
        name = named_person(around, role)
        if name:
            return Resolution(doc_id, position, name)
    return None


@dataclass(frozen=True, slots=True)
class Hop:
    """The units to cite, bridge first, and the phrase that answers."""

    units: list[tuple[Sentence, float]]
    phrase: str


def hop_answer(
    prompt: Prompt,
    reading: Reading,
    scores: np.ndarray,
    candidates: list[tuple[float, float, Sentence, str]],
    threshold: float,
) -> Hop | None:
    """The answer one hop away, or None when the best unit answers by itself.

    A "who" question whose best unit names a role is answered by the unit that names
    the role's holder; a question whose best-matching unit lacks the asked-for kind of
    fact but names a term is answered by the best unit that holds the term and the
    fact."""
    question = prompt.question
    kinds = asked_kinds(question)
    if "name" in kinds and candidates:
        best = (candidates[0][2], candidates[0][1])
        for role in roles(_plain(best[0].text), question):
            found = resolve_role(reading.texts, role)
            unit = _unit_at(reading, scores, found.doc_id, found.position) if found else None
            if found and unit and unit[0].start != best[0].start:
                return Hop([best, unit], found.answer)
        return None
    if not kinds:
        return None
    best_gives = bool(candidates) and _gives(candidates[0][2].text, kinds, question)
    bridges, by_subject = _bridges(reading, scores, threshold, candidates, question)
    if best_gives and not by_subject:
        return None  # the best answer holds the fact and the question's subject
    for bridge in bridges:
        if _gives(bridge[0].text, kinds, question):
            if by_subject:
                continue  # it names the subject in passing; another may lead further
            return None  # the best-matching unit answers by itself
        resolver = _term_resolver(reading, scores, bridge[0], question, kinds, bridge[1])
        if resolver:
            return Hop([bridge, resolver], "")
    return None


def _gives(text: str, kinds: frozenset[str], question: str) -> bool:
    """Whether `text` holds the asked kind of fact (a duration for "how long")."""
    if asks_duration(question):
        return has_duration(text, question)
    return carries(text, kinds, question)


def _plain(text: str) -> str:
    return " ".join(text.replace("`", " ").replace("*", " ").split())


def _bridges(
    reading: Reading,
    scores: np.ndarray,
    threshold: float,
    candidates: list[tuple[float, float, Sentence, str]],
    question: str,
) -> tuple[list[tuple[Sentence, float]], bool]:
    """The units a hop starts from: when the best answer lacks the question's rarest
    word (its subject, often), the best units that hold it; else the units that match
    the question best; and whether they were found by the subject."""
    if not candidates or not _gives(candidates[0][2].text, asked_kinds(question), question):
        return _leads(reading, scores, threshold), False
    _, _, best, context = candidates[0]
    held = content_words(f"{best.text} {context} {best.title}")
    missing = sorted(content_words(question) - held)
    if not missing:
        return _leads(reading, scores, threshold), False
    idf = reading.index.idf([hash64(w) for w in missing])
    rare = hash64(missing[int(np.argmax(idf))])
    holds = reading.index.overlap(reading.rows, {rare: 1.0}) > 0
    holds &= reading.index.answerable[reading.rows]
    at = np.flatnonzero(holds)
    top = at[np.argsort(-scores[at], kind="stable")[:LEADS]]
    return [(reading.sentence(int(reading.rows[i])), float(scores[i])) for i in top], True


def _leads(reading: Reading, scores: np.ndarray, threshold: float) -> list[tuple[Sentence, float]]:
    """The answerable units that match the question best, whatever they say."""
    answerable = np.flatnonzero(reading.index.answerable[reading.rows] & (scores >= threshold))
    top = answerable[np.argsort(-scores[answerable], kind="stable")[:LEADS]]
    return [(reading.sentence(int(reading.rows[at])), float(scores[at])) for at in top]


def _unit_at(
    reading: Reading, scores: np.ndarray, doc_id: str, position: int
) -> tuple[Sentence, float] | None:
    """The answerable unit of the context that holds document position `position`."""
    index = reading.index
    lo, hi = index.doc_rows.get(doc_id, (0, 0))
    row = lo + int(np.searchsorted(index.start[lo:hi], position, side="right")) - 1
    if row < lo or row >= hi or position >= int(index.end[row]) or not index.answerable[row]:
        return None
    at = int(np.searchsorted(reading.rows, row))
    if at >= len(reading.rows) or int(reading.rows[at]) != row:
        return None
    return reading.sentence(row), float(scores[at])


def _term_resolver(
    reading: Reading,
    scores: np.ndarray,
    bridge: Sentence,
    question: str,
    kinds: frozenset[str],
    bridge_score: float,
) -> tuple[Sentence, float] | None:
    """The best-scoring unit that holds a term of `bridge` and the asked kind of fact."""
    best: tuple[Sentence, float] | None = None
    for term in terms(bridge.text, question):
        for doc_id, position, _ in occurrences(reading.texts, term):
            unit = _unit_at(reading, scores, doc_id, position)
            if unit is None or unit[0].start == bridge.start and unit[0].doc_id == bridge.doc_id:
                continue
            if not _gives(unit[0].text, kinds, question) or unit[1] < RESOLVER_SHARE * bridge_score:
                continue
            if best is None or unit[1] > best[1]:
                best = unit
    return best
