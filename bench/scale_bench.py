"""Scale benchmark: a corpus of at least 2.5M tokens (`bench/scale_corpus.py`) next to
hotpotqa-100, in one run, with the load average beside every timing.

    .venv/bin/python bench/scale_bench.py --cache DIR [--work DIR] [--questions 50]
        [--skip-compare] [--skip-load] [--only hotpotqa-100]

Per corpus: full ingest (its speed against the raw model's encode of everything it
embedded: chunk texts and the reader's sentence units; peak RSS), no-change re-ingest,
one sentence appended to one document (chunks embedded, seconds besides embedding;
then `--append-runs` more appends per corpus, alternating, whose medians are compared),
the corpus file renamed and moved (chunks embedded), the first and tenth question after
that ingest, retrieval and auto p50/p95 over N questions, and retrieval p50 again while
two busy processes keep both cores busy.
Then torch against ONNX Runtime on the dev sets: encode speed, largest vector
difference and dense recall@10. Every ingest is a whole `kb ingest` process (its wall
time includes start-up and model load); each other phase runs in its own process too.
Exits 0 and prints PASS/MISS per target. The phases are in bench/scale_phases.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ingest_incremental import change_one_record
from bench.scale_phases import DATASETS, child_main, load, run_phase


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ---- the run --------------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusRun:
    """One corpus of the run: its name, its data dir and its phases' environment."""

    name: str
    data: str
    env: dict[str, str]

    def ingest(self, path: Path, label: str) -> dict[str, Any]:
        """A whole `kb ingest` of `path` in its own process, printed as one line."""
        result = run_phase("ingest", {"path": str(path), "data_dir": self.data}, self.env)
        summary = result["summary"]
        print(
            f"  {self.name:13} {label:22} {result['wall']:8.1f} s wall, "
            f"{summary['chunks_embedded']:6} chunks embedded, embed "
            f"{summary['embed_seconds']:7.1f} s, in-pipeline besides embedding "
            f"{summary['seconds'] - summary['embed_seconds']:6.2f} s  [{result['load']}]",
            flush=True,
        )
        return result


