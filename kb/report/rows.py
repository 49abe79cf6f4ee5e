"""The raw records of a report run, one per question and mode (and per retrieval
probe and threshold-sweep read): what `results.jsonl` holds and the summary is
computed from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from kb.core.models import Usage
from kb.report.metrics import QuestionScore


@dataclass(frozen=True, slots=True)
class RecallProbe:
    """Whether all gold documents were in the top k, and which fraction was."""

    all_gold: float
    fraction: float


@dataclass(slots=True)
class RetrievalRow:
    """The retriever asked directly for the top k of one question with gold documents."""

    qid: str
    gold_doc_ids: list[str]
    ranked_doc_ids: list[str]
    recall: dict[str, RecallProbe]
    seconds: dict[str, float]
    kind: Literal["retrieval"] = "retrieval"


@dataclass(slots=True)
class AnswerRow:
    """One question asked in one mode through `KnowledgeBase.ask`.

    `evidence_covered` says whether every gold document was in the reader's context
    (None for a question without gold documents or an unanswerable one); `order` is
    the position of this mode among the modes asked about the same question (the
    order is shuffled per question so no mode always runs first)."""

    mode: str
    qid: str
    question: str
    answers: list[str]
    is_impossible: bool
    retrieval_only: bool
    gold_doc_ids: list[str]
    order: int
    error: str | None = None
    answer: str = ""
    refused: bool = False
    cited_doc_ids: list[str] = field(default_factory=list)
    citations: list[dict[str, Any]] = field(default_factory=list)
    retrieved_doc_ids: list[str] = field(default_factory=list)
    path: str | None = None
    fallback: bool = False
    reason: str = ""
    usage: Usage = field(default_factory=Usage)
    cold: bool = False
    cost_usd: float | None = None
    backend: str = ""
    corpus_version: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    best_score: float | None = None
    scores: QuestionScore | None = None
    evidence_covered: bool | None = None
    # The judge's verdicts (generative backends): None when not judged or undecided.
    judged_correct: bool | None = None
    judged_faithful: bool | None = None
    kind: Literal["answer"] = "answer"

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def seconds(self) -> float:
        return self.timings.get("total_s", 0.0)


@dataclass(slots=True)
class SweepRow:
    """The extractive reader's best score on one path with its threshold at 0."""

    path: str
    qid: str
    is_impossible: bool
    best_score: float | None
    answer: str
    contains: float | None
    kind: Literal["threshold_sweep"] = "threshold_sweep"


Row = RetrievalRow | AnswerRow | SweepRow


def row_to_json(row: Row) -> dict[str, Any]:
    """A row as the JSON object written to results.jsonl."""
    return asdict(row)
