"""How an ingest phase is measured, alike for ours and the llama-index baseline: wall
and CPU time with the load the rest of the machine added (`Clock`), the tokens the
model's forward passes saw (`TokenCount`), the split of our ingest by its phases
(`PhaseTimes`), and the process's peak memory."""

from __future__ import annotations

import os
import resource
import threading
import time
from pathlib import Path
from typing import Any


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


def peak_rss_mb() -> float:
    """This process's resident-set high-water mark (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TokenCount:
    """Texts and tokens a SentenceTransformer's forward passes saw: `padded` counts every
    position of every batch (what the model computes), `real` the texts' own tokens."""

    def __init__(self, model: Any) -> None:
        self.texts = self.padded = self.real = 0
        preprocess = model.preprocess

        lock = threading.Lock()  # torch embeds batches on several threads

        def counted(*args: Any, **kwargs: Any) -> Any:
            features = preprocess(*args, **kwargs)
            mask = features["attention_mask"]
            with lock:
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
