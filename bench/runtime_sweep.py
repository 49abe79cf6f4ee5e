"""The embedding runtimes side by side (issue 18, item 2): torch in fp32 and in bf16,
fp32 ONNX, int8 ONNX.

    .venv/bin/python bench/runtime_sweep.py [--runtimes torch,torch-bf16,onnx,onnx-int8]
        [--sets handbook,...] [--work DIR] [--chunks 512] [--units 1024] [--rounds 1]

Per runtime and dev set: all-gold recall@5 / @20 of the default retrieval and of
vectors alone (each set's questions as `bench/retrieval_bench.py` takes them), and the
extractive reader's accuracy on the long-context and the retrieval path (the questions
of `bench/reader_bench.py accuracy`; hotpotqa-low-overlap: its 40 hotpotqa-100
questions). Each runtime ingests each corpus into an index of its own under
WORK/<runtime>/<corpus> (the runtime is part of the config key), reused by later runs.

Then embedding throughput, side by side in this one process: the chunk texts and
sentence-unit texts a hotpotqa-100 ingest embeds (the first --chunks and --units of
them, recorded from the pipeline without the model), in the pipeline's calls (256
chunks, 512 units, each sorted by length by the model), the runtimes taking turns call
by call, every core's threads as `kb ingest` sets them: texts/s, real and padded tokens/s,
each runtime's speed over torch's, and its vectors' cosine to torch's. The load average
is printed beside every figure; on a shared machine only the ratios in one run count.

Verdict per set and runtime, against torch: recall (default, @5 and @20) at most 0.5
point lower, reader accuracy (both paths) at most 1 point lower. Prints the tables and
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ingest_timing import TokenCount
from bench.reader_bench import SETS as READER_SETS
from bench.retrieval_bench import DEV_SETS as RETRIEVAL_SETS
from bench.runtime_tables import print_tables
from ingest import run_ingest
from kb import KnowledgeBase
from kb.core import EmbedBackend, EmbedPrecision, Settings, load_settings
from kb.report import EvalQuestion, load_questions, recall_at_k, sample_questions, score_answer
from kb.search import (
    DIMENSIONS,
    Embedder,
    available_cores,
    set_embedding_threads,
)

DATASETS = ROOT.parent / "shared" / "datasets"
CORPORA = {
    "handbook": ROOT / "corpora" / "handbook",
    "hotpotqa-100": DATASETS / "hotpotqa-100" / "corpus.jsonl",
    "squad-v2-dev": DATASETS / "squad-v2-dev" / "corpus.jsonl",
    "pydoc": ROOT / "corpora" / "pydoc" / "topics",
}
# runtime label: (KB_EMBED_BACKEND, KB_EMBED_PRECISION); the first is the reference
RUNTIMES: dict[str, tuple[EmbedBackend, EmbedPrecision]] = {
    "torch": ("torch", "fp32"),
    "torch-bf16": ("torch", "bf16"),
    "onnx": ("onnx", "fp32"),
    "onnx-int8": ("onnx-int8", "fp32"),
}
SQUAD_READER_LIMIT, SQUAD_READER_SEED = 200, 7  # reader_bench's defaults


@dataclass(frozen=True)
class DevSet:
    """One row of the table: a corpus, the questions recall is measured on (None: the
    retrieval bench does not use this set) and the questions the reader answers."""

    name: str
    corpus: str
    recall_questions: Callable[[], list[dict[str, Any]]] | None
    reader_questions: Callable[[], list[EvalQuestion]] | None


def _reader(name: str) -> Callable[[], list[EvalQuestion]]:
    def questions() -> list[EvalQuestion]:
        rows = load_questions(READER_SETS[name][1])
        if name == "squad-v2-dev":
            return sample_questions(rows, SQUAD_READER_LIMIT, SQUAD_READER_SEED)
        return rows

    return questions


def _low_overlap_reader() -> list[EvalQuestion]:
    ids = {row["qid"] for row in RETRIEVAL_SETS["hotpotqa-low-overlap"].questions()}
    return [q for q in _reader("hotpotqa-100")() if q.qid in ids]


DEV_SETS = {
    s.name: s
    for s in (
        DevSet("handbook", "handbook", RETRIEVAL_SETS["handbook"].questions, _reader("handbook")),
        DevSet("handbook-fresh", "handbook", None, _reader("handbook-fresh")),
        DevSet(
            "hotpotqa-100",
            "hotpotqa-100",
            RETRIEVAL_SETS["hotpotqa-100"].questions,
            _reader("hotpotqa-100"),
        ),
        DevSet(
            "hotpotqa-low-overlap",
            "hotpotqa-100",
            RETRIEVAL_SETS["hotpotqa-low-overlap"].questions,
            _low_overlap_reader,
        ),
        DevSet(
            "squad-v2-dev",
            "squad-v2-dev",
            RETRIEVAL_SETS["squad-v2-dev"].questions,
            _reader("squad-v2-dev"),
        ),
        DevSet("pydoc-dev", "pydoc", RETRIEVAL_SETS["pydoc"].questions, _reader("pydoc-dev")),
        DevSet("pydoc-fresh", "pydoc", None, _reader("pydoc-fresh")),
    )
}


def load() -> float:
    return round(os.getloadavg()[0], 1)


def settings_for(work: Path, runtime: str, corpus: str) -> Settings:
    # the reader bench's long-context budget: the squad snapshot (205k tokens) fits
    backend, precision = RUNTIMES[runtime]
    return load_settings(
        data_dir=work / runtime / corpus,
        embed_backend=backend,
        embed_precision=precision,
        long_context_budget=400_000,
    )


def embedder_for(runtime: str, batch_size: int) -> Embedder:
    backend, precision = RUNTIMES[runtime]
    return Embedder(batch_size, backend=backend, precision=precision)


# ---- accuracy: recall and the reader, per runtime and set -----------------------------


def ingest(work: Path, runtime: str, corpus: str, embedder: Embedder) -> dict[str, Any]:
    settings = settings_for(work, runtime, corpus)
    source = CORPORA[corpus]
    if corpus == "pydoc" and not source.exists():
        sys.exit("bench: run `.venv/bin/python corpora/pydoc/build_corpus.py` first")
    started, cpu = time.perf_counter(), time.process_time()
    summary = run_ingest(settings, source, embedder=embedder)
    figures = {
        "seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(time.process_time() - cpu, 1),
        "chunks_embedded": summary.chunks_embedded,
        "sentences_embedded": summary.sentences_embedded,
        "load": load(),
    }
    print(f"  ingest {runtime} {corpus}: {json.dumps(figures)}", flush=True)
    return figures


def recall(kb: KnowledgeBase, questions: list[dict[str, Any]]) -> dict[str, float]:
    """All-gold recall@5 / @20 of the default retrieval and of vectors alone, every
    ranking as deep as the service searches (retrieval_bench's depth)."""
    retriever = kb.retriever(kb.corpus())
    corpus = retriever.corpus
    depth = max(4 * kb.settings.top_k, 50)
    sums = dict.fromkeys(("default@5", "default@20", "vectors@5", "vectors@20"), 0.0)
    for q in questions:
        text, gold = q["question"], q["gold_doc_ids"]
        fused = [hit.chunk.doc_id for hit in retriever.search(text, 20, depth=depth)]
        vector = retriever.embedder.embed_one(text)
        rows = [row for row, _ in retriever.vector_search(vector, depth)]
        dense = [corpus.chunks[row].doc_id for row in rows[:20]]
        for k in (5, 20):
            sums[f"default@{k}"] += recall_at_k(fused, gold, k)[0]
            sums[f"vectors@{k}"] += recall_at_k(dense, gold, k)[0]
    return {key: round(100 * value / len(questions), 2) for key, value in sums.items()}


def reader_accuracy(kb: KnowledgeBase, questions: list[EvalQuestion]) -> dict[str, float]:
    out: dict[str, float] = {}
    for mode in ("long_context", "rag"):
        correct = 0
        for q in questions:
            a = kb.ask(q.question, mode=mode)
            cited = [c.doc_id for c in a.citations]
            correct += bool(score_answer(q, a.answer, a.refused, cited).correct)
        out[mode] = round(100 * correct / len(questions), 2)
    return out


def measure(
    work: Path, runtimes: Sequence[str], sets: Sequence[str], batch_size: int
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """({runtime: {set: figures}}, {runtime: {corpus: ingest figures}})."""
    results: dict[str, dict[str, Any]] = {}
    ingests: dict[str, dict[str, Any]] = {}
    for runtime in runtimes:
        embedder = embedder_for(runtime, batch_size)
        embedder.embed_one("load the model before the clock")
        results[runtime], ingests[runtime] = {}, {}
        for name in sets:
            dev = DEV_SETS[name]
            if dev.corpus not in ingests[runtime]:
                ingests[runtime][dev.corpus] = ingest(work, runtime, dev.corpus, embedder)
            settings = settings_for(work, runtime, dev.corpus)
            figures: dict[str, Any] = {}
            with KnowledgeBase(settings, embedder=embedder) as kb:
                if dev.recall_questions is not None:
                    questions = dev.recall_questions()
                    figures["recall_questions"] = len(questions)
                    figures["recall"] = recall(kb, questions)
                if dev.reader_questions is not None:
                    asked = dev.reader_questions()
                    figures["reader_questions"] = len(asked)
                    figures["reader"] = reader_accuracy(kb, asked)
            figures["load"] = load()
            results[runtime][name] = figures
            print(f"  {runtime} {name}: {json.dumps(figures)}", flush=True)
    return results, ingests


# ---- throughput: the runtimes taking turns on the same texts ---------------------------


class RecordingEmbedder(Embedder):
    """Records every call the pipeline makes, computing nothing (one unit vector for all)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.full((len(texts), DIMENSIONS), DIMENSIONS**-0.5, dtype=np.float32)


def ingest_calls(work: Path, chunks: int, units: int) -> dict[str, list[list[str]]]:
    """The embedding calls of a hotpotqa-100 ingest by kind (the pipeline embeds every
    chunk before any unit), cut to the first `chunks` chunk and `units` unit texts."""
    recorder = RecordingEmbedder()
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        settings = load_settings(data_dir=Path(scratch))
        summary = run_ingest(settings, CORPORA["hotpotqa-100"], embedder=recorder)
    out: dict[str, list[list[str]]] = {"chunks": [], "units": []}
    seen = 0
    for texts in recorder.calls:
        kind = "chunks" if seen < summary.chunks_embedded else "units"
        seen += len(texts)
        room = (chunks if kind == "chunks" else units) - sum(map(len, out[kind]))
        if room > 0:
            out[kind].append(texts[:room])
    return out


def throughput(
    runtimes: Sequence[str],
    calls: dict[str, list[list[str]]],
    batch_size: int,
    rounds: int,
) -> dict[str, dict[str, Any]]:
    """{kind: {runtime: figures}}: each call embedded by every runtime in turn (the
    order rotating call by call), so all of them see the same load."""
    embedders = {rt: embedder_for(rt, batch_size) for rt in runtimes}
    for embedder in embedders.values():
        embedder.embed(["load the model before the clock"])
    counts = {rt: TokenCount(e.model) for rt, e in embedders.items()}
    out: dict[str, dict[str, Any]] = {}
    turn = 0
    for kind, kind_calls in calls.items():
        seconds = dict.fromkeys(runtimes, 0.0)
        tokens = {rt: [0, 0, 0] for rt in runtimes}  # texts, real, padded
        vectors: dict[str, list[np.ndarray]] = {rt: [] for rt in runtimes}
        loads = []
        for round_ in range(rounds):
            for texts in kind_calls:
                order = list(runtimes[turn % len(runtimes) :]) + list(
                    runtimes[: turn % len(runtimes)]
                )
                turn += 1
                for rt in order:
                    count = counts[rt]
                    before = (count.texts, count.real, count.padded)
                    started = time.perf_counter()
                    got = embedders[rt].embed(texts)
                    seconds[rt] += time.perf_counter() - started
                    after = (count.texts, count.real, count.padded)
                    tokens[rt] = [
                        t + a - b for t, a, b in zip(tokens[rt], after, before, strict=True)
                    ]
                    if round_ == 0:
                        vectors[rt].append(got)
                loads.append(load())
        reference = np.concatenate(vectors[runtimes[0]])
        out[kind] = {}
        for rt in runtimes:
            cosine = (np.concatenate(vectors[rt]) * reference).sum(axis=1)
            texts_n, real, padded = tokens[rt]
            out[kind][rt] = {
                "texts": texts_n,
                "seconds": round(seconds[rt], 2),
                "texts_per_s": round(texts_n / seconds[rt], 2),
                "real_tokens_per_s": round(real / seconds[rt], 1),
                "padded_tokens_per_s": round(padded / seconds[rt], 1),
                "speed_vs_first": round(seconds[runtimes[0]] / seconds[rt], 2),
                "cosine_mean": round(float(cosine.mean()), 4),
                "cosine_min": round(float(cosine.min()), 4),
                "load_min": min(loads),
                "load_max": max(loads),
            }
            print(f"  throughput {kind} {rt}: {json.dumps(out[kind][rt])}", flush=True)
    return out


# ---- the tables ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtimes", default=",".join(RUNTIMES))
    parser.add_argument("--sets", default=",".join(DEV_SETS))
    parser.add_argument(
        "--work", type=Path, default=Path(tempfile.gettempdir()) / "kb-runtime-sweep"
    )
    parser.add_argument("--chunks", type=int, default=512, help="chunk texts timed")
    parser.add_argument("--units", type=int, default=1024, help="sentence-unit texts timed")
    parser.add_argument("--rounds", type=int, default=1, help="times each text is timed")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    runtimes = [rt for rt in RUNTIMES if rt in args.runtimes.split(",")]
    if len(runtimes) != len(args.runtimes.split(",")):
        parser.error(f"--runtimes: choose from {', '.join(RUNTIMES)}")
    sets = args.sets.split(",")
    set_embedding_threads(available_cores())  # as `kb ingest` does
    batch_size = load_settings().embed_batch_size
    print(f"runtime sweep: {', '.join(runtimes)}; sets {', '.join(sets)}; "
          f"{available_cores()} cores, load {load()}", flush=True)  # fmt: skip
    results: dict[str, dict[str, Any]] = {rt: {} for rt in runtimes}
    ingests: dict[str, dict[str, Any]] = {rt: {} for rt in runtimes}
    if not args.skip_accuracy:
        results, ingests = measure(args.work, runtimes, sets, batch_size)
    speed: dict[str, dict[str, Any]] = {}
    if not args.skip_throughput:
        calls = ingest_calls(args.work, args.chunks, args.units)
        speed = throughput(runtimes, calls, batch_size, args.rounds)
    misses = print_tables(results, ingests, speed, runtimes)
    print(json.dumps({"runtime_sweep": {"accuracy": results, "ingest": ingests,
                                        "throughput": speed, "misses": misses,
                                        "load": load()}}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
