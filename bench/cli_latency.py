"""Wall time of `kb ask` against a running `kb serve` (KB_URL), on the sample handbook.

Ingests corpora/handbook into a temporary data dir, starts `kb serve` on a free
loopback port, waits until it is ready, then times the whole `kb ask` command
(process start, imports, the HTTP round trip, printing) 5 times with KB_URL set,
and once without it (the command loads the model itself) for comparison. Prints
the median and every run, with the load average next to each figure.

    .venv/bin/python bench/cli_latency.py [--runs 5]

Target (issue 10): median under 1 s of wall time with KB_URL.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "corpora" / "handbook"
QUESTION = "How quickly must the on-call engineer acknowledge a page?"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def kb_command(*args: str, env: dict[str, str]) -> float:
    """Run `python -m api.cli ARGS` from the repository root; its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, server: subprocess.Popen[bytes], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"kb serve exited with {server.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("kb serve did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    with tempfile.TemporaryDirectory() as tmp:
        env["KB_DATA_DIR"] = str(Path(tmp) / "data")
        kb_command("ingest", str(CORPUS), "--json", env=env)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--no-access-log"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(url, server)
            remote_env = env | {"KB_URL": url}
            kb_command("ask", QUESTION, env=remote_env)  # one untimed run: the OS file cache
            times = []
            for run in range(1, args.runs + 1):
                seconds = kb_command("ask", QUESTION, env=remote_env)
                times.append(seconds)
                print(f"kb ask with KB_URL, run {run}: {seconds:.3f} s ({load()})")
            median = statistics.median(times)
            verdict = "met" if median < 1.0 else "missed"
            print(
                f"median of {len(times)} `kb ask` with KB_URL: {median:.3f} s "
                f"(target < 1 s: {verdict}; {load()})"
            )
            local = kb_command("ask", QUESTION, "--local", env=env)
            print(f"one `kb ask --local` (loads the model itself): {local:.3f} s ({load()})")
        finally:
            server.terminate()
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
