"""`kb questions`: write an evaluation set from the ingested corpus itself (and the
review sheet a person checks before `kb report` runs it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kb import KnowledgeBase
from kb.core import load_settings
from kb.report import (
    MAX_REQUESTS,
    REQUESTS_PER_QUESTION,
    Shares,
    check_count,
    check_max_requests,
    generate_questions,
    write_generated,
)

if TYPE_CHECKING:
    from kb import KnowledgeBase

HELP = (
    "Write an evaluation set from the ingested corpus: with a generative --backend, "
    "questions with short reference answers (some needing two documents, some "
    "unanswerable), in at most --max-requests requests; offline, retrieval-only "
    "known-item queries. Writes questions.jsonl and review.md to --out, and says how many "
    "requests were made and why it stopped."
)
DEFAULT_COUNT = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--count",
        type=int,
        default=DEFAULT_COUNT,
        help=f"questions to keep (default {DEFAULT_COUNT})",
    )
    parser.add_argument(
        "--backend", default=None, help="provider:model that writes them (default: KB_BACKEND)"
    )
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    add_generation_arguments(parser)


GENERATION_OPTIONS = ("--two-document-share", "--unanswerable-share", "--max-requests")


def add_generation_arguments(parser: argparse._ActionsContainer) -> None:
    """The options `kb questions` and `kb report --generate` share (on a parser, or on
    one of its argument groups): the shares of each kind of question and the request
    cap. Each defaults to None (its default applies in `shares` and
    `check_max_requests`) so a command can tell that it was given."""
    parser.add_argument(
        "--two-document-share",
        type=float,
        default=None,
        help="share of generated questions that need two documents (generative only; "
        f"default {Shares().two_document:g})",
    )
    parser.add_argument(
        "--unanswerable-share",
        type=float,
        default=None,
        help="share of generated questions the corpus cannot answer (generative only; "
        f"default {Shares().unanswerable:g})",
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=None,
        metavar="N",
        help="most requests to the generative model; writing stops there, with fewer "
        "questions if too many replies were dropped, and says so (default: "
        f"{REQUESTS_PER_QUESTION}x the question count; from the count to {MAX_REQUESTS:,})",
    )


def generation_options_given(args: argparse.Namespace) -> list[str]:
    """The generation options given on the command line (GENERATION_OPTIONS order)."""
    return [
        option
        for option in GENERATION_OPTIONS
        if getattr(args, option.removeprefix("--").replace("-", "_")) is not None
    ]


def shares(args: argparse.Namespace) -> Shares:
    """The shares of each kind of question: the options given, else Shares' defaults."""
    given = {"two_document": args.two_document_share, "unanswerable": args.unanswerable_share}
    return Shares(**{name: value for name, value in given.items() if value is not None})


def check_generation_arguments(args: argparse.Namespace, count: int) -> None:
    """Raise InvalidRequestError for a bad count, share or request cap, before any
    model loads."""
    check_count(count)
    shares(args)
    check_max_requests(args.max_requests, count)


def generate_into(
    base: KnowledgeBase, args: argparse.Namespace, count: int, out_dir: Path
) -> tuple[Path, str]:
    """Generate `count` questions from the base's corpus into `out_dir` with its
    backend; returns the questions file and a sentence for the report saying how they
    were made."""
    generated = generate_questions(
        base.corpus(), count, args.seed, base.backend, shares(args), args.max_requests
    )
    questions, review = write_generated(generated, out_dir)
    kind = (
        "retrieval-only known-item queries (a section heading, or a sentence's most "
        "discriminative words), scored on retrieval recall and evidence coverage only"
        if generated.retrieval_only
        else "questions with reference answers, checked by the filters"
    )
    print(
        f"wrote {len(generated.questions)} of {count} questions ({len(generated.dropped)} "
        f"dropped by the filters; {generated.progress()}) to {questions} and the review "
        f"sheet {review}",
        file=sys.stderr,
    )
    note = (
        f"The evaluation set was generated from the corpus itself by {generated.generator} "
        f"(seed {generated.seed}, {len(generated.questions)} of {count} questions; "
        f"{generated.progress()}): {kind}. Its review sheet is questions/review.md."
    )
    return questions, note


def run(args: argparse.Namespace) -> int:
    check_generation_arguments(args, args.count)  # bad input fails before any model loads
    settings = load_settings(data_dir=args.data_dir, backend=args.backend)
    with KnowledgeBase(settings) as base:
        generate_into(base, args, args.count, args.out)
    return 0
