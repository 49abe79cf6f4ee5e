"""An evaluation set written from the corpus itself: `generate_questions`.

With a generative backend (as RAGAS's test-set generator does with its query
distribution over single- and multi-hop queries), each stratified chunk becomes one
request: most ask for a question the chunk answers with a short reference answer and
the sentence that supports it; a share pairs two chunks of different documents that
share a rare term (an entity or a name) and asks for a question needing both; a share
asks for a question on the chunk's topic that it does not answer (right reply: a
refusal). Every candidate passes the filters of `kb.report.generated.Filters`, and
a written one must share a word with its passage(s) and quote its span from them; a
reply that is not the JSON asked for is dropped and counted. Each request carries its
reply's JSON shape (`kb.prompts.ReplyFormat`): a backend that supports structured
output holds the model to it (and llama.cpp's grammar also holds the answer to words
of the passage), so even a small local model's replies parse.

A weak model can keep a writer asking (most replies dropped), so the requests are
capped: `max_requests`, by default REQUESTS_PER_QUESTION times the count, checked
before any request; the set records how many were made and why it stopped (the count
reached, the cap reached, or the chunks exhausted).

Without a generative backend the set is retrieval-only known-item queries
(`kb.report.known_items`). Deterministic for a seed: the same chunks, pairs and
requests, in the same order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from kb.backends.base import AnswerBackend
from kb.backends.prompts import (
    GENERATE_SINGLE_INSTRUCTIONS,
    GENERATE_TWO_DOCUMENT_INSTRUCTIONS,
    GENERATE_UNANSWERABLE_INSTRUCTIONS,
    TWO_DOCUMENT_REPLY_FIELDS,
    UNANSWERABLE_REPLY_FIELDS,
    generation_prompt,
)
from kb.core.errors import InvalidRequestError
from kb.core.models import Chunk
from kb.core.text import content_words
from kb.report.generated import (
    Dropped,
    Filters,
    GeneratedQuestion,
    GeneratedSet,
    StopReason,
)
from kb.report.known_items import known_item_questions
from kb.report.metrics import normalize_answer
from kb.report.sampling import SampledChunk, TermWeights, stratified_sample
from kb.store.corpus import CorpusVersion

MAX_QUESTIONS = 1_000
REQUESTS_PER_QUESTION = 4  # the default request cap: this many per question asked for
MAX_REQUESTS = 10_000
REPLY_EXCERPT = 120  # characters of an unusable reply shown on the review sheet
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_LABELLED = re.compile(r"^\W*(question|answer|span)\W*\s*[:=]\s*(.+?)\s*$", re.I | re.M)


@dataclass(frozen=True, slots=True)
class Shares:
    """The shares of two-document and unanswerable questions in a generated set."""

    two_document: float = 0.2
    unanswerable: float = 0.1

    def __post_init__(self) -> None:
        if min(self.two_document, self.unanswerable) < 0 or (
            self.two_document + self.unanswerable > 1
        ):
            raise InvalidRequestError(
                "The two-document and unanswerable shares must be >= 0 and sum to at most 1."
            )


def generate_questions(
    corpus: CorpusVersion,
    count: int,
    seed: int,
    backend: AnswerBackend | None = None,
    shares: Shares | None = None,
    max_requests: int | None = None,
) -> GeneratedSet:
    """`count` questions from `corpus`: written by `backend` when it is generative, in
    at most `max_requests` requests (default REQUESTS_PER_QUESTION x count), else
    retrieval-only known-item queries. Raises InvalidRequestError for a count or cap
    out of range, before any model is asked."""
    check_count(count)
    cap = check_max_requests(max_requests, count)
    chunks = corpus.chunks
    if not chunks:
        raise InvalidRequestError("The corpus holds no text to write questions from.")
    titles = {doc.doc_id: doc.title for doc in corpus.manifest.documents}
    if backend is None or not backend.generative:
        return known_item_questions(chunks, titles, count, seed)
    generated = GeneratedSet(backend.name, seed, max_requests=cap)
    return _written(backend, chunks, titles, count, generated, shares or Shares())


def check_count(count: int) -> None:
    """Raise InvalidRequestError unless 1 <= count <= MAX_QUESTIONS."""
    if not 1 <= count <= MAX_QUESTIONS:
        raise InvalidRequestError(
            f"The number of questions to generate must be 1-{MAX_QUESTIONS:,}, got {count}."
        )


def check_max_requests(max_requests: int | None, count: int) -> int:
    """The request cap for `count` questions: `max_requests`, or by default
    REQUESTS_PER_QUESTION x count. Raises InvalidRequestError unless count <= cap <=
    MAX_REQUESTS (each kept question takes a request)."""
    cap = REQUESTS_PER_QUESTION * count if max_requests is None else max_requests
    if not count <= cap <= MAX_REQUESTS:
        raise InvalidRequestError(
            f"The request cap (--max-requests) must be a whole number from the question "
            f"count ({count:,}: each kept question takes one request) to {MAX_REQUESTS:,}, "
            f"got {cap:,}."
        )
    return cap


def _written(
    backend: AnswerBackend,
    chunks: Sequence[Chunk],
    titles: dict[str, str],
    count: int,
    generated: GeneratedSet,
    shares: Shares,
) -> GeneratedSet:
    """Ask the backend for questions until `count` are kept, the request cap is
    reached or the chunks run out (`generated.stopped` says which): the unanswerable
    and two-document quotas first, the rest one-document."""
    assert generated.max_requests is not None
    filters = Filters(titles)
    weights = TermWeights(chunks)
    order = stratified_sample(chunks, len(chunks), generated.seed)
    quotas = _quotas(count, shares)
    kept = {kind: 0 for kind in quotas}
    used: set[str] = set()
    texts = {chunk.chunk_id: chunk.text for chunk in chunks}
    for sampled in order:
        if len(generated.questions) >= count or generated.requests >= generated.max_requests:
            break
        if sampled.chunk.chunk_id in used:
            continue
        kind = next(k for k in ("unanswerable", "two_document", "single") if kept[k] < quotas[k])
        partner = _partner(sampled, order, used, weights) if kind == "two_document" else None
        if kind == "two_document" and partner is None:
            kind = "single" if kept["single"] < quotas["single"] else kind
            if kind == "two_document":
                continue
        used.add(sampled.chunk.chunk_id)
        if partner is not None:
            used.add(partner[0].chunk.chunk_id)
        generated.requests += 1
        candidate = _ask(backend, kind, sampled, partner)
        if isinstance(candidate, Dropped):
            generated.dropped.append(candidate)
            continue
        problem = filters.problem(candidate) or _passage_problem(candidate, texts)
        if problem is not None:
            generated.dropped.append(Dropped(problem, candidate.question, sampled.chunk.doc_id))
            continue
        generated.questions.append(candidate)
        kept[kind] += 1
    generated.stopped = _stop_reason(generated, count)
    return generated


def _quotas(count: int, shares: Shares) -> dict[str, int]:
    """Questions of each kind to keep: the shares of `count`, the rest one-document."""
    quotas = {
        "unanswerable": round(count * shares.unanswerable),
        "two_document": round(count * shares.two_document),
    }
    quotas["single"] = count - sum(quotas.values())
    return quotas


def _stop_reason(generated: GeneratedSet, count: int) -> StopReason:
    """Why the writer stopped: the count comes first (the last request may also have
    used up the cap), then the cap, else every chunk was tried."""
    if len(generated.questions) >= count:
        return "count reached"
    if generated.max_requests is not None and generated.requests >= generated.max_requests:
        return "request cap reached"
    return "chunks exhausted"


def _partner(
    sampled: SampledChunk, order: Sequence[SampledChunk], used: set[str], weights: TermWeights
) -> tuple[SampledChunk, str] | None:
    """The first unused chunk of another document sharing a rare term with this one."""
    for other in order:
        if other.chunk.doc_id == sampled.chunk.doc_id or other.chunk.chunk_id in used:
            continue
        term = weights.shared_term(sampled.chunk.text, other.chunk.text)
        if term is not None:
            return other, term
    return None


def _ask(
    backend: AnswerBackend,
    kind: str,
    sampled: SampledChunk,
    partner: tuple[SampledChunk, str] | None,
) -> GeneratedQuestion | Dropped:
    """One request to the backend, its reply parsed into a candidate (or a Dropped
    when the reply is not the JSON asked for)."""
    chunk, source = sampled.chunk, sampled.chunk.doc_id
    stratum = f"{sampled.position}/{sampled.size}"
    if kind == "two_document" and partner is not None:
        other, term = partner
        instructions = GENERATE_TWO_DOCUMENT_INSTRUCTIONS.format(term=term)
        passages = [chunk.text, other.chunk.text]
        prompt = generation_prompt(instructions, passages, TWO_DOCUMENT_REPLY_FIELDS)
        source = f"{chunk.doc_id} + {other.chunk.doc_id}"
    elif kind == "unanswerable":
        prompt = generation_prompt(
            GENERATE_UNANSWERABLE_INSTRUCTIONS, [chunk.text], UNANSWERABLE_REPLY_FIELDS
        )
    else:
        prompt = generation_prompt(GENERATE_SINGLE_INSTRUCTIONS, [chunk.text])
    text = backend.complete(prompt).text
    reply = parse_reply(text)
    question = reply.get("question") if reply else None
    if not isinstance(question, str) or not question.strip():
        excerpt = " ".join(text.split())[:REPLY_EXCERPT]
        return Dropped("reply is not the JSON asked for", f"(reply: {excerpt!r})", source)
    question = " ".join(question.split())
    if kind == "unanswerable":
        return GeneratedQuestion(
            kind, question, "", (chunk.doc_id,), chunk.text, (chunk.chunk_id,), stratum
        )
    answer = " ".join(str(reply.get("answer", "")).split()) if reply else ""
    if not answer:
        return Dropped("no reference answer", question, source)
    if kind == "two_document" and partner is not None:
        spans = reply.get("spans") if reply else None
        span = " ... ".join(str(s) for s in spans) if isinstance(spans, list) else ""
        docs = (chunk.doc_id, partner[0].chunk.doc_id)
        ids = (chunk.chunk_id, partner[0].chunk.chunk_id)
        return GeneratedQuestion(kind, question, answer, docs, span, ids, stratum)
    span = str(reply.get("span", "")) if reply else ""
    return GeneratedQuestion(
        kind, question, answer, (chunk.doc_id,), span, (chunk.chunk_id,), stratum
    )


def _passage_problem(candidate: GeneratedQuestion, texts: dict[str, str]) -> str | None:
    """A written answer's supporting span must be copied from its passage(s), and a
    written question must share a content word with them (else it is about nothing
    there: "What is the answer to the question?")."""
    text = " ".join(texts[c] for c in candidate.source_chunk_ids)
    if not content_words(candidate.question) & content_words(text):
        return "question shares no word with its passage"
    if not candidate.answer:
        return None
    passages = normalize_answer(text)
    pieces = [normalize_answer(p) for p in candidate.span.split(" ... ")]
    if not all(p and p in passages for p in pieces):
        return "span not in its passage"
    return None


def parse_reply(text: str) -> dict[str, object] | None:
    """The first JSON object in a reply (models wrap it in prose or code fences), else
    its labelled lines (`Question: ...`, `Answer: ...`, `Span: ...`), which small
    models write more readily than JSON; None when it has neither."""
    match = _JSON_OBJECT.search(text)
    if match is not None:
        try:
            value = json.loads(match.group(0))
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            return value
    labelled = {m.group(1).lower(): m.group(2).strip(' *_"') for m in _LABELLED.finditer(text)}
    return labelled if "question" in labelled else None
