"""Evaluation sets and the metrics the comparison report computes.

The evaluation set format (one JSON object per line, as in
`../shared/datasets/*/questions.jsonl`):

    {"qid": "56ddde6b...",                 required, unique string
     "question": "In what country is ...", required, non-empty string
     "answers": ["France", "in France"],   acceptable reference answers (any may match);
                                           empty for an unanswerable question
     "gold_doc_ids": ["Normans#p0"],       optional: ids of the documents that hold the
                                           answer (as ingested), for citation and
                                           retrieval metrics
     "is_impossible": false,               optional: true when the corpus does not answer
                                           the question (the right reply is a refusal);
                                           defaults to `answers == []`
     ...}                                  anything else is kept in `extra`

Answers are scored on their text (never on character offsets), after the SQuAD
normalisation: lower case, punctuation and the articles a/an/the removed, white
space collapsed. Citation markers such as `[1]` or `[doc:ID]` are stripped first.

How each metric is defined (the report states the same in its text):

- exact match / token F1 (SQuAD): the best over the reference answers; a refusal
  scores 0. Averaged over answerable questions only.
- contains: 1 when some normalised reference appears, on word boundaries, inside
  the normalised answer; meant for readers that answer with whole sentences.
- accuracy: per question, `contains` for an answerable question, a refusal for an
  unanswerable one.
- refusal accuracy: the share of unanswerable questions that were refused;
  false-refusal rate: the share of answerable questions that were refused.
- citation precision: over answered, answerable questions with gold documents, the
  share of distinct cited documents that are gold; citation recall: over
  answerable questions with gold documents, the share of gold documents cited
  (a refusal cites nothing, so scores 0).
- retrieval recall@k: among the documents of the top-k retrieved chunks, whether
  all gold documents are present (all-gold recall) and which fraction is.
- latency p50 / p95: linear-interpolated percentiles of the end-to-end seconds.

Cost projections (`CostCurve`) price the token mix each mode really used on a
provider model and extend it to a monthly volume; see `CostCurve` and
`break_even` for the exact model.
"""

from __future__ import annotations

import json
import math
import random
import re
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.errors import InvalidRequestError, SettingsError
from kb.models import Usage

