"""`kb questions`: write an evaluation set from the ingested corpus itself (and the
review sheet a person checks before `kb report` runs it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kb import KnowledgeBase
from kb.core import load_settings
from kb.report import Shares, check_count, generate_questions, write_generated

if TYPE_CHECKING:
    from kb import KnowledgeBase

HELP = (
    "Write an evaluation set from the ingested corpus: with a generative --backend, "
    "questions with short reference answers (some needing two documents, some "
    "unanswerable); offline, retrieval-only known-item queries. Writes questions.jsonl "
    "and review.md to --out."
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
    add_share_arguments(parser)


def add_share_arguments(parser: argparse.ArgumentParser) -> None:
    """The shares `kb questions` and `kb report --generate` share."""
    parser.add_argument(
        "--two-document-share",
        type=float,
        default=0.2,
        help="share of generated questions that need two documents (generative only; 0.2)",
    )
    parser.add_argument(
        "--unanswerable-share",
        type=float,
        default=0.1,
        help="share of generated questions the corpus cannot answer (generative only; 0.1)",
    )


def generate_into(
    base: KnowledgeBase, args: argparse.Namespace, count: int, out_dir: Path
) -> tuple[Path, str]:
    """Generate `count` questions from the base's corpus into `out_dir` with its
    backend; returns the questions file and a sentence for the report saying how they
    were made."""
    shares = Shares(args.two_document_share, args.unanswerable_share)
    generated = generate_questions(base.corpus(), count, args.seed, base.backend, shares)
    questions, review = write_generated(generated, out_dir)
    kind = (
        "retrieval-only known-item queries (a section heading, or a sentence's most "
        "discriminative words), scored on retrieval recall and evidence coverage only"
        if generated.retrieval_only
        else "questions with reference answers, checked by the filters"
    )
    print(
        f"wrote {len(generated.questions)} questions ({len(generated.dropped)} dropped by the "
        f"filters) to {questions} and the review sheet {review}",
        file=sys.stderr,
    )
    note = (
        f"The evaluation set was generated from the corpus itself by {generated.generator} "
        f"(seed {generated.seed}, {len(generated.questions)} questions): {kind}. "
        "Its review sheet is questions/review.md."
    )
    return questions, note


def run(args: argparse.Namespace) -> int:
    check_count(args.count)
    Shares(args.two_document_share, args.unanswerable_share)  # bad shares fail first
    settings = load_settings(data_dir=args.data_dir, backend=args.backend)
    with KnowledgeBase(settings) as base:
        generate_into(base, args, args.count, args.out)
    return 0
