"""The comparison report: an evaluation set run through each mode, measured and priced.

`run_report` asks every question in every mode through `KnowledgeBase.ask` (the
same call the API makes), measures retrieval recall@k with the retriever itself,
and, for the offline extractive reader, re-reads each question with the refusal
threshold at 0 to record its best score (so the refusal trade-off can be
computed for any threshold). `write_report` writes the folder:

    report.md       the findings, tables and charts (as charts/*.svg)
    report.html     the same, self-contained (inline SVG and CSS, no script)
    charts/*.svg    accuracy against cost, latency, tokens, cost against volume
    results.jsonl   one raw record per question and mode (and per retrieval probe)
    summary.json    the metrics per mode, the projections and break-evens

Everything but the timings is deterministic for a seed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kb.cost import PRICE_SOURCE, estimate_cost, model_context_window
from kb.errors import BackendError, InvalidRequestError
from kb.evaluation import (
    BreakEven,
    CostCurve,
    EvalQuestion,
    TokenMix,
    break_even,
    cost_curve,
    load_questions,
    mean,
    percentile,
    recall_at_k,
    sample_questions,
    score_answer,
    threshold_tradeoff,
)
from kb.models import Answer, Usage
from kb.report_charts import render_charts
from kb.report_text import render_html, render_markdown
from kb.retrieval import Retriever
from kb.service import KnowledgeBase
from kb.settings import MODES

DEFAULT_MODES = ("long_context", "rag", "auto", "self_route")
DEFAULT_PRICE_MODELS = (
    "openai:gpt-4.1-mini",
    "anthropic:claude-sonnet-4-5",
    "google:gemini-2.5-flash",
)
RECALL_KS = (5, 20)
SWEEP_THRESHOLDS = tuple(round(0.30 + 0.025 * i, 3) for i in range(17))  # 0.30 .. 0.70
WARM_UP_QUESTION = "What is this collection of documents about?"


@dataclass(frozen=True)
class ReportOptions:
    """What to run and how to price it."""

    questions_path: Path
    modes: tuple[str, ...] = DEFAULT_MODES
    limit: int | None = None
    seed: int = 0
    top_k: int | None = None
    price_models: tuple[str, ...] = DEFAULT_PRICE_MODELS
    recall_ks: tuple[int, ...] = RECALL_KS
    cache_ttl_minutes: float = 5.0
    monthly_questions: int = 100_000
    threshold_sweep: bool = True
    notes: tuple[str, ...] = ()
    title: str | None = None

    def __post_init__(self) -> None:
        unknown = [m for m in self.modes if m not in MODES]
        if unknown or not self.modes:
            raise InvalidRequestError(
                f"Unknown mode(s) {', '.join(unknown) or '(none given)'}: use {', '.join(MODES)}."
            )
        if self.monthly_questions < 1:
            raise InvalidRequestError("The assumed monthly volume must be at least 1.")
        if self.cache_ttl_minutes <= 0:
            raise InvalidRequestError("The cache lifetime must be positive.")
        if not self.recall_ks or any(k < 1 for k in self.recall_ks):
            raise InvalidRequestError("recall@k needs at least one k, each k >= 1.")


@dataclass
class ReportResult:
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    curves: dict[str, dict[str, CostCurve]] = field(default_factory=dict)


# ---- running ---------------------------------------------------------------------------


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
    corpus = kb.corpus()
    top_k = kb.settings.top_k if options.top_k is None else options.top_k
    sweep_paths = _sweep_paths(kb, options, questions)
    recall_ks = tuple(sorted(set(options.recall_ks)))
    with_gold = [q for q in questions if q.gold_doc_ids and not q.is_impossible]
    total = len(questions) * len(options.modes) + len(with_gold) + len(questions) * len(sweep_paths)
    bar = _Progress(total, progress)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    try:
        # Load the embedding model, vectors, BM25 and IDF once, outside any timing;
        # the long-context sentence index is left cold on purpose.
        bar.phase("warm-up")
        kb.ask(WARM_UP_QUESTION, mode="rag", top_k=top_k)

        bar.phase("retrieval recall")
        retriever = kb.retriever(corpus)
        for question in with_gold:
            rows.append(_retrieval_row(retriever, question, recall_ks))
            bar.step()

        for mode in options.modes:
            bar.phase(mode)
            for question in questions:
                rows.append(_answer_row(kb, question, mode, top_k))
                bar.step()

        best = _threshold_sweep(kb, questions, sweep_paths, top_k, rows, bar)
    finally:
        bar.close()
    for row in rows:
        if row["kind"] == "answer" and row["best_score"] is None and row["path"]:
            row["best_score"] = best.get((row["qid"], row["path"]))
    summary = summarize(kb, options, questions, rows, top_k, time.perf_counter() - started)
    summary["machine"] = {
        "cpus": os.cpu_count(),
        "load_average_start": round(load_start, 2),
        "load_average_end": round(os.getloadavg()[0], 2),
    }
    curves = _curves(options, rows)
    summary["costs"] = _cost_summary(options, curves)
    summary["costs"]["long_context_prompt_tokens"] = max(
        (
            r["usage"]["input_tokens"]
            + r["usage"]["cache_read_tokens"]
            + r["usage"]["cache_write_tokens"]
            for r in rows
            if r["kind"] == "answer" and r.get("path") == "long_context" and not r["fallback"]
        ),
        default=None,
    )
    for model, entry in summary["costs"]["models"].items():
        provider, _, name = model.partition(":")
        entry["context_window"] = model_context_window(provider, name)
    return ReportResult(rows=rows, summary=summary, curves=curves)


def _retrieval_row(
    retriever: Retriever, question: EvalQuestion, ks: tuple[int, ...]
) -> dict[str, Any]:
    recall: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    ranked: list[str] = []
    for k in ks:
        t0 = time.perf_counter()
        hits = retriever.search(question.question, k)
        seconds[str(k)] = round(time.perf_counter() - t0, 4)
        ranked = [hit.chunk.doc_id for hit in hits]
        all_gold, fraction = recall_at_k(ranked, question.gold_doc_ids, k)
        recall[str(k)] = {"all": all_gold, "fraction": round(fraction, 4)}
    return {
        "kind": "retrieval",
        "qid": question.qid,
        "gold_doc_ids": list(question.gold_doc_ids),
        "ranked_doc_ids": ranked,
        "recall": recall,
        "seconds": seconds,
    }


def _answer_row(kb: KnowledgeBase, question: EvalQuestion, mode: str, top_k: int) -> dict[str, Any]:
    row: dict[str, Any] = {
        "kind": "answer",
        "mode": mode,
        "qid": question.qid,
        "question": question.question,
        "answers": list(question.answers),
        "is_impossible": question.is_impossible,
        "gold_doc_ids": list(question.gold_doc_ids),
    }
    try:
        answer = kb.ask(question.question, mode=mode, top_k=top_k)
    except (InvalidRequestError, BackendError) as exc:
        row |= {"error": f"{exc.kind}: {exc.message}", "path": None, "best_score": None}
        return row
    cited = list(dict.fromkeys(c.doc_id for c in answer.citations))
    score = score_answer(question, answer.answer, answer.refused, cited)
    row |= {
        "error": None,
        "answer": answer.answer,
        "refused": answer.refused,
        "cited_doc_ids": cited,
        "citations": [
            {
                "number": c.number,
                "doc_id": c.doc_id,
                "chunk_id": c.chunk_id,
                "start": c.start,
                "end": c.end,
                "score": c.score,
            }
            for c in answer.citations
        ],
        "retrieved_doc_ids": [p.doc_id for p in answer.retrieved],
        "path": answer.route.path,
        "fallback": answer.route.fallback,
        "reason": answer.route.reason,
        "usage": asdict(answer.usage),
        "cold": answer.route.path == "long_context" and answer.usage.cache_write_tokens > 0,
        "cost_usd": answer.cost_usd,
        "backend": answer.backend,
        "corpus_version": answer.corpus_version,
        "timings": answer.timings,
        "best_score": _best_score(answer),
        "scores": asdict(score),
    }
    return row


def _best_score(answer: Answer) -> float | None:
    scores = [c.score for c in answer.citations if c.score is not None]
    return max(scores) if scores else None


def _sweep_paths(
    kb: KnowledgeBase, options: ReportOptions, questions: Sequence[EvalQuestion]
) -> tuple[str, ...]:
    """The paths to re-read at threshold 0: only for the extractive reader, and long
    context only where the corpus fits."""
    if not options.threshold_sweep or kb.backend.provider != "extractive":
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
    rows: list[dict[str, Any]],
    bar: _Progress,
) -> dict[tuple[str, str], float]:
    """Each question's best sentence score on each path with the threshold at 0 (so
    nothing is refused); appends one `threshold_sweep` row per question and path."""
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
                    {
                        "kind": "threshold_sweep",
                        "path": path,
                        "qid": question.qid,
                        "is_impossible": question.is_impossible,
                        "best_score": score,
                        "answer": answer.answer,
                        "contains": graded.contains,
                    }
                )
                bar.step()
    return best


# ---- summarising -----------------------------------------------------------------------


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def summarize(
    kb: KnowledgeBase,
    options: ReportOptions,
    questions: Sequence[EvalQuestion],
    rows: Sequence[dict[str, Any]],
    top_k: int,
    seconds: float,
) -> dict[str, Any]:
    """The metrics per mode, retrieval recall, the threshold trade-off, and the setup."""
    status = kb.status()
    known = kb.corpus().manifest.by_id()
    gold = {doc for q in questions for doc in q.gold_doc_ids}
    modes = {
        mode: _mode_summary([r for r in rows if r["kind"] == "answer" and r["mode"] == mode])
        for mode in options.modes
    }
    retrieval = [r for r in rows if r["kind"] == "retrieval"]
    ks = sorted(set(options.recall_ks))
    recall = {
        str(k): {
            "all_gold": _rounded(mean(r["recall"][str(k)]["all"] for r in retrieval)),
            "fraction": _rounded(mean(r["recall"][str(k)]["fraction"] for r in retrieval)),
        }
        for k in ks
    }
    # The first search of a question embeds it; the later ones reuse the vector, so
    # only the first is a whole search.
    search_p50 = _rounded(percentile([r["seconds"][str(ks[0])] for r in retrieval], 50))
    sweep: dict[str, list[dict[str, Any]]] = {}
    for path in ("long_context", "rag"):
        scored = [
            (r["is_impossible"], r["best_score"] or 0.0, r["contains"] == 1.0)
            for r in rows
            if r["kind"] == "threshold_sweep" and r["path"] == path
        ]
        if scored:
            thresholds = sorted({*SWEEP_THRESHOLDS, kb.settings.extractive_threshold})
            sweep[path] = [
                {k: _rounded(v) for k, v in asdict(p).items()}
                for p in threshold_tradeoff(scored, thresholds)
            ]
    return {
        "title": options.title
        or options.questions_path.resolve().parent.name
        or options.questions_path.stem,
        "generated_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "questions_file": str(options.questions_path),
        "questions": len(questions),
        "answerable": sum(not q.is_impossible for q in questions),
        "unanswerable": sum(q.is_impossible for q in questions),
        "with_gold_docs": sum(bool(q.gold_doc_ids) for q in questions),
        "seed": options.seed,
        "limit": options.limit,
        "modes_run": list(options.modes),
        "backend": kb.backend.name,
        "offline_reader": kb.backend.provider in ("extractive", "local"),
        "settings": {
            "top_k": top_k,
            "long_context_budget": kb.settings.long_context_budget,
            "answer_reserve": kb.settings.answer_reserve,
            "extractive_threshold": kb.settings.extractive_threshold,
            "chunk_tokens": kb.settings.chunk_tokens,
            "chunk_overlap": kb.settings.chunk_overlap,
        },
        "corpus": {
            "version": status.corpus_version,
            "root": status.corpus_root,
            "documents": status.documents,
            "chunks": status.chunks,
            "corpus_tokens": status.corpus_tokens,
            "fits_long_context": kb.sizes(kb.corpus(), "?").fits,
            "gold_docs_in_corpus": _rounded(
                sum(doc in known for doc in gold) / len(gold) if gold else None
            ),
        },
        "assumptions": {
            "cache_ttl_minutes": options.cache_ttl_minutes,
            "monthly_questions": options.monthly_questions,
            "price_models": list(options.price_models),
            "price_source": PRICE_SOURCE,
        },
        "notes": list(options.notes),
        "run_seconds": round(seconds, 1),
        "retrieval_recall": recall,
        "retrieval_search_p50_s": search_p50,
        "modes": modes,
        "threshold_tradeoff": sweep,
        "long_context_rag_same_answer": _agreement(rows),
    }


def _agreement(rows: Sequence[dict[str, Any]]) -> float | None:
    """Share of questions on which forced long context and retrieval gave the same
    answer text (None unless both ran)."""
    by_mode: dict[str, dict[str, str]] = {"long_context": {}, "rag": {}}
    for row in rows:
        if row["kind"] == "answer" and row["mode"] in by_mode and row["error"] is None:
            by_mode[row["mode"]][row["qid"]] = row["answer"]
    both = by_mode["long_context"].keys() & by_mode["rag"].keys()
    if not both:
        return None
    same = sum(by_mode["long_context"][q] == by_mode["rag"][q] for q in both)
    return round(same / len(both), 4)


def _mode_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    done = [r for r in rows if r["error"] is None]
    errors = [r for r in rows if r["error"] is not None]
    summary: dict[str, Any] = {"questions": len(rows), "errors": len(errors)}
    if errors:
        summary["first_error"] = errors[0]["error"]
    if not done:
        return summary
    answerable = [r for r in done if not r["is_impossible"]]
    impossible = [r for r in done if r["is_impossible"]]
    scores = [r["scores"] for r in done]
    latency = [r["timings"]["total_s"] for r in done]
    cold = [r["timings"]["total_s"] for r in done if r["cold"]]
    lc_rows = [r for r in done if r["path"] == "long_context"]
    warm = [r["timings"]["total_s"] for r in lc_rows if not r["cold"]]
    rag_rows = [r for r in done if r["retrieved_doc_ids"] and r["gold_doc_ids"]]
    usage = [r["usage"] for r in done]
    costs = [r["cost_usd"] for r in done]
    summary |= {
        "answered": sum(not r["refused"] for r in done),
        "accuracy": _rounded(mean(float(s["correct"]) for s in scores)),
        "exact_match": _rounded(mean(s["exact_match"] for s in scores)),
        "f1": _rounded(mean(s["f1"] for s in scores)),
        "contains": _rounded(mean(s["contains"] for s in scores)),
        "refusal_accuracy": _rounded(mean(float(r["refused"]) for r in impossible)),
        "false_refusal_rate": _rounded(mean(float(r["refused"]) for r in answerable)),
        "citation_precision": _rounded(mean(s["citation_precision"] for s in scores)),
        "citation_recall": _rounded(mean(s["citation_recall"] for s in scores)),
        "passage_recall_all_gold": _rounded(
            mean(
                float(set(r["gold_doc_ids"]) <= set(r["retrieved_doc_ids"]))
                for r in rag_rows
                if not r["is_impossible"]
            )
        ),
        "latency_s": {
            "p50": _rounded(percentile(latency, 50)),
            "p95": _rounded(percentile(latency, 95)),
            "mean": _rounded(mean(latency)),
            "cold_count": len(cold),
            "cold_p50": _rounded(percentile(cold, 50)),
            "warm_long_context_p50": _rounded(percentile(warm, 50)),
            "rag_path_p50": _rounded(
                percentile([r["timings"]["total_s"] for r in done if r["path"] == "rag"], 50)
            ),
        },
        "tokens_per_question": {
            key: _rounded(mean(float(u[key]) for u in usage), 1)
            for key in ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens")
        },
        "long_context_share": _rounded(len(lc_rows) / len(done)),
        "escalation_share": _rounded(mean(float(r["fallback"]) for r in done)),
        "run_cost_usd": None if any(c is None for c in costs) else round(sum(costs), 6),
    }
    return summary


# ---- cost ------------------------------------------------------------------------------


def _curves(
    options: ReportOptions, rows: Sequence[dict[str, Any]]
) -> dict[str, dict[str, CostCurve]]:
    """A CostCurve per price model and mode, from the token mixes the modes used."""

    def pricer(model: str, usage: Usage) -> float | None:
        return estimate_cost(model, usage)

    curves: dict[str, dict[str, CostCurve]] = {}
    for model in options.price_models:
        curves[model] = {}
        for mode in options.modes:
            mixes = [
                TokenMix.from_usage(Usage(**r["usage"]))
                for r in rows
                if r["kind"] == "answer" and r["mode"] == mode and r["error"] is None
            ]
            if mixes:
                curves[model][mode] = cost_curve(
                    mode, model, mixes, pricer, options.cache_ttl_minutes
                )
    return curves


def _cost_summary(
    options: ReportOptions, curves: dict[str, dict[str, CostCurve]]
) -> dict[str, Any]:
    volume = options.monthly_questions
    per_model: dict[str, Any] = {}
    for model, by_mode in curves.items():
        entry: dict[str, Any] = {"modes": {}, "break_even": {}}
        for mode, curve in by_mode.items():
            entry["modes"][mode] = {
                "per_1000_without_cache_usd": round(curve.per_1000(volume, cached=False), 4),
                "per_1000_with_cache_usd": round(curve.per_1000(volume, cached=True), 4),
                "per_1000_warm_cache_usd": round(1000 * curve.warm, 4),
                "monthly_with_cache_usd": round(curve.monthly(volume, cached=True), 2),
                "monthly_without_cache_usd": round(curve.monthly(volume, cached=False), 2),
                "prefix_share": round(curve.prefix_share, 4),
                "write_surcharge_usd": round(curve.write_surcharge, 6),
            }
        for key, found in _break_evens(by_mode).items():
            entry["break_even"][key] = {
                "volumes_per_month": [round(v) for v in found.volumes],
                "cheaper_side": list(found.sides),
                "cheaper_at_low_volume": found.cheaper_at_low,
                "cheaper_at_high_volume": found.cheaper_at_high,
                "explanation": found.explain(),
            }
        per_model[model] = entry
    return {
        "projection": True,
        "monthly_questions": volume,
        "cache_ttl_minutes": options.cache_ttl_minutes,
        "cache_lifetimes_per_month": round(
            next(iter(next(iter(curves.values())).values())).windows_per_month, 1
        )
        if curves and any(curves.values())
        else None,
        "models": per_model,
    }


def _break_evens(by_mode: dict[str, CostCurve]) -> dict[str, BreakEven]:
    """Cached long context against retrieval, and long context with against without
    caching (the volume from which caching pays)."""
    found: dict[str, BreakEven] = {}
    lc, rag = by_mode.get("long_context"), by_mode.get("rag")
    if lc is not None and rag is not None:
        found["long_context_cached_vs_rag"] = break_even(
            lc.monthly,
            rag.monthly,
            [lc.kink, rag.kink],
            ("long context (cached)", "retrieval"),
        )
        found["long_context_uncached_vs_rag"] = break_even(
            lambda v: lc.monthly(v, cached=False),
            lambda v: rag.monthly(v, cached=False),
            [],
            ("long context (no cache)", "retrieval"),
        )
    if lc is not None:
        found["long_context_cached_vs_uncached"] = break_even(
            lc.monthly,
            lambda v: lc.monthly(v, cached=False),
            [lc.kink],
            ("with caching", "without caching"),
        )
    return found


# ---- writing ---------------------------------------------------------------------------


def write_report(result: ReportResult, out_dir: Path) -> list[Path]:
    """Write report.md, report.html, charts/*.svg, results.jsonl and summary.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    charts_dir = out_dir / "charts"
    charts_dir.mkdir(exist_ok=True)
    charts = render_charts(result)
    written = []
    for name, svg in charts.items():
        path = charts_dir / f"{name}.svg"
        path.write_text(svg, "utf-8")
        written.append(path)
    with open(out_dir / "results.jsonl", "w", encoding="utf-8") as fh:
        for row in result.rows:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    (out_dir / "summary.json").write_text(
        json.dumps(result.summary, indent=2, ensure_ascii=False) + "\n", "utf-8"
    )
    (out_dir / "report.md").write_text(render_markdown(result.summary, list(charts)), "utf-8")
    (out_dir / "report.html").write_text(render_html(result.summary, charts), "utf-8")
    written += [out_dir / n for n in ("results.jsonl", "summary.json", "report.md", "report.html")]
    return written
