"""`kb report`: compare long context against retrieval on an evaluation set."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kb.errors import InvalidRequestError
from kb.settings import MODES, load_settings

HELP = "Run an evaluation set through each mode and write a comparison report."

DEFAULT_MODES = "long_context,rag,auto,self_route"
DEFAULT_PRICE_MODELS = "openai:gpt-4.1-mini,anthropic:claude-sonnet-4-5,google:gemini-2.5-flash"


def _names(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--questions",
        type=Path,
        required=True,
        metavar="FILE",
        help="evaluation set, one JSON object a line: qid, question, answers, "
        "gold_doc_ids, is_impossible (the format of ../shared/datasets/*/questions.jsonl)",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="report folder")
    parser.add_argument(
        "--limit", type=int, default=None, help="a random sample of this many questions (seeded)"
    )
    parser.add_argument(
        "--modes",
        default=DEFAULT_MODES,
        help=f"comma-separated modes to run (default: {DEFAULT_MODES})",
    )
    parser.add_argument("--backend", default=None, help="provider:model (default: KB_BACKEND)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --limit sample")
    parser.add_argument("--top-k", type=int, default=None, help="passages for retrieval")
    parser.add_argument(
        "--price-models",
        default=DEFAULT_PRICE_MODELS,
        help=f"provider:model list to project costs for (default: {DEFAULT_PRICE_MODELS})",
    )
    parser.add_argument(
        "--ingest",
        type=Path,
        default=None,
        metavar="PATH",
        help="ingest (or incrementally refresh) this corpus into the data dir first",
    )
    parser.add_argument(
        "--long-context-budget",
        type=int,
        default=None,
        metavar="TOKENS",
        help="override KB_LONG_CONTEXT_BUDGET for this run",
    )
    parser.add_argument(
        "--cache-ttl-minutes",
        type=float,
        default=5.0,
        help="provider prompt-cache lifetime assumed by the projection (default: 5)",
    )
    parser.add_argument(
        "--monthly-questions",
        type=int,
        default=100_000,
        help="monthly volume at which 'with cache' costs are quoted (default: 100000)",
    )
    parser.add_argument(
        "--no-threshold-sweep",
        action="store_true",
        help="skip re-reading at threshold 0 (the extractive reader's refusal trade-off)",
    )
    parser.add_argument(
        "--note", action="append", default=[], help="a paragraph for the report's setup section"
    )
    parser.add_argument(
        "--title", default=None, help="report title (default: the evaluation set's folder name)"
    )


def run(args: argparse.Namespace) -> int:
    from kb.embedding import set_embedding_threads, threads_for
    from kb.report import ReportOptions, run_report, write_report
    from kb.service import KnowledgeBase

    settings = load_settings(
        data_dir=args.data_dir,
        backend=args.backend,
        long_context_budget=args.long_context_budget,
    )
    set_embedding_threads(threads_for(settings, "questions"))
    modes = _names(args.modes)
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise InvalidRequestError(
            f"--modes: unknown {', '.join(unknown) or '(none)'}; use {', '.join(MODES)}"
        )
    options = ReportOptions(
        questions_path=args.questions,
        modes=modes,
        limit=args.limit,
        seed=args.seed,
        top_k=args.top_k,
        price_models=_names(args.price_models),
        cache_ttl_minutes=args.cache_ttl_minutes,
        monthly_questions=args.monthly_questions,
        threshold_sweep=not args.no_threshold_sweep,
        notes=tuple(args.note),
        title=args.title,
    )
    if args.ingest is not None:
        from ingest.pipeline import run_ingest

        summary = run_ingest(settings, args.ingest)
        print(
            f"ingested {args.ingest}: {summary.documents} documents, "
            f"{summary.corpus_tokens:,} tokens (version {summary.corpus_version})",
            file=sys.stderr,
        )
    with KnowledgeBase(settings) as base:
        result = run_report(base, options, progress=True)
    written = write_report(result, args.out)
    for mode, metrics in result.summary["modes"].items():
        if "accuracy" not in metrics:
            print(f"{mode:>12}: not run ({metrics.get('first_error', '')})")
            continue
        print(
            f"{mode:>12}: accuracy {metrics['accuracy']:.3f}, refusal accuracy "
            f"{_show(metrics['refusal_accuracy'])}, p50 {metrics['latency_s']['p50']:.3f}s"
        )
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def _show(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
