"""The `kb` command: ingest, ask, chat, serve, mcp, report, questions. Errors become
one-line messages here."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb import IngestSummary, ServiceError, __version__
from kb.core import DEFAULT_KB, MODES, KBError, Settings, UserError, load_settings

if TYPE_CHECKING:
    from kb.search import Purpose


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    return load_settings(data_dir=getattr(args, "data_dir", None), **extra)


def _bound_threads(settings: Settings, purpose: Purpose) -> None:
    from kb.search import set_embedding_threads, threads_for

    set_embedding_threads(threads_for(settings, purpose))


def cmd_ingest(args: argparse.Namespace) -> int:
    from ingest import IngestProgress, run_ingest

    settings = _settings(args)
    _bound_threads(settings, "ingest")
    if settings.kb_name != DEFAULT_KB:  # issue 19: a named knowledge base remembers its source
        from kb import record_source

        record_source(settings, Path(args.path))
    progress = None if args.json else IngestProgress(sys.stderr)
    try:
        summary = run_ingest(settings, Path(args.path), progress=progress, wait_seconds=args.wait)
    finally:
        if progress is not None:
            progress.close()
    if args.json:
        print(_summary_json(summary, full=args.full, indent=None if args.watch else 2))
    else:
        _print_summary(summary, settings)
    if args.watch:
        return _watch(args, settings)
    return 0


ID_LISTS = {"added_ids", "changed_ids", "removed_ids"}


def _summary_json(summary: IngestSummary, *, full: bool, indent: int | None) -> str:
    """The summary as JSON; the id lists (megabytes on a large corpus) only with --full."""
    return summary.model_dump_json(indent=indent, exclude=None if full else ID_LISTS)


def _print_summary(summary: IngestSummary, settings: Settings) -> None:
    from ingest import name_some

    counts = []
    for kind, count, ids in (
        ("added", summary.added, summary.added_ids),
        ("changed", summary.changed, summary.changed_ids),
        ("removed", summary.removed, summary.removed_ids),
    ):
        counts.append(f"{kind} {count}" + (f" ({name_some(ids)})" if ids else ""))
    print(f"{', '.join(counts)}, unchanged {summary.unchanged}, skipped {len(summary.skipped)}")
    for skipped in summary.skipped:
        print(f"  skipped {skipped.path}: {skipped.reason}")
    for repair in summary.repaired:
        print(f"  repaired: {repair}")
    print(
        f"{summary.chunks_embedded} chunks embedded ({summary.chunks_reused} reused, "
        f"{summary.chunks_deleted} deleted) in {summary.seconds:.1f}s"
    )
    if summary.sentences_pooled or summary.sentences_embedded or summary.sentences_reused:
        print(
            f"reader units: {summary.sentences_pooled} pooled from the chunks' passes, "
            f"{summary.sentences_embedded} embedded alone, {summary.sentences_reused} reused"
        )
    print(
        f"corpus {summary.corpus_version}: {summary.documents} documents, {summary.chunks} "
        f"chunks, {summary.corpus_tokens:,} tokens (data dir {settings.data_dir})"
    )
    if summary.text_tokens:
        markup = summary.corpus_tokens / summary.text_tokens - 1
        print(f"long-context markup: {markup:.1%} of the text's {summary.text_tokens:,} tokens")


def _watch(args: argparse.Namespace, settings: Settings) -> int:
    from ingest import Reindex, describe, watch_corpus

    print(f"watching {args.path} for changes (Ctrl-C stops)", file=sys.stderr, flush=True)

    def report(reindex: Reindex) -> None:
        if args.json and reindex.summary is not None:
            print(_summary_json(reindex.summary, full=args.full, indent=None), flush=True)
        else:
            print(describe(reindex), flush=True)

    watch_corpus(settings, Path(args.path), report, debounce_s=args.debounce)  # until Ctrl-C
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kb",
        description="A knowledge service that answers from your documents, choosing "
        "per question between a cached long-context prompt and cited retrieval. "
        "Settings come from KB_* environment variables (see docs/configuration.md).",
    )
    parser.add_argument("--version", action="version", version=f"kb {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from api import cli_check, cli_kbs, cli_questions, cli_report, cli_serve

    _add_ingest_arguments(_command(sub, "ingest", cmd_ingest, INGEST_HELP))
    _add_question_arguments(_command(sub, "ask", cmd_ask, ASK_HELP)).add_argument("question")
    _add_question_arguments(_command(sub, "chat", cmd_chat, CHAT_HELP))
    cli_check.add_arguments(_command(sub, "check", cli_check.run, cli_check.HELP))
    cli_serve.add_arguments(_command(sub, "serve", cli_serve.run, cli_serve.HELP, kb=False))
    mcp = _command(sub, "mcp", cmd_mcp, MCP_HELP)
    mcp.add_argument("--backend", default=None, help="provider:model (default: KB_BACKEND)")
    cli_report.add_arguments(_command(sub, "report", cli_report.run, cli_report.HELP))
    cli_questions.add_arguments(_command(sub, "questions", cli_questions.run, cli_questions.HELP))
    # ---- knowledge bases and scoped keys ----
    kbs = _command(sub, "kbs", cli_kbs.run_kbs, cli_kbs.KBS_HELP, kb=False)
    cli_kbs.add_kbs_arguments(kbs)
    keys = _command(sub, "keys", cli_kbs.run_keys, cli_kbs.KEYS_HELP, kb=False)
    cli_kbs.add_keys_arguments(keys)
    return parser


INGEST_HELP = (
    "Index a folder or file (.md .txt .rst .html .pdf .docx .jsonl); "
    "only what changed is re-embedded."
)
ASK_HELP = (
    "Answer a question from the ingested corpus, with citations. With KB_URL set, "
    "the running `kb serve` there answers (in a fraction of a second; it says so); "
    "otherwise this process loads the model and answers."
)
CHAT_HELP = (
    "A session of questions read from standard input, one a line, with the model "
    "loaded once (or the service at KB_URL asked). Follow-ups keep the conversation; "
    "/new starts a new one, /quit ends."
)


def _command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    func: Callable[[argparse.Namespace], int],
    help: str,
    *,
    kb: bool = True,
) -> argparse.ArgumentParser:
    """A subcommand that runs `func`, with the `--data-dir` every command takes (and
    `--kb NAME`, the knowledge base it works on, where `kb`)."""
    cmd = sub.add_parser(name, help=help, description=help)
    cmd.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="index folder (default: KB_DATA_DIR or .kb-data)",
    )
    if kb:
        cmd.add_argument(
            "--kb",
            default=None,
            metavar="NAME",
            help="the knowledge base (default: KB_KNOWLEDGE_BASE, else the default one, "
            "DATA_DIR itself); a named one lives in DATA_DIR/kbs/NAME",
        )
    cmd.set_defaults(func=func)
    return cmd


def _add_ingest_arguments(ingest: argparse.ArgumentParser) -> None:
    ingest.add_argument("path", help="folder or file to index")
    ingest.add_argument(
        "--json",
        action="store_true",
        help="print only a JSON summary (counts; the id lists with --full)",
    )
    ingest.add_argument(
        "--full", action="store_true", help="with --json: list every added/changed/removed id"
    )
    ingest.add_argument(
        "--watch",
        action="store_true",
        help="after indexing, keep watching PATH and re-index when files change "
        "(debounced, one at a time; a line per re-index saying what changed)",
    )
    ingest.add_argument(
        "--debounce",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="with --watch: quiet time after the last change before re-indexing (default 1)",
    )
    ingest.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another ingest on the same data dir (default: fail at once)",
    )


def _add_question_arguments(cmd: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """What `kb ask` and `kb chat` share."""
    cmd.add_argument("--mode", choices=MODES, default=None, help="default: KB_DEFAULT_MODE (auto)")
    cmd.add_argument("--top-k", type=int, default=None, help="most chunks for retrieval")
    cmd.add_argument(
        "--backend", default=None, help="provider:model (default: KB_BACKEND); answers here"
    )
    cmd.add_argument(
        "--local", action="store_true", help="answer in this process even if KB_URL is set"
    )
    cmd.add_argument("--json", action="store_true", help="print JSON (one object an answer)")
    return cmd


MCP_HELP = (
    "Serve the knowledge base to MCP clients (agents, IDE assistants) over stdio: tools "
    "ask, search and corpus_status, and the documents as resources. `kb serve` also "
    "serves MCP over streamable HTTP at /mcp."
)


def cmd_mcp(args: argparse.Namespace) -> int:
    from api.mcp_server import run

    return run(args)


def _asker(args: argparse.Namespace) -> Any:
    from api.cli_ask import Asker

    settings = _settings(args, backend=args.backend)
    _bound_threads(settings, "questions")
    # A command-line backend or data dir means "here", not the running service.
    local = args.local or bool(args.backend) or args.data_dir is not None
    return Asker(settings, mode=args.mode, top_k=args.top_k, local=local)


def cmd_ask(args: argparse.Namespace) -> int:
    from api.cli_ask import run_ask

    return run_ask(_asker(args), args.question, as_json=args.json)


def cmd_chat(args: argparse.Namespace) -> int:
    from api.cli_ask import run_chat

    return run_chat(_asker(args), sys.stdin, as_json=args.json)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # plain `kb`: what it can do
        parser.print_help()
        return 0
    chosen_before = os.environ.get("KB_KNOWLEDGE_BASE")
    try:
        _select_knowledge_base(args)
        return int(args.func(args))
    except UserError as exc:
        print(f"kb: {exc.message}", file=sys.stderr)
        return 2
    except ServiceError as exc:
        print(f"kb: {exc.kind}: {exc.message}", file=sys.stderr)
        return 2 if 400 <= exc.http_status < 500 else 1
    except KBError as exc:
        print(f"kb: {exc.kind}: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `kb ingest --json | head`
        sys.stderr.close()
        return 0
    finally:  # `main` called in-process (tests, library use) leaves the environment as it was
        _restore_env("KB_KNOWLEDGE_BASE", chosen_before)


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _select_knowledge_base(args: argparse.Namespace) -> None:
    """`--kb NAME`: every command below builds its settings from KB_* at this edge, so
    the choice is made once here, for all of them (and the processes they start)."""
    from kb import check_name

    if getattr(args, "kb", None):
        os.environ["KB_KNOWLEDGE_BASE"] = check_name(args.kb)


def entry() -> None:
    """The `kb` command: `main`, then a quick exit. What a command writes is durable
    when it returns (version folders by rename, Chroma's log in SQLite, output
    flushed here), and the interpreter's teardown of torch and the loaded model took
    1.4-2 s of every `kb ingest` and `kb ask --local`."""
    code = main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # a reader that went away (`kb ... | head`)
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
