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

import html
import json
import math
import os
import re
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
VOLUME_RANGE = (100.0, 10_000_000.0)
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


# ---- text ------------------------------------------------------------------------------

MODE_LABELS = {
    "long_context": "long context",
    "rag": "retrieval (rag)",
    "auto": "auto",
    "self_route": "self_route",
}
CHART_TITLES = {
    "accuracy_vs_cost": "Accuracy against projected cost per 1,000 questions",
    "latency": "Latency per question",
    "tokens": "Tokens per question",
    "cost_vs_volume": "Projected monthly cost against monthly question volume",
}


def _fmt(value: Any, kind: str = "num") -> str:
    if value is None:
        return "–"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if kind == "usd":
        return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"
    if kind == "int":
        return f"{value:,.0f}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _sections(summary: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]] | None]]:
    """The report as (heading, paragraphs, table) sections, shared by Markdown and HTML.

    A table is a list of rows whose first row is the header."""
    s = summary
    corpus, settings = s["corpus"], s["settings"]
    modes: dict[str, Any] = s["modes"]
    costs = s["costs"]
    offline = s["offline_reader"]
    sections: list[tuple[str, list[str], list[list[str]] | None]] = []

    setup = [
        f"Evaluation set `{s['questions_file']}`: {s['questions']} questions "
        f"({s['answerable']} answerable, {s['unanswerable']} unanswerable"
        + (
            f"; a sample of {s['limit']} drawn with seed {s['seed']})."
            if s["limit"]
            else f"; all of them, seed {s['seed']})."
        ),
        f"Corpus version `{corpus['version']}` from `{corpus['root']}`: "
        f"{corpus['documents']:,} documents, {corpus['chunks']:,} chunks, "
        f"{corpus['corpus_tokens']:,} snapshot tokens (cl100k, with document markers); "
        + (
            f"{100 * corpus['gold_docs_in_corpus']:.0f}% of the gold documents are in it."
            if corpus["gold_docs_in_corpus"] is not None
            else "the set names no gold documents."
        ),
        f"Backend `{s['backend']}`; top-k {settings['top_k']}; long-context budget "
        f"{settings['long_context_budget']:,} tokens (the corpus "
        + ("fits)" if corpus["fits_long_context"] else "does not fit)")
        + (
            f"; refusal threshold {settings['extractive_threshold']}."
            if s["backend"] == "extractive"
            else "."
        ),
        f"Generated {s['generated_at']} in {s['run_seconds']:.0f} s.",
    ]
    sections.append(("Setup", setup + [f"Note: {n}" for n in s["notes"]], None))

    table = [
        [
            "mode",
            "accuracy",
            "contains",
            "EM",
            "F1",
            "refusal acc.",
            "false refusals",
            "cit. precision",
            "cit. recall",
            "to long context",
        ]
    ]
    for mode, m in modes.items():
        if "accuracy" not in m:
            table.append([MODE_LABELS.get(mode, mode), "not run: " + m.get("first_error", "")])
            continue
        share = (
            f"{_fmt(m['escalation_share'], 'pct')} escalated"
            if mode == "self_route"
            else _fmt(m["long_context_share"], "pct")
        )
        table.append(
            [
                MODE_LABELS.get(mode, mode),
                _fmt(m["accuracy"], "pct"),
                _fmt(m["contains"], "pct"),
                _fmt(m["exact_match"], "pct"),
                _fmt(m["f1"], "pct"),
                _fmt(m["refusal_accuracy"], "pct"),
                _fmt(m["false_refusal_rate"], "pct"),
                _fmt(m["citation_precision"], "pct"),
                _fmt(m["citation_recall"], "pct"),
                share,
            ]
        )
    sections.append(
        (
            "Answer quality",
            [
                "Accuracy counts an answerable question right when a reference answer appears "
                "in the answer (on word boundaries, after SQuAD normalisation and with citation "
                "markers removed) and an unanswerable one right when it was refused. EM and F1 "
                "are SQuAD's exact match and token F1 over answerable questions; a reader that "
                "answers with whole sentences scores low on them by construction. Citation "
                "precision is the share of cited documents that are gold (answered questions), "
                "recall the share of gold documents cited.",
            ],
            table,
        )
    )

    recall = s["retrieval_recall"]
    if recall and any(v["all_gold"] is not None for v in recall.values()):
        rtable = [["k", "all gold docs in top-k", "gold docs found (fraction)"]]
        for k, v in recall.items():
            rtable.append([k, _fmt(v["all_gold"], "pct"), _fmt(v["fraction"], "pct")])
        sections.append(
            (
                "Retrieval recall",
                [
                    "Hybrid retrieval (vectors + BM25) asked for the top-k chunks of each "
                    "answerable question with gold documents; a question counts in the first "
                    "column only when every gold document is among the documents of those "
                    "chunks. The median search (question embedding included) took "
                    f"{_fmt(s['retrieval_search_p50_s'], 's')}.",
                ],
                rtable,
            )
        )

    ltable = [["mode", "p50", "p95", "cold long context", "warm long context p50", "rag p50"]]
    for mode, m in modes.items():
        if "latency_s" not in m:
            continue
        lat = m["latency_s"]
        cold = f"{_fmt(lat['cold_p50'], 's')} (n={lat['cold_count']})" if lat["cold_count"] else "–"
        ltable.append(
            [
                MODE_LABELS.get(mode, mode),
                _fmt(lat["p50"], "s"),
                _fmt(lat["p95"], "s"),
                cold,
                _fmt(lat["warm_long_context_p50"], "s"),
                _fmt(lat["rag_path_p50"], "s"),
            ]
        )
    sections.append(
        (
            "Latency",
            [
                "End-to-end seconds per question on this machine, after a warm-up question "
                "that loads the embedding model and indexes. A long-context question is cold "
                "when it had to build the corpus version's prompt cache (for the offline "
                "reader: its sentence index) and warm when it read it.",
                _machine_note(s.get("machine")),
            ],
            ltable,
        )
    )

    ttable = [["mode", "input (uncached)", "cache read", "cache write", "output"]]
    for mode, m in modes.items():
        if "tokens_per_question" not in m:
            continue
        t = m["tokens_per_question"]
        ttable.append(
            [MODE_LABELS.get(mode, mode)]
            + [
                _fmt(t[k], "int")
                for k in (
                    "input_tokens",
                    "cache_read_tokens",
                    "cache_write_tokens",
                    "output_tokens",
                )
            ]
        )
    sections.append(("Tokens per question (mean)", [], ttable))

    if costs["models"]:
        label = (
            "These are projections from token counts: the run used the offline reader, "
            "which cost nothing; each question's measured token mix is priced as if the "
            "named model had received it."
            if offline
            else "Projections from the token counts of this run, priced with the same table."
        )
        volume = costs["monthly_questions"]
        ctable = [["model", "mode", "no cache", f"with cache at {volume:,}/month", "warm cache"]]
        for model, entry in costs["models"].items():
            for mode, c in entry["modes"].items():
                ctable.append(
                    [
                        model,
                        MODE_LABELS.get(mode, mode),
                        _fmt(c["per_1000_without_cache_usd"], "usd"),
                        _fmt(c["per_1000_with_cache_usd"], "usd"),
                        _fmt(c["per_1000_warm_cache_usd"], "usd"),
                    ]
                )
        ttl = costs["cache_ttl_minutes"]
        lifetimes = costs["cache_lifetimes_per_month"]
        assumptions = [
            label,
            f"Prices: {s['assumptions']['price_source']}. Assumptions: a month of 30 days; "
            f"questions arrive evenly spread; the provider keeps a cached prefix for {ttl:g} "
            f"minutes, so a month holds {lifetimes:,.0f} cache lifetimes; the first "
            "long-context question of each lifetime writes the cached corpus prefix (at the "
            "provider's cache-write price, or the input price where writes are not "
            "surcharged) and the others read it (cache-read price). Counting lifetimes from "
            "their start is conservative: providers that extend a lifetime on each hit "
            "write less often. Long context sends the corpus snapshot as the cacheable "
            "prefix, the instructions and the question as uncached input; retrieval sends "
            "its passages, instructions and question uncached. Output tokens are the "
            "answers this run produced. Each request is priced on its own, so long-prompt "
            "tiers apply as billed. Storage fees for explicit caches (e.g. Gemini context "
            "caching) are not included.",
            f"'With cache' is the cost of 1,000 questions at {volume:,} questions a month; "
            "'warm cache' is the floor when every corpus read hits the cache. Where 'with "
            "cache' exceeds 'no cache', too few questions send the corpus to share cache "
            "lifetimes, and a write surcharge (Anthropic's) is paid for reads that never come.",
        ]
        prompt = costs.get("long_context_prompt_tokens")
        for model, entry in costs["models"].items():
            window = entry.get("context_window")
            if prompt and window and prompt > window:
                assumptions.append(
                    f"Note: {model}'s listed context window ({window:,} tokens) is smaller than "
                    f"the long-context prompt ({prompt:,} tokens); that path needs the model's "
                    "long-context option, priced here with the table's long-prompt tier."
                )
        sections.append(("Cost per 1,000 questions (projection)", assumptions, ctable))

        btable = [["model", "comparison", "break-even"]]
        names = {
            "long_context_cached_vs_rag": "long context (cached) vs retrieval",
            "long_context_uncached_vs_rag": "long context (no cache) vs retrieval",
            "long_context_cached_vs_uncached": "long context: caching vs none",
        }
        for model, entry in costs["models"].items():
            for key, be in entry["break_even"].items():
                btable.append([model, names.get(key, key), be["explanation"]])
        if len(btable) > 1:
            sections.append(
                (
                    "Break-even volume",
                    [
                        "The break-even volume is the number of questions a month at which "
                        "the two monthly cost lines of the model above cross, i.e. where the "
                        "cheaper path changes. Below the cache-lifetime count every "
                        "long-context question writes the cache; above it each lifetime "
                        "pays one write and the rest are reads, so cached long context "
                        "costs lifetimes x write surcharge + volume x warm cost. When the "
                        "lines never cross, one path is cheaper at every volume and the "
                        "table says which."
                    ],
                    btable,
                )
            )

    tradeoff: dict[str, list[dict[str, Any]]] = s["threshold_tradeoff"]
    if tradeoff:
        paths = list(tradeoff)
        header = ["threshold"]
        for path in paths:
            label = "long context" if path == "long_context" else "retrieval"
            header += [f"{label}: refusal acc.", "false refusals", "accuracy"]
        ptable = [header]
        for i, point in enumerate(tradeoff[paths[0]]):
            current = point["threshold"] == settings["extractive_threshold"]
            row = [f"{point['threshold']:.3f}{' (current)' if current else ''}"]
            for path in paths:
                p = tradeoff[path][i]
                row += [
                    _fmt(p["refusal_accuracy"], "pct"),
                    _fmt(p["false_refusal_rate"], "pct"),
                    _fmt(p["accuracy"], "pct"),
                ]
            ptable.append(row)
        sections.append(
            (
                "Refusal threshold trade-off",
                [
                    "The reader was re-run with its threshold at 0 to record each question's "
                    "best sentence score (`best_score` in results.jsonl); a question is refused "
                    "at threshold t when that score is below t. Refusal figures are exact; "
                    "accuracy assumes the chosen sentences do not change with the threshold."
                ],
                ptable,
            )
        )
    return sections


