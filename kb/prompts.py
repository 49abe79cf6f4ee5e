"""Building the two prompts. The long-context prompt puts instructions and the
byte-stable corpus snapshot first and the question last, so every question on a
corpus version shares one cacheable prefix. The retrieval prompt numbers the
retrieved passages [1]..[k] in document order."""

from __future__ import annotations

from kb.backends.base import INSTRUCTIONS_LONG_CONTEXT, INSTRUCTIONS_RAG, Prompt
from kb.corpus import CorpusVersion
from kb.models import Citation
from kb.passages import passages_from_hits

__all__ = ["long_context_prompt", "passages_from_hits", "rag_prompt"]


def long_context_prompt(corpus: CorpusVersion, question: str) -> Prompt:
    return Prompt(
        path="long_context",
        instructions=INSTRUCTIONS_LONG_CONTEXT,
        context=corpus.snapshot,
        question=question,
        cache_key=f"kb-{corpus.version}",
        corpus=corpus,
    )


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
