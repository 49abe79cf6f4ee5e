"""Running a report: every sampled question asked in every mode through
`KnowledgeBase.ask` (the call the API makes), retrieval probed directly for
recall@k, and, for the offline extractive reader, every question re-read with the
refusal threshold at 0 to record its best score (so the refusal trade-off can be
computed for any threshold).

Latency is comparable across modes: every mode is warmed with one question before
anything is timed (the long-context warm-up builds the corpus version's prompt
cache, and its time is reported as the cold start), each question is embedded before
its modes are timed, garbage is collected before each timed question, and the modes
run in the orders of a balanced Latin square, so no mode goes first, or follows a
given mode, more often than another.
Everything but the timings is deterministic for a seed.
"""

from __future__ import annotations

import gc
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from kb.backends import AnswerBackend, get_backend
from kb.core.errors import BackendError, InvalidRequestError
from kb.core.models import Answer
from kb.report.cost_summary import check_price_models, price_models
from kb.report.judge import judge_rows
from kb.report.metrics import evidence_covered, recall_at_k, score_answer
from kb.report.options import ReportOptions
from kb.report.projection import CostCurve
from kb.report.questions import EvalQuestion, load_questions, sample_questions
from kb.report.rows import AnswerRow, RecallProbe, RetrievalRow, Row, SweepRow
from kb.report.summarize import RunFacts, summarize
from kb.report.summary import Machine, ReportSummary
from kb.search.retrieval import Retriever
from kb.service import KnowledgeBase

WARM_UP_QUESTION = "What is this collection of documents about?"


@dataclass
class ReportResult:
    """A finished run: the raw rows, the typed summary and the cost curves."""

    rows: list[Row]
    summary: ReportSummary
    curves: dict[str, dict[str, CostCurve]] = field(default_factory=dict)


