"""Load test: concurrent retrieval questions against a loopback `kb serve`.

Starts a server over hotpotqa-100 (ingesting it into a reusable data dir first, which
is a no-op when nothing changed), or targets one with --url, then sends a bounded
number of questions from N concurrent clients (httpx async, one connection each)
and prints throughput, latency percentiles and the error count.

    .venv/bin/python bench/load_test.py                      # 32 clients, 320 questions
    .venv/bin/python bench/load_test.py --workers 2 --requests 640
    .venv/bin/python bench/load_test.py --url http://127.0.0.1:8000
    .venv/bin/python bench/load_test.py --concurrency 64 --duration 60   # soak: RSS samples

Target (issue 4): 32 concurrent clients, zero errors, p95 under 1 s on a 2-core machine.
Target (issue 9): 64 clients for 60 s, zero errors, the server's RSS flat within 5% after
warm-up (`--duration` samples the started server's RSS every few seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingest import run_ingest
from kb.core import load_settings

DATASET = ROOT / ".." / "shared" / "datasets" / "hotpotqa-100"


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    server_seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def questions() -> list[str]:
    with open(DATASET / "questions.jsonl", encoding="utf-8") as fh:
        return [json.loads(line)["question"] for line in fh if line.strip()]


def ensure_ingested(data_dir: Path) -> None:
    """Ingest hotpotqa-100's corpus into `data_dir` (incremental: a no-op if current)."""
    started = time.perf_counter()
    summary = run_ingest(load_settings(data_dir=data_dir), DATASET / "corpus.jsonl")
    print(
        f"corpus: {summary.documents} documents, {summary.chunks} chunks, "
        f"{summary.corpus_tokens:,} tokens, version {summary.corpus_version} "
        f"({summary.chunks_embedded} chunks embedded in {time.perf_counter() - started:.1f}s)"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(data_dir: Path, workers: int, hops: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "api.cli",
        "serve",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env["KB_RETRIEVAL_HOPS"] = str(hops)
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    # a first start builds the reader's sentence index: wait for /readyz, not /healthz
    wait_for(process, f"{url}/readyz", 600)
    return process, url


def wait_for(process: subprocess.Popen[bytes], url: str, seconds: float) -> None:
    """Until `url` answers 200; SystemExit when `process` exits or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with code {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    process.terminate()
    raise SystemExit(f"{url} did not answer 200 within {seconds:.0f} s")


def rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and its children (uvicorn workers), from /proc."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += next(
            int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")
        )
        pending += [int(child) for child in children]
    return total


async def sample_rss(pid: int, samples: list[tuple[float, int]], every: float = 5.0) -> None:
    started = time.perf_counter()
    while True:
        samples.append((time.perf_counter() - started, rss_bytes(pid)))
        await asyncio.sleep(every)


async def run_load(
    url: str,
    pool: list[str],
    total: int,
    concurrency: int,
    mode: str,
    top_k: int | None,
    duration: float | None = None,
    server_pid: int | None = None,
    rss: list[tuple[float, int]] | None = None,
) -> tuple[Result, float]:
    """`total` questions, or as many as fit in `duration` seconds when it is given."""
    result = Result()
    queue: asyncio.Queue[str] = asyncio.Queue()
    for n in range(total):
        queue.put_nowait(pool[n % len(pool)])
    deadline = time.perf_counter() + duration if duration else None
    asked = iter(range(10**9))

    async def client_loop() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            while True:
                if deadline is not None:
                    if time.perf_counter() >= deadline:
                        return
                    question = pool[next(asked) % len(pool)]
                else:
                    try:
                        question = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                body: dict[str, object] = {"question": question, "mode": mode}
                if top_k is not None:
                    body["top_k"] = top_k
                started = time.perf_counter()
                try:
                    response = await client.post("/v1/query", json=body)
                except httpx.HTTPError as exc:
                    result.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    result.errors.append(f"{response.status_code}: {response.text[:200]}")
                    continue
                result.latencies.append(elapsed)
                result.server_seconds.append(response.json()["timings"]["total_s"])

    sampler = None
    if server_pid is not None and rss is not None:
        sampler = asyncio.create_task(sample_rss(server_pid, rss))
        watched = server_pid
    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    if sampler is not None:
        sampler.cancel()
        rss.append((wall, rss_bytes(watched)))  # type: ignore[union-attr]
    return result, wall


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="target a running server instead of starting one")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "kb-bench" / "hotpotqa-100",
        help="index of hotpotqa-100 (reused between runs)",
    )
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument(
        "--hops",
        choices=("auto", "1", "2"),
        default="auto",
        help="KB_RETRIEVAL_HOPS of the started server (default auto, the service's default)",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=320, help="questions to send")
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="send questions for this many seconds instead (and sample the server's RSS)",
    )
    parser.add_argument("--warmup", type=int, default=16, help="questions sent first, unmeasured")
    parser.add_argument("--mode", default="rag", help="query mode (default rag)")
    parser.add_argument("--top-k", type=int, default=None, help="passages (default KB_TOP_K)")
    return parser


def main() -> int:
    args = build_parser().parse_args()
    result, wall, rss = measure(args)
    return print_results(args, result, wall, rss)


def measure(args: argparse.Namespace) -> tuple[Result, float, list[tuple[float, int]]]:
    """The warm-up questions, then the measured ones, against a started server or
    `--url`: the result, its wall seconds and the started server's RSS samples."""
    pool = questions()
    process = None
    if args.url:
        url = args.url.rstrip("/")
    else:
        ensure_ingested(args.data_dir)
        process, url = start_server(args.data_dir, args.workers, args.hops)
    try:
        warm, _ = asyncio.run(run_load(url, pool[::-1], args.warmup, 4, args.mode, args.top_k))
        if warm.errors:
            print(f"warm-up errors: {warm.errors[:3]}")
        rss: list[tuple[float, int]] = []
        pid = process.pid if process is not None else None
        result, wall = asyncio.run(
            run_load(
                url,
                pool,
                args.requests,
                args.concurrency,
                args.mode,
                args.top_k,
                args.duration,
                pid,
                rss,
            )
        )
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    return result, wall, rss


def print_results(
    args: argparse.Namespace, result: Result, wall: float, rss: list[tuple[float, int]]
) -> int:
    """Throughput, latency, errors and the targets; the exit code (1 on any error)."""
    done = len(result.latencies)
    load = os.getloadavg()[0]
    print(
        f"{args.requests} questions (mode {args.mode}), {args.concurrency} concurrent clients, "
        f"{args.workers if not args.url else '?'} worker(s), "
        f"{f'{args.hops} retrieval hop(s), ' if not args.url else ''}{os.cpu_count()} cores, "
        f"load average {load:.1f}"
    )
    print(f"throughput: {done / wall:.1f} answers/s ({done} in {wall:.1f}s)")
    if done:
        lat = result.latencies
        ms = {q: f"{percentile(lat, q) * 1000:.0f} ms" for q in (50, 95, 99)}
        print(f"latency: p50 {ms[50]}, p95 {ms[95]}, p99 {ms[99]}, max {max(lat) * 1000:.0f} ms")
        print(
            f"server time per answer (timings.total_s): mean "
            f"{statistics.mean(result.server_seconds) * 1000:.0f} ms, p95 "
            f"{percentile(result.server_seconds, 95) * 1000:.0f} ms"
        )
    print(f"errors: {len(result.errors)}")
    for error in result.errors[:5]:
        print(f"  {error}")
    if rss:
        flat = report_rss(rss)
        print(f"target (RSS flat within 5% after warm-up): {'met' if flat else 'missed'}")
    met = not result.errors and done and percentile(result.latencies, 95) < 1.0
    print(f"target (0 errors, p95 < 1 s): {'met' if met else 'missed'}")
    return 0 if not result.errors else 1


def report_rss(samples: list[tuple[float, int]], warm_up_share: float = 0.25) -> bool:
    """Print the RSS samples; True if those after the first `warm_up_share` of the run
    stay within 5% of their minimum."""
    print("server RSS (s: MB): " + ", ".join(f"{t:.0f}: {b / 2**20:.0f}" for t, b in samples))
    end = samples[-1][0]
    settled = [b for t, b in samples if t >= end * warm_up_share] or [samples[-1][1]]
    spread = (max(settled) - min(settled)) / min(settled)
    print(
        f"after warm-up (last {1 - warm_up_share:.0%} of the run): min "
        f"{min(settled) / 2**20:.0f} MB, max {max(settled) / 2**20:.0f} MB, "
        f"spread {spread:.1%}, load average {os.getloadavg()[0]:.1f}"
    )
    return spread <= 0.05


if __name__ == "__main__":
    raise SystemExit(main())
