"""From a run's rows to the typed `ReportSummary`: metrics per mode, retrieval recall,
evidence coverage, the refusal trade-off, cost projections and the recommendation."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kb.backends.cost import PRICE_SOURCE
from kb.report.cost_summary import cost_curves, cost_summary, price_models
from kb.report.judge import judge_summary
from kb.report.metrics import ThresholdPoint, mean, percentile, threshold_tradeoff
from kb.report.options import ReportOptions
from kb.report.projection import CostCurve
from kb.report.questions import EvalQuestion
from kb.report.recommendation import Paired, recommend
from kb.report.rows import AnswerRow, RetrievalRow, Row, SweepRow
from kb.report.summary import (
    Assumptions,
    AutoChoice,
    CorpusInfo,
    CostSummary,
    Latency,
    Machine,
    ModeSummary,
    RecallAtK,
    Recommendation,
    ReportSummary,
    RunSettings,
    TokenMeans,
)

if TYPE_CHECKING:
    from kb.service import KnowledgeBase

SWEEP_THRESHOLDS = tuple(round(0.30 + 0.025 * i, 3) for i in range(17))  # 0.30 .. 0.70


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What the runner measured besides the rows."""

    top_k: int
    seconds: float
    machine: Machine
    warm_up_s: dict[str, float]
    priced: bool
    judge: str | None = None  # the judge backend's name, when answers were judged


GROUPED_NOTE = (
    "Modes ran grouped (every question in one mode, then the next), not in the balanced "
    "orders the latency section describes: the local server's one prompt-cache slot keeps "
    "the long-context prefix only while no other prompt comes between."
)


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def relative_path(path: str | Path) -> str:
    """`path` relative to the working directory (the repository root when run from
    there), so a committed report carries no path of the machine it was made on.

    A path outside the working directory is named through the nearest ancestor that
    holds it, or through a symbolic link beside an ancestor (`../shared/...` where
    `shared` links to the real folder), the way a user typed it."""
    text = str(path)
    if not text or not os.path.isabs(text):
        return text
    target = Path(text).resolve()
    cwd = Path.cwd()
    for up, base in enumerate([cwd, *cwd.parents]):
        prefix = "../" * up
        if target.is_relative_to(base.resolve()):
            return prefix + str(target.relative_to(base.resolve())) or "."
        for entry in _links(base):
            if target.is_relative_to(entry.resolve()):
                return f"{prefix}{entry.name}/{target.relative_to(entry.resolve())}"
    return target.name


def _links(folder: Path) -> list[Path]:
    try:
        return [entry for entry in folder.iterdir() if entry.is_symlink() and entry.is_dir()]
    except OSError:
        return []


def summarize(
    kb: KnowledgeBase,
    options: ReportOptions,
    questions: Sequence[EvalQuestion],
    rows: Sequence[Row],
    facts: RunFacts,
) -> tuple[ReportSummary, dict[str, dict[str, CostCurve]]]:
    """The typed summary of a run, and the cost curves the charts draw."""
    answers = [r for r in rows if isinstance(r, AnswerRow)]
    modes = {mode: mode_summary([r for r in answers if r.mode == mode]) for mode in options.modes}
    models = price_models(kb, options, facts.priced)
    overrides = kb.settings.price_overrides  # priced as the service prices its answers
    curves = cost_curves(models, options, answers, overrides)
    costs = cost_summary(options, curves, answers, overrides)
    corpus = _corpus_info(kb, questions)
    auto = _auto_choice(kb, modes, facts.top_k)
    summary = ReportSummary(
        title=options.dataset_name,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        questions_file=relative_path(options.questions_path),
        questions=len(questions),
        answerable=sum(bool(q.answers) and not q.is_impossible for q in questions),
        unanswerable=sum(q.is_impossible for q in questions),
        retrieval_only=sum(q.retrieval_only for q in questions),
        with_gold_docs=sum(bool(q.gold_doc_ids) for q in questions),
        seed=options.seed,
        limit=options.limit,
        modes_run=list(options.modes),
        backend=kb.backend.name,
        offline_reader=not facts.priced,
        settings=_run_settings(kb, facts.top_k),
        corpus=corpus,
        assumptions=Assumptions(
            options.cache_ttl_minutes, options.monthly_questions, models, PRICE_SOURCE
        ),
        notes=list(options.notes) + ([GROUPED_NOTE] if options.grouped_modes else []),
        run_seconds=round(facts.seconds, 1),
        retrieval_recall=_recall(rows, options.recall_ks),
        retrieval_search_p50_s=_search_p50(rows, options.recall_ks),
        modes=modes,
        threshold_tradeoff=_tradeoff(rows, kb.settings.extractive_threshold),
        long_context_rag_same_answer=_agreement(answers),
        costs=costs,
        machine=facts.machine,
        warm_up_s=facts.warm_up_s,
        auto=auto,
        recommendation=_recommendation(kb, modes, costs, auto, answers, facts.priced),
        judge=judge_summary(facts.judge, answers, options.modes) if facts.judge else None,
    )
    return summary, curves