def bench_corpus(
    name: str, source: Path, questions: Path, work: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Every figure of one corpus, phase by phase, in a copy of it under `work`."""
    folder = work / name
    corpus = folder / "docs" / "corpus.jsonl"
    saved = folder / "full-ingest.json"
    resume = args.resume and saved.exists()
    if not resume:
        shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(folder / "elsewhere", ignore_errors=True)
    corpus.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, corpus)
    run = CorpusRun(name, str(folder / "data"), {"KB_EMBED_BACKEND": args.backend})
    row = full_ingest(run, corpus, saved, resume, args.encode_sample)
    row.update(incremental_ingests(run, corpus, folder / "elsewhere" / "renamed.jsonl"))
    spec = {"data_dir": run.data, "questions": str(questions), "n": args.questions}
    row.update(ask(run, spec))
    if not args.skip_load:
        row.update(beside_busy_processes(run, spec))
    return row


def full_ingest(
    run: CorpusRun, corpus: Path, saved: Path, resume: bool, sample: int
) -> dict[str, Any]:
    """The full ingest (or, resuming, the saved one of an earlier run) against the raw
    model's encode of everything it embedded."""
    if resume:  # the full ingest of an earlier run, brought back to the original corpus
        full = json.loads(saved.read_text())
        print(f"  {run.name:13} full ingest: from the earlier run ({full['load']})", flush=True)
        run.ingest(corpus, "restore (resume)")
    else:
        full = run.ingest(corpus, "full ingest")
        saved.write_text(json.dumps(full))
    s = full["summary"]
    row: dict[str, Any] = {}
    row.update(chunks=s["chunks"], tokens=s["corpus_tokens"], rss_mb=full["rss_mb"])
    encode = run_phase("encode", {"data_dir": run.data, "sample": sample}, run.env)
    # The raw model's time for everything the ingest embedded, at the sampled rates.
    units = s["sentences_embedded"]
    raw = s["chunks_embedded"] / encode["chunks"]["rate"] + units / encode["units"]["rate"]
    row.update(units=units, raw_encode_s=raw, ingest_s=s["seconds"])
    row["ingest_vs_encode"] = raw / s["seconds"]
    print(
        f"  {run.name:13} raw encode {encode['chunks']['rate']:.1f} chunk texts/s, "
        f"{encode['units']['rate']:.1f} sentence units/s (samples of "
        f"{encode['chunks']['texts']} and {encode['units']['texts']}): "
        f"{s['chunks_embedded']} chunks + {units} units = {raw:.0f} s of raw encode; "
        f"ingest {s['seconds']:.0f} s on run_ingest's clock, model load included "
        f"(whole process {full['wall']:.0f} s) = {row['ingest_vs_encode']:.2f}x the raw "
        f"speed; peak RSS {full['rss_mb']:.0f} MB  [{encode['load']}]",
        flush=True,
    )
    return row


def incremental_ingests(run: CorpusRun, corpus: Path, moved: Path) -> dict[str, Any]:
    """No change, one sentence appended, then the corpus file renamed and moved."""
    row: dict[str, Any] = {"nochange_s": run.ingest(corpus, "no-change re-ingest")["wall"]}
    change_one_record(corpus)  # one sentence appended
    appended = run.ingest(corpus, "one sentence appended")
    a = appended["summary"]
    row["append_chunks"] = a["chunks_embedded"]
    row["append_besides_s"] = appended["wall"] - a["embed_seconds"]
    moved.parent.mkdir()
    corpus.rename(moved)
    row["renamed_chunks"] = run.ingest(moved, "renamed and moved")["summary"]["chunks_embedded"]
    return row


def ask(run: CorpusRun, spec: dict[str, Any]) -> dict[str, Any]:
    """The first and tenth question after the ingest; retrieval and auto p50/p95."""
    asked = run_phase("questions", {**spec, "first_ten": True, "modes": ["rag", "auto"]}, run.env)
    row: dict[str, Any] = {"first": asked["first"], "tenth": asked["tenth"]}
    for mode in ("rag", "auto"):
        row[f"{mode}_p50"] = percentile(asked[mode], 0.5)
        row[f"{mode}_p95"] = percentile(asked[mode], 0.95)
    print(
        f"  {run.name:13} first question {asked['first'] * 1000:.0f} ms, tenth "
        f"{asked['tenth'] * 1000:.0f} ms; retrieval p50/p95 {row['rag_p50'] * 1000:.0f}/"
        f"{row['rag_p95'] * 1000:.0f} ms, auto p50/p95 {row['auto_p50'] * 1000:.0f}/"
        f"{row['auto_p95'] * 1000:.0f} ms over {spec['n']}  [{asked['load']}]",
        flush=True,
    )
    return row


def beside_busy_processes(run: CorpusRun, spec: dict[str, Any]) -> dict[str, Any]:
    """Retrieval p50 idle, then while two busy processes keep both cores busy."""
    idle = run_phase("questions", {**spec, "modes": ["rag"]}, run.env)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(2)
        loaded = run_phase("questions", {**spec, "modes": ["rag"]}, run.env)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    row: dict[str, Any] = {"idle_p50": percentile(idle["rag"], 0.5)}
    row["busy_p50"] = percentile(loaded["rag"], 0.5)
    row["busy_ratio"] = row["busy_p50"] / row["idle_p50"]
    print(
        f"  {run.name:13} retrieval p50 {row['idle_p50'] * 1000:.0f} ms [{idle['load']}] -> "
        f"{row['busy_p50'] * 1000:.0f} ms beside two busy processes "
        f"[{loaded['load']}] = {row['busy_ratio']:.2f}x",
        flush=True,
    )
    return row


def bench_appends(rows: dict[str, dict[str, Any]], work: Path, args: argparse.Namespace) -> None:
    """One sentence appended again, corpora alternating, `--append-runs` times each: the
    median seconds besides embedding of each (a whole `kb ingest` loads the model, which
    varies by a second or more from run to run, so one run each decides nothing)."""
    env = {"KB_EMBED_BACKEND": args.backend}
    seen: dict[str, list[float]] = {name: [] for name in rows}
    for run in range(args.append_runs):
        for name in list(rows) if run % 2 == 0 else list(rows)[::-1]:
            corpus = work / name / "elsewhere" / "renamed.jsonl"
            change_one_record(corpus)  # one sentence appended
            spec = {"path": str(corpus), "data_dir": str(work / name / "data")}
            result = run_phase("ingest", spec, env)
            summary = result["summary"]
            seen[name].append(result["wall"] - summary["embed_seconds"])
            rows[name]["append_chunks"] = max(
                rows[name]["append_chunks"], summary["chunks_embedded"]
            )
    for name, values in seen.items():
        rows[name]["append_besides_s"] = percentile(values, 0.5)
        print(
            f"  {name:13} one sentence appended, {len(values)} runs alternating: besides "
            f"embedding {', '.join(f'{v:.2f}' for v in values)} s, median "
            f"{rows[name]['append_besides_s']:.2f} s  [{load()}]",
            flush=True,
        )


def bench_backends(args: argparse.Namespace) -> dict[str, Any]:
    """torch against ONNX Runtime on the dev sets, side by side in one process."""
    spec = {"sets": ["hotpotqa-100", "squad-v2-dev"], "questions": args.recall_questions}
    result = run_phase("compare", spec, {})
    row: dict[str, Any] = {}
    for name in spec["sets"]:
        one = result[name]
        torch_row, onnx_row = one["torch"], one["onnx"]
        row[name] = {
            "speedup": onnx_row["rate"] / torch_row["rate"],
            "recall_delta": onnx_row["recall"] - torch_row["recall"],
        }
        print(
            f"  {name:13} torch {torch_row['rate']:.1f} texts/s, onnx {onnx_row['rate']:.1f} "
            f"texts/s = {row[name]['speedup']:.2f}x over {one['chunks']} chunks; recall@10 "
            f"torch {torch_row['recall']:.2f} onnx {onnx_row['recall']:.2f} "
            f"({one['questions']} questions); largest vector difference "
            f"{one['max_diff']:.1e}  [{result['load']}]",
            flush=True,
        )
    return row


def verdicts(rows: dict[str, dict[str, Any]], backends: dict[str, Any]) -> list[str]:
    small, large = rows.get("hotpotqa-100", {}), rows.get("scale", {})
    checks: list[tuple[str, float | None, str, float]] = [
        ("one sentence appended: chunks embedded (scale)", large.get("append_chunks"), "<=", 2),
        (
            "  seconds besides embedding, scale - hotpotqa-100",
            large.get("append_besides_s", 0) - small.get("append_besides_s", 0)
            if large and small
            else None,
            "<=",
            1.0,
        ),
        ("corpus renamed: chunks embedded (scale)", large.get("renamed_chunks"), "<=", 0),
        (
            "first question / tenth (scale)",
            large["first"] / large["tenth"] if large else None,
            "<=",
            2.0,
        ),
        (
            "retrieval p50 scale / hotpotqa-100",
            large["rag_p50"] / small["rag_p50"] if large and small else None,
            "<=",
            2.0,
        ),
        (
            "retrieval p50 beside two busy processes / idle (scale)",
            large.get("busy_ratio"),
            "<=",
            3.0,
        ),
        ("full ingest / raw encode speed (scale)", large.get("ingest_vs_encode"), ">=", 0.85),
    ]
    for name, value in backends.items():
        checks.append((f"onnx / torch encode speed ({name})", value["speedup"], ">=", 1.5))
        checks.append(
            (f"onnx - torch recall@10 points ({name})", abs(value["recall_delta"]), "<=", 0.5)
        )
    lines = []
    for label, value, op, bound in checks:
        if value is None:
            lines.append(f"  {label:58} -      (not measured)")
            continue
        ok = value <= bound if op == "<=" else value >= bound
        lines.append(f"  {label:58} {value:8.2f} {op} {bound:<5} {'PASS' if ok else 'MISS'}")
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cache",
        type=Path,
        required=True,
        help="folder outside the repository for the package and corpus",
    )
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: tmp)")
    parser.add_argument("--tokens", type=int, default=2_500_000)
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument(
        "--encode-sample",
        type=int,
        default=2000,
        help="chunk texts the raw-encode comparison embeds (0: all)",
    )
    parser.add_argument("--recall-questions", type=int, default=300)
    parser.add_argument(
        "--append-runs",
        type=int,
        default=5,
        help="appends per corpus, alternating, for the median besides embedding (0: one)",
    )
    parser.add_argument("--backend", choices=["onnx", "torch"], default="torch")
    parser.add_argument(
        "--only",
        choices=["hotpotqa-100", "scale", "compare"],
        default=None,
        help="one corpus, or only the torch-vs-ONNX comparison",
    )
    parser.add_argument("--skip-compare", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="with --work: reuse the full ingests an earlier run left there",
    )
    return parser


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--phase":
        child_main(sys.argv[2], sys.argv[3])
        return
    args = build_parser().parse_args()
    # Here, not at the top: every phase process starts from this file, and the corpus
    # builder loads kb (its tokenizer), which a phase's peak memory must not include.
    from bench.scale_corpus import build

    work = args.work or Path(tempfile.mkdtemp(prefix="kb-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"scale bench: backend {args.backend}, {os.cpu_count()} cores, start {load()}", flush=True
    )
    hotpot = DATASETS / "hotpotqa-100"
    corpora = {"hotpotqa-100": (hotpot / "corpus.jsonl", hotpot / "questions.jsonl")}
    if args.only in (None, "scale"):
        big, questions, tokens = build(args.cache, args.tokens)
        print(f"scale corpus: {tokens:,} tokens of document text", flush=True)
        corpora["scale"] = (big, questions)
    rows = {}
    for name, (source, questions) in corpora.items():
        if args.only in (None, name):
            rows[name] = bench_corpus(name, source, questions, work, args)
    if len(rows) == 2 and args.append_runs:
        bench_appends(rows, work, args)
    backends = {} if args.skip_compare else bench_backends(args)
    print("\nsummary")
    for name, row in rows.items():
        print(
            f"  {name}: "
            + ", ".join(
                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()
            )
        )
    print("\n".join(verdicts(rows, backends)))
    print(json.dumps({"rows": rows, "backends": backends, "end": load()}))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
