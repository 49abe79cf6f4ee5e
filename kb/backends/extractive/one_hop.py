"""One hop, offline: when the unit that best matches a question answers with a role,
a term or a name the question does not hold ("the Head of Platform", a bucket), the
reader looks that phrase up once more in what it was given and answers with the unit
that resolves it, citing both. No model call: the phrase is found by its form (a
capitalised role with a connecting word, an identifier such as `fh-quarry-raw`), and
the resolving unit by where the phrase stands in it (next to a person's name, or in a
unit that gives the asked-for kind of fact).

The other way round, a question that names a thing by a description ("the cluster
that replaced Redshift", "the city of the second office") and that no unit answers,
or whose best unit only answers its relative clause, is asked again around the name
the best-matching units give for that description ("How many nodes does the cluster
ClickHouse have?"), and answered by a table row that holds the name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from kb.backends.extractive.fact_kinds import asked_kinds, carries
from kb.backends.extractive.quantities import asks_duration, has_duration
from kb.backends.extractive.reading import Reading, Sentence
from kb.backends.extractive.sentence_index import KINDS, hash64
from kb.backends.prompts import Prompt
from kb.core.text import STOPWORDS, content_words

MAX_TERMS = 3  # phrases of the bridging unit looked up
MAX_HITS = 40  # occurrences of one phrase examined
LEADS = 3  # best-matching units whose terms are looked up
RESOLVER_SHARE = 0.5  # a resolving unit scores at least this share of its bridge
CLAUSE_SHARE = 0.5  # of a relative clause's words, the share its bridge must hold
CLAUSE_REACH = 6  # words between a relative pronoun and the first word a bridge holds

_ROLE = re.compile(r"\b[A-Z][a-z]+(?: (?:of|for|and|in) (?:the )?[A-Z][\w-]*)+")
_IDENTIFIER = re.compile(r"(?<![\w.-])[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)+(?![\w-])")
_CODE = re.compile(r"`+([^`\s]{3,})`+")
_PERSON = r"[A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?(?: [A-Z][a-z]+(?:[-'][A-Z]?[a-z]+)?){1,2}"
_CAPITALS = re.compile(
    r"\b[A-Z][A-Za-z0-9]*(?:[-'][A-Za-z0-9]+)*(?: [A-Z][A-Za-z0-9]*(?:[-'][A-Za-z0-9]+)*)*"
)
_AFTER_NUMBER = re.compile(r"\d\s*$")
_RELATIVE = frozenset("that which who whom whose where when".split())
_WORD = re.compile(r"[A-Za-z0-9]+")
_CALENDAR = frozenset(
    "january february march april may june july august september october november december "
    "monday tuesday wednesday thursday friday saturday sunday".split()
)
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


def _leads(reading: Reading, scores: np.ndarray, floor: float) -> list[tuple[Sentence, float]]:
    """The answerable units scoring `floor` or more that match the question best,
    whatever they say."""
    answerable = np.flatnonzero(reading.index.answerable[reading.rows] & (scores >= floor))
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


def names(text: str, question: str) -> list[str]:
    """Names in `text` that the question does not hold (capitalised words and runs of
    them, code spans, identifiers, a table row's key), the one standing closest to the
    question's own words first: in "the second office is in Lisbon", Lisbon answers
    "second office"."""
    asked, question_words = question.lower(), content_words(question)
    near = [m.start() for m in _WORD.finditer(text) if content_words(m.group(0)) & question_words]
    found: dict[str, int] = {}
    runs = [(m.start(), m.group(0)) for m in _CAPITALS.finditer(text)]
    runs += [(m.start(), m.group(1)) for m in _CODE.finditer(text)]
    runs += [
        (m.start(), m.group(0))
        for m in _IDENTIFIER.finditer(text)  # prod-read, not on-call
        if not any(part in STOPWORDS for part in re.split(r"[-_.]", m.group(0).lower()))
    ]
    if text.lstrip().startswith("|"):  # a table row is about its key: "| ledgerd | ..."
        runs.append((text.index("|") + 1, text.split("|")[1].strip()))
    for at, run in runs:
        words = run.split()
        while words and (words[0].lower() in STOPWORDS or words[0].lower() in _CALENDAR):
            words.pop(0)  # "The ClickHouse" -> ClickHouse; "October" is a date, not a name
        name = " ".join(words)
        if len(name) < 3 or name.lower() in asked or not near or _AFTER_NUMBER.search(text[:at]):
            continue  # after a number it is a unit ("1,200 EUR"), not a name
        distance = min(abs(at - n) for n in near)
        found[name] = min(distance, found.get(name, distance))
    return sorted(found, key=lambda n: found[n])


def name_bridges(
    question: str, reading: Reading, scores: np.ndarray
) -> list[tuple[Sentence, float, str, str]]:
    """For a question that no unit answers: (bridge, its score, the name it gives, the
    question asked again around that name) for the units that match the question
    best. The bridge answers part of the question ("the cluster that replaced
    Redshift" -> "ClickHouse ... Redshift is switched off"); the words it holds give
    way to the name it adds ("How many nodes does the cluster ... have ClickHouse?")."""
    out = []
    for bridge, score in _leads(reading, scores, 0.0):
        held = content_words(bridge.text)
        given = names(_plain(bridge.text), question)
        if not given or not held & content_words(question):
            continue
        if content_words(given[0]) & content_words(question):
            continue  # "Fernhollow Analytics Ltd" for "Fernhollow's": no new thing
        asked = asked_around(question, held, given[0])
        if asked:
            out.append((bridge, score, given[0], asked))
    return out


def answers_a_clause(question: str, text: str) -> bool:
    """Whether `text` holds only words of a relative clause of the question ("the access
    level that becomes available once a new joiner finishes security training") and
    none of the rest: it tells what the clause names, not what is asked of it."""
    words = re.findall(r"[\w'-]+", question)
    held = content_words(text)
    at = [i for i, w in enumerate(words) if content_words(w) & held]
    if not at:
        return False
    first = _clause_start(words, at[0])
    if first == at[0]:
        return False  # no relative clause opens the part the text holds
    outside = content_words(" ".join([*words[:first], *words[at[-1] + 1 :]]))
    return bool(outside) and not outside & held


def _clause_start(words: list[str], first: int) -> int:
    """Where a relative clause ending at or after word `first` opens (its pronoun, at
    most CLAUSE_REACH words back, never the question's own opening "where"), or
    `first` when none does."""
    for i in range(first - 1, max(1, first - CLAUSE_REACH - 1), -1):
        if words[i].lower() in _RELATIVE:
            return i
    return first


def asked_around(question: str, held: set[str], name: str) -> str:
    """The question with the part a bridge answers (from the first to the last word the
    bridge holds, and the relative clause that opens it) replaced by the name the
    bridge gives: "the cluster that replaced Redshift" -> "the cluster ClickHouse".
    '' unless the bridge holds every word of that part, or half of a relative clause's,
    and the part describes a thing (two words or more, not all capitalised) rather
    than names one."""
    words = re.findall(r"[\w'-]+", question)
    at = [i for i, w in enumerate(words) if content_words(w) & held]
    first, last = _clause_start(words, at[0]), at[-1]
    part = [w for w in words[first : last + 1] if content_words(w)]
    share = sum(bool(content_words(w) & held) for w in part) / len(part)
    if share < (CLAUSE_SHARE if first < at[0] else 1.0):
        return ""  # the bridge holds words scattered over the question: no one part of it
    if first == at[0] and (len(part) < 2 or all(w[0].isupper() for w in part)):
        return ""  # a name ("the Danube"), not a description of one: nothing to resolve
    return " ".join([*words[:first], name, *words[last + 1 :]]) + "?"


def is_row(reading: Reading, unit: Sentence) -> bool:
    """Whether `unit` is a table row: a name is looked up where a table holds it."""
    index = reading.index
    lo, hi = index.doc_rows.get(unit.doc_id, (0, 0))
    row = lo + int(np.searchsorted(index.start[lo:hi], unit.start, side="right")) - 1
    return lo <= row < hi and KINDS[int(index.kind[row])] == "row"
