"""The metrics the comparison report computes, each on one question or a list.

Answers are scored on their text (never on character offsets), after the SQuAD
normalisation: lower case, punctuation and the articles a/an/the removed, white
space collapsed. Citation markers such as `[1]` or `[doc:ID]` are stripped first.

How each metric is defined (the report states the same in its text):

- exact match / token F1 (SQuAD): the best over the reference answers; a refusal
  scores 0. Averaged over answerable questions only.
- contains: 1 when some normalised reference appears, on word boundaries, inside
  the normalised answer; meant for readers that answer with whole sentences.
- accuracy: per question, `contains` for an answerable question, a refusal for an
  unanswerable one; retrieval-only questions (no reference answer) are not scored.
- refusal accuracy: the share of unanswerable questions that were refused;
  false-refusal rate: the share of answerable questions that were refused.
- citation precision: over answered, answerable questions with gold documents, the
  share of distinct cited documents that are gold; citation recall: over
  answerable questions with gold documents, the share of gold documents cited
  (a refusal cites nothing, so scores 0).
- retrieval recall@k: among the documents of the top-k retrieved chunks, whether
  all gold documents are present (all-gold recall) and which fraction is.
- evidence coverage: whether every gold document was inside the context the reader
  received (the whole corpus on the long-context path, the retrieved passages on
  the retrieval path).
- latency p50 / p95: linear-interpolated percentiles of the end-to-end seconds.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kb.core.errors import InvalidRequestError
from kb.report.questions import EvalQuestion

# ---- answer text metrics ---------------------------------------------------------

_MARKER = re.compile(r"\s*\[(?:\d{1,3}|doc:[^\]]*)\]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def strip_citation_markers(text: str) -> str:
    """The answer without `[1]`-style or `[doc:ID]` citation markers."""
    return _MARKER.sub("", text).strip()


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, references: Iterable[str]) -> float:
    """1.0 when the normalised prediction equals some normalised reference."""
    normalized = normalize_answer(prediction)
    return float(any(normalized == normalize_answer(ref) for ref in references))


def token_f1(prediction: str, references: Iterable[str]) -> float:
    """The best SQuAD token F1 of the prediction against any reference (0 if none)."""
    predicted = normalize_answer(prediction).split()
    best = 0.0
    for reference in references:
        gold = normalize_answer(reference).split()
        if not predicted or not gold:
            best = max(best, float(predicted == gold))
            continue
        common = _overlap(predicted, gold)
        if common == 0:
            continue
        precision, recall = common / len(predicted), common / len(gold)
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def _overlap(a: list[str], b: list[str]) -> int:
    counts: dict[str, int] = {}
    for token in b:
        counts[token] = counts.get(token, 0) + 1
    common = 0
    for token in a:
        if counts.get(token, 0) > 0:
            counts[token] -= 1
            common += 1
    return common


def contains_answer(prediction: str, references: Iterable[str]) -> float:
    """1.0 when some normalised reference appears, on word boundaries, inside the
    normalised prediction ("no" does not match "know")."""
    padded = f" {normalize_answer(prediction)} "
    for reference in references:
        normalized = normalize_answer(reference)
        if normalized and f" {normalized} " in padded:
            return 1.0
    return 0.0


# ---- per-question scores -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuestionScore:
    """How one answer fares against its question; `None` where a metric does not apply."""

    exact_match: float | None  # answerable questions only
    f1: float | None
    contains: float | None
    correct: bool | None  # contains (answerable), refused (unanswerable), None (retrieval-only)
    refused: bool
    citation_precision: float | None
    citation_recall: float | None


def citation_precision_recall(
    cited_doc_ids: Sequence[str], gold_doc_ids: Sequence[str]
) -> tuple[float | None, float | None]:
    """Precision over the distinct cited documents (None when nothing is cited) and
    recall over the gold documents (None when there are none)."""
    cited, gold = set(cited_doc_ids), set(gold_doc_ids)
    hits = len(cited & gold)
    precision = hits / len(cited) if cited else None
    recall = hits / len(gold) if gold else None
    return precision, recall


def score_answer(
    question: EvalQuestion, answer: str, refused: bool, cited_doc_ids: Sequence[str]
) -> QuestionScore:
    """Score one answer; its citation markers are stripped before the text metrics.
    A retrieval-only question (no reference answer) gets no answer score."""
    if question.is_impossible:
        return QuestionScore(None, None, None, refused, refused, None, None)
    if question.retrieval_only:
        return QuestionScore(None, None, None, None, refused, None, None)
    text = "" if refused else strip_citation_markers(answer)
    contains = contains_answer(text, question.answers) if text else 0.0
    precision, recall = (None, None)
    if question.gold_doc_ids:
        precision, recall = citation_precision_recall(
            [] if refused else cited_doc_ids, question.gold_doc_ids
        )
    return QuestionScore(
        exact_match=exact_match(text, question.answers) if text else 0.0,
        f1=token_f1(text, question.answers) if text else 0.0,
        contains=contains,
        correct=contains == 1.0,
        refused=refused,
        citation_precision=precision,
        citation_recall=recall,
    )


def recall_at_k(
    ranked_doc_ids: Sequence[str], gold_doc_ids: Sequence[str], k: int
) -> tuple[float, float]:
    """(all gold documents within the first k, fraction of gold documents within them)."""
    if not gold_doc_ids:
        raise InvalidRequestError("recall@k needs at least one gold document id.")
    top = set(ranked_doc_ids[:k])
    found = sum(1 for doc in set(gold_doc_ids) if doc in top)
    total = len(set(gold_doc_ids))
    return float(found == total), found / total


def evidence_covered(gold_doc_ids: Sequence[str], context_doc_ids: Iterable[str]) -> bool:
    """True when every gold document is among the documents the reader was given."""
    if not gold_doc_ids:
        raise InvalidRequestError("evidence coverage needs at least one gold document id.")
    return set(gold_doc_ids) <= set(context_doc_ids)


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not None (None when there are none)."""
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True, slots=True)
class ThresholdPoint:
    """Refusal behaviour if the reader refused every answer whose best score is below
    `threshold`."""

    threshold: float
    refusal_accuracy: float | None
    false_refusal_rate: float | None
    accuracy: float | None


def threshold_tradeoff(
    scored: Sequence[tuple[bool, float, bool]], thresholds: Sequence[float]
) -> list[ThresholdPoint]:
    """For (is_impossible, best score, correct when answered) per question, the
    refusal accuracy, false-refusal rate and accuracy at each threshold."""
    points = []
    for threshold in thresholds:
        impossible = [score < threshold for imp, score, _ in scored if imp]
        answerable = [(score < threshold, ok) for imp, score, ok in scored if not imp]
        right = sum(impossible) + sum(1 for refused, ok in answerable if ok and not refused)
        points.append(
            ThresholdPoint(
                threshold=threshold,
                refusal_accuracy=sum(impossible) / len(impossible) if impossible else None,
                false_refusal_rate=(
                    sum(r for r, _ in answerable) / len(answerable) if answerable else None
                ),
                accuracy=right / len(scored) if scored else None,
            )
        )
    return points
