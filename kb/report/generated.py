"""A generated evaluation set: its questions, what the filters dropped and why, how
many requests the writer made and why it stopped, and the two files it is written to
(the evaluation JSONL `kb report` reads, and a review sheet a person reads and
corrects before the run).

Every generated question is a line of the usual format (`kb.report.questions`) with
what it was written from kept beside it: `kind`, `span` (the supporting text),
`source_chunk_ids`, `stratum` and `generator`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kb.core.errors import NoQuestionsKeptError
from kb.report.metrics import normalize_answer

RETRIEVAL_ONLY_KINDS = ("known_item_heading", "known_item_keywords")
KIND_NAMES = {
    "known_item_heading": "known-item query: a section heading (retrieval-only)",
    "known_item_keywords": "known-item query: a sentence's most discriminative words "
    "(retrieval-only)",
    "single": "one-document question with a reference answer",
    "two_document": "two-document question (chunks linked by a shared rare term)",
    "unanswerable": "question the corpus should not answer (the right reply is a refusal)",
}


@dataclass(frozen=True, slots=True)
class GeneratedQuestion:
    """One question written from the corpus, with the span that supports it."""

    kind: str
    question: str
    answer: str  # "" for retrieval-only and unanswerable questions
    gold_doc_ids: tuple[str, ...]
    span: str
    source_chunk_ids: tuple[str, ...]
    stratum: str = ""

    @property
    def is_impossible(self) -> bool:
        return self.kind == "unanswerable"

    def record(self, qid: str, generator: str) -> dict[str, object]:
        """The question as a line of the evaluation JSONL."""
        return {
            "qid": qid,
            "question": self.question,
            "answers": [self.answer] if self.answer else [],
            "gold_doc_ids": [] if self.is_impossible else list(self.gold_doc_ids),
            "is_impossible": self.is_impossible,
            "kind": self.kind,
            "span": self.span,
            "source_doc_ids": list(self.gold_doc_ids),
            "source_chunk_ids": list(self.source_chunk_ids),
            "stratum": self.stratum,
            "generator": generator,
        }


@dataclass(frozen=True, slots=True)
class Dropped:
    """A candidate a filter rejected, and which filter."""

    reason: str
    question: str
    source: str


# Why generation stopped: the questions asked for were kept, the request cap was
# reached first, or every sampled chunk had been tried.
StopReason = Literal["count reached", "request cap reached", "chunks exhausted"]


@dataclass
class GeneratedSet:
    """The questions kept (in order), what was dropped, who wrote them, how many
    requests that took (0 offline) of at most `max_requests`, and why it stopped."""

    generator: str  # "known-item (offline)" or the backend's provider:model
    seed: int
    questions: list[GeneratedQuestion] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    requests: int = 0
    max_requests: int | None = None  # None: no model was asked (known-item queries)
    stopped: StopReason = "chunks exhausted"

    @property
    def retrieval_only(self) -> bool:
        return bool(self.questions) and all(q.kind in RETRIEVAL_ONLY_KINDS for q in self.questions)

    def progress(self) -> str:
        """How many requests were made and why generation stopped, in one sentence."""
        asked = (
            "no requests to a model (offline)"
            if self.max_requests is None
            else f"{self.requests:,} requests to the model (cap {self.max_requests:,})"
        )
        why = {
            "count reached": "",
            "request cap reached": ", before the count (--max-requests raises it)",
            "chunks exhausted": ", every chunk tried",
        }[self.stopped]
        return f"{asked}; stopped: {self.stopped}{why}"

    def nothing_kept(self) -> str:
        """Why no question was kept and what to try, for a set that kept none."""
        reasons = Counter(d.reason for d in self.dropped).most_common()
        first = self.dropped[0].question if self.dropped else ""
        dropped = (
            f" The filters dropped all {len(self.dropped):,}: "
            + ", ".join(f"{reason} ({count:,})" for reason, count in reasons)
            + f"; the first: {first}{'' if first.endswith(('.', '?', '!')) else '.'}"
            if self.dropped
            else ""
        )
        if self.max_requests is None:
            advice = (
                "The corpus gave no known-item query (a distinctive heading, or a sentence "
                "with discriminative words): ingest more text, or use a generative --backend."
            )
        elif self.stopped == "request cap reached":
            advice = (
                f"Try a larger --max-requests (it was {self.max_requests:,}), or another "
                "--backend whose replies are the JSON asked for."
            )
        else:
            advice = (
                "Every chunk was tried: try another --backend (one that follows the JSON "
                "format asked for, e.g. with structured output), or a corpus with more text."
            )
        return (
            f"No question was kept ({self.generator}, seed {self.seed}; {self.progress()})."
            f"{dropped} Nothing was written. {advice}"
        )

    def records(self) -> list[dict[str, object]]:
        return [
            q.record(f"gen-{self.seed}-{n:03d}", self.generator)
            for n, q in enumerate(self.questions, start=1)
        ]


class Filters:
    """The filters every candidate passes, in order: the question must not name its
    document, must not repeat an earlier one, and (when it has an answer) the answer
    must be found in its supporting span and not in the question itself."""

    def __init__(self, titles: dict[str, str]) -> None:
        self.titles = titles
        self.seen: set[str] = set()

    def problem(self, candidate: GeneratedQuestion) -> str | None:
        """Why the candidate is dropped, or None to keep it (then it counts as seen)."""
        question = normalize_answer(candidate.question)
        if not question:
            return "empty question"
        if any(self._names(question, doc_id) for doc_id in candidate.gold_doc_ids):
            return "names its document"
        if question in self.seen:
            return "duplicate"
        if candidate.answer and not _found(candidate.answer, candidate.span):
            return "answer not in its span"
        if candidate.answer and _found(candidate.answer, candidate.question):
            return "answer given in the question"
        self.seen.add(question)
        return None

    def _names(self, question: str, doc_id: str) -> bool:
        title = normalize_answer(self.titles.get(doc_id, ""))
        stem = normalize_answer(Path(doc_id).stem.replace("-", " ").replace("_", " "))
        padded = f" {question} "
        return any(name and len(name) > 3 and f" {name} " in padded for name in (title, stem))


def _found(answer: str, span: str) -> bool:
    needle = normalize_answer(answer)
    return bool(needle) and f" {needle} " in f" {normalize_answer(span)} "


def write_generated(generated: GeneratedSet, out_dir: Path) -> tuple[Path, Path]:
    """Write `questions.jsonl` and `review.md` into `out_dir`; returns both paths.

    Raises NoQuestionsKeptError, writing nothing, when the set kept no question: an
    empty evaluation set measures nothing."""
    if not generated.questions:
        raise NoQuestionsKeptError(generated.nothing_kept())
    out_dir.mkdir(parents=True, exist_ok=True)
    questions = out_dir / "questions.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) for r in generated.records()]
    questions.write_text("\n".join(lines) + "\n", "utf-8")
    review = out_dir / "review.md"
    review.write_text(review_sheet(generated), "utf-8")
    return questions, review


def review_sheet(generated: GeneratedSet) -> str:
    """The review sheet: how the set was made, then each question with its answer and
    the span it comes from, then what the filters dropped."""
    kinds = Counter(q.kind for q in generated.questions)
    lines = [
        "# Generated evaluation set: review before the run",
        "",
        f"Written by {generated.generator} with seed {generated.seed}: "
        f"{len(generated.questions)} questions kept, {len(generated.dropped)} dropped; "
        f"{generated.progress()}. "
        "Correct a question or answer in `questions.jsonl` (same qid), or delete its line, "
        "then run `kb report --questions questions.jsonl`.",
        "",
    ]
    lines += [f"- {count} {KIND_NAMES.get(kind, kind)}" for kind, count in sorted(kinds.items())]
    if generated.retrieval_only:
        lines += [
            "",
            "These are **retrieval-only** questions (no generative model wrote them): they "
            "score retrieval recall and evidence coverage, never answer accuracy.",
        ]
    for record in generated.records():
        lines += _review_entry(record)
    if generated.dropped:
        lines += ["", "## Dropped by the filters", ""]
        for reason, count in sorted(Counter(d.reason for d in generated.dropped).items()):
            lines.append(f"- {reason}: {count}")
        lines.append("")
        lines += [f"- ({d.reason}) {d.question} - from {d.source}" for d in generated.dropped]
    return "\n".join(lines) + "\n"


def _review_entry(record: dict[str, object]) -> list[str]:
    answers = record["answers"]
    answer = answers[0] if isinstance(answers, list) and answers else ""
    sources = record["source_doc_ids"]
    assert isinstance(sources, list)
    span = str(record["span"]).strip().replace("\n", "\n> ")
    entry = [
        "",
        f"## {record['qid']} ({record['kind']}; {', '.join(sources)}; {record['stratum']})",
        "",
        f"**Question:** {record['question']}",
        "",
    ]
    if record["is_impossible"]:
        entry.append(
            "**Answer:** (none: the right reply is a refusal; check the corpus does not answer it)"
        )
    elif answer:
        entry.append(f"**Answer:** {answer}")
    else:
        entry.append("**Answer:** (retrieval-only: scored on finding the source)")
    return [*entry, "", f"> {span}"]
