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

The pieces: bench/ingest_ours.py and bench/ingest_baseline.py (the two sides' phases),
bench/ingest_timing.py (how a phase is measured), bench/ingest_incremental.py (fresh
processes, the incremental steps, `--ingested`), bench/ingest_markup.py (`--markup`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Phases run as `python bench/ingest_bench.py`, whose path starts with bench/: put the
# checkout first, or `kb` and `ingest` would come from wherever the venv installed them.
sys.path.insert(0, str(ROOT))

from bench.ingest_incremental import SETTINGS, incremental, run_phase, scale_comparison

DEFAULT_CORPUS = ROOT / ".." / "shared" / "datasets" / "hotpotqa-100" / "corpus.jsonl"
PHASES = ("baseline", "ours", "prefill")

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


def phase(name: str) -> Callable[[Path, Path], dict[str, Any]]:
    """A phase, imported in the process that runs it only: ours or the llama-index
    baseline, so that neither side loads (or holds in its peak memory) the other's."""
    if name == "baseline":
        from bench.ingest_baseline import phase_baseline

        return phase_baseline
    from bench.ingest_ours import phase_ours, phase_prefill

    return phase_ours if name == "ours" else phase_prefill


def full_ingests(
    corpus: Path, repeat: int, work: Path
) -> tuple[list[tuple[dict[str, Any], Path]], list[dict[str, Any]]]:
    """`repeat` full ingests per side, each into a new data dir: ours with their data
    dirs, and the baseline's."""
    fulls: list[tuple[dict[str, Any], Path]] = []
    baselines: list[dict[str, Any]] = []
    for attempt in range(repeat):
        # Alternate who goes first, so that a warm page cache favours neither side.
        order = ["ours", "baseline"] if attempt % 2 == 0 else ["baseline", "ours"]
        for name in order:
            data_dir = work / f"{name}-{attempt}"
            print(f"[bench] {name} full ingest #{attempt + 1} ...", file=sys.stderr, flush=True)
            result = run_phase(name, corpus, data_dir)
            if name == "ours":
                fulls.append((result, data_dir))
            else:
                baselines.append(result)
    return fulls, baselines


def benchmark(source: Path, repeat: int, work: Path) -> dict[str, Any]:
    """Full ingests of both sides (the fastest of each kept), then the incremental steps
    on our fastest one's data dir: the figures `report` prints."""
    corpus = work / "corpus.jsonl"
    shutil.copyfile(source, corpus)  # a temp copy: the one-document change edits it
    load_before = os.getloadavg()[0]
    fulls, baselines = full_ingests(corpus, repeat, work)
    full, ours_dir = min(fulls, key=lambda pair: pair[0]["seconds"])
    baseline = min(baselines, key=lambda r: float(r["seconds"]))
    steps = incremental(corpus, ours_dir, work)
    nochange, onedoc = steps["nochange"], steps["onedoc"]
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
        **ours_figures(full, [r for r, _ in fulls], steps),
        **beside_baseline(full, baseline, baselines),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "settings": dict(SETTINGS),
        "checks": checks,
    }


def ours_figures(
    full: dict[str, Any], fulls: list[dict[str, Any]], steps: dict[str, Any]
) -> dict[str, Any]:
    """Our full ingest (the fastest of `fulls`) and the incremental steps after it."""
    nochange, cli_nochange, onedoc = steps["nochange"], steps["cli_nochange"], steps["onedoc"]
    return {
        "documents": full["documents"],
        "chunks": full["chunks"],
        "corpus_tokens": full["corpus_tokens"],
        "full_seconds": round(full["seconds"], 3),
        "full_seconds_all": [round(r["seconds"], 3) for r in fulls],
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
    }


def beside_baseline(
    full: dict[str, Any], baseline: dict[str, Any], baselines: list[dict[str, Any]]
) -> dict[str, Any]:
    """The baseline's full ingest (the fastest of `baselines`) and ours beside it."""
    return {
        "baseline_seconds": round(baseline["seconds"], 3),
        "baseline_seconds_all": [round(r["seconds"], 3) for r in baselines],
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


def build_parser() -> argparse.ArgumentParser:
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
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    SETTINGS.update(pair.split("=", 1) for pair in args.set)
    if args.phase:
        print(json.dumps(phase(args.phase)(args.corpus, args.data_dir)))
        return 0
    if args.markup:
        from bench.ingest_markup import print_markup

        print_markup(ROOT / ".." / "shared" / "datasets", ROOT / "corpora" / "handbook")
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
