"""The offline extractive reader: answer accuracy per data set, and its cold start.

    python bench/reader_bench.py accuracy [--sets handbook,hotpotqa-100,squad-v2-dev]
    python bench/reader_bench.py timing

`accuracy` ingests each set (into --work, reused between runs) and asks every
question on the long-context and the retrieval path; it prints accuracy (reference
answer in the answer, or a refusal of an unanswerable question), false refusals and
answers that only restate the question (every content word of the answer is in the
question or the cited title). squad-v2-dev is a seeded sample (--squad-limit,
--seed) over all its paragraphs, with the long-context budget raised to fit it.

`timing` ingests hotpotqa-100 (into --work; nothing to do if `accuracy` did it: the
sentence index is built by the ingest, never by a question) and, in this process with
the model loaded, asks questions on a new KnowledgeBase, as a new process holds it:
with only its retrieval stack warmed, and after the warm-up `kb serve` runs. It prints
the first question against the tenth, and against itself on the warm reader, on both
paths: the whole question and the reader's share. Every figure is printed with the
load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest import run_ingest
from kb import KnowledgeBase
from kb.core import (
    Settings,
    content_words,
    load_settings,
)
from kb.report import (
    load_questions,
    sample_questions,
    score_answer,
)
from kb.search import shared_embedder

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
SETS = {
    "handbook": (ROOT / "corpora" / "handbook", ROOT / "corpora" / "handbook.questions.jsonl"),
    "handbook-fresh": (
        ROOT / "corpora" / "handbook",
        ROOT / "bench" / "dev" / "handbook-fresh.questions.jsonl",
    ),
    "pydoc-fresh": (
        ROOT / "corpora" / "pydoc" / "topics",
        ROOT / "bench" / "dev" / "pydoc-fresh.questions.jsonl",
    ),
    "pydoc-dev": (
        ROOT / "corpora" / "pydoc" / "topics",
        ROOT / "bench" / "dev" / "pydoc.questions.jsonl",
    ),
    "hotpotqa-100": (
        DATASETS / "hotpotqa-100" / "corpus.jsonl",
        DATASETS / "hotpotqa-100" / "questions.jsonl",
    ),
    "squad-v2-dev": (
        DATASETS / "squad-v2-dev" / "corpus.jsonl",
        DATASETS / "squad-v2-dev" / "questions.jsonl",
    ),
}


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def settings_for(work: Path, name: str) -> Settings:
    return load_settings(data_dir=work / name, long_context_budget=400_000)


def restating(answer: str, question: str, titles: list[str]) -> bool:
    words = content_words(answer)
    known = content_words(question).union(*(content_words(t) for t in titles))
    return bool(words) and words <= known


def accuracy(args: argparse.Namespace) -> None:
    for name in args.sets.split(","):
        corpus, questions_path = SETS[name]
        settings = settings_for(args.work, name)
        embedder = shared_embedder(settings)  # the configured runtime (KB_EMBED_BACKEND)
        run_ingest(settings, corpus, embedder=embedder)
        questions = load_questions(questions_path)
        if name == "squad-v2-dev":
            questions = sample_questions(questions, args.squad_limit, args.seed)
        with KnowledgeBase(settings, embedder=embedder) as kb:
            for mode in ("long_context", "rag"):
                correct = false_refusals = echoes = 0
                answerable = sum(not q.is_impossible for q in questions)
                for q in questions:
                    a = kb.ask(q.question, mode=mode)
                    cited = [c.doc_id for c in a.citations]
                    score = score_answer(q, a.answer, a.refused, cited)
                    correct += bool(score.correct)  # None only for a retrieval-only question
                    false_refusals += a.refused and not q.is_impossible
                    text = " ".join(c.text for c in a.citations)
                    titles = [c.title for c in a.citations]
                    echoes += not a.refused and restating(text, q.question, titles)
                    if args.verbose and not score.correct:
                        print(f"  x {q.qid} {q.question!r} -> {a.answer[:160]!r} ref={q.answers}")
                print(
                    f"{name:13s} {mode:12s} accuracy {correct / len(questions):6.1%} "
                    f"({correct}/{len(questions)})  false refusals {false_refusals}/{answerable}"
                    f"  restating answers {echoes}  [{load()}]",
                    flush=True,
                )


def timed(kb: KnowledgeBase, question: str, mode: str) -> tuple[float, float]:
    """(seconds of the whole question, seconds inside the backend)."""
    started = time.perf_counter()
    answer = kb.ask(question, mode=mode)
    total = time.perf_counter() - started
    return total, answer.timings.get("backend_s", answer.timings.get("generate_s", total))


def fresh_kb(settings: Settings, *, server_warm_up: bool) -> KnowledgeBase:
    """A new KnowledgeBase, as a new process holds it: with its retrieval stack warmed
    only, or after the warm-up `kb serve` runs at start and after a re-index."""
    kb = KnowledgeBase(settings, embedder=shared_embedder(settings))
    if server_warm_up:
        kb.warm_up()
    else:
        kb.retriever(kb.corpus()).search("warm up", settings.top_k)
    return kb


def timing(args: argparse.Namespace) -> None:
    corpus, questions_path = SETS[args.timing_set]
    questions = [q.question for q in load_questions(questions_path)][:21]
    settings = settings_for(args.work, args.timing_set)
    embedder = shared_embedder(settings)
    embedder.embed_one("load the model before the clock")
    started = time.perf_counter()
    summary = run_ingest(settings, corpus, embedder=embedder)
    print(
        f"ingest of {args.timing_set} into {settings.data_dir}: "
        f"{time.perf_counter() - started:.1f} s, {summary.chunks} chunks, "
        f"{summary.chunks_embedded} embedded (0: the version and its sentence index were "
        f"already built by an earlier ingest; no question builds them) [{load()}]"
    )
    for mode in ("rag", "long_context"):
        for how in ("retrieval warmed", "server warm-up"):
            kb = fresh_kb(settings, server_warm_up=how == "server warm-up")
            runs = [timed(kb, q, mode) for q in questions[:10]]
            warm = [timed(kb, questions[0], mode) for _ in range(5)]
            kb.close()
            report(mode, how, runs, warm)


def report(
    mode: str, how: str, runs: list[tuple[float, float]], warm: list[tuple[float, float]]
) -> None:
    """First question against the tenth, and against itself on the warm reader: the
    whole question and the reader's share (the backend's time)."""
    for part, name in ((0, "question"), (1, "reader")):
        first, tenth = runs[0][part], runs[9][part]
        again = statistics.median(w[part] for w in warm)
        print(
            f"{mode:12s} {how:16s} {name:8s} first after the ingest {first * 1000:8.1f} ms, "
            f"tenth {tenth * 1000:8.1f} ms (first/tenth {first / tenth:5.2f}x); the first "
            f"again, warm {again * 1000:8.1f} ms (cold/warm {first / again:5.2f}x) [{load()}]",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["accuracy", "timing"])
    parser.add_argument("--sets", default="handbook,hotpotqa-100,squad-v2-dev")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "reader-bench")
    parser.add_argument("--timing-set", default="hotpotqa-100", choices=sorted(SETS))
    parser.add_argument("--squad-limit", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    accuracy(args) if args.what == "accuracy" else timing(args)


if __name__ == "__main__":
    main()
