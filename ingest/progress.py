"""What `kb ingest` shows while it works: on a terminal, a tqdm bar with rate and ETA
from the first embedded batch; otherwise (a log, CI) one line per phase, plus a line
per embedded batch at most every LOG_EVERY seconds."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

LOG_EVERY = 10.0  # seconds between embedding lines when not on a terminal


class IngestProgress:
    """A `Progress` callback for `run_ingest` (phase, done, total). Phases other than
    the pipeline's own (derived indexes) are shown like `embed`: counted, with a rate."""

    def __init__(self, stream: IO[str] | None = None, terminal: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self._bar: Any = None
        self._started = 0.0
        self._logged = 0.0

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase == "diff":
            self._line(f"diff: {total} documents read")
        elif phase == "chunk":
            self._line(f"chunk: {total} new or changed documents cut")
        elif phase in ("write", "commit", "clean"):
            self._line(f"{phase}: done")
        else:  # embed, and derived indexes: counted work with a rate and an ETA
            self._count(phase, done, total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _line(self, text: str) -> None:
        self.close()
        print(text, file=self.stream, flush=True)

    def _count(self, phase: str, done: int, total: int) -> None:
        noun = "chunks" if phase == "embed" else "items"
        if done == 0:
            self._started = self._logged = time.monotonic()
            if not total:
                self._line(f"{phase}: nothing to do")
            elif self.terminal:
                from tqdm import tqdm

                self._bar = tqdm(
                    total=total, unit=noun[:-1], desc=phase, file=self.stream, smoothing=0.1
                )
            else:
                self._line(f"{phase}: {total} {noun} to do")
            return
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
            if done >= total:
                self.close()
            return
        moment = time.monotonic()
        if done < total and moment - self._logged < LOG_EVERY and self._logged > self._started:
            return
        self._logged = moment
        rate = done / max(moment - self._started, 1e-9)
        eta = (total - done) / rate if rate else 0.0
        verb = "embedded" if phase == "embed" else f"{phase}:"
        print(
            f"{verb} {done}/{total} {noun} ({rate:.1f} {noun}/s, ETA {eta:.0f}s)",
            file=self.stream,
            flush=True,
        )
