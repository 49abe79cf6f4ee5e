"""Could an ingest skip the chunk encode? Each chunk's vector taken as the normalised mean
of its sentence units' vectors (which the extractive reader embeds anyway), against the
chunk's own vector, in the default retrieval and in vector search alone (issue 18).

    .venv/bin/python bench/mean_unit_vectors.py --work DIR [--runtime torch-bf16]
        [--sets handbook,hotpotqa-100,hotpotqa-low-overlap,squad-v2-dev,pydoc-dev]

Reads the indexes `bench/runtime_sweep.py --work DIR` built for `--runtime` (run it
first), and swaps the vector store's search and stored vectors for exact search over
the mean vectors; BM25 and fusion are untouched. Prints all-gold recall@5 / @20 per set,
both ways, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.runtime_sweep import DEV_SETS, embedder_for, recall, settings_for
from kb import KnowledgeBase
from kb.backends.extractive import ExtractiveBackend
from kb.search import DIMENSIONS

RECALL_SETS = ("handbook", "hotpotqa-100", "hotpotqa-low-overlap", "squad-v2-dev", "pydoc-dev")


def mean_vectors(kb: KnowledgeBase) -> tuple[list[str], np.ndarray]:
    """Chunk ids of the current version and, row for row, the normalised mean of the
    reader-index vectors of the units inside each chunk (zeros where none is)."""
    corpus = kb.corpus()
    index, _ = ExtractiveBackend(kb.settings, embedder=kb.embedder).index_for(corpus)
    ids = [chunk.chunk_id for chunk in corpus.chunks]
    out = np.zeros((len(ids), DIMENSIONS), dtype=np.float32)
    for row, chunk in enumerate(corpus.chunks):
        units = index.rows_within(chunk.doc_id, chunk.start, chunk.end)
        if len(units):
            mean = np.asarray(index.vectors[units], dtype=np.float32).mean(axis=0)
            out[row] = mean / np.linalg.norm(mean)
    return ids, out


def with_mean_vectors(kb: KnowledgeBase) -> None:
    """Point the retriever's vector store at the mean vectors (exact search)."""
    ids, vectors = mean_vectors(kb)
    by_id = dict(zip(ids, vectors, strict=True))
    store = kb.retriever(kb.corpus()).store

    def query(vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        similarities = vectors @ vector
        return [(ids[i], float(similarities[i])) for i in np.argsort(-similarities)[:n]]

    store.query = query  # type: ignore[method-assign]
    store.vector_of = by_id.get  # type: ignore[method-assign,assignment]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="runtime_sweep's --work")
    parser.add_argument("--runtime", default="torch-bf16")
    parser.add_argument("--sets", default=",".join(RECALL_SETS))
    args = parser.parse_args(argv)
    embedder = embedder_for(args.runtime, 16)
    results: dict[str, Any] = {}
    for name in args.sets.split(","):
        dev = DEV_SETS[name]
        if dev.recall_questions is None:
            parser.error(f"{name} has no recall questions")
        questions = dev.recall_questions()
        settings = settings_for(args.work, args.runtime, dev.corpus)
        with KnowledgeBase(settings, embedder=embedder) as kb:
            stored = recall(kb, questions)
            with_mean_vectors(kb)
            mean = recall(kb, questions)
        results[name] = {"questions": len(questions), "chunk vectors": stored, "mean": mean}
        print(f"{name} ({len(questions)}): chunk vectors {json.dumps(stored)}", flush=True)
        print(f"{' ' * len(name)}  mean of units  {json.dumps(mean)}", flush=True)
    print(json.dumps({"mean_unit_vectors": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
