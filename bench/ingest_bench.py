"""Ingest benchmark on hotpotqa-100: our incremental pipeline against a plain
llama-index `VectorStoreIndex` over Chroma with the same model.

    .venv/bin/python bench/ingest_bench.py [--corpus PATH] [--repeat N] [--keep DIR]
    .venv/bin/python bench/ingest_bench.py --markup
    .venv/bin/python bench/ingest_bench.py --corpus BIG --ingested DATA_DIR

The first form: full ingest against the baseline, then no change, one sentence
appended, the corpus renamed. `--markup`: the long-context markup overhead of the
dev sets. `--ingested`: the incremental figures (no change, one sentence appended,
renamed) on a large corpus next to hotpotqa-100 in one run, CPU seconds besides
embedding compared (an empty DATA_DIR is first filled with placeholder vectors).

Each phase runs in its own Python process, so that its peak memory (ru_maxrss) is
its own. In every phase the embedding model and the cl100k tokenizer are loaded
before the clock starts, for us and for the baseline alike; the clock then covers
the whole ingest: reading the corpus, chunking, embedding, writing to Chroma (and,
for us, the manifest, snapshot and BM25 index).

Prints a table with PASS/MISS per target and one JSON line; exits 0 either way.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Phases run as `python bench/ingest_bench.py`, whose path starts with bench/: put the
# checkout first, or `kb` and `ingest` would come from wherever the venv installed them.
sys.path.insert(0, str(ROOT))
DEFAULT_CORPUS = ROOT / ".." / "shared" / "datasets" / "hotpotqa-100" / "corpus.jsonl"
DEV_SETS = ["hotpotqa-100", "squad-v2-dev"]
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "ANONYMIZED_TELEMETRY": "False",
}

# Targets from issues 2 and 18: (name, key in the results, comparison, bound)
TARGETS = [
    ("ours / llama-index baseline time", "ratio_vs_baseline", "<=", 0.5),
    ("embedding-model share of ingest", "embed_share", ">=", 0.85),
    ("no-change re-ingest / full", "nochange_ratio", "<", 0.03),
    ("one-document change / full", "onedoc_ratio", "<", 0.05),
    ("one sentence appended: chunks embedded", "onedoc_chunks_embedded", "<=", 2),
    ("corpus renamed/moved: chunks embedded", "renamed_chunks_embedded", "<=", 0),
    ("long-context markup / text tokens", "markup_overhead", "<=", 0.05),
]


# ---- phases (each runs in a child process) ------------------------------------


def _busy_cpu_seconds() -> float:
    """CPU seconds all processes of the machine have used so far (Linux /proc/stat)."""
    stat = Path("/proc/stat")
    if not stat.exists():
        return float("nan")
    fields = [int(x) for x in stat.read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


class Clock:
    """Wall and CPU time of this process over a region, and how many cores the rest
    of the machine kept busy meanwhile (a benchmark on a shared machine says so)."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu, self.busy = (
            time.perf_counter(),
            time.process_time(),
            _busy_cpu_seconds(),
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        self.busy = _busy_cpu_seconds() - self.busy

    def figures(self) -> dict[str, float]:
        return {
            "seconds": self.wall,
            "cpu_seconds": self.cpu,
            "other_cores": max(0.0, (self.busy - self.cpu) / self.wall),
        }


def _peak_rss_mb() -> float:
    """This process's resident-set high-water mark (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TokenCount:
    """Texts and tokens a SentenceTransformer's forward passes saw: `padded` counts every
    position of every batch (what the model computes), `real` the texts' own tokens."""

    def __init__(self, model: Any) -> None:
        self.texts = self.padded = self.real = 0
        preprocess = model.preprocess

        def counted(*args: Any, **kwargs: Any) -> Any:
            features = preprocess(*args, **kwargs)
            mask = features["attention_mask"]
            self.texts += int(mask.shape[0])
            self.padded += int(mask.numel())
            self.real += int(mask.sum())
            return features

        model.preprocess = counted

    def figures(self, seconds: float) -> dict[str, float]:
        return {
            "texts_embedded": self.texts,
            "padded_tokens": self.padded,
            "real_tokens": self.real,
            "padded_tokens_per_second": self.padded / seconds if seconds else 0.0,
        }