def _auto_choice(kb: KnowledgeBase, modes: dict[str, ModeSummary], top_k: int) -> AutoChoice:
    """The path `auto` takes for this corpus, and its share of long context in the run."""
    corpus = kb.corpus()
    route = kb.router.route(corpus.corpus_tokens, "auto", "", top_k, corpus.manifest)
    share = modes["auto"].long_context_share if "auto" in modes else None
    return AutoChoice(route.path, route.reason, share)


def _recommendation(
    kb: KnowledgeBase,
    modes: dict[str, ModeSummary],
    costs: CostSummary,
    auto: AutoChoice,
    answers: list[AnswerRow],
    priced: bool,
) -> Recommendation:
    return recommend(
        modes,
        costs,
        auto,
        kb.backend.name,
        accuracy=Paired.of(answers, lambda r: r.scores.correct if r.scores else None),
        coverage=Paired.of(answers, lambda r: r.evidence_covered),
        cost_model=kb.backend.name if priced else None,
        max_cost_ratio=kb.settings.auto_max_cost_ratio,
    )


def _run_settings(kb: KnowledgeBase, top_k: int) -> RunSettings:
    s = kb.settings
    return RunSettings(
        top_k,
        s.long_context_budget,
        s.answer_reserve,
        s.extractive_threshold,
        s.chunk_tokens,
        s.chunk_overlap,
    )


def _corpus_info(kb: KnowledgeBase, questions: Sequence[EvalQuestion]) -> CorpusInfo:
    status = kb.status()
    known = kb.corpus().manifest.by_id()
    gold = {doc for q in questions for doc in q.gold_doc_ids}
    return CorpusInfo(
        version=status.corpus_version,
        root=relative_path(status.corpus_root),
        documents=status.documents,
        chunks=status.chunks,
        corpus_tokens=status.corpus_tokens,
        fits_long_context=kb.sizes(kb.corpus(), "?").fits,
        gold_docs_in_corpus=_rounded(
            sum(doc in known for doc in gold) / len(gold) if gold else None
        ),
    )


def _recall(rows: Sequence[Row], ks: Sequence[int]) -> dict[str, RecallAtK]:
    probes = [r for r in rows if isinstance(r, RetrievalRow)]
    return {
        str(k): RecallAtK(
            _rounded(mean(r.recall[str(k)].all_gold for r in probes)),
            _rounded(mean(r.recall[str(k)].fraction for r in probes)),
        )
        for k in sorted(set(ks))
    }


def _search_p50(rows: Sequence[Row], ks: Sequence[int]) -> float | None:
    # The first search of a question embeds it; the later ones reuse the vector, so
    # only the first is a whole search.
    first = str(min(ks))
    probes = [r for r in rows if isinstance(r, RetrievalRow)]
    return _rounded(percentile([r.seconds[first] for r in probes], 50))


