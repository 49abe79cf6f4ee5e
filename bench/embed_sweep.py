"""How the embedding model uses the cores, on the texts a hotpotqa-100 ingest embeds
(issue 18, item 2): torch's threads splitting each operation against each thread running
whole batches on one core, then the batch size.

    .venv/bin/python bench/embed_sweep.py [--chunks 1134] [--units 4391]
        [--batch-sizes 8,16,32,64] [--busy N] [--only threads|batch-sizes]

The texts are the pipeline's own calls (recorded without the model, as
`bench/runtime_sweep.py` does), embedded with the configured precision. Within each
comparison the variants take turns call by call, so they see the same load; the load
average is printed beside every figure, and only ratios within one run count. `--busy N`
keeps N other processes spinning on a core each throughout (a machine shared with other
work). Prints the tables and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.runtime_sweep import ingest_calls
from kb.core import load_settings
from kb.search import Embedder, available_cores, set_embedding_threads

Calls = dict[str, list[list[str]]]


def load() -> float:
    return round(os.getloadavg()[0], 2)


def take_turns(calls: Calls, variants: dict[str, Callable[[list[str]], Any]]) -> dict[str, Any]:
    """{kind: {variant: seconds, "load": [min, max]}}, each call run by every variant in
    an order that rotates call by call."""
    names = list(variants)
    out: dict[str, Any] = {}
    turn = 0
    for kind, kind_calls in calls.items():
        seconds = dict.fromkeys(names, 0.0)
        loads = [load()]
        for texts in kind_calls:
            for name in names[turn % len(names) :] + names[: turn % len(names)]:
                started = time.perf_counter()
                variants[name](texts)
                seconds[name] += time.perf_counter() - started
            turn += 1
            loads.append(load())
        out[kind] = {
            **{n: round(s, 2) for n, s in seconds.items()},
            "load": [min(loads), max(loads)],
        }
        print(f"  {kind} ({sum(map(len, kind_calls))} texts): {json.dumps(out[kind])}", flush=True)
    return out


def threading_ways(calls: Calls, batch_size: int) -> dict[str, Any]:
    """torch's own threading (every operation split over the cores) against `Embedder`'s
    (whole batches side by side, one core each)."""
    import torch

    cores = available_cores()
    split = Embedder(batch_size)
    split.workers = lambda: 1  # type: ignore[method-assign]
    whole = Embedder(batch_size)

    def by_operation(texts: list[str]) -> Any:
        torch.set_num_threads(cores)
        return split.embed(texts)

    def by_batch(texts: list[str]) -> Any:
        torch.set_num_threads(1)
        return whole.embed(texts)

    for embed in (by_operation, by_batch):
        embed(["load the model before the clock"] * (2 * batch_size + 1))
    return take_turns(calls, {"split each operation": by_operation, "whole batches": by_batch})


def batch_sizes(calls: Calls, sizes: Sequence[int]) -> dict[str, Any]:
    embedders = {f"batch {size}": Embedder(size) for size in sizes}
    for embedder in embedders.values():
        embedder.embed(["load the model before the clock"] * (2 * embedder.batch_size + 1))
    return take_turns(calls, {name: e.embed for name, e in embedders.items()})


def print_table(title: str, figures: dict[str, Any]) -> None:
    variants = [k for k in next(iter(figures.values())) if k != "load"]
    print(f"\n{title}\n\n| texts | {' | '.join(variants)} | load |")
    print("|---" * (len(variants) + 2) + "|")
    for kind, row in figures.items():
        cells = " | ".join(f"{row[v]:.2f} s" for v in variants)
        print(f"| {kind} | {cells} | {row['load'][0]}-{row['load'][1]} |")


def spin() -> None:  # pragma: no cover - runs in a child process
    while True:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=1134, help="chunk texts timed")
    parser.add_argument("--units", type=int, default=4391, help="sentence-unit texts timed")
    parser.add_argument("--batch-sizes", default="8,16,32,64")
    parser.add_argument("--busy", type=int, default=0, help="processes spinning meanwhile")
    parser.add_argument("--only", choices=["threads", "batch-sizes"], default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    set_embedding_threads(available_cores())  # as `kb ingest` does
    settings = load_settings()
    work = Path(tempfile.gettempdir()) / "kb-embed-sweep"
    calls = ingest_calls(work, args.chunks, args.units)
    precision = Embedder().arithmetic
    busy = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.busy)]
    for process in busy:
        process.start()
    print(f"embed sweep: {available_cores()} cores, {precision}, {args.busy} busy "
          f"processes, load {load()}", flush=True)  # fmt: skip
    result: dict[str, Any] = {"precision": precision, "busy": args.busy}
    try:
        if args.only != "batch-sizes":
            result["threads"] = threading_ways(calls, settings.embed_batch_size)
        if args.only != "threads":
            sizes = [int(s) for s in args.batch_sizes.split(",")]
            result["batch_sizes"] = batch_sizes(calls, sizes)
    finally:
        for process in busy:
            process.terminate()
    note = f"{precision}, {args.busy} busy processes"
    if "threads" in result:
        print_table(f"Threads ({note}, batches of {settings.embed_batch_size})", result["threads"])
    if "batch_sizes" in result:
        print_table(f"Batch size ({note}, whole batches on each thread)", result["batch_sizes"])
    result["load"] = load()
    print(json.dumps({"embed_sweep": result}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
