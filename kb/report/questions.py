"""Evaluation sets: the question-set format and its loader.

The format (one JSON object per line, as in `../shared/datasets/*/questions.jsonl`):

    {"qid": "56ddde6b...",                 required, unique string
     "question": "In what country is ...", required, non-empty string
     "answers": ["France", "in France"],   acceptable reference answers (any may match);
                                           empty for an unanswerable question
     "gold_doc_ids": ["Normans#p0"],       optional: ids of the documents that hold the
                                           answer (as ingested), for citation, retrieval
                                           and evidence-coverage metrics
     "is_impossible": false,               optional: true when the corpus does not answer
                                           the question (the right reply is a refusal)
     ...}                                  anything else is kept in `extra`

Three kinds of question follow from it:

- answerable: at least one reference answer;
- unanswerable: `is_impossible` true (the default when there are neither answers
  nor gold documents);
- retrieval-only: gold documents but no reference answer and not marked
  impossible. It counts in retrieval recall and evidence coverage, never in
  answer accuracy, so a set of questions with known sources but no written
  answers can still compare the two paths.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.core.errors import InvalidRequestError


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    """One question of an evaluation set with what a right answer looks like."""

    qid: str
    question: str
    answers: tuple[str, ...]
    gold_doc_ids: tuple[str, ...] = ()
    is_impossible: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def retrieval_only(self) -> bool:
        """Gold documents but no reference answer: scored on evidence, not on answers."""
        return not self.is_impossible and not self.answers

    @property
    def has_evidence(self) -> bool:
        """Counts in retrieval recall and evidence coverage: not unanswerable, with gold
        documents."""
        return not self.is_impossible and bool(self.gold_doc_ids)


def load_questions(path: Path) -> list[EvalQuestion]:
    """Every question of a `questions.jsonl` file, in file order.

    Raises InvalidRequestError naming the line of the first malformed record or a
    repeated qid, so a broken set fails before any question is asked."""
    try:
        lines = path.read_text("utf-8").splitlines()
    except FileNotFoundError as exc:
        raise InvalidRequestError(f"Evaluation set {path} does not exist.") from exc
    questions: list[EvalQuestion] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidRequestError(f"{where}: invalid JSON ({exc.msg}).") from exc
        question = _parse_question(record, where)
        if question.qid in seen:
            raise InvalidRequestError(f"{where}: qid {question.qid!r} appears twice.")
        seen.add(question.qid)
        questions.append(question)
    if not questions:
        raise InvalidRequestError(f"Evaluation set {path} holds no questions.")
    return questions


def _parse_question(record: object, where: str) -> EvalQuestion:
    if not isinstance(record, dict):
        raise InvalidRequestError(f"{where}: a line must be a JSON object.")
    qid, text = record.get("qid"), record.get("question")
    if not isinstance(qid, str) or not qid:
        raise InvalidRequestError(f'{where}: "qid" must be a non-empty string.')
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequestError(f'{where}: "question" must be a non-empty string.')
    answers = record.get("answers", [])
    gold = record.get("gold_doc_ids", [])
    for name, value in (("answers", answers), ("gold_doc_ids", gold)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidRequestError(f'{where}: "{name}" must be a list of strings.')
    impossible = record.get("is_impossible", not answers and not gold)
    if not isinstance(impossible, bool):
        raise InvalidRequestError(f'{where}: "is_impossible" must be true or false.')
    if not impossible and not answers and not gold:
        raise InvalidRequestError(
            f'{where}: an answerable question needs at least one entry in "answers" '
            '(or, for a retrieval-only question, in "gold_doc_ids").'
        )
    known = {"qid", "question", "answers", "gold_doc_ids", "is_impossible"}
    return EvalQuestion(
        qid=qid,
        question=text.strip(),
        answers=tuple(answers),
        gold_doc_ids=tuple(dict.fromkeys(gold)),
        is_impossible=impossible,
        extra={k: v for k, v in record.items() if k not in known},
    )


def sample_questions(
    questions: Sequence[EvalQuestion], limit: int | None, seed: int
) -> list[EvalQuestion]:
    """`limit` questions drawn at random with `seed` (all of them when `limit` is None
    or not smaller), kept in file order so a report reads like its source."""
    if limit is None or limit >= len(questions):
        return list(questions)
    if limit < 1:
        raise InvalidRequestError(f"--limit must be at least 1, got {limit}.")
    rows = sorted(random.Random(seed).sample(range(len(questions)), limit))
    return [questions[row] for row in rows]
