"""Long context against retrieval with a real local model: SmolLM2-135M-Instruct
(8,192-token window) through llama.cpp (`KB_BACKEND=local`), on a slice of the
handbook it can hold.

Phases: pick the slice (documents in path order while their tokens fit the budget),
ingest it, have the local model write questions from it (`kb questions`' generator;
handbook questions about the slice fill up when the 135M model's replies are too
weak to keep enough), run the report with both forced paths grouped (the server's
one prompt-cache slot keeps the corpus prefix while no other prompt comes between),
the same model judging, and print: wall time, load, cached tokens per long-context
question, how often the two paths' answers differ, judge accuracy per path and its
agreement with containment. A 135M model's result does not transfer to a large one.

    .venv/bin/python -m bench.local_paths --out reports/local-smollm2-slice
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from ingest import run_ingest
from kb import KnowledgeBase
from kb.core import count_tokens, load_settings
from kb.report import (
    AnswerRow,
    ReportOptions,
    ReportResult,
    generate_questions,
    run_report,
    write_generated,
    write_report,
)

HANDBOOK = Path("corpora/handbook")
HANDBOOK_QUESTIONS = Path("corpora/handbook.questions.jsonl")
NOTE = (
    "A 135M-parameter local model answers, writes the questions and judges: its "
    "accuracy and its judge's verdicts do not transfer to a large model. With a key (or "
    "a bigger local model) the same command runs unchanged on the whole handbook."
)


def pick_slice(corpus: Path, budget: int, into: Path) -> list[str]:
    """Copy the corpus's text documents, in path order, while their tokens fit."""
    picked, used = [], 0
    for path in sorted(corpus.rglob("*")):
        if not path.is_file() or path.suffix not in (".md", ".txt", ".rst"):
            continue
        tokens = count_tokens(path.read_text("utf-8"))
        if used + tokens > budget:
            continue
        target = into / path.relative_to(corpus)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        picked.append(str(path.relative_to(corpus)))
        used += tokens
    return picked


def questions_for(base: KnowledgeBase, out: Path, count: int, seed: int) -> tuple[Path, str]:
    """The local model's generated questions; handbook questions on the slice fill up."""
    generated = generate_questions(base.corpus(), count, seed, base.backend)
    kept = len(generated.questions)
    if kept:
        path, _ = write_generated(generated, out / "questions")
    else:  # write_generated refuses an empty set: the handbook's questions are the set
        path = out / "questions" / "questions.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("", "utf-8")
    slice_docs = set(base.corpus().manifest.by_id())
    extra = []
    for line in HANDBOOK_QUESTIONS.read_text("utf-8").splitlines():
        record = json.loads(line)
        gold = record.get("gold_doc_ids") or []
        if gold and set(gold) <= slice_docs and record.get("answers"):
            extra.append(line)
    added = extra[: max(0, count - kept)]
    with open(path, "a", encoding="utf-8") as fh:
        fh.writelines(line + "\n" for line in added)
    note = (
        f"{kept} questions written by the local model ({len(generated.dropped)} dropped by the "
        f"filters), {len(added)} handbook questions on the slice added."
    )
    return path, note


def describe(result: ReportResult) -> list[str]:
    """The figures the issue asks for, one per line."""
    rows = [r for r in result.rows if isinstance(r, AnswerRow) and r.ok]
    lc = [r for r in rows if r.mode == "long_context"]
    cached = [r.usage.cache_read_tokens for r in lc]
    by_q = {(r.qid, r.mode): r.answer for r in rows}
    both = [q for q, m in by_q if m == "long_context" and (q, "rag") in by_q]
    differ = sum(by_q[(q, "long_context")] != by_q[(q, "rag")] for q in both)
    lines = [
        f"long-context cached tokens per question, in order: {cached}",
        f"answers that differ between the paths: {differ} of {len(both)}",
    ]
    judge = result.summary.judge
    if judge is not None:
        lines.append(
            f"judge {judge.judge}: accuracy {judge.accuracy}, faithfulness {judge.faithfulness},"
            f" agreement with containment {judge.agreement_with_contains} over {judge.judged}"
        )
    for mode, m in result.summary.modes_that_ran.items():
        lines.append(f"{mode}: accuracy {m.accuracy}, contains {m.contains}, f1 {m.f1}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget", type=int, default=3_000, help="slice tokens (cl100k)")
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started, load = time.perf_counter(), os.getloadavg()[0]
    # The slice sits under the working directory (removed after), so the report names
    # it by a relative path, not by a temporary folder of this machine.
    corpus = Path(".kb-data") / "handbook-slice"
    shutil.rmtree(corpus, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        picked = pick_slice(HANDBOOK, args.budget, corpus)
        settings = load_settings(data_dir=Path(tmp) / "data", backend="local")
        run_ingest(settings, corpus)
        with KnowledgeBase(settings) as base:
            path, how = questions_for(base, args.out, args.count, args.seed)
            options = ReportOptions(
                questions_path=path,
                modes=("long_context", "rag"),
                grouped_modes=True,
                notes=(f"Corpus: the handbook slice {', '.join(picked)}.", how, NOTE),
                title="handbook slice, SmolLM2-135M (local)",
            )
            result = run_report(base, options, progress=True)
    shutil.rmtree(corpus, ignore_errors=True)
    write_report(result, args.out)
    for line in describe(result):
        print(line)
    seconds = time.perf_counter() - started
    print(f"wall time {seconds:.0f} s; load {load:.1f} at start, {os.getloadavg()[0]:.1f} at end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
