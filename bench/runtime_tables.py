"""The tables and the verdict bench/runtime_sweep.py prints: accuracy per dev set and
runtime against the first runtime, ingest times, embedding throughput, and which
runtimes hold issue 18's bounds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kb.search import embedding_threads

RECALL_BOUND = 0.5  # points of recall a runtime may lose against torch
ACCURACY_BOUND = 1.0  # points of reader accuracy


def _delta(value: float | None, reference: float | None) -> str:
    if value is None or reference is None:
        return ""
    return f" ({value - reference:+.1f})"


def verdict(results: dict[str, dict[str, Any]], runtimes: Sequence[str]) -> dict[str, list[str]]:
    """{runtime: the bounds it breaks, as 'set figure -x.x pt'}: empty when it holds."""
    base = results[runtimes[0]]
    out: dict[str, list[str]] = {}
    for rt in runtimes[1:]:
        misses = []
        for name, figures in results[rt].items():
            checks = [
                (f"recall {key}", figures["recall"][key], base[name]["recall"][key], RECALL_BOUND)
                for key in ("default@5", "default@20")
                if "recall" in figures
            ] + [
                (f"reader {mode}", figures["reader"][mode], base[name]["reader"][mode],
                 ACCURACY_BOUND)
                for mode in ("long_context", "rag")
                if "reader" in figures
            ]  # fmt: skip
            for what, value, reference, bound in checks:
                if value < reference - bound:
                    misses.append(f"{name} {what} {value - reference:+.2f} pt (bound -{bound})")
        out[rt] = misses
    return out


def print_tables(
    results: dict[str, dict[str, Any]],
    ingests: dict[str, dict[str, Any]],
    speed: dict[str, dict[str, Any]],
    runtimes: Sequence[str],
) -> dict[str, list[str]]:
    """Every table the sweep prints, then the verdict; returns the verdict."""
    first = runtimes[0]
    if any(results.values()):
        _accuracy_table(results, runtimes)
        _ingest_table(ingests, runtimes)
    if speed:
        _speed_table(speed, first)
    misses = verdict(results, runtimes)
    if not any(results.values()):
        return misses
    print(f"\nVerdict against {first} (recall at most {RECALL_BOUND} pt lower, reader accuracy "
          f"at most {ACCURACY_BOUND} pt lower, on every set):")  # fmt: skip
    for runtime, broken in misses.items():
        print(f"  {runtime}: " + ("holds on every set" if not broken else "; ".join(broken)))
    return misses


def _accuracy_table(results: dict[str, dict[str, Any]], runtimes: Sequence[str]) -> None:
    first = runtimes[0]
    print("\nRecall (all gold, %) and reader accuracy (%) per dev set; (+x.x): points against "
          f"{first}\n")  # fmt: skip
    print("| set | questions (recall / reader) | runtime | recall@5 / @20, default | "
          "recall@5 / @20, vectors alone | reader, long context | reader, rag |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name in results[first]:
        for rt in runtimes:
            f, b = results[rt][name], results[first][name]
            counts = f"{f.get('recall_questions', '-')} / {f.get('reader_questions', '-')}"
            cells = []
            for a, c in (("default@5", "default@20"), ("vectors@5", "vectors@20")):
                if "recall" in f:
                    cells.append(
                        f"{f['recall'][a]:.1f}{_delta(f['recall'][a], b['recall'][a])} / "
                        f"{f['recall'][c]:.1f}{_delta(f['recall'][c], b['recall'][c])}"
                    )
                else:
                    cells.append("-")
            for mode in ("long_context", "rag"):
                if "reader" in f:
                    cells.append(
                        f"{f['reader'][mode]:.1f}{_delta(f['reader'][mode], b['reader'][mode])}"
                    )
                else:
                    cells.append("-")
            print(f"| {name} | {counts} | {rt} | " + " | ".join(cells) + " |")


def _ingest_table(ingests: dict[str, dict[str, Any]], runtimes: Sequence[str]) -> None:
    print("\nIngest of each corpus (seconds; 0 embedded: an index reused from an earlier run)\n")
    print("| corpus | " + " | ".join(runtimes) + " |")
    print("|---|" + "---|" * len(runtimes))
    for corpus in ingests[runtimes[0]]:
        cells = []
        for rt in runtimes:
            g = ingests[rt][corpus]
            cells.append(
                f"{g['seconds']} s ({g['chunks_embedded']} chunks + {g['sentences_embedded']} "
                f"units embedded, load {g['load']})"
            )
        print(f"| {corpus} | " + " | ".join(cells) + " |")


def _speed_table(speed: dict[str, dict[str, Any]], first: str) -> None:
    print("\nEmbedding throughput, runtimes taking turns call by call on the same texts "
          f"(hotpotqa-100's ingest calls; {embedding_threads_note()})\n")  # fmt: skip
    print("| texts timed | runtime | texts/s | real tokens/s | padded tokens/s | speed vs "
          f"{first} | cosine to {first}, mean / min | load during |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for kind, by_runtime in speed.items():
        for runtime, g in by_runtime.items():
            print(
                f"| {g['texts']} {kind} | {runtime} | {g['texts_per_s']} | "
                f"{g['real_tokens_per_s']:,.0f} | {g['padded_tokens_per_s']:,.0f} | "
                f"**{g['speed_vs_first']:.2f}x** | {g['cosine_mean']:.4f} / "
                f"{g['cosine_min']:.4f} | {g['load_min']}-{g['load_max']} |"
            )


def embedding_threads_note() -> str:
    return f"{embedding_threads()} threads, batches of the default size"
