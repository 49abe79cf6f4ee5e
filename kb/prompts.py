"""Building the two prompts. The long-context prompt puts instructions and the
byte-stable corpus snapshot first and the question last, so every question on a
corpus version shares one cacheable prefix. The retrieval prompt numbers the
retrieved passages [1]..[k] in document order."""

from __future__ import annotations

from kb.backends.base import INSTRUCTIONS_LONG_CONTEXT, INSTRUCTIONS_RAG, Prompt
from kb.corpus import CorpusVersion
from kb.models import Citation
from kb.retrieval import Hit


def long_context_prompt(corpus: CorpusVersion, question: str) -> Prompt:
    return Prompt(
        path="long_context",
        instructions=INSTRUCTIONS_LONG_CONTEXT,
        context=corpus.snapshot,
        question=question,
        cache_key=f"kb-{corpus.version}",
        corpus=corpus,
    )


def passages_from_hits(hits: list[Hit]) -> list[Citation]:
    """The hits as numbered passages, in document order (not score order): reading
    order helps a model follow a document, and the numbers stay stable."""
    ordered = sorted(hits, key=lambda h: (h.chunk.doc_id, h.chunk.start))
    return [
        Citation(
            number=number,
            chunk_id=hit.chunk.chunk_id,
            doc_id=hit.chunk.doc_id,
            title=hit.chunk.title,
            source=hit.chunk.source,
            start=hit.chunk.start,
            end=hit.chunk.end,
            text=hit.chunk.text,
            score=round(hit.score, 6),
        )
        for number, hit in enumerate(ordered, start=1)
    ]


def rag_prompt(passages: list[Citation], question: str, corpus: CorpusVersion | None) -> Prompt:
    context = "\n\n".join(f"[{p.number}] {p.title} ({p.source})\n{p.text}" for p in passages)
    return Prompt(
        path="rag",
        instructions=INSTRUCTIONS_RAG,
        context=context,
        question=question,
        passages=passages,
        corpus=corpus,
    )


# ---- conversations: the follow-up rewrite (kb.conversation) ------------------------

REWRITE_INSTRUCTIONS = """Rewrite the follow-up question as a standalone question that \
can be understood without the conversation: replace every pronoun and vague reference \
(she, it, its, that, there) with what it refers to in the conversation. Keep the meaning; \
do not answer it. Reply with the standalone question only, on one line."""


def rewrite_prompt(history: str, last_question: str) -> Prompt:
    """The rewrite call: instructions and the conversation first, the follow-up last."""
    return Prompt(
        path="rag",
        instructions=REWRITE_INSTRUCTIONS,
        context=f"Conversation:\n{history}",
        question=f"Follow-up question: {last_question}\nStandalone question:",
    )