def _machine_note(machine: dict[str, Any] | None) -> str:
    if not machine:
        return ""
    return (
        f"Machine: {machine['cpus']} CPUs; 1-minute load average {machine['load_average_start']}"
        f" at the start of the run and {machine['load_average_end']} at the end (other work "
        "on the machine slows every figure here)."
    )


def render_markdown(summary: dict[str, Any], chart_names: Sequence[str]) -> str:
    """report.md: the sections as Markdown tables, charts linked from charts/."""
    lines = [f"# Long context or retrieval: {_title(summary)}", ""]
    if summary["offline_reader"]:
        lines += [
            f"> Answers come from the offline `{summary['backend']}` reader. All dollar "
            "figures are **projections from token counts**, not bills.",
            "",
        ]
    lines += [f"- {point}" for point in _headline(summary)] + [""]
    for heading, paragraphs, table in _sections(summary):
        lines += [f"## {heading}", ""]
        for paragraph in filter(None, paragraphs):
            lines += [paragraph, ""]
        if table:
            width = max(len(r) for r in table)
            lines.append("| " + " | ".join(table[0]) + " |")
            lines.append("|" + "---|" * len(table[0]))
            for row in table[1:]:
                cells = [c.replace("|", "\\|") for c in row] + [""] * (width - len(row))
                lines.append("| " + " | ".join(cells[: len(table[0])]) + " |")
            lines.append("")
    lines += ["## Charts", ""]
    for name in chart_names:
        lines += [f"![{CHART_TITLES.get(name, name)}](charts/{name}.svg)", ""]
    return "\n".join(lines)