class _Progress:
    """A tqdm bar on stderr when asked for, a no-op otherwise."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                unit="q",
                file=sys.stderr,
                mininterval=0.2 if sys.stderr.isatty() else 5.0,
                dynamic_ncols=True,
            )

    def phase(self, name: str) -> None:
        if self.bar is not None:
            self.bar.set_description(name)

    def step(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_report(
    kb: KnowledgeBase, options: ReportOptions, *, progress: bool = False
) -> ReportResult:
    """Ask every sampled question in every mode and summarise what happened."""
    questions = sample_questions(
        load_questions(options.questions_path), options.limit, options.seed
    )
    # A price model nobody prices, or a broken KB_PRICE_OVERRIDES, fails before the run.
    check_price_models(price_models(kb, options, kb.backend.priced), kb.settings.price_overrides)
    judge = judge_backend(kb, options)  # a judge that cannot judge fails here, first
    top_k = kb.settings.top_k if options.top_k is None else options.top_k
    sweep_paths = _sweep_paths(kb, options, questions)
    probed = [q for q in questions if q.has_evidence]
    total = len(questions) * (len(options.modes) + len(sweep_paths)) + len(probed)
    bar = _Progress(total, progress)
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    try:
        warm_up = _warm_up(kb, options.modes, top_k, bar)
        rows: list[Row] = list(_retrieval_rows(kb, probed, options.recall_ks, bar))
        rows += _answer_rows(kb, questions, options, top_k, bar)
        if judge is not None:
            bar.phase(f"judging with {judge.name}")
            judge_rows(judge, kb.corpus(), [r for r in rows if isinstance(r, AnswerRow)])
        best = _threshold_sweep(kb, questions, sweep_paths, top_k, rows, bar)
    finally:
        bar.close()
        if judge is not None and judge is not kb.backend:
            judge.close()
    for row in rows:
        if isinstance(row, AnswerRow) and row.best_score is None and row.path:
            row.best_score = best.get((row.qid, row.path))
    facts = RunFacts(
        top_k=top_k,
        seconds=time.perf_counter() - started,
        machine=Machine(os.cpu_count(), round(load_start, 2), round(os.getloadavg()[0], 2)),
        warm_up_s=warm_up,
        priced=kb.backend.priced,
        judge=judge.name if judge is not None else None,
    )
    summary, curves = summarize(kb, options, questions, rows, facts)
    return ReportResult(rows=rows, summary=summary, curves=curves)


def judge_backend(kb: KnowledgeBase, options: ReportOptions) -> AnswerBackend | None:
    """The backend that judges the answers: `options.judge` when named, else the run's
    own backend when it writes text; None offline (the extractive reader's answers are
    its context's sentences: containment scores them). Raises InvalidRequestError for a
    named judge that does not write text."""
    if options.judge:
        judge = get_backend(kb.settings, options.judge, embedder=kb.embedder)
        if not judge.generative:
            judge.close()
            raise InvalidRequestError(
                f"The judge {options.judge} does not write text: name a generative "
                "backend (openai:<model>, anthropic:<model>, local)."
            )
        return judge
    return kb.backend if kb.backend.generative else None


def _warm_up(
    kb: KnowledgeBase, modes: Sequence[str], top_k: int, bar: _Progress
) -> dict[str, float]:
    """One untimed question per mode: loads the embedding model, vectors, BM25 and the
    long-context prompt cache. Returns each mode's warm-up seconds (the first
    long-context one is the cold start)."""
    bar.phase("warm-up")
    seconds: dict[str, float] = {}
    for mode in modes:
        try:
            answer = kb.ask(WARM_UP_QUESTION, mode=mode, top_k=top_k)
        except (InvalidRequestError, BackendError):
            continue  # the mode cannot run here; its rows will say why
        seconds[mode] = round(answer.timings.get("total_s", 0.0), 4)
    return seconds


def _retrieval_rows(
    kb: KnowledgeBase, questions: Sequence[EvalQuestion], ks: Sequence[int], bar: _Progress
) -> list[RetrievalRow]:
    bar.phase("retrieval recall")
    retriever = kb.retriever(kb.corpus())
    rows = []
    for question in questions:
        rows.append(_retrieval_row(retriever, question, tuple(sorted(set(ks)))))
        bar.step()
    return rows


def _retrieval_row(
    retriever: Retriever, question: EvalQuestion, ks: tuple[int, ...]
) -> RetrievalRow:
    recall: dict[str, RecallProbe] = {}
    seconds: dict[str, float] = {}
    ranked: list[str] = []
    for k in ks:
        t0 = time.perf_counter()
        hits = retriever.search(question.question, k)
        seconds[str(k)] = round(time.perf_counter() - t0, 4)
        ranked = [hit.chunk.doc_id for hit in hits]
        all_gold, fraction = recall_at_k(ranked, question.gold_doc_ids, k)
        recall[str(k)] = RecallProbe(all_gold, round(fraction, 4))
    return RetrievalRow(question.qid, list(question.gold_doc_ids), ranked, recall, seconds)


def _answer_rows(
    kb: KnowledgeBase,
    questions: Sequence[EvalQuestion],
    options: ReportOptions,
    top_k: int,
    bar: _Progress,
) -> list[AnswerRow]:
    """Every question in every mode, in the orders of a balanced Latin square over the
    modes (a seeded shuffle of them): over the questions each mode runs first, second,
    ... equally often and follows every other mode equally often, so neither its place
    nor its predecessor favours a mode. The question is embedded (untimed) before its
    first mode, so no mode pays for the others' shared work. With `grouped_modes`, each
    mode answers every question before the next mode starts (in the order given)."""
    bar.phase("answers (" + ", ".join(options.modes) + ")")
    corpus_doc_ids = set(kb.corpus().manifest.by_id())
    modes = list(options.modes)
    random.Random(options.seed).shuffle(modes)
    orders = [[modes[i] for i in row] for row in balanced_orders(len(modes))]
    rows = []
    if options.grouped_modes:
        for position, mode in enumerate(options.modes):
            for question in questions:
                rows.append(_answer_row(kb, question, mode, top_k, position, corpus_doc_ids))
                bar.step()
        return rows
    for number, question in enumerate(questions):
        kb.embedder.embed_one(question.question)
        for position, mode in enumerate(orders[number % len(orders)]):
            rows.append(_answer_row(kb, question, mode, top_k, position, corpus_doc_ids))
            bar.step()
    return rows


def balanced_orders(n: int) -> list[list[int]]:
    """Williams' balanced Latin square on 0..n-1: every item takes every place equally
    often and directly follows every other item equally often (n orders for an even n,
    2n for an odd n)."""
    first, low, high = [0], 1, n - 1
    while len(first) < n:
        first.append(low)
        low += 1
        if len(first) < n:
            first.append(high)
            high -= 1
    square = [[(item + shift) % n for item in first] for shift in range(n)]
    return square if n % 2 == 0 else square + [row[::-1] for row in square]


def _answer_row(
    kb: KnowledgeBase,
    question: EvalQuestion,
    mode: str,
    top_k: int,
    position: int,
    corpus_doc_ids: set[str],
) -> AnswerRow:
    row = AnswerRow(
        mode=mode,
        qid=question.qid,
        question=question.question,
        answers=list(question.answers),
        is_impossible=question.is_impossible,
        retrieval_only=question.retrieval_only,
        gold_doc_ids=list(question.gold_doc_ids),
        order=position,
    )
    # Collect garbage untimed, so a collection that earlier asks' garbage triggers does
    # not land, always in the same place of the order, on one mode's clock.
    gc.collect()
    try:
        answer = kb.ask(question.question, mode=mode, top_k=top_k)
    except (InvalidRequestError, BackendError) as exc:
        row.error = f"{exc.kind}: {exc.message}"
        return row
    cited = list(dict.fromkeys(c.doc_id for c in answer.citations))
    row.answer, row.refused, row.cited_doc_ids = answer.answer, answer.refused, cited
    row.citations = [
        {k: getattr(c, k) for k in ("number", "doc_id", "chunk_id", "start", "end", "score")}
        for c in answer.citations
    ]
    row.retrieved_doc_ids = [p.doc_id for p in answer.retrieved]
    row.path, row.fallback, row.reason = (
        answer.route.path,
        answer.route.fallback,
        answer.route.reason,
    )
    row.usage, row.cost_usd, row.timings = answer.usage, answer.cost_usd, answer.timings
    row.cold = answer.route.path == "long_context" and answer.usage.cache_write_tokens > 0
    row.backend, row.corpus_version = answer.backend, answer.corpus_version
    row.best_score = _best_score(answer)
    row.scores = score_answer(question, answer.answer, answer.refused, cited)
    if question.has_evidence:
        # The reader's context: the whole corpus on the long-context path (an escalated
        # self_route read it too), the retrieved passages otherwise.
        context = corpus_doc_ids if answer.route.path == "long_context" else row.retrieved_doc_ids
        row.evidence_covered = evidence_covered(question.gold_doc_ids, context)
    return row


def _best_score(answer: Answer) -> float | None:
    scores = [c.score for c in answer.citations if c.score is not None]
    return max(scores) if scores else None


def _sweep_paths(
    kb: KnowledgeBase, options: ReportOptions, questions: Sequence[EvalQuestion]
) -> tuple[str, ...]:
    """The paths to re-read at threshold 0: only for a reader with a refusal threshold,
    and long context only where the corpus fits."""
    if not options.threshold_sweep or not kb.backend.has_refusal_threshold:
        return ()
    paths = ["rag"]
    if kb.sizes(kb.corpus(), max((q.question for q in questions), key=len)).fits:
        paths.insert(0, "long_context")
    return tuple(paths)


def _threshold_sweep(
    kb: KnowledgeBase,
    questions: Sequence[EvalQuestion],
    paths: Sequence[str],
    top_k: int,
    rows: list[Row],
    bar: _Progress,
) -> dict[tuple[str, str], float]:
    """Each question's best sentence score on each path with the threshold at 0 (so
    nothing is refused); appends one SweepRow per question and path."""
    best: dict[tuple[str, str], float] = {}
    if not paths:
        return best
    settings = kb.settings.model_copy(update={"extractive_threshold": 0.0})
    with KnowledgeBase(settings, embedder=kb.embedder) as reader:
        for path in paths:
            bar.phase(f"threshold sweep ({path})")
            for question in questions:
                answer = reader.ask(question.question, mode=path, top_k=top_k)
                score = _best_score(answer)
                cited = [c.doc_id for c in answer.citations]
                graded = score_answer(question, answer.answer, False, cited)
                if score is not None:
                    best[(question.qid, path)] = score
                rows.append(
                    SweepRow(
                        path,
                        question.qid,
                        question.is_impossible,
                        score,
                        answer.answer,
                        graded.contains,
                    )
                )
                bar.step()
    return best
