"""Mapping a generated answer's citation markers back to exact spans.

Retrieval answers cite passages as [n]; long-context answers cite documents as
[doc:N] (N the document's reference number in the snapshot; the version's
reference map gives its id), which are renumbered [1]..[m] and pointed at the chunk of that document
that shares the most words with the answer."""

from __future__ import annotations

import re

from kb.backends.prompts import Prompt
from kb.core.models import Citation
from kb.core.text import content_words

_NUMBER = re.compile(r"\[(\d{1,3})\]")
_DOC = re.compile(r"\[doc:\s*([^\]]+?)\s*\]")


def resolve_citations(text: str, prompt: Prompt) -> tuple[str, list[Citation]]:
    """The answer text (markers normalised to [n]) and the citations it makes."""
    if prompt.path == "rag":
        by_number = {p.number: p for p in prompt.passages}
        cited = []
        for match in _NUMBER.finditer(text):
            passage = by_number.get(int(match.group(1)))
            if passage is not None and passage not in cited:
                cited.append(passage)
        return text, sorted(cited, key=lambda c: c.number)
    return _resolve_documents(text, prompt)


def _resolve_documents(text: str, prompt: Prompt) -> tuple[str, list[Citation]]:
    corpus = prompt.corpus
    if corpus is None:
        return text, []
    numbers: dict[str, int] = {}
    citations: list[Citation] = []
    answer_words = content_words(_DOC.sub(" ", text))

    def renumber(match: re.Match[str]) -> str:
        doc_id = corpus.doc_id_for(match.group(1))
        chunks = corpus.chunks_by_doc.get(doc_id) if doc_id else None
        if not doc_id or not chunks:
            return match.group(0)  # not a document of this corpus: leave it visible
        if doc_id not in numbers:
            numbers[doc_id] = len(numbers) + 1
            best = max(chunks, key=lambda c: len(answer_words & content_words(c.text)))
            citations.append(
                Citation(
                    number=numbers[doc_id],
                    chunk_id=best.chunk_id,
                    doc_id=doc_id,
                    title=best.title,
                    source=best.source,
                    start=best.start,
                    end=best.end,
                    text=best.text,
                )
            )
        return f"[{numbers[doc_id]}]"

    return _DOC.sub(renumber, text), citations
