"""Fusion functions against each other and against their parts, per dev set.

    .venv/bin/python bench/fusion_sweep.py [--sets a,b] [--data DIR] [--weights 0.5,0.7]

For every dev set of bench/retrieval_bench.py (hotpotqa-low-overlap included) it prints
all-gold recall@5 / @20 of BM25 alone, vectors alone, the default retrieval with its
reciprocal-rank fusion (equal weights, k=60), and the same retrieval (adaptive second
hop included) with a convex combination of min-max normalised scores (Bruch et al.
2023) at each vector weight; then, per fusion, its WORST margin over the sets against
the best single ranker, which is how a default is chosen (never by the mean).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import retrieval_bench as rb
from kb.report import recall_at_k
from kb.search import Fusion, reciprocal_rank_fusion, shared_embedder

Rankings = list[list[tuple[int, float]]]


def convex(weight: float) -> Callable[[Rankings], list[tuple[int, float]]]:
    """Rankings alternate vector, BM25 (first round, then the second hop's): each one's
    scores min-max normalised over its list, vector rankings weigh `weight` in all."""

    def fuse(rankings: Rankings) -> list[tuple[int, float]]:
        hops = max(1, len(rankings) // 2)
        fused: dict[int, float] = {}
        for number, ranking in enumerate(rankings):
            if not ranking:
                continue
            share = (weight if number % 2 == 0 else 1.0 - weight) / hops
            scores = [score for _, score in ranking]
            low, span = min(scores), max(scores) - min(scores)
            for row, score in ranking:
                value = (score - low) / span if span > 0 else 1.0
                fused[row] = fused.get(row, 0.0) + share * value
        return sorted(fused.items(), key=lambda item: (-item[1], item[0]))

    return fuse


def _recall(ranked: Callable[[str], list[str]], questions: list[dict[str, Any]]) -> list[float]:
    at = [0.0, 0.0]
    for q in questions:
        docs = ranked(q["question"])
        for n, k in enumerate((5, 20)):
            at[n] += recall_at_k(docs, q["gold_doc_ids"], k)[0]
    return [round(a / len(questions), 3) for a in at]


def measure(name: str, data: Path, weights: list[float]) -> dict[str, list[float]]:
    dev = rb.DEV_SETS[name]
    settings, _, retriever = rb._open(dev, data)
    questions = dev.questions()
    depth = max(4 * settings.top_k, 50)
    rows = {
        single: _recall(
            partial(rb._ranked, retriever, variant=single, k=20, depth=depth), questions
        )
        for single in ("BM25 alone", "vectors alone")
    }
    fusions: dict[str, Fusion] = {"RRF (default)": reciprocal_rank_fusion} | {
        f"CC {w}": convex(w) for w in weights
    }
    for label, fuse in fusions.items():
        retriever.fuse = fuse
        rows[label] = _recall(
            lambda q: [h.chunk.doc_id for h in retriever.search(q, 20, depth=depth)],
            questions,
        )
    retriever.fuse = reciprocal_rank_fusion
    print(f"  {name}: {len(questions)} questions {json.dumps(rows)} (load "
          f"{os.getloadavg()[0]:.1f})", flush=True)  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(rb.DEV_SETS))
    parser.add_argument("--weights", default="0.5,0.6,0.7,0.8")
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "kb-retrieval-bench"
    )
    args = parser.parse_args()
    weights = [float(w) for w in args.weights.split(",")]
    shared_embedder().embed_one("warm up")
    results = {name: measure(name, args.data, weights) for name in args.sets.split(",")}
    fusions = [k for k in next(iter(results.values())) if not k.endswith("alone")]
    print("\n| set | BM25 alone | vectors alone | " + " | ".join(fusions) + " |")
    print("|---|---|---|" + "---|" * len(fusions))
    for name, rows in results.items():
        cells = [f"{rows[k][0]:.3f} / {rows[k][1]:.3f}" for k in ["BM25 alone", "vectors alone"]]
        cells += [f"{rows[k][0]:.3f} / {rows[k][1]:.3f}" for k in fusions]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nWorst margin over the sets against the best single ranker (@5 / @20, points):")
    for fusion in fusions:
        worst = [
            min(100 * (r[fusion][n] - max(r["BM25 alone"][n], r["vectors alone"][n]))
                for r in results.values())
            for n in (0, 1)
        ]  # fmt: skip
        print(f"  {fusion:<14} {worst[0]:+.1f} / {worst[1]:+.1f}")
    print(json.dumps({"fusion_sweep": results}))


if __name__ == "__main__":
    main()