def _tradeoff(rows: Sequence[Row], current: float) -> dict[str, list[ThresholdPoint]]:
    sweep: dict[str, list[ThresholdPoint]] = {}
    for path in ("long_context", "rag"):
        scored = [
            (r.is_impossible, r.best_score or 0.0, r.contains == 1.0)
            for r in rows
            if isinstance(r, SweepRow)
            and r.path == path
            and (r.is_impossible or r.contains is not None)
        ]
        if scored:
            thresholds = sorted({*SWEEP_THRESHOLDS, current})
            sweep[path] = [
                replace(
                    p,
                    threshold=round(p.threshold, 4),
                    refusal_accuracy=_rounded(p.refusal_accuracy),
                    false_refusal_rate=_rounded(p.false_refusal_rate),
                    accuracy=_rounded(p.accuracy),
                )
                for p in threshold_tradeoff(scored, thresholds)
            ]
    return sweep


def _agreement(rows: Sequence[AnswerRow]) -> float | None:
    """Share of questions on which forced long context and retrieval gave the same
    answer text (None unless both ran)."""
    by_mode: dict[str, dict[str, str]] = {"long_context": {}, "rag": {}}
    for row in rows:
        if row.mode in by_mode and row.ok:
            by_mode[row.mode][row.qid] = row.answer
    both = by_mode["long_context"].keys() & by_mode["rag"].keys()
    if not both:
        return None
    same = sum(by_mode["long_context"][q] == by_mode["rag"][q] for q in both)
    return round(same / len(both), 4)


def mode_summary(rows: Sequence[AnswerRow]) -> ModeSummary:
    """The metrics of one mode from its answer rows."""
    done = [r for r in rows if r.ok]
    errors = [r for r in rows if not r.ok]
    first_error = errors[0].error if errors else None
    if not done:
        return ModeSummary(questions=len(rows), errors=len(errors), first_error=first_error)
    scores = [r.scores for r in done if r.scores is not None]
    graded = [r for r in done if not r.retrieval_only]
    answerable = [r for r in graded if not r.is_impossible]
    impossible = [r for r in graded if r.is_impossible]
    evidence = [r.evidence_covered for r in done if r.evidence_covered is not None]
    costs = [r.cost_usd for r in done if r.cost_usd is not None]
    return ModeSummary(
        questions=len(rows),
        errors=len(errors),
        first_error=first_error,
        answered=sum(not r.refused for r in done),
        accuracy=_rounded(mean(None if s.correct is None else float(s.correct) for s in scores)),
        accuracy_questions=sum(s.correct is not None for s in scores),
        exact_match=_rounded(mean(s.exact_match for s in scores)),
        f1=_rounded(mean(s.f1 for s in scores)),
        contains=_rounded(mean(s.contains for s in scores)),
        refusal_accuracy=_rounded(mean(float(r.refused) for r in impossible)),
        false_refusal_rate=_rounded(mean(float(r.refused) for r in answerable)),
        citation_precision=_rounded(mean(s.citation_precision for s in scores)),
        citation_recall=_rounded(mean(s.citation_recall for s in scores)),
        evidence_coverage=_rounded(mean(float(e) for e in evidence)),
        evidence_questions=len(evidence),
        latency_s=_latency(done),
        tokens_per_question=TokenMeans(
            *(
                _rounded(mean(float(getattr(r.usage, key)) for r in done), 1)
                for key in (
                    "input_tokens",
                    "cache_read_tokens",
                    "cache_write_tokens",
                    "output_tokens",
                )
            )
        ),
        long_context_share=_rounded(sum(r.path == "long_context" for r in done) / len(done)),
        escalation_share=_rounded(mean(float(r.fallback) for r in done)),
        run_cost_usd=round(sum(costs), 6) if len(costs) == len(done) else None,
    )


def _latency(done: Sequence[AnswerRow]) -> Latency:
    latency = [r.seconds for r in done]
    cold = [r.seconds for r in done if r.cold]
    warm = [r.seconds for r in done if r.path == "long_context" and not r.cold]
    return Latency(
        p50=_rounded(percentile(latency, 50)),
        p95=_rounded(percentile(latency, 95)),
        mean=_rounded(mean(latency)),
        cold_count=len(cold),
        cold_p50=_rounded(percentile(cold, 50)),
        warm_long_context_p50=_rounded(percentile(warm, 50)),
        rag_path_p50=_rounded(percentile([r.seconds for r in done if r.path == "rag"], 50)),
    )