# ---- the evaluation set -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    """One question of an evaluation set with what a right answer looks like."""

    qid: str
    question: str
    answers: tuple[str, ...]
    gold_doc_ids: tuple[str, ...] = ()
    is_impossible: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


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
    impossible = record.get("is_impossible", not answers)
    if not isinstance(impossible, bool):
        raise InvalidRequestError(f'{where}: "is_impossible" must be true or false.')
    if not impossible and not answers:
        raise InvalidRequestError(
            f'{where}: an answerable question needs at least one entry in "answers".'
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
    correct: bool  # contains (answerable) or refused (unanswerable)
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
    """Score one answer; its citation markers are stripped before the text metrics."""
    if question.is_impossible:
        return QuestionScore(None, None, None, refused, refused, None, None)
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


# ---- cost projection -------------------------------------------------------------------

Pricer = Callable[[str, Usage], "float | None"]
MINUTES_PER_MONTH = 30 * 24 * 60


@dataclass(frozen=True, slots=True)
class TokenMix:
    """The tokens one answered question used, split by how a provider would bill them.

    `prefix_tokens` is the cacheable corpus prefix of a long-context request (0 when
    the question was answered from retrieval alone); `input_tokens` is everything
    else sent (instructions, passages, question); `output_tokens` the answer."""

    input_tokens: int
    prefix_tokens: int
    output_tokens: int

    @classmethod
    def from_usage(cls, usage: Usage) -> TokenMix:
        return cls(
            input_tokens=usage.input_tokens,
            prefix_tokens=usage.cache_read_tokens + usage.cache_write_tokens,
            output_tokens=usage.output_tokens,
        )

    def usage(self, prefix_as: str) -> Usage:
        """As a provider request: the prefix as a cache `read`, a cache `write`, or
        plain `input` (no caching)."""
        return Usage(
            input_tokens=self.input_tokens + (self.prefix_tokens if prefix_as == "input" else 0),
            cache_read_tokens=self.prefix_tokens if prefix_as == "read" else 0,
            cache_write_tokens=self.prefix_tokens if prefix_as == "write" else 0,
            output_tokens=self.output_tokens,
        )


@dataclass(frozen=True, slots=True)
class CostCurve:
    """Monthly cost of one mode on one provider model, as a function of volume.

    The model: `V` questions a month arrive evenly spread; a share `prefix_share`
    of them sends the corpus prefix (long context). The provider keeps a cached
    prefix for `cache_ttl_minutes`, so a month holds W = minutes per month / TTL
    cache lifetimes. The first prefix question in a lifetime writes the cache, the
    others read it, so a month pays min(prefix_share * V, W) cache writes:

        cached(V)   = V * warm + min(prefix_share * V, W) * write_surcharge
        uncached(V) = V * uncached_per_question

    `warm` is the mean cost of a question whose prefix is a cache read;
    `write_surcharge` the mean extra cost of a prefix question that writes the
    cache instead. Counting lifetimes from their start is conservative: providers
    that refresh the lifetime on every hit write less often at high volume."""

    mode: str
    model: str
    warm: float
    write_surcharge: float
    prefix_share: float
    uncached_per_question: float
    windows_per_month: float

    def monthly(self, volume: float, cached: bool = True) -> float:
        if not cached:
            return volume * self.uncached_per_question
        writes = min(self.prefix_share * volume, self.windows_per_month)
        return volume * self.warm + writes * self.write_surcharge

    def per_1000(self, volume: float, cached: bool = True) -> float:
        """Cost of 1,000 questions at a monthly `volume`."""
        return 1000 * self.monthly(volume, cached) / volume if volume > 0 else 0.0

    @property
    def kink(self) -> float | None:
        """The volume above which every cache lifetime already has its write."""
        return self.windows_per_month / self.prefix_share if self.prefix_share > 0 else None


def cost_curve(
    mode: str,
    model: str,
    mixes: Sequence[TokenMix],
    pricer: Pricer,
    cache_ttl_minutes: float,
) -> CostCurve:
    """Price each question's real token mix on `model` (a `provider:model` name) three
    ways (prefix read, written, uncached) and fold them into a CostCurve.

    Each request is priced on its own, so tiered prices (e.g. above 200k input
    tokens) apply per request as the provider bills them. Raises SettingsError
    when the price table does not know `model`."""
    if not mixes:
        raise InvalidRequestError(f"No answered questions to price for mode {mode}.")
    if cache_ttl_minutes <= 0:
        raise InvalidRequestError("The cache lifetime must be positive.")

    def price(mix: TokenMix, prefix_as: str) -> float:
        value = pricer(model, mix.usage(prefix_as))
        if value is None:
            raise SettingsError(
                f"No price is known for {model!r}; pick a model genai-prices knows "
                "(e.g. openai:gpt-4.1-mini) or add it to KB_PRICE_OVERRIDES."
            )
        return float(value)

    warm, surcharges, uncached = [], [], []
    for mix in mixes:
        read = price(mix, "read")
        warm.append(read)
        uncached.append(price(mix, "input") if mix.prefix_tokens else read)
        if mix.prefix_tokens:
            surcharges.append(price(mix, "write") - read)
    return CostCurve(
        mode=mode,
        model=model,
        warm=sum(warm) / len(warm),
        write_surcharge=sum(surcharges) / len(surcharges) if surcharges else 0.0,
        prefix_share=len(surcharges) / len(mixes),
        uncached_per_question=sum(uncached) / len(uncached),
        windows_per_month=MINUTES_PER_MONTH / cache_ttl_minutes,
    )


@dataclass(frozen=True, slots=True)
class BreakEven:
    """Which of two monthly cost lines is cheaper over the whole volume axis.

    `sides[i]` names the cheaper side (or "equal") between `volumes[i-1]` and
    `volumes[i]` (from 0 for the first, to infinity for the last): `volumes` are
    the break-even volumes, where the cheaper side changes. No volumes means one
    side is cheaper (or both cost the same) at every volume."""

    first: str
    second: str
    volumes: tuple[float, ...]
    sides: tuple[str, ...]

    @property
    def cheaper_at_low(self) -> str:
        return self.sides[0]

    @property
    def cheaper_at_high(self) -> str:
        return self.sides[-1]

    def explain(self) -> str:
        def name(side: str) -> str:
            return "both cost the same" if side == "equal" else f"{side} is cheaper"

        if not self.volumes:
            if self.sides[0] == "equal":
                return f"{self.first} and {self.second} cost the same at every volume"
            return f"{self.sides[0]} is cheaper at every volume"
        parts = [f"{name(self.sides[0])} below {self.volumes[0]:,.0f}"]
        for i in range(1, len(self.volumes)):
            parts.append(
                f"{name(self.sides[i])} from {self.volumes[i - 1]:,.0f} to {self.volumes[i]:,.0f}"
            )
        parts.append(f"{name(self.sides[-1])} above {self.volumes[-1]:,.0f}")
        return "; ".join(parts) + " questions/month"


def break_even(
    first: Callable[[float], float],
    second: Callable[[float], float],
    kinks: Iterable[float | None],
    names: tuple[str, str],
) -> BreakEven:
    """Where the cheaper of two monthly cost functions changes along the volume axis.

    Both must be linear between the given kinks (as `CostCurve.monthly` is): on
    each linear piece the crossing is solved exactly, and the side is read in the
    middle of every stretch, so lines that are equal up to a kink and then part
    (a cache-write surcharge of zero, say) break even at that kink."""
    points = sorted({k for k in kinks if k is not None and k > 0})
    bounds = [0.0, *points]

    def side(volume: float) -> str:
        a, b = first(volume), second(volume)
        if abs(a - b) <= 1e-9 * (abs(a) + abs(b)):
            return "equal"
        return names[0] if a < b else names[1]

    stretches: list[tuple[float, str]] = []  # (start volume, cheaper side)
    for i, low in enumerate(bounds):
        high = bounds[i + 1] if i + 1 < len(bounds) else None
        probe = high if high is not None else 2 * low + 1.0
        d_low, d_probe = first(low) - second(low), first(probe) - second(probe)
        slope = (d_probe - d_low) / (probe - low)
        root = low - d_low / slope if slope else None
        cuts = [low]
        if root is not None and low < root and (high is None or root < high):
            cuts.append(root)
        for j, start in enumerate(cuts):
            end = cuts[j + 1] if j + 1 < len(cuts) else high
            middle = (start + end) / 2 if end is not None else 2 * start + 1.0
            current = side(middle)
            if not stretches or stretches[-1][1] != current:
                stretches.append((start, current))
    return BreakEven(
        names[0],
        names[1],
        volumes=tuple(start for start, _ in stretches[1:]),
        sides=tuple(s for _, s in stretches),
    )