class PhaseTimes:
    """When each ingest phase ended (the pipeline reports every phase's end), and how
    much of the model's time fell in each: the split of an ingest."""

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder
        self.ends: dict[str, tuple[float, float]] = {}
        self.started = time.perf_counter()

    def __call__(self, phase: str, done: int, total: int) -> None:
        if done == total:  # a phase's last report (`embed` also reports every batch)
            self.ends[phase] = (time.perf_counter(), self.embedder.seconds)

    def split(self) -> dict[str, float]:
        """Seconds of chunking, chunk vectors (the embed phase: with the pooled unit
        vectors), writes (version files, BM25), sentence vectors (units no chunk gave:
        the derive phase) and the rest (diff, commit, clean)."""
        marks = [("start", (self.started, 0.0))] + list(self.ends.items())
        out: dict[str, float] = {}
        for (_, (before, _)), (phase, (at, _)) in zip(marks, marks[1:], strict=False):
            out[phase] = out.get(phase, 0.0) + at - before
        names = {"chunk": "chunking", "embed": "chunk vectors", "write": "writes",
                 "derive": "sentence vectors"}  # fmt: skip
        split = {names[k]: round(v, 3) for k, v in out.items() if k in names}
        split["other"] = round(sum(v for k, v in out.items() if k not in names), 3)
        return split


def phase_ours(corpus: Path, data_dir: Path) -> dict[str, Any]:
    """One `run_ingest` of `corpus` into `data_dir`, with the model loaded beforehand and
    the embedding threads `kb ingest` sets."""
    from ingest import run_ingest
    from kb.core import encoding, load_settings
    from kb.search import Embedder, set_embedding_threads, threads_for

    settings = load_settings(data_dir=data_dir)
    set_embedding_threads(threads_for(settings, "ingest"))  # as api/cli.py's ingest does
    embedder = Embedder(settings.embed_batch_size, backend=settings.embed_backend)
    embedder.embed(["warm up the model"])
    encoding()
    embedder.texts_embedded, embedder.seconds = 0, 0.0
    tokens = TokenCount(embedder.model)
    embed_cpu = 0.0
    model_embed = embedder.embed

    def embed(texts: Sequence[str]) -> Any:
        nonlocal embed_cpu
        started = time.process_time()
        try:
            return model_embed(texts)
        finally:
            embed_cpu += time.process_time() - started

    embedder.embed = embed  # type: ignore[method-assign]
    times = PhaseTimes(embedder)
    with Clock() as clock:
        summary = run_ingest(settings, corpus, embedder=embedder, progress=times)
    return {
        **clock.figures(),
        **tokens.figures(clock.wall),
        "split": times.split(),
        "sentences_embedded": summary.sentences_embedded,
        "sentences_pooled": summary.sentences_pooled,
        "threads": threads_for(settings, "ingest"),
        "summary_seconds": summary.seconds,
        "embed_seconds": summary.embed_seconds,
        "embed_cpu_seconds": embed_cpu,
        "model_seconds": embedder.seconds,
        "documents": summary.documents,
        "chunks": summary.chunks,
        "chunks_embedded": summary.chunks_embedded,
        "added": summary.added,
        "changed": summary.changed,
        "unchanged": summary.unchanged,
        "corpus_tokens": summary.corpus_tokens,
        "text_tokens": summary.text_tokens,
        "corpus_version": summary.corpus_version,
        "peak_rss_mb": _peak_rss_mb(),
    }