def _title(summary: dict[str, Any]) -> str:
    return str(summary["title"])


def _headline(summary: dict[str, Any]) -> list[str]:
    """The findings in a few bullet points, from the numbers."""
    modes = {m: v for m, v in summary["modes"].items() if "accuracy" in v}
    if not modes:
        return ["No mode produced answers."]
    points = [
        "Accuracy: "
        + ", ".join(
            f"{MODE_LABELS.get(m, m)} {_fmt(v['accuracy'], 'pct')}" for m, v in modes.items()
        )
        + "; median latency: "
        + ", ".join(
            f"{MODE_LABELS.get(m, m)} {_fmt(v['latency_s']['p50'], 's')}" for m, v in modes.items()
        )
        + "."
    ]
    same = summary.get("long_context_rag_same_answer")
    if same is not None:
        points.append(
            f"Long context and retrieval gave the same answer on {_fmt(same, 'pct')} of the "
            "questions."
        )
    recall = summary["retrieval_recall"]
    if recall:
        points.append(
            "Gold-document recall (all gold documents retrieved): "
            + ", ".join(f"@{k} {_fmt(v['all_gold'], 'pct')}" for k, v in recall.items())
            + "."
        )
    for model, entry in summary["costs"]["models"].items():
        be = entry["break_even"].get("long_context_cached_vs_rag")
        if be:
            points.append(f"Projected on {model}: {be['explanation']}.")
    return points


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2rem auto;padding:0 1rem;color:#1d2433;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #dde;
padding-bottom:.2rem}table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #d5d9e2;padding:.3rem .55rem;text-align:right}
th{background:#f3f5f9;text-align:left}td:first-child,td.t{text-align:left}
svg{max-width:100%;height:auto}
.banner{background:#fff6dd;border:1px solid #e8c96a;padding:.6rem .8rem;border-radius:6px}
figure{margin:1.2rem 0}figcaption{font-weight:600;margin-bottom:.3rem}
code{background:#f3f5f9;padding:0 .2rem;border-radius:3px}
"""


_NUMERIC = re.compile(r"^[-–$0-9.,]+(%| ms| s)?( \(.*\))?( escalated)?$")


def _align(cell: str) -> str:
    """Numbers align right (the default); words align left."""
    return "" if _NUMERIC.match(cell) else ' class="t"'


def render_html(summary: dict[str, Any], charts: dict[str, str]) -> str:
    """report.html: one file, CSS and SVG inline, no script and nothing fetched."""
    esc = html.escape

    def inline(text: str) -> str:
        parts = esc(text).split("`")
        return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts)).replace(
            "**", ""
        )

    body = [f"<h1>Long context or retrieval: {esc(_title(summary))}</h1>"]
    if summary["offline_reader"]:
        body.append(
            f'<p class="banner">Answers come from the offline <code>{esc(summary["backend"])}'
            "</code> reader. All dollar figures are <strong>projections from token counts"
            "</strong>, not bills.</p>"
        )
    body.append("<ul>" + "".join(f"<li>{inline(p)}</li>" for p in _headline(summary)) + "</ul>")
    for heading, paragraphs, table in _sections(summary):
        body.append(f"<h2>{esc(heading)}</h2>")
        body += [f"<p>{inline(p)}</p>" for p in paragraphs if p]
        if table:
            head = "".join(f"<th>{esc(c)}</th>" for c in table[0])
            rows = "".join(
                "<tr>"
                + "".join(
                    f'<td colspan="{len(table[0]) - len(r) + 1}">{esc(c)}</td>'
                    if i == len(r) - 1 and len(r) < len(table[0])
                    else f"<td{_align(c)}>{esc(c)}</td>"
                    for i, c in enumerate(r)
                )
                + "</tr>"
                for r in table[1:]
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    body.append("<h2>Charts</h2>")
    for name, svg in charts.items():
        body.append(
            f"<figure><figcaption>{esc(CHART_TITLES.get(name, name))}</figcaption>{svg}</figure>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Report: {esc(_title(summary))}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


# ---- charts (plain SVG) ----------------------------------------------------------------

COLORS = {"long_context": "#1f6fb4", "rag": "#e8731a", "auto": "#2a9d4a", "self_route": "#8a4fbf"}
SHAPES = ("circle", "square", "triangle", "diamond")
FONT = 'font-family="system-ui,sans-serif"'


class _Axis:
    """A linear or log axis mapping data values onto a pixel range."""

    def __init__(self, low: float, high: float, start: float, end: float, log: bool) -> None:
        low, high = float(low), float(high)
        if log:
            low, high = max(low, 1e-12), max(high, low * 10)
            low, high = 10 ** math.floor(math.log10(low)), 10 ** math.ceil(math.log10(high))
        elif high <= low:
            high = low + 1
        self.low, self.high, self.start, self.end, self.log = low, high, start, end, log

    def __call__(self, value: float) -> float:
        if self.log:
            value = max(value, self.low)
            share = math.log10(value / self.low) / math.log10(self.high / self.low)
        else:
            share = (value - self.low) / (self.high - self.low)
        return self.start + share * (self.end - self.start)

    def ticks(self) -> list[float]:
        if self.log:
            first, last = round(math.log10(self.low)), round(math.log10(self.high))
            return [10.0**e for e in range(first, last + 1)]
        step = _nice_step((self.high - self.low) / 5)
        origin = math.ceil(self.low / step) * step
        return [origin + i * step for i in range(int((self.high - origin) / step + 1e-9) + 1)]


def _nice_step(raw: float) -> float:
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _tick_label(value: float, kind: str) -> str:
    if kind == "usd":
        if value >= 1000:
            return f"${value / 1000:g}k" if value < 1e6 else f"${value / 1e6:g}M"
        return f"${value:g}"
    if kind == "pct":
        return f"{100 * value:.0f}%"
    if kind == "s":
        return f"{value * 1000:g} ms" if value < 1 else f"{value:g} s"
    if value >= 1e6:
        return f"{value / 1e6:g}M"
    if value >= 1e3:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def _frame(x: _Axis, y: _Axis, x_kind: str, y_kind: str, x_title: str, y_title: str) -> list[str]:
    parts = []
    for value in x.ticks():
        px = x(value)
        parts.append(
            f'<line x1="{px:.1f}" y1="{y.start:.1f}" x2="{px:.1f}" y2="{y.end:.1f}" '
            'stroke="#e4e7ee"/>'
            f'<text x="{px:.1f}" y="{y.start + 16:.1f}" font-size="11" text-anchor="middle" '
            f"{FONT}>{_tick_label(value, x_kind)}</text>"
        )
    for value in y.ticks():
        py = y(value)
        parts.append(
            f'<line x1="{x.start:.1f}" y1="{py:.1f}" x2="{x.end:.1f}" y2="{py:.1f}" '
            'stroke="#e4e7ee"/>'
            f'<text x="{x.start - 6:.1f}" y="{py + 4:.1f}" font-size="11" text-anchor="end" '
            f"{FONT}>{_tick_label(value, y_kind)}</text>"
        )
    parts.append(
        f'<rect x="{x.start:.1f}" y="{y.end:.1f}" width="{x.end - x.start:.1f}" '
        f'height="{y.start - y.end:.1f}" fill="none" stroke="#9aa3b5"/>'
        f'<text x="{(x.start + x.end) / 2:.1f}" y="{y.start + 34:.1f}" font-size="12" '
        f'text-anchor="middle" {FONT}>{html.escape(x_title)}</text>'
    )
    if y_title:
        parts.append(
            f'<text transform="translate({x.start - 48:.1f},{(y.start + y.end) / 2:.1f}) '
            f'rotate(-90)" font-size="12" text-anchor="middle" {FONT}>{html.escape(y_title)}'
            "</text>"
        )
    return parts


def _marker(shape: str, cx: float, cy: float, color: str, filled: bool, title: str) -> str:
    fill = color if filled else "white"
    style = f'fill="{fill}" stroke="{color}" stroke-width="1.8"'
    tip = f"<title>{html.escape(title)}</title>"
    if shape == "square":
        return (
            f'<rect x="{cx - 5:.1f}" y="{cy - 5:.1f}" width="10" height="10" {style}>{tip}</rect>'
        )
    if shape == "triangle":
        pts = f"{cx:.1f},{cy - 6:.1f} {cx - 6:.1f},{cy + 5:.1f} {cx + 6:.1f},{cy + 5:.1f}"
        return f'<polygon points="{pts}" {style}>{tip}</polygon>'
    if shape == "diamond":
        pts = (
            f"{cx:.1f},{cy - 6:.1f} {cx + 6:.1f},{cy:.1f} "
            f"{cx:.1f},{cy + 6:.1f} {cx - 6:.1f},{cy:.1f}"
        )
        return f'<polygon points="{pts}" {style}>{tip}</polygon>'
    return f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5.5" {style}>{tip}</circle>'


def _svg(width: int, height: int, parts: Sequence[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{html.escape(label)}">'
        f'<rect width="{width}" height="{height}" fill="white"/>' + "".join(parts) + "</svg>"
    )


def _legend(items: Sequence[tuple[str, str]], x: float, y: float) -> list[str]:
    parts = []
    for i, (color, text) in enumerate(items):
        parts.append(
            f'<rect x="{x:.1f}" y="{y + 16 * i - 9:.1f}" width="11" height="11" fill="{color}"/>'
            f'<text x="{x + 16:.1f}" y="{y + 16 * i:.1f}" font-size="11" {FONT}>'
            f"{html.escape(text)}</text>"
        )
    return parts


def render_charts(result: ReportResult) -> dict[str, str]:
    """The four charts as standalone SVG documents, keyed by file stem."""
    summary = result.summary
    modes = {m: v for m, v in summary["modes"].items() if "accuracy" in v}
    charts = {}
    charts["accuracy_vs_cost"] = _chart_accuracy_cost(summary, modes)
    charts["latency"] = _chart_latency(result.rows, list(modes))
    charts["tokens"] = _chart_tokens(modes)
    charts["cost_vs_volume"] = _chart_volume(summary, result.curves)
    return charts


def _chart_accuracy_cost(summary: dict[str, Any], modes: dict[str, Any]) -> str:
    width, height = 720, 380
    costs = summary["costs"]["models"]
    points = []
    for shape, (model, entry) in zip(SHAPES * 4, costs.items(), strict=False):
        for mode, c in entry["modes"].items():
            if mode not in modes:
                continue
            accuracy = modes[mode]["accuracy"]
            points.append((c["per_1000_with_cache_usd"], accuracy, mode, model, shape, True))
            points.append((c["per_1000_without_cache_usd"], accuracy, mode, model, shape, False))
    if not points:
        return _svg(width, height, [_empty(width, height, "no priced answers")], "empty")
    values = [p[0] for p in points if p[0] > 0] or [0.01]
    x = _Axis(min(values), max(values), 70, 520, log=True)
    y = _Axis(0.0, 1.0, height - 60, 20, log=False)
    parts = _frame(x, y, "usd", "pct", "projected cost per 1,000 questions (log scale)", "accuracy")
    for cost, accuracy, mode, model, shape, cached in points:
        tip = (
            f"{MODE_LABELS.get(mode, mode)} on {model}, "
            f"{'with' if cached else 'without'} caching: {_fmt(cost, 'usd')} per 1,000, "
            f"accuracy {_fmt(accuracy, 'pct')}"
        )
        parts.append(_marker(shape, x(cost), y(accuracy), COLORS.get(mode, "#555"), cached, tip))
    legend = _legend([(COLORS.get(m, "#555"), MODE_LABELS.get(m, m)) for m in modes], 540, 34)
    top = 34 + 16 * len(modes) + 14
    for i, (shape, model) in enumerate(zip(SHAPES * 4, costs, strict=False)):
        legend.append(_marker(shape, 546, top + 18 * i - 4, "#444", True, model))
        legend.append(
            f'<text x="{556:.1f}" y="{top + 18 * i:.1f}" font-size="11" {FONT}>'
            f"{html.escape(model)}</text>"
        )
    end = top + 18 * len(costs) + 6
    legend.append(
        f'<text x="540" y="{end:.1f}" font-size="11" {FONT}>filled: with caching at</text>'
        f'<text x="540" y="{end + 15:.1f}" font-size="11" {FONT}>'
        f"{summary['costs']['monthly_questions']:,} questions/month</text>"
        f'<text x="540" y="{end + 30:.1f}" font-size="11" {FONT}>hollow: without caching</text>'
    )
    return _svg(width, height, parts + legend, CHART_TITLES["accuracy_vs_cost"])


def _empty(width: int, height: int, text: str) -> str:
    return (
        f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" font-size="13" {FONT}>'
        f"{html.escape(text)}</text>"
    )


def _chart_latency(rows: Sequence[dict[str, Any]], modes: list[str]) -> str:
    width = 720
    lane = 46
    height = 70 + lane * max(len(modes), 1)
    samples = {
        m: [
            (r["timings"]["total_s"], bool(r.get("cold")))
            for r in rows
            if r["kind"] == "answer" and r["mode"] == m and r["error"] is None
        ]
        for m in modes
    }
    values = [v for s in samples.values() for v, _ in s if v > 0]
    if not values:
        return _svg(width, height, [_empty(width, height, "no timed answers")], "empty")
    x = _Axis(min(values), max(values), 120, width - 30, log=True)
    parts = []
    for value in x.ticks():
        px = x(value)
        parts.append(
            f'<line x1="{px:.1f}" y1="15" x2="{px:.1f}" y2="{height - 45}" stroke="#e4e7ee"/>'
            f'<text x="{px:.1f}" y="{height - 29}" font-size="11" text-anchor="middle" '
            f"{FONT}>{_tick_label(value, 's')}</text>"
        )
    parts.append(
        f'<text x="{(120 + width - 30) / 2}" y="{height - 10}" font-size="12" '
        f'text-anchor="middle" {FONT}>seconds per question (log scale); box p25-p75, '
        "bar p50, whiskers p5-p95, red: cold</text>"
    )
    for i, mode in enumerate(modes):
        centre = 35 + lane * i
        color = COLORS.get(mode, "#555")
        data = samples[mode]
        timings = [v for v, _ in data]
        parts.append(
            f'<text x="112" y="{centre + 4}" font-size="12" text-anchor="end" {FONT}>'
            f"{html.escape(MODE_LABELS.get(mode, mode))}</text>"
        )
        if not timings:
            continue
        q = {p: percentile(timings, p) or 0.0 for p in (5, 25, 50, 75, 95)}
        parts.append(
            f'<line x1="{x(q[5]):.1f}" y1="{centre}" x2="{x(q[95]):.1f}" y2="{centre}" '
            f'stroke="{color}"/>'
            f'<rect x="{x(q[25]):.1f}" y="{centre - 10}" width="{max(x(q[75]) - x(q[25]), 1):.1f}" '
            f'height="20" fill="{color}" fill-opacity="0.18" stroke="{color}"/>'
            f'<line x1="{x(q[50]):.1f}" y1="{centre - 12}" x2="{x(q[50]):.1f}" '
            f'y2="{centre + 12}" stroke="{color}" stroke-width="2.5"/>'
        )
        for n, (value, cold) in enumerate(data):
            jitter = ((n * 7919) % 17 - 8) * 1.2
            parts.append(
                f'<circle cx="{x(value):.1f}" cy="{centre + jitter:.1f}" '
                f'r="{3.5 if cold else 1.8}" '
                f'fill="{"#d62728" if cold else color}" fill-opacity="{0.9 if cold else 0.45}">'
                f"<title>{html.escape(_fmt(value, 's'))}{' (cold)' if cold else ''}</title>"
                "</circle>"
            )
    return _svg(width, height, parts, CHART_TITLES["latency"])


def _chart_tokens(modes: dict[str, Any]) -> str:
    width, lane = 720, 40
    height = 90 + lane * max(len(modes), 1)
    kinds = [
        ("input_tokens", "input (uncached)", "#4c78a8"),
        ("cache_read_tokens", "cache read", "#72b7b2"),
        ("cache_write_tokens", "cache write", "#f58518"),
        ("output_tokens", "output", "#b279a2"),
    ]
    totals = [sum(m["tokens_per_question"][k] or 0 for k, _, _ in kinds) for m in modes.values()]
    if not totals:
        return _svg(width, height, [_empty(width, height, "no answers")], "empty")
    x = _Axis(0.0, max(totals) * 1.05 or 1.0, 120, width - 210, log=False)
    parts = []
    for value in x.ticks():
        px = x(value)
        parts.append(
            f'<line x1="{px:.1f}" y1="15" x2="{px:.1f}" y2="{height - 60}" stroke="#e4e7ee"/>'
            f'<text x="{px:.1f}" y="{height - 44}" font-size="11" text-anchor="middle" '
            f"{FONT}>{_tick_label(value, 'n')}</text>"
        )
    for i, (mode, m) in enumerate(modes.items()):
        top = 25 + lane * i
        start = 0.0
        parts.append(
            f'<text x="112" y="{top + 15}" font-size="12" text-anchor="end" {FONT}>'
            f"{html.escape(MODE_LABELS.get(mode, mode))}</text>"
        )
        for key, name, color in kinds:
            value = m["tokens_per_question"][key] or 0.0
            if value <= 0:
                continue
            parts.append(
                f'<rect x="{x(start):.1f}" y="{top}" '
                f'width="{max(x(start + value) - x(start), 1):.1f}"'
                f' height="22" fill="{color}"><title>{html.escape(name)}: '
                f"{value:,.0f}</title></rect>"
            )
            start += value
        parts.append(
            f'<text x="{x(start) + 6:.1f}" y="{top + 15}" font-size="11" {FONT}>{start:,.0f}</text>'
        )
    parts += [
        f'<text x="{(120 + width - 210) / 2}" y="{height - 26}" font-size="12" '
        f'text-anchor="middle" {FONT}>mean tokens per question</text>'
    ]
    parts += _legend([(c, n) for _, n, c in kinds], width - 125, 30)
    return _svg(width, height, parts, CHART_TITLES["tokens"])


def _chart_volume(summary: dict[str, Any], curves: dict[str, dict[str, CostCurve]]) -> str:
    panel_w, panel_h = 345, 300
    models = [m for m in curves if curves[m]]
    columns = min(len(models), 3) or 1
    rows_n = math.ceil(len(models) / columns) if models else 1
    width, height = max(panel_w * columns + 20, 720), panel_h * rows_n + 50
    if not models:
        return _svg(width, height, [_empty(width, height, "no priced modes")], "empty")
    low, high = VOLUME_RANGE
    volumes = [low * (high / low) ** (i / 60) for i in range(61)]
    assumed = summary["costs"]["monthly_questions"]
    parts: list[str] = []
    for n, model in enumerate(models):
        ox, oy = 20 + panel_w * (n % columns), panel_h * (n // columns)
        lines: list[tuple[str, str, bool, list[float]]] = []
        for mode, curve in curves[model].items():
            lines.append(
                (mode, COLORS.get(mode, "#555"), False, [curve.monthly(v) for v in volumes])
            )
        lc = curves[model].get("long_context")
        if lc is not None and lc.prefix_share > 0:
            lines.append(
                (
                    "long_context",
                    COLORS["long_context"],
                    True,
                    [lc.monthly(v, False) for v in volumes],
                )
            )
        values = [c for _, _, _, cs in lines for c in cs if c > 0] or [1.0]
        x = _Axis(low, high, ox + 60, ox + panel_w - 15, log=True)
        y = _Axis(min(values), max(values), oy + panel_h - 50, oy + 25, log=True)
        parts += _frame(x, y, "n", "usd", "questions per month", "")
        parts.append(
            f'<text x="{ox + 60}" y="{oy + 16}" font-size="12" font-weight="600" {FONT}>'
            f"{html.escape(model)}</text>"
        )
        parts.append(
            f'<line x1="{x(assumed):.1f}" y1="{y.start:.1f}" x2="{x(assumed):.1f}" '
            f'y2="{y.end:.1f}" stroke="#888" stroke-dasharray="2 3"><title>assumed volume '
            f"{assumed:,}/month</title></line>"
        )
        for order, (mode, color, dashed, costs) in enumerate(lines):
            pts = " ".join(
                f"{x(v):.1f},{y(c):.1f}" for v, c in zip(volumes, costs, strict=True) if c > 0
            )
            dash = ' stroke-dasharray="6 4"' if dashed else ""
            label = f"{MODE_LABELS.get(mode, mode)}{' without caching' if dashed else ''}"
            parts.append(
                f'<polyline points="{pts}" fill="none" stroke="{color}" '
                f'stroke-width="{max(4.5 - 1.0 * order, 1.5) if not dashed else 2}"{dash}>'
                f"<title>{html.escape(label)}</title></polyline>"
            )
        be = summary["costs"]["models"][model]["break_even"].get("long_context_cached_vs_rag")
        rag = curves[model].get("rag")
        if be and rag is not None:
            for v in be["volumes_per_month"]:
                if low <= v <= high:
                    parts.append(
                        f'<circle cx="{x(v):.1f}" cy="{y(rag.monthly(v)):.1f}" r="5" fill="none" '
                        f'stroke="#000" stroke-width="1.5"><title>break-even {v:,} questions/month'
                        "</title></circle>"
                    )
    legend = [(COLORS.get(m, "#555"), MODE_LABELS.get(m, m)) for m in next(iter(curves.values()))]
    parts += [
        f'<text x="20" y="{height - 28}" font-size="11" {FONT}>'
        + "; ".join(f'<tspan fill="{c}">&#9632;</tspan> {html.escape(t)}' for c, t in legend)
        + "; dashed: long context without caching; dotted: assumed volume; "
        "circle: break-even of cached long context and retrieval</text>",
        f'<text x="20" y="{height - 12}" font-size="11" {FONT}>Projected USD per month '
        "(log scale) from this run's token counts; cache lifetime "
        f"{summary['costs']['cache_ttl_minutes']:g} min.</text>",
    ]
    return _svg(width, height, parts, CHART_TITLES["cost_vs_volume"])
