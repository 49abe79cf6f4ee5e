"""Ingests in fresh processes, and the incremental steps between ours: no change, one
sentence appended, the corpus renamed; `--ingested`'s figures on a large corpus beside
a reference one.

`run_phase` runs a phase (ours, the baseline, the prefill) as `python
bench/ingest_bench.py --phase NAME`, so that its peak memory (ru_maxrss) is its own;
`cli_seconds` times a whole `kb ingest` process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().with_name("ingest_bench.py")  # the entry point of every phase
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "ANONYMIZED_TELEMETRY": "False",
}
SETTINGS: dict[str, str] = {}  # `--set KB_NAME=VALUE`: our phases' settings


def run_phase(name: str, corpus: Path, data_dir: Path) -> dict[str, Any]:
    """Run one phase in a fresh Python process; its last stdout line is its JSON result."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")} | OFFLINE_ENV
    env |= SETTINGS
    done = subprocess.run(
        [sys.executable, str(BENCH), "--phase", name, "--corpus", str(corpus),
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
