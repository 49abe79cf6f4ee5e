"""The `kb` command: ingest, ask, serve, report. Errors become one-line messages here."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kb.errors import KBError, UserError
from kb.settings import MODES, Settings, load_settings


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    return load_settings(data_dir=getattr(args, "data_dir", None), **extra)


def cmd_ingest(args: argparse.Namespace) -> int:
    from ingest.pipeline import run_ingest

    settings = _settings(args)
    progress = None
    bar = None
    if not args.json and sys.stderr.isatty():
        from tqdm import tqdm

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None or bar.total != total or done < bar.n:  # chunks, then sentences
                if bar is not None:
                    bar.close()
                bar = tqdm(total=total, unit="text", desc="embedding", file=sys.stderr)
            bar.update(done - bar.n)

    elif not args.json:

        def progress(done: int, total: int) -> None:
            print(f"embedded {done}/{total} texts", file=sys.stderr, flush=True)

    summary = run_ingest(settings, Path(args.path), progress=progress, wait_seconds=args.wait)
    if bar is not None:
        bar.close()
    if args.json:
        print(summary.model_dump_json(indent=2))
        return 0
    print(
        f"added {summary.added}, changed {summary.changed}, removed {summary.removed}, "
        f"unchanged {summary.unchanged}, skipped {len(summary.skipped)}"
    )
    for skipped in summary.skipped:
        print(f"  skipped {skipped.path}: {skipped.reason}")
    print(
        f"{summary.chunks_embedded} chunks embedded ({summary.chunks_reused} reused, "
        f"{summary.chunks_deleted} deleted) in {summary.seconds:.1f}s"
    )
    print(
        f"corpus {summary.corpus_version}: {summary.documents} documents, {summary.chunks} "
        f"chunks, {summary.corpus_tokens:,} tokens (data dir {settings.data_dir})"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kb",
        description="A knowledge service that answers from your documents, choosing "
        "per question between a cached long-context prompt and cited retrieval. "
        "Settings come from KB_* environment variables (see README).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help, description=help)
        cmd.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            help="index folder (default: KB_DATA_DIR or .kb-data)",
        )
        cmd.set_defaults(func=func)
        return cmd

    ingest = add(
        "ingest",
        cmd_ingest,
        "Index a folder or file (.md .txt .rst .html .pdf .jsonl); "
        "only what changed is re-embedded.",
    )
    ingest.add_argument("path", help="folder or file to index")
    ingest.add_argument("--json", action="store_true", help="print only a JSON summary")
    ingest.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another ingest on the same data dir (default: fail at once)",
    )

    ask = add("ask", cmd_ask, "Answer a question from the ingested corpus, with citations.")
    ask.add_argument("question")
    ask.add_argument("--mode", choices=MODES, default=None, help="default: KB_DEFAULT_MODE (auto)")
    ask.add_argument("--top-k", type=int, default=None, help="passages for retrieval")
    ask.add_argument("--backend", default=None, help="provider:model (default: KB_BACKEND)")
    ask.add_argument("--json", action="store_true", help="print one JSON object")

    from api import cli_report, cli_serve

    serve = add("serve", cli_serve.run, cli_serve.HELP)
    cli_serve.add_arguments(serve)
    report = add("report", cli_report.run, cli_report.HELP)
    cli_report.add_arguments(report)
    return parser


def cmd_ask(args: argparse.Namespace) -> int:
    from kb.service import KnowledgeBase

    settings = _settings(args, backend=args.backend)
    with KnowledgeBase(settings) as base:
        answer = base.ask(args.question, mode=args.mode, top_k=args.top_k)
    if args.json:
        print(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
        return 0
    print(answer.answer)
    print()
    for citation in answer.citations:
        print(
            f"[{citation.number}] {citation.title} ({citation.source}, chars "
            f"{citation.start}-{citation.end})"
        )
    route = answer.route
    fallback = ", fallback" if route.fallback else ""
    print(f"\nroute: {route.path} (mode {route.mode}{fallback}): {route.reason}")
    usage = answer.usage
    cost = "unknown" if answer.cost_usd is None else f"${answer.cost_usd:.6f}"
    print(
        f"tokens: {usage.input_tokens} in, {usage.cache_read_tokens} cache read, "
        f"{usage.cache_write_tokens} cache write, {usage.output_tokens} out; cost {cost}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"kb: {exc.message}", file=sys.stderr)
        return 2
    except KBError as exc:
        print(f"kb: {exc.kind}: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `kb ingest --json | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
