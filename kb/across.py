"""One question over several knowledge bases, each gathering its evidence by its own
route: long context where its snapshot fits what is left of the long-context
budget (the knowledge bases are taken in the order asked), retrieval otherwise.
Each knowledge base answers from its own evidence; the answer joins them, its
citations carry their knowledge base, and usage and cost are given per base.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from kb.core.errors import InvalidRequestError
from kb.core.models import Answer, Citation, Route, Usage
from kb.core.settings import check_mode
from kb.service import KnowledgeBase

MAX_KBS_PER_QUESTION = 8
_MARKER = re.compile(r"\[(\d+)\]")


@dataclass(slots=True)
class KBCitation:
    kb: str
    citation: Citation


@dataclass(slots=True)
class KBPart:
    """One knowledge base's share of the answer: its route, usage and cost."""

    kb: str
    answer: Answer
    budget_left: int


@dataclass(slots=True)
class CrossAnswer:
    answer: str
    refused: bool
    citations: list[KBCitation]
    parts: list[KBPart]
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = 0.0


def ask_across(
    bases: Sequence[tuple[str, KnowledgeBase]],
    question: str,
    mode: str | None = None,
    top_k: int | None = None,
) -> CrossAnswer:
    """Answer `question` from every knowledge base in `bases` (name, loaded base)."""
    if not 1 <= len(bases) <= MAX_KBS_PER_QUESTION:
        raise InvalidRequestError(
            f"Name 1 to {MAX_KBS_PER_QUESTION} knowledge bases, got {len(bases)}."
        )
    if mode is not None:
        check_mode(mode)
    question = bases[0][1].validated_question(question)  # before any work
    parts: list[KBPart] = []
    budget: int | None = None
    for name, base in bases:
        route, needed, limit = _route(base, question, mode, top_k, budget)
        budget = limit if budget is None else budget
        if route.path == "long_context":
            budget -= needed
        answer = base.ask(
            question, mode=route.path if route.mode == "auto" else route.mode, top_k=top_k
        )
        if route.mode == "auto":
            answer.route = route
        parts.append(KBPart(kb=name, answer=answer, budget_left=budget))
    return _join(parts)


def _route(
    base: KnowledgeBase, question: str, mode: str | None, top_k: int | None, budget: int | None
) -> tuple[Route, int, int]:
    """The route of one base within what is left of the budget, the tokens its
    long-context prompt needs, and the whole budget (its limit)."""
    corpus = base.corpus()
    sizes = base.sizes(corpus, question)
    chosen = mode or base.settings.default_mode
    k = base.settings.top_k if top_k is None else top_k
    route = base.router.route(corpus.corpus_tokens, chosen, question, k)
    left = sizes.limit if budget is None else budget
    if chosen == "auto" and route.path == "long_context" and sizes.needed > left:
        route = replace(
            route,
            path="rag",
            reason=f"its snapshot needs {sizes.needed:,} tokens but only {left:,} of the "
            f"{sizes.limit:,}-token budget are left after the knowledge bases before it, "
            "so it retrieves",
        )
    elif chosen == "auto" and route.path == "long_context":
        route = replace(route, reason=f"{route.reason}; {left:,} tokens of the budget were left")
    return route, sizes.needed, sizes.limit


def _join(parts: list[KBPart]) -> CrossAnswer:
    """One answer: each base's text under its name, citation numbers made unique."""
    texts: list[str] = []
    citations: list[KBCitation] = []
    joined = CrossAnswer(answer="", refused=True, citations=citations, parts=parts)
    for part in parts:
        answer, offset = part.answer, len(citations)
        renumber = {c.number: c.number + offset for c in answer.citations}
        for cited in answer.citations:
            citations.append(KBCitation(part.kb, replace(cited, number=renumber[cited.number])))
        if not answer.refused:
            text = _renumbered(answer.answer, renumber)
            texts.append(f"{part.kb}: {text}")
            joined.refused = False
        _add(joined.usage, answer.usage)
        if joined.cost_usd is not None:
            joined.cost_usd = None if answer.cost_usd is None else joined.cost_usd + answer.cost_usd
    joined.answer = "\n\n".join(texts) if texts else "None of the knowledge bases could answer."
    return joined


def _renumbered(text: str, renumber: dict[int, int]) -> str:
    return _MARKER.sub(lambda m: f"[{renumber.get(int(m.group(1)), m.group(1))}]", text)


def _add(total: Usage, part: Usage) -> None:
    total.input_tokens += part.input_tokens
    total.cache_read_tokens += part.cache_read_tokens
    total.cache_write_tokens += part.cache_write_tokens
    total.output_tokens += part.output_tokens
