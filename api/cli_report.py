"""`kb report`: compare long context against retrieval on an evaluation set."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from api import cli_questions
from ingest import run_ingest
from kb import KnowledgeBase
from kb.core import InvalidRequestError, load_settings
from kb.report import (
    DEFAULT_CACHE_TTL_MINUTES,
    DEFAULT_MODES,
    DEFAULT_MONTHLY_QUESTIONS,
    DEFAULT_PRICE_MODELS,
    ReportOptions,
    record_for_router,
    run_report,
    write_report,
)
from kb.search import set_embedding_threads, threads_for

if TYPE_CHECKING:
    from kb.report import ReportResult

HELP = "Run an evaluation set through each mode and write a comparison report."


def _names(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--questions",
        type=Path,
        default=None,
        metavar="FILE",
        help="evaluation set, one JSON object a line: qid, question, answers, "
        "gold_doc_ids, is_impossible (the format of ../shared/datasets/*/questions.jsonl); "
        "a question with gold_doc_ids and no answers is retrieval-only; "
        "or --generate N",
    )
    parser.add_argument(
        "--generate",
        type=int,
        default=None,
        metavar="N",
        help="no question file: first write N questions from the corpus (as `kb questions` "
        "does, with --backend, --seed, --max-requests and the shares, which apply only "
        "here) into OUT/questions/, with a review sheet",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="report folder")
    parser.add_argument(
        "--limit", type=int, default=None, help="a random sample of this many questions (seeded)"
    )
    parser.add_argument(
        "--modes",
        default=",".join(DEFAULT_MODES),
        help=f"comma-separated modes to run (default: {','.join(DEFAULT_MODES)})",
    )
    parser.add_argument("--backend", default=None, help="provider:model (default: KB_BACKEND)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --limit sample")
    parser.add_argument(
        "--grouped-modes",
        action="store_true",
        help="ask every question in one mode before the next (for a local server with one "
        "prompt-cache slot, which interleaved modes would evict); default: interleaved",
    )
    parser.add_argument(
        "--judge",
        default=None,
        metavar="PROVIDER:MODEL",
        help="backend that judges generative answers (default: --backend itself when it "
        "writes text; offline answers are scored by containment, exact match and F1)",
    )
    parser.add_argument("--top-k", type=int, default=None, help="most chunks for retrieval")
    _add_pricing_arguments(parser)
    _add_report_text_arguments(parser)
    cli_questions.add_generation_arguments(
        parser.add_argument_group(
            "question writing (with --generate N only; refused with --questions FILE)"
        )
    )


def _add_pricing_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--price-models",
        default=",".join(DEFAULT_PRICE_MODELS),
        help="provider:model list to project costs for (a priced --backend is added); "
        f"default: {','.join(DEFAULT_PRICE_MODELS)}",
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
        default=DEFAULT_CACHE_TTL_MINUTES,
        help="provider prompt-cache lifetime assumed by the projection "
        f"(default: {DEFAULT_CACHE_TTL_MINUTES:g})",
    )
    parser.add_argument(
        "--monthly-questions",
        type=int,
        default=DEFAULT_MONTHLY_QUESTIONS,
        help="monthly volume the recommendation and the 'with cache' costs assume "
        f"(default: {DEFAULT_MONTHLY_QUESTIONS})",
    )


def _add_report_text_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-threshold-sweep",
        action="store_true",
        help="skip re-reading at threshold 0 (the extractive reader's refusal trade-off)",
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="record the recommendation in the data dir: `auto` then follows it for this "
        "backend until the corpus drifts past KB_RECOMMENDATION_MAX_DRIFT",
    )
    parser.add_argument(
        "--note", action="append", default=[], help="a paragraph for the report's setup section"
    )
    parser.add_argument(
        "--title",
        default=None,
        help="report title (default: the evaluation set's name: NAME for NAME.questions.jsonl, "
        "else the folder of questions.jsonl)",
    )


def run(args: argparse.Namespace) -> int:
    options = _options(args)  # bad input fails here, before any model loads
    settings = load_settings(
        data_dir=args.data_dir,
        backend=args.backend,
        long_context_budget=args.long_context_budget,
    )
    set_embedding_threads(threads_for(settings, "questions"))
    if args.ingest is not None:
        summary = run_ingest(settings, args.ingest)
        print(
            f"ingested {args.ingest}: {summary.documents} documents, "
            f"{summary.corpus_tokens:,} tokens (version {summary.corpus_version})",
            file=sys.stderr,
        )
    with KnowledgeBase(settings) as base:
        if args.generate is not None:
            path, note = cli_questions.generate_into(
                base, args, args.generate, args.out / "questions"
            )
            corpus_name = Path(base.corpus().manifest.corpus_root).name
            options = replace(
                options,
                questions_path=path,
                notes=(*options.notes, note),
                title=options.title or f"{corpus_name} (generated questions)",
            )
        result = run_report(base, options, progress=True)
        written = write_report(result, args.out)
        _print_outcome(result)
        if args.record:
            recorded = record_for_router(
                settings.data_dir,
                base.corpus().manifest,
                result.summary,
                f"'{result.summary.title}' ({args.out})",
            )
            print(
                f"recorded: auto follows {recorded.path} for {recorded.backend} on this corpus "
                f"while under {settings.recommendation_max_drift:.0%} of its documents and "
                "tokens change (KB_RECOMMENDATION_MAX_DRIFT)"
            )
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def _options(args: argparse.Namespace) -> ReportOptions:
    """The run's options, checked: one source of questions, valid modes and numbers."""
    if (args.questions is None) == (args.generate is None):
        raise InvalidRequestError("Give either --questions FILE or --generate N (one of them).")
    if args.generate is not None:
        cli_questions.check_generation_arguments(args, args.generate)
    _reject_generation_options(args)
    return ReportOptions(
        questions_path=args.questions or args.out / "questions" / "questions.jsonl",
        modes=_names(args.modes),
        limit=args.limit,
        seed=args.seed,
        top_k=args.top_k,
        price_models=_names(args.price_models),
        cache_ttl_minutes=args.cache_ttl_minutes,
        monthly_questions=args.monthly_questions,
        threshold_sweep=not args.no_threshold_sweep,
        notes=tuple(args.note),
        title=args.title,
        judge=args.judge,
        grouped_modes=args.grouped_modes,
    )


def _reject_generation_options(args: argparse.Namespace) -> None:
    """With --questions FILE nothing is generated: an option that shapes generation
    would be ignored, so it is refused instead."""
    given = cli_questions.generation_options_given(args) if args.questions else []
    if given:
        raise InvalidRequestError(
            f"{' and '.join(given)} {'applies' if len(given) == 1 else 'apply'} only to "
            "--generate N (shaping the questions written from the corpus); with "
            "--questions FILE the evaluation set is read as it stands. Drop "
            f"{'it' if len(given) == 1 else 'them'}, or use --generate N instead of "
            "--questions."
        )


def _print_outcome(result: ReportResult) -> None:
    for mode, m in result.summary.modes.items():
        if not m.ran:
            print(f"{mode:>12}: not run ({m.first_error})")
            continue
        print(
            f"{mode:>12}: accuracy {_show(m.accuracy)}, evidence coverage "
            f"{_show(m.evidence_coverage)}, refusal accuracy {_show(m.refusal_accuracy)}, "
            f"p50 {_show(m.latency_s.p50 if m.latency_s else None)}s"
        )
    advice = result.summary.recommendation
    print(advice.text.replace("**", ""))
    if advice.warning:
        print(f"warning: {advice.warning}")


def _show(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
