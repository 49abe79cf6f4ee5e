"""The phases of bench/scale_bench.py, each run in a fresh process of that script
(`run_phase`), where it imports only what it measures: its peak RSS is its own."""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / ".." / "shared" / "datasets"
BENCH = Path(__file__).resolve().with_name("scale_bench.py")  # the entry point of every phase


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}/{fifteen:.1f}"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def phase_ingest(spec: dict[str, Any]) -> dict[str, Any]:
    """One whole `kb ingest --json` as the CLI runs it."""
    from api.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["ingest", spec["path"], "--json", "--data-dir", spec["data_dir"]])
    summary = json.loads(out.getvalue()) if code == 0 else {}
    return {"code": code, "summary": summary}


def phase_encode(spec: dict[str, Any]) -> dict[str, Any]:
    """The raw model on samples of the texts the ingest embedded (chunk texts, and the
    reader's sentence units), in the ingest's batch sizes: texts per second of each."""
    import random

    from ingest import chunk_embedding_text
    from kb.backends.extractive import EMBED_STEP, corpus_documents, unit_embedding_text
    from kb.core import load_settings, reading_units
    from kb.search import set_embedding_threads, shared_embedder, threads_for
    from kb.store import CorpusVersion

    settings = load_settings(data_dir=Path(spec["data_dir"]))
    set_embedding_threads(threads_for(settings, "ingest"))
    corpus = CorpusVersion.open(settings.data_dir)
    chunks = [chunk_embedding_text(c) for c in corpus.chunks]
    units = [
        unit_embedding_text(doc.title, unit, doc.text)
        for doc in corpus_documents(corpus)
        for unit in reading_units(doc.text)
    ]
    embedder = shared_embedder(settings)  # the embedder `kb ingest` gets
    embedder.embed(chunks[:16])
    result: dict[str, Any] = {}
    for kind, texts, step in (("chunks", chunks, 256), ("units", units, EMBED_STEP)):
        if spec["sample"] and len(texts) > spec["sample"]:
            texts = random.Random(7).sample(texts, spec["sample"])
        started = time.perf_counter()
        for begin in range(0, len(texts), step):
            embedder.embed(texts[begin : begin + step])
        seconds = time.perf_counter() - started
        result[kind] = {"texts": len(texts), "rate": len(texts) / seconds}
    return result


def phase_questions(spec: dict[str, Any]) -> dict[str, Any]:
    """Questions in one process that has warmed the committed version, as a server does
    at start and within a second of each commit (`ServiceState.follow_versions`)."""
    from kb import KnowledgeBase
    from kb.core import load_settings
    from kb.search import set_embedding_threads, threads_for

    settings = load_settings(data_dir=Path(spec["data_dir"]))
    set_embedding_threads(threads_for(settings, "questions"))
    questions = [row["question"] for row in read_jsonl(Path(spec["questions"]))]
    result: dict[str, Any] = {}
    with KnowledgeBase(settings) as base:
        base.warm_up()  # the model and the version's indexes, before the clock

        def timed(question: str, mode: str) -> float:
            started = time.perf_counter()
            base.ask(question, mode=mode)
            return time.perf_counter() - started

        if spec.get("first_ten"):
            first = [timed(q, "rag") for q in questions[-10:]]
            result["first"], result["tenth"] = first[0], first[-1]
        for mode in spec["modes"]:
            result[mode] = [timed(q, mode) for q in questions[: spec["n"]]]
    return result


def phase_compare(spec: dict[str, Any]) -> dict[str, Any]:
    """torch and ONNX Runtime in one process over the dev sets, batches alternating so
    that both see the same background load: encode speed, the largest vector
    difference, and dense recall@10 of the gold documents (top 10 chunks)."""
    import random

    import numpy as np

    from ingest import chunk_document, chunk_embedding_text
    from kb.core import Document, EmbedBackend, load_settings
    from kb.search import Embedder, set_embedding_threads, threads_for

    settings = load_settings()
    set_embedding_threads(threads_for(settings, "ingest"))
    backends: tuple[EmbedBackend, ...] = ("torch", "onnx")
    # fp32 torch: the ONNX export's arithmetic, so the vectors' difference is the runtime's
    embedders = {
        b: Embedder(settings.embed_batch_size, backend=b, precision="fp32") for b in backends
    }
    for embedder in embedders.values():
        embedder.embed(["warm-up"])
    out: dict[str, Any] = {}
    for name in spec["sets"]:
        folder = DATASETS / name
        chunks = []
        for row in read_jsonl(folder / "corpus.jsonl"):
            doc = Document(doc_id=row["doc_id"], title=row["title"], source=name, text=row["text"])
            chunks += chunk_document(
                doc, row["doc_id"], settings.chunk_tokens, settings.chunk_overlap
            )
        texts = [chunk_embedding_text(c) for c in chunks]
        rows = read_jsonl(folder / "questions.jsonl")
        rows = [r for r in rows if r.get("gold_doc_ids") and not r.get("is_impossible")]
        rows = random.Random(5).sample(rows, min(len(rows), spec["questions"]))
        seconds = dict.fromkeys(backends, 0.0)
        parts: dict[str, list[np.ndarray]] = {b: [] for b in backends}
        for step, begin in enumerate(range(0, len(texts), 128)):
            for backend in backends if step % 2 else backends[::-1]:
                started = time.perf_counter()
                parts[backend].append(embedders[backend].embed(texts[begin : begin + 128]))
                seconds[backend] += time.perf_counter() - started
        vectors = {b: np.concatenate(parts[b]) for b in backends}
        result: dict[str, Any] = {"chunks": len(texts), "questions": len(rows)}
        result["max_diff"] = float(np.abs(vectors["torch"] - vectors["onnx"]).max())
        for backend in backends:
            asked = embedders[backend].embed([r["question"] for r in rows])
            found = 0.0
            for row, vector in zip(rows, asked, strict=True):
                top = np.argsort(-(vectors[backend] @ vector))[:10]
                docs = {chunks[i].doc_id for i in top}
                found += len(docs & set(row["gold_doc_ids"])) / len(row["gold_doc_ids"])
            result[backend] = {
                "rate": len(texts) / seconds[backend],
                "recall": 100 * found / len(rows),
            }
        out[name] = result
    return out


PHASES = {
    "ingest": phase_ingest,
    "encode": phase_encode,
    "questions": phase_questions,
    "compare": phase_compare,
}


def run_phase(name: str, spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """Run a phase in a child process; its result, wall seconds, peak RSS and load."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(BENCH), "--phase", name, json.dumps(spec)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=ROOT,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(wall=wall, load=load())
    return result


def child_main(name: str, spec_json: str) -> None:
    result = PHASES[name](json.loads(spec_json))
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))