def phase_baseline(corpus: Path, data_dir: Path) -> dict[str, Any]:
    """The same corpus through llama-index defaults: SentenceSplitter, HuggingFace
    embedding of the same model, ChromaVectorStore on a PersistentClient."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.utils import get_tokenizer
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from kb.search import model_path

    embed_model = HuggingFaceEmbedding(model_name=model_path(), device="cpu")
    embed_model.get_text_embedding("warm up the model")
    get_tokenizer()
    tokens = TokenCount(embed_model._model)
    with Clock() as clock:  # the Chroma client is opened inside, as `run_ingest` does
        documents = [
            Document(id_=record["doc_id"], text=record["text"], metadata={"title": record["title"]})
            for record in map(json.loads, corpus.read_text("utf-8").splitlines())
        ]
        client = chromadb.PersistentClient(
            path=str(data_dir / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
        )
        collection = client.get_or_create_collection("baseline", metadata={"hnsw:space": "cosine"})
        storage = StorageContext.from_defaults(vector_store=ChromaVectorStore(collection))
        VectorStoreIndex.from_documents(documents, storage_context=storage, embed_model=embed_model)
    return {
        **clock.figures(),
        **tokens.figures(clock.wall),
        "documents": len(documents),
        "chunks": collection.count(),
        "peak_rss_mb": _peak_rss_mb(),
    }


def phase_prefill(corpus: Path, data_dir: Path) -> dict[str, Any]:
    """Ingest `corpus` with PLACEHOLDER vectors (hash-seeded random unit vectors, not
    the model), so that the incremental figures (`--ingested`) can be measured on a
    large corpus on a busy machine without an hour of embedding first. Everything else
    (chunks, snapshot, BM25, Chroma writes) is the real pipeline; the measured runs
    that follow use the real model. Never use such a data dir to answer questions."""
    import numpy as np

    from ingest import run_ingest
    from kb.core import load_settings
    from kb.search import DIMENSIONS, Embedder

    class PlaceholderEmbedder(Embedder):
        def embed(self, texts: Sequence[str]) -> np.ndarray:
            rows = []
            for text in texts:
                seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
                row = np.random.default_rng(seed).standard_normal(DIMENSIONS)
                rows.append(row / np.linalg.norm(row))
            self.texts_embedded += len(texts)
            return np.asarray(rows, dtype=np.float32).reshape(len(texts), DIMENSIONS)

    with Clock() as clock:
        summary = run_ingest(
            load_settings(data_dir=data_dir), corpus, embedder=PlaceholderEmbedder()
        )
    return {**clock.figures(), "chunks": summary.chunks, "corpus_tokens": summary.corpus_tokens}


PHASES = {"ours": phase_ours, "baseline": phase_baseline, "prefill": phase_prefill}


# ---- orchestration -----------------------------------------------------------------


SHORT_PARAGRAPH_TOKENS = 100
SETTINGS: dict[str, str] = {}  # `--set KB_NAME=VALUE`: our phases' settings


def run_phase(name: str, corpus: Path, data_dir: Path) -> dict[str, Any]:
    """Run one phase in a fresh Python process; its last stdout line is its JSON result."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")} | OFFLINE_ENV
    env |= SETTINGS
    done = subprocess.run(
        [sys.executable, __file__, "--phase", name, "--corpus", str(corpus),
         "--data-dir", str(data_dir)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"phase {name} failed with exit code {done.returncode}")
    result = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    print(
        f"[bench]   {name}: {result['seconds']:.3f} s wall, {result['cpu_seconds']:.1f} s CPU, "
        f"other processes kept {result['other_cores']:.2f} cores busy",
        file=sys.stderr,
        flush=True,
    )
    return result


def change_one_record(corpus: Path) -> str:
    """Append a sentence to the middle document of a JSONL file or of a folder (its
    middle file); return what was changed."""
    added = " This sentence was added by the benchmark's one-document change."
    if corpus.is_dir():
        files = sorted(p for p in corpus.rglob("*") if p.is_file())
        target = files[len(files) // 2]
        target.write_text(target.read_text("utf-8").rstrip() + added + "\n", "utf-8")
        return str(target.relative_to(corpus))
    lines = corpus.read_text("utf-8").splitlines()
    middle = len(lines) // 2
    record = json.loads(lines[middle])
    record["text"] += added
    lines[middle] = json.dumps(record, ensure_ascii=False)
    corpus.write_text("\n".join(lines) + "\n", "utf-8")
    return str(record["doc_id"])


def move_corpus(corpus: Path, work: Path) -> Path:
    """The corpus under another name and folder: a JSONL file keeps its records' ids,
    a folder's files move one level down (every document gets a new id)."""
    moved = work / "moved"
    moved.mkdir(exist_ok=True)
    if corpus.is_dir():
        target = moved / "corpus-renamed"
        target.mkdir()
        corpus.rename(target / "docs")
        return target
    target = moved / f"renamed-{corpus.name}"
    corpus.rename(target)
    return target


def incremental(corpus: Path, data_dir: Path, work: Path) -> dict[str, Any]:
    """No change, one sentence appended, the corpus renamed: each a fresh process."""
    print("[bench] no-change re-ingest ...", file=sys.stderr, flush=True)
    nochange = run_phase("ours", corpus, data_dir)
    cli_nochange = cli_seconds(corpus, data_dir)
    changed_id = change_one_record(corpus)
    print(f"[bench] one sentence appended ({changed_id}) ...", file=sys.stderr, flush=True)
    onedoc = run_phase("ours", corpus, data_dir)
    moved = move_corpus(corpus, work)
    print(f"[bench] corpus renamed to {moved.name} ...", file=sys.stderr, flush=True)
    renamed = run_phase("ours", moved, data_dir)
    return {
        "nochange": nochange,
        "cli_nochange": cli_nochange,
        "onedoc": onedoc,
        "renamed": renamed,
        "onedoc_besides_embedding_seconds": round(onedoc["seconds"] - onedoc["embed_seconds"], 3),
        "renamed_chunks_embedded": renamed["chunks_embedded"],
        "renamed_seconds": round(renamed["seconds"], 3),
    }


def scale_figures(source: Path, data_dir: Path, work: Path) -> dict[str, Any]:
    """The incremental figures on a corpus already ingested into `data_dir` (a large
    one takes long to embed once): a copy of the corpus is edited, never `source`."""
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / source.name
    if source.is_dir():
        shutil.copytree(source, corpus)
    else:
        shutil.copyfile(source, corpus)
    if not (data_dir / "current.json").exists():
        print(f"[bench] prefilling {data_dir} (placeholder vectors) ...", file=sys.stderr)
        run_phase("prefill", corpus, data_dir)
    load_before = os.getloadavg()[0]
    steps = incremental(corpus, data_dir, work)
    onedoc = steps["onedoc"]
    return {
        "corpus": str(source.resolve()),
        "documents": onedoc["documents"],
        "chunks": onedoc["chunks"],
        "corpus_tokens": onedoc["corpus_tokens"],
        "text_tokens": onedoc["text_tokens"],
        "markup_overhead": round(onedoc["corpus_tokens"] / onedoc["text_tokens"] - 1, 4),
        "nochange_seconds": round(steps["nochange"]["seconds"], 4),
        "onedoc_seconds": round(onedoc["seconds"], 4),
        "onedoc_embed_seconds": onedoc["embed_seconds"],
        "onedoc_besides_embedding_seconds": steps["onedoc_besides_embedding_seconds"],
        "onedoc_besides_embedding_cpu_seconds": round(
            onedoc["cpu_seconds"] - onedoc["embed_cpu_seconds"], 3
        ),
        "onedoc_chunks_embedded": onedoc["chunks_embedded"],
        "renamed_chunks_embedded": steps["renamed_chunks_embedded"],
        "renamed_seconds": steps["renamed_seconds"],
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def short_paragraphs(source: Path, out: Path, tokens: int = SHORT_PARAGRAPH_TOKENS) -> Path:
    """A short-paragraph corpus: each record of `source` cut at sentence ends into
    paragraphs of about `tokens` cl100k tokens, each a document with the record's title
    (so an article's title repeats across its paragraphs), written to `out` (JSONL)."""
    from kb.core import count_tokens, sentence_spans

    lines = []
    for record in map(json.loads, source.read_text("utf-8").splitlines()):
        text, pieces, start, end = record["text"], [], None, 0
        for s, e in sentence_spans(text):
            start = s if start is None else start
            end = e
            if count_tokens(text[start:end]) >= tokens:
                pieces.append(text[start:end])
                start = None
        if start is not None:
            pieces.append(text[start:end])
        lines += [
            json.dumps({"doc_id": f"{record['doc_id']}#s{n}", "title": record["title"], "text": p})
            for n, p in enumerate(pieces)
        ]
    out.write_text("\n".join(lines) + "\n", "utf-8")
    return out


def markup_overhead(corpora: list[Path]) -> None:
    """The long-context snapshot's markup per dev set, as `kb ingest` builds it
    (kb/store/snapshot.py), without embedding anything: snapshot tokens / text tokens - 1."""
    from ingest import load_corpus
    from kb.core import count_tokens
    from kb.store import SnapshotEntry, body_tokens, build_snapshot

    for corpus in corpora:
        documents = sorted(load_corpus(corpus, 10**9).documents, key=lambda d: d.doc_id)
        snapshot = build_snapshot(
            [
                SnapshotEntry(d.doc_id, d.title, d.source, d.text, body_tokens(d.text))
                for d in documents
            ]
        )
        text = sum(count_tokens(d.text) for d in documents)
        overhead = snapshot.tokens / text - 1
        verdict = "PASS" if overhead <= 0.05 else "MISS"
        name = corpus.stem if corpus.stem != "corpus" else corpus.parent.name
        print(
            f"  {name:<22} {len(documents):>5} documents  {text:>9,} text tokens  "
            f"{snapshot.tokens:>9,} snapshot tokens  markup {overhead:.2%}  (<= 5%: {verdict})"
        )


def scale_comparison(large: Path, data_dir: Path, reference: Path, work: Path) -> None:
    """The incremental figures on a large ingested corpus next to a reference corpus
    (prefilled the same way), in one run; prints both and their difference."""
    rows = {
        "reference": scale_figures(reference, work / "reference-data", work / "reference"),
        "large": scale_figures(large, data_dir, work / "large"),
    }
    for name, row in rows.items():
        print(
            f"  {name:<9} {row['corpus_tokens']:>10,} tokens  markup {row['markup_overhead']:.2%}  "
            f"append: {row['onedoc_chunks_embedded']} embedded, "
            f"{row['onedoc_besides_embedding_seconds']:.2f} s wall / "
            f"{row['onedoc_besides_embedding_cpu_seconds']:.2f} s CPU besides embedding  "
            f"renamed: {row['renamed_chunks_embedded']} embedded  load {row['load_average']}"
        )
    key = "onedoc_besides_embedding_cpu_seconds"
    extra = rows["large"][key] - rows["reference"][key]
    print(f"  large - reference, CPU seconds besides embedding: {extra:+.2f} (target <= +1)")
    print(json.dumps({"bench": "ingest-incremental", **rows, "extra_cpu_seconds": extra}))


def cli_seconds(corpus: Path, data_dir: Path) -> float:
    """Wall time of a whole `kb ingest --json` process (interpreter start included)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")} | OFFLINE_ENV
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "api.cli", "ingest", str(corpus), "--data-dir", str(data_dir),
         "--json"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    return time.perf_counter() - started


def benchmark(source: Path, repeat: int, work: Path) -> dict[str, Any]:
    corpus = work / "corpus.jsonl"
    shutil.copyfile(source, corpus)  # a temp copy: the one-document change edits it
    load_before = os.getloadavg()[0]

    fulls: list[tuple[dict[str, Any], Path]] = []
    baselines: list[tuple[dict[str, Any], Path]] = []
    for attempt in range(repeat):
        # Alternate who goes first, so that a warm page cache favours neither side.
        order = ["ours", "baseline"] if attempt % 2 == 0 else ["baseline", "ours"]
        for name in order:
            data_dir = work / f"{name}-{attempt}"
            print(f"[bench] {name} full ingest #{attempt + 1} ...", file=sys.stderr, flush=True)
            result = run_phase(name, corpus, data_dir)
            (fulls if name == "ours" else baselines).append((result, data_dir))

    full, ours_dir = min(fulls, key=lambda pair: pair[0]["seconds"])
    baseline = min((r for r, _ in baselines), key=lambda r: float(r["seconds"]))
    steps = incremental(corpus, ours_dir, work)
    nochange, cli_nochange, onedoc = steps["nochange"], steps["cli_nochange"], steps["onedoc"]

    checks = {
        "nochange_embedded_nothing": nochange["texts_embedded"] == 0
        and nochange["unchanged"] == full["documents"],
        "onedoc_changed_one": onedoc["changed"] == 1
        and onedoc["unchanged"] == full["documents"] - 1,
    }
    return {
        "bench": "ingest",
        "corpus": str(source.resolve()),
        "repeat": repeat,
        "documents": full["documents"],
        "chunks": full["chunks"],
        "corpus_tokens": full["corpus_tokens"],
        "full_seconds": round(full["seconds"], 3),
        "full_seconds_all": [round(r["seconds"], 3) for r, _ in fulls],
        "chunks_per_second": round(full["chunks"] / full["seconds"], 1),
        "embed_seconds": full["embed_seconds"],
        "model_seconds": round(full["model_seconds"], 3),
        "embed_share": round(full["embed_seconds"] / full["summary_seconds"], 4),
        "peak_rss_mb_full": round(full["peak_rss_mb"], 1),
        "nochange_seconds": round(nochange["seconds"], 4),
        "nochange_ratio": round(nochange["seconds"] / full["seconds"], 5),
        "nochange_cli_process_seconds": round(cli_nochange, 3),
        "peak_rss_mb_nochange": round(nochange["peak_rss_mb"], 1),
        "onedoc_seconds": round(onedoc["seconds"], 4),
        "onedoc_ratio": round(onedoc["seconds"] / full["seconds"], 5),
        "onedoc_chunks_embedded": onedoc["chunks_embedded"],
        "onedoc_besides_embedding_seconds": steps["onedoc_besides_embedding_seconds"],
        "renamed_chunks_embedded": steps["renamed_chunks_embedded"],
        "renamed_seconds": steps["renamed_seconds"],
        "text_tokens": full["text_tokens"],
        "markup_overhead": round(full["corpus_tokens"] / full["text_tokens"] - 1, 4),
        "peak_rss_mb_onedoc": round(onedoc["peak_rss_mb"], 1),
        "baseline_seconds": round(baseline["seconds"], 3),
        "baseline_seconds_all": [round(r["seconds"], 3) for r, _ in baselines],
        "baseline_chunks": baseline["chunks"],
        "baseline_chunks_per_second": round(baseline["chunks"] / baseline["seconds"], 1),
        "peak_rss_mb_baseline": round(baseline["peak_rss_mb"], 1),
        "ratio_vs_baseline": round(full["seconds"] / baseline["seconds"], 4),
        "split": full["split"],
        "threads": full["threads"],
        "sentences_embedded": full["sentences_embedded"],
        "sentences_pooled": full["sentences_pooled"],
        **{
            f"{side}_{key}": round(result[key], 1)
            for side, result in (("ours", full), ("baseline", baseline))
            for key in (
                "texts_embedded",
                "padded_tokens",
                "real_tokens",
                "padded_tokens_per_second",
            )
        },
        "full_other_cores": round(full["other_cores"], 2),
        "baseline_other_cores": round(baseline["other_cores"], 2),
        "full_cpu_seconds": round(full["cpu_seconds"], 3),
        "baseline_cpu_seconds": round(baseline["cpu_seconds"], 3),
        "cpu_ratio_vs_baseline": round(full["cpu_seconds"] / baseline["cpu_seconds"], 4),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "settings": dict(SETTINGS),
        "checks": checks,
    }


def _passes(value: float, op: str, bound: float) -> bool:
    return {"<": value < bound, "<=": value <= bound, ">=": value >= bound}[op]


def report(results: dict[str, Any]) -> None:
    rows = [
        ("documents / chunks (ours)", f"{results['documents']} / {results['chunks']}"),
        ("corpus tokens (cl100k)", f"{results['corpus_tokens']:,}"),
        ("full ingest (ours)", f"{results['full_seconds']:.2f} s"),
        ("chunks/s (ours)", f"{results['chunks_per_second']:.1f}"),
        ("embedding time in the ingest", f"{results['embed_seconds']:.2f} s"),
        ("peak RSS, full ingest", f"{results['peak_rss_mb_full']:.0f} MB"),
        ("no-change re-ingest", f"{results['nochange_seconds'] * 1000:.0f} ms"),
        ("  whole `kb ingest` process", f"{results['nochange_cli_process_seconds']:.2f} s"),
        ("one sentence appended", f"{results['onedoc_seconds'] * 1000:.0f} ms "
         f"({results['onedoc_chunks_embedded']} chunks embedded, "
         f"{results['onedoc_besides_embedding_seconds']:.2f} s besides embedding)"),
        ("corpus renamed and moved", f"{results['renamed_seconds']:.2f} s "
         f"({results['renamed_chunks_embedded']} chunks embedded)"),
        ("markup overhead (snapshot / text tokens - 1)", f"{results['markup_overhead']:.2%}"),
        ("llama-index baseline", f"{results['baseline_seconds']:.2f} s "
         f"({results['baseline_chunks']} nodes, "
         f"{results['baseline_chunks_per_second']:.1f}/s)"),
        ("peak RSS, baseline", f"{results['peak_rss_mb_baseline']:.0f} MB"),
        ("split of the full ingest (ours), s", ", ".join(
            f"{name} {seconds:.2f}" for name, seconds in results["split"].items())),
        ("reader units: pooled / embedded alone",
         f"{results['sentences_pooled']} / {results['sentences_embedded']}"),
        ("embedding threads (ours)", str(results["threads"])),
        *[(f"texts embedded, {side}", f"{results[f'{side}_texts_embedded']:.0f} "
           f"({results[f'{side}_padded_tokens']:,.0f} padded tokens, "
           f"{results[f'{side}_real_tokens']:,.0f} real; "
           f"{results[f'{side}_padded_tokens_per_second']:,.0f} padded tokens/s of wall time)")
          for side in ("ours", "baseline")],
        ("CPU seconds, ours / baseline", f"{results['full_cpu_seconds']:.1f} / "
         f"{results['baseline_cpu_seconds']:.1f} (ratio {results['cpu_ratio_vs_baseline']:.3f})"),
        ("other processes' cores busy, ours / baseline",
         f"{results['full_other_cores']:.2f} / {results['baseline_other_cores']:.2f}"),
        ("load average before / after", " / ".join(str(x) for x in results["load_average"])),
        ("settings of our ingests", str(results["settings"] or "defaults")),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows + [(t[0], "") for t in TARGETS])
    print(f"\nIngest benchmark: {results['corpus']}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print(f"\n  {'target':<{width}}  {'value':>9}  bound      result")
    for name, key, op, bound in TARGETS:
        value = results[key]
        verdict = "PASS" if _passes(value, op, bound) else "MISS"
        print(f"  {name:<{width}}  {value:>9.4f}  {op} {bound:<6}  {verdict}")
    for name, ok in results["checks"].items():
        print(f"  check {name}: {'ok' if ok else 'FAILED'}")
    results["targets"] = {key: _passes(results[key], op, bound) for _, key, op, bound in TARGETS}
    print(json.dumps(results))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--repeat", type=int, default=1, help="full ingests per side (best kept)")
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep the files")
    parser.add_argument(
        "--ingested",
        type=Path,
        default=None,
        help="a data dir holding --corpus (a folder or JSONL; if the dir is empty it is "
        "first filled with placeholder vectors, see phase_prefill): skip the full ingests "
        "and print only the incremental figures (no change, one sentence appended, the "
        "corpus renamed) on a copy of the corpus",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=DEFAULT_CORPUS,
        help="with --ingested: the corpus measured the same way beside it (hotpotqa-100)",
    )
    parser.add_argument(
        "--markup",
        action="store_true",
        help="print only the long-context markup overhead of the dev sets (no embedding)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KB_NAME=VALUE",
        help="a setting for our ingests (e.g. KB_READER_VECTORS=pooled); default: none",
    )
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    SETTINGS.update(pair.split("=", 1) for pair in args.set)
    if args.phase:
        print(json.dumps(PHASES[args.phase](args.corpus, args.data_dir)))
        return 0
    if args.markup:
        datasets = ROOT / ".." / "shared" / "datasets"
        with tempfile.TemporaryDirectory(prefix="kb-markup-") as work:
            short = short_paragraphs(
                datasets / "squad-v2-dev" / "corpus.jsonl",
                Path(work) / "squad-short-paragraphs.jsonl",
            )
            markup_overhead([datasets / name / "corpus.jsonl" for name in DEV_SETS] + [short])
            markup_overhead([ROOT / "corpora" / "handbook"])
        return 0
    if args.ingested:
        with tempfile.TemporaryDirectory(prefix="kb-ingest-bench-") as work:
            scale_comparison(args.corpus, args.ingested, args.reference, Path(work))
        return 0
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        report(benchmark(args.corpus, args.repeat, args.keep))
        return 0
    with tempfile.TemporaryDirectory(prefix="kb-ingest-bench-") as work:
        report(benchmark(args.corpus, args.repeat, Path(work)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
