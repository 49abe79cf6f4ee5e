"""Retrieval-only questions without a generative model: simulated known-item queries.

A person looking for a page they have seen types either a heading they remember or
a few of its rarest words (the known-item query simulation of Azzopardi, de Rijke
and Balog, 2007: query terms drawn from one document, weighted towards the terms
that discriminate it). Both are written here from stratified chunks; each names its
document as the gold one and carries no reference answer, so the report scores it
on retrieval recall and evidence coverage only, and says so.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence

from kb.core.models import Chunk
from kb.core.text import reading_units
from kb.report.generated import Dropped, Filters, GeneratedQuestion, GeneratedSet
from kb.report.sampling import SampledChunk, TermWeights, stratified_sample, words

KNOWN_ITEM_GENERATOR = "known-item queries (offline, no generative model)"
KEYWORDS_PER_QUERY = 4
MIN_SENTENCE_WORDS = 3  # words that can single it out, title words aside
_MARKUP = re.compile(r"[#|*`_=>]+")
HEADING_EVERY = 3  # one question in three from a heading, when the chunk has one


def known_item_questions(
    chunks: Sequence[Chunk], titles: dict[str, str], count: int, seed: int
) -> GeneratedSet:
    """`count` known-item queries (fewer if the corpus runs out), deterministic for a
    seed: chunks are visited in stratified order; every third takes a section heading
    (when it has a distinctive one), the others a keyword query from one sentence."""
    generated = GeneratedSet(KNOWN_ITEM_GENERATOR, seed)
    weights = TermWeights(chunks)
    headings = _heading_counts(chunks)
    filters = Filters(titles)
    rng = random.Random(seed)
    for number, sampled in enumerate(stratified_sample(chunks, len(chunks), seed)):
        if len(generated.questions) >= count:
            break
        prefer_heading = number % HEADING_EVERY == 0
        for candidate in _candidates(sampled, weights, headings, rng, prefer_heading):
            problem = filters.problem(candidate)
            if problem is None:
                generated.questions.append(candidate)
                break
            generated.dropped.append(Dropped(problem, candidate.question, sampled.chunk.doc_id))
    generated.stopped = "count reached" if len(generated.questions) >= count else "chunks exhausted"
    return generated


def _candidates(
    sampled: SampledChunk,
    weights: TermWeights,
    headings: Counter[str],
    rng: random.Random,
    prefer_heading: bool,
) -> Iterator[GeneratedQuestion]:
    """The chunk's heading query (when preferred and distinctive), then a keyword
    query from one of its sentences (a seeded choice among the longer ones)."""
    chunk = sampled.chunk
    stratum = f"{sampled.position}/{sampled.size}"
    if prefer_heading:
        for heading in _headings(chunk.text):
            if headings[heading.lower()] == 1 and len(heading.split()) >= 2:
                yield GeneratedQuestion(
                    "known_item_heading",
                    heading,
                    "",
                    (chunk.doc_id,),
                    heading,
                    (chunk.chunk_id,),
                    stratum,
                )
                break
    title = frozenset(words(f"{chunk.title} {chunk.doc_id.replace('/', ' ')}"))
    sentences = [
        s for s in _sentences(chunk.text) if len(set(words(s)) - title) >= MIN_SENTENCE_WORDS
    ]
    if sentences:
        sentence = rng.choice(sentences)
        query = " ".join(weights.discriminative(sentence, KEYWORDS_PER_QUERY, title))
        yield GeneratedQuestion(
            "known_item_keywords",
            query,
            "",
            (chunk.doc_id,),
            sentence,
            (chunk.chunk_id,),
            stratum,
        )


def _headings(text: str) -> list[str]:
    """The chunk's headings as plain words (markup and underlines removed)."""
    found = []
    for unit in reading_units(text):
        if unit.kind == "heading":
            first = text[unit.start : unit.end].split("\n")[0]
            found.append(" ".join(_MARKUP.sub(" ", first).split()))
    return [h for h in found if h]


def _sentences(text: str) -> list[str]:
    return [
        " ".join(text[u.start : u.end].split())
        for u in reading_units(text)
        if u.kind in ("sentence", "item")
    ]


def _heading_counts(chunks: Sequence[Chunk]) -> Counter[str]:
    """How many documents carry each heading: a heading shared by several documents
    ("Overview") does not single one out."""
    by_doc: dict[str, set[str]] = {}
    for chunk in chunks:
        by_doc.setdefault(chunk.doc_id, set()).update(h.lower() for h in _headings(chunk.text))
    return Counter(h for found in by_doc.values() for h in found)
