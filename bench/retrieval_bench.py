"""Retrieval benchmark: every retrieval variant against the default, per dev set.

    .venv/bin/python bench/retrieval_bench.py [--data DIR] [--sets a,b] [--budgets 2000,4000]

For each dev set it prints all-gold recall@5 and @20 (every gold document is among
the documents of the top-k chunks; every ranking as deep as the service searches with
the default `top_k`, 4 x 60 chunks) for one hop (vectors + BM25, RRF), two hops,
BM25 alone, vectors alone and the default (`KB_RETRIEVAL_HOPS=auto`); the share of
questions whose gold documents are all inside the retrieval context at each token
budget (`KB_RAG_CONTEXT_TOKENS`); and the retrieval p50 latency of the old default
(always two hops, 8 passages) and of the new default (adaptive hops, passages at the
token budget), timed alternately question by question in one run.

Dev sets (paths relative to the repository root):
  hotpotqa-100  ../shared/datasets/hotpotqa-100, all 100 questions (multi-hop)
  squad-v2-dev  ../shared/datasets/squad-v2-dev, 400 answerable questions (seed 0)
  handbook      corpora/handbook with corpora/handbook.questions.jsonl (answerable)
  pydoc         the installed Python's reference topics (corpora/pydoc/build_corpus.py)
                with bench/dev/pydoc.questions.jsonl, written for this project
  hotpotqa-low-overlap  the 40 hotpotqa-100 questions sharing the fewest words with
                their gold paragraphs (bench/dev/low_overlap.py), whole corpus

Each corpus is ingested once into DATA/<set> (default: a folder under the system
temp dir) and reused by later runs: re-ingesting an unchanged corpus embeds nothing.
Prints the tables, the load average next to every timing, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingest import run_ingest
from kb.core import Settings, count_tokens, load_settings
from kb.report import recall_at_k
from kb.search import (
    Retriever,
    build_passages,
    passages_from_hits,
    reciprocal_rank_fusion,
    shared_embedder,
)
from kb.store import (
    CorpusVersion,
    VectorStore,
)

DATASETS = ROOT / ".." / "shared" / "datasets"
SQUAD_SAMPLE = 400
BUDGETS = (2_000, 4_000, 6_000, 8_000, 12_000, 16_000)
OLD_TOP_K = 8  # the fixed passage count before the token budget
VARIANTS = ("one hop", "two hops", "BM25 alone", "vectors alone", "default")


@dataclass(frozen=True)
class DevSet:
    name: str
    corpus: Callable[[Path], Path]  # where the corpus is (built into the folder given)
    questions: Callable[[], list[dict[str, Any]]]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _answerable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("gold_doc_ids") and not r.get("is_impossible")]


def _squad_questions() -> list[dict[str, Any]]:
    rows = _answerable(_jsonl(DATASETS / "squad-v2-dev" / "questions.jsonl"))
    return random.Random(0).sample(rows, min(SQUAD_SAMPLE, len(rows)))


def _low_overlap_questions() -> list[dict[str, Any]]:
    chosen = json.loads((ROOT / "bench" / "dev" / "hotpotqa-low-overlap.qids.json").read_text())
    ids = {row["qid"] for row in chosen["questions"]}
    rows = _answerable(_jsonl(DATASETS / "hotpotqa-100" / "questions.jsonl"))
    return [r for r in rows if r["qid"] in ids]


def _pydoc_corpus(folder: Path) -> Path:
    out = folder / "topics"
    if not out.exists():
        script = ROOT / "corpora" / "pydoc" / "build_corpus.py"
        subprocess.run([sys.executable, str(script), "--out", str(out)], check=True)
    return out


DEV_SETS = {
    "hotpotqa-100": DevSet(
        "hotpotqa-100",
        lambda _: DATASETS / "hotpotqa-100" / "corpus.jsonl",
        lambda: _answerable(_jsonl(DATASETS / "hotpotqa-100" / "questions.jsonl")),
    ),
    "squad-v2-dev": DevSet(
        "squad-v2-dev", lambda _: DATASETS / "squad-v2-dev" / "corpus.jsonl", _squad_questions
    ),
    "handbook": DevSet(
        "handbook",
        lambda _: ROOT / "corpora" / "handbook",
        lambda: _answerable(_jsonl(ROOT / "corpora" / "handbook.questions.jsonl")),
    ),
    "pydoc": DevSet(
        "pydoc",
        _pydoc_corpus,
        lambda: _answerable(_jsonl(ROOT / "bench" / "dev" / "pydoc.questions.jsonl")),
    ),
    "hotpotqa-low-overlap": DevSet(
        "hotpotqa-low-overlap",
        lambda _: DATASETS / "hotpotqa-100" / "corpus.jsonl",
        _low_overlap_questions,
    ),
}


def _load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def _open(dev: DevSet, data: Path) -> tuple[Settings, CorpusVersion, Retriever]:
    folder = data / dev.name
    settings = load_settings(data_dir=folder / "index")
    source = dev.corpus(folder)
    started = time.perf_counter()
    summary = run_ingest(settings, source)
    print(
        f"  {dev.name}: {summary.documents} documents, {summary.chunks} chunks, "
        f"{summary.chunks_embedded} embedded now, {time.perf_counter() - started:.1f} s "
        f"({_load()})",
        flush=True,
    )
    corpus = CorpusVersion.open(settings.data_dir)
    retriever = Retriever(
        corpus, VectorStore(settings), shared_embedder(settings), hops=settings.retrieval_hops
    )
    return settings, corpus, retriever


def _ranked(retriever: Retriever, question: str, variant: str, k: int, depth: int) -> list[str]:
    """Document ids of the top-k chunks of one variant, every ranking `depth` deep."""
    corpus = retriever.corpus
    if variant == "BM25 alone":
        rows = [row for row, _ in corpus.lexical.search(question, depth)]
    elif variant == "vectors alone":
        vector = retriever.embedder.embed_one(question)
        rows = [row for row, _ in retriever.vector_search(vector, depth)]
    else:
        hops = {"one hop": "1", "two hops": "2", "default": None}[variant]
        hits = retriever.search(question, k, depth=depth, hops=hops)
        return [hit.chunk.doc_id for hit in hits]
    return [corpus.chunks[row].doc_id for row in rows[:k]]


def _measure(dev: DevSet, data: Path, budgets: tuple[int, ...]) -> dict[str, Any]:
    settings, corpus, retriever = _open(dev, data)
    questions = dev.questions()
    recall = {v: {5: 0.0, 20: 0.0} for v in VARIANTS}
    at_budget = dict.fromkeys(budgets, 0.0)
    budget_tokens: dict[int, list[int]] = {b: [] for b in budgets}
    second_hops = 0
    old_s: list[float] = []
    new_s: list[float] = []
    depth = max(4 * settings.top_k, 50)  # what the service searches with
    for number, q in enumerate(questions):
        text, gold = q["question"], q["gold_doc_ids"]
        for variant in VARIANTS:
            ranked = _ranked(retriever, text, variant, 20, depth)
            for k in (5, 20):
                recall[variant][k] += recall_at_k(ranked, gold, k)[0]
        second_hops += _took_second_hop(retriever, text)
        hits = retriever.search(text, settings.top_k)
        for budget in budgets:
            passages = build_passages(corpus, hits, budget, settings.top_k)
            docs = [p.doc_id for p in passages]
            at_budget[budget] += recall_at_k(docs, gold, len(docs))[0]
            budget_tokens[budget].append(sum(retriever_tokens(p.text) for p in passages))
        pairs = [(partial(_old_default, retriever, text), old_s)]
        pairs.append((partial(_new_default, retriever, settings, text), new_s))
        for call, into in pairs if number % 2 else reversed(pairs):  # alternate which is first
            into.append(_time(call))
    n = len(questions)
    return {
        "set": dev.name,
        "questions": n,
        "recall": {v: {str(k): round(r / n, 3) for k, r in ks.items()} for v, ks in recall.items()},
        "second_hop_share": round(second_hops / n, 3),
        "at_budget": {str(b): round(v / n, 3) for b, v in at_budget.items()},
        "budget_tokens_p50": {str(b): int(statistics.median(t)) for b, t in budget_tokens.items()},
        "p50_ms_old": round(1000 * statistics.median(old_s), 1),
        "p50_ms_new": round(1000 * statistics.median(new_s), 1),
        "load": round(os.getloadavg()[0], 1),
    }


def retriever_tokens(text: str) -> int:
    return count_tokens(text)


def _took_second_hop(retriever: Retriever, question: str) -> bool:
    if retriever.hops != "auto":
        return retriever.hops == "2"
    vector = retriever.embedder.embed_one(question)
    rankings = [
        retriever.vector_search(vector, 50),
        retriever.corpus.lexical.search(question, 50),
    ]
    fused = reciprocal_rank_fusion(rankings)
    return bool(fused) and retriever.first_round(question, rankings, fused).needs_second_hop()


def _time(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _old_default(retriever: Retriever, question: str) -> object:
    """Retrieval as it was: always two hops, a fixed 8 passages."""
    return passages_from_hits(retriever.search(question, OLD_TOP_K, hops="2"))


def _new_default(retriever: Retriever, settings: Settings, question: str) -> object:
    hits = retriever.search(question, settings.top_k)
    return build_passages(retriever.corpus, hits, settings.rag_context_tokens, settings.top_k)


def _print(results: list[dict[str, Any]], budget: int) -> None:
    print("\nAll-gold recall@5 / @20 (every gold document among the top-k chunks' documents)\n")
    print("| set | questions | " + " | ".join(VARIANTS) + " | default - best other (@5 / @20) |")
    print("|---|---|" + "---|" * (len(VARIANTS) + 1))
    for r in results:
        cells = [f"{r['recall'][v]['5']:.3f} / {r['recall'][v]['20']:.3f}" for v in VARIANTS]
        margins = []
        for k in ("5", "20"):
            best = max(r["recall"][v][k] for v in VARIANTS if v != "default")
            margins.append(f"{100 * (r['recall']['default'][k] - best):+.1f}")
        print(
            f"| {r['set']} | {r['questions']} | "
            + " | ".join(cells)
            + f" | {' / '.join(margins)} pt |"
        )
    budgets = list(results[0]["at_budget"])
    print("\nQuestions with every gold document in the retrieval context, by token budget")
    print("(median tokens of passage text in brackets)\n")
    print("| set | " + " | ".join(f"{int(b):,}" for b in budgets) + " |")
    print("|---|" + "---|" * len(budgets))
    for r in results:
        cells = [f"{r['at_budget'][b]:.3f} ({r['budget_tokens_p50'][b]:,})" for b in budgets]
        print(f"| {r['set']} | " + " | ".join(cells) + " |")
    print(f"\nRetrieval p50, old default (two hops, {OLD_TOP_K} passages) vs new default")
    print(f"(adaptive hops, passages within {budget:,} tokens), alternating per question\n")
    print("| set | old p50 | new p50 | new / old | second hops taken | load |")
    print("|---|---|---|---|---|---|")
    for r in results:
        ratio = r["p50_ms_new"] / r["p50_ms_old"] if r["p50_ms_old"] else float("nan")
        print(
            f"| {r['set']} | {r['p50_ms_old']} ms | {r['p50_ms_new']} ms | {ratio:.2f}x | "
            f"{100 * r['second_hop_share']:.0f}% | {r['load']} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(tempfile.gettempdir()) / "kb-retrieval-bench",
        help="folder of the per-set indexes, kept between runs",
    )
    parser.add_argument("--sets", default=",".join(DEV_SETS), help="comma-separated dev sets")
    parser.add_argument("--budgets", default=",".join(str(b) for b in BUDGETS))
    args = parser.parse_args(argv)
    budgets = tuple(int(b) for b in args.budgets.split(","))
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    default_budget = load_settings().rag_context_tokens
    if default_budget not in budgets:
        budgets = tuple(sorted({*budgets, default_budget}))
    shared_embedder(load_settings()).embed_one("warm up")
    print(f"Ingesting (or reusing) the dev corpora under {args.data} ({_load()})")
    results = []
    for name in args.sets.split(","):
        results.append(_measure(DEV_SETS[name], args.data, budgets))
        print(json.dumps(results[-1]), flush=True)
    _print(results, default_budget)
    print(json.dumps({"retrieval_bench": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
