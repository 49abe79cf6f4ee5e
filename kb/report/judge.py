"""A judge for generative answers: correctness against the reference answer and
faithfulness to the cited passages, asked of a judge backend (the run's own or a
named other), beside exact match, containment and F1.

Each request carries its reply's shape (`CORRECTNESS_REPLY`, `FAITHFULNESS_REPLY` in
`kb.backends.prompts`): an OpenAI-compatible server gets a strict JSON schema and the
local llama.cpp backend a grammar, so the reply is `{"correct": true}` or `false` and
nothing else, even from a small model; a backend without structured output (Anthropic
here) answers in free text, which `verdict` still reads.

Only answered, answerable questions are judged (a refusal is wrong on them without
asking; an unanswerable question is right when refused; a retrieval-only one has no
reference). Where the judge decides, its verdict becomes the question's `correct`,
so accuracy and the recommendation rest on it; containment stays in the scores, and
the summary prints how often the two agree and lists where they do not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import replace

from kb.backends.base import AnswerBackend
from kb.backends.prompts import correctness_prompt, faithfulness_prompt
from kb.report.metrics import mean, strip_citation_markers
from kb.report.rows import AnswerRow
from kb.report.summary import JudgeSummary
from kb.store.corpus import CorpusVersion

MAX_PASSAGE_CHARS = 4_000
MAX_DISAGREEMENTS = 50
_JSON_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)
# The reply's first word, markdown emphasis aside ("**Yes**"); not one inside JSON.
_FIRST_WORD = re.compile(r"\s*[*_]*([A-Za-z]+)\b")


def judge_rows(judge: AnswerBackend, corpus: CorpusVersion, rows: Sequence[AnswerRow]) -> None:
    """Ask the judge about every answered, answerable row; set its verdicts and make
    its correctness the row's `correct`."""
    for row in rows:
        if not row.ok or row.is_impossible or row.retrieval_only or row.refused:
            continue
        answer = strip_citation_markers(row.answer)
        reply = judge.complete(correctness_prompt(row.question, row.answers[0], answer)).text
        row.judged_correct = verdict(reply, "correct")
        passages = cited_passages(corpus, row)
        if passages:
            reply = judge.complete(faithfulness_prompt(passages, answer)).text
            row.judged_faithful = verdict(reply, "faithful")
        else:
            row.judged_faithful = False  # cites nothing: nothing supports it
        if row.judged_correct is not None and row.scores is not None:
            row.scores = replace(row.scores, correct=row.judged_correct)


def cited_passages(corpus: CorpusVersion, row: AnswerRow) -> list[str]:
    """The text of each distinct chunk the answer cites (a whole-document citation
    from long context: the document's chunks, cut at MAX_PASSAGE_CHARS)."""
    texts = {c.chunk_id: c.text for c in corpus.chunks}
    found: list[str] = []
    for citation in row.citations:
        chunk_id = str(citation.get("chunk_id") or "")
        if chunk_id in texts:
            text = texts[chunk_id]
        else:
            chunks = corpus.chunks_by_doc.get(str(citation.get("doc_id")), [])
            text = "\n".join(c.text for c in chunks)
        text = text[:MAX_PASSAGE_CHARS]
        if text and text not in found:
            found.append(text)
    return found


def verdict(reply: str, key: str) -> bool | None:
    """The judge's yes or no. A structured reply (the request's ReplyFormat, which a
    backend with structured output holds the judge to: `{"<key>": true|false}` and
    nothing else) is read as it stands; from a backend without structured output,
    such an object anywhere in the reply (its value a JSON boolean), else a reply
    whose first word is a verdict (yes, no, true, false, the key or its negation).
    Anything else is None (undecided, never a yes): `{"correct": "yes"}`, "not
    correct", "The answer is correct"."""
    structured = _structured(reply, key)
    return structured if structured is not None else _free_text_verdict(reply, key)


def _verdict_words(key: str) -> dict[str, bool]:
    """The first words a free-text verdict may open with, and what each means: yes/no,
    true/false, the key's word and its negation ("correct"/"incorrect",
    "faithful"/"unfaithful")."""
    words = {"yes": True, "true": True, key: True, "no": False, "false": False}
    return words | {f"in{key}": False, f"un{key}": False}


def _structured(reply: str, key: str) -> bool | None:
    """The verdict of a reply that is exactly the JSON object asked for, else None."""
    try:
        value = json.loads(reply)
    except json.JSONDecodeError:
        return None
    found = value.get(key) if isinstance(value, dict) and value.keys() == {key} else None
    return found if isinstance(found, bool) else None


def _free_text_verdict(reply: str, key: str) -> bool | None:
    """The verdict in a reply not held to the format: a JSON boolean under `key` in an
    object in it, else its first word when that is a verdict word, else None."""
    for match in _JSON_OBJECT.finditer(reply):
        try:
            value = json.loads(match.group(0)).get(key)
        except (json.JSONDecodeError, AttributeError):
            continue
        if isinstance(value, bool):
            return value
    first = _FIRST_WORD.match(reply)
    return _verdict_words(key).get(first.group(1).lower()) if first else None


def judge_summary(judge: str, rows: Sequence[AnswerRow], modes: Sequence[str]) -> JudgeSummary:
    """The judge's numbers for the report (see JudgeSummary)."""
    asked = [r for r in rows if r.ok and not r.is_impossible and not r.retrieval_only]
    asked = [r for r in asked if not r.refused]
    decided = [r for r in asked if r.judged_correct is not None and r.scores is not None]
    agree = [r.judged_correct == (r.scores.contains == 1.0) for r in decided if r.scores]
    disagreements = [
        {
            "qid": r.qid,
            "mode": r.mode,
            "question": r.question,
            "reference": r.answers[0],
            "answer": strip_citation_markers(r.answer),
            "judge": r.judged_correct,
            "contains": r.scores.contains if r.scores else None,
        }
        for r, same in zip(decided, agree, strict=True)
        if not same
    ]
    graded = [r for r in rows if r.ok and not r.retrieval_only]
    return JudgeSummary(
        judge=judge,
        judged=len(decided),
        undecided=len(asked) - len(decided),
        accuracy={
            m: mean(
                float(r.scores.correct)
                for r in graded
                if r.mode == m and r.scores and r.scores.correct is not None
            )
            for m in modes
        },
        faithfulness={
            m: mean(
                float(r.judged_faithful)
                for r in asked
                if r.mode == m and r.judged_faithful is not None
            )
            for m in modes
        },
        agreement_with_contains=sum(agree) / len(agree) if agree else None,
        disagreements=disagreements[:MAX_DISAGREEMENTS],
    )
