"""Issue 20's request attacks re-run against a real `kb serve` process: figures, not a test.

Ingests corpora/handbook into a temporary data dir, starts `kb serve` on a free
loopback port (the offline extractive backend), and measures:

- F8: the server's RSS when warm, with 100 streamed chat completions open and unread
  (each asking with a `model` of the longest allowed name), and after they close;
  a 900 KB `model` is refused (422);
- F5: `/healthz` latency (median, p95, max) while 4 clients send `/mcp` requests
  with 250 KB URIs for 10 s, and the server's log bytes meanwhile; a 950 KB URI is
  refused.

    .venv/bin/python bench/abuse_bench.py

Targets (issue 20): RSS back within 5% of warm after the streams close; `/healthz`
under 100 ms while `/mcp` is abused.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cli_latency import CORPUS, ROOT, free_port, kb_command, load, wait_ready

MODEL_NAME_CHARS = 256
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}
QUESTION = [
    {"role": "user", "content": "How quickly must the on-call engineer acknowledge a page?"}
]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def streams(url: str, pid: int, count: int = 100) -> None:
    client = httpx.Client(base_url=url, timeout=120)
    for _ in range(5):  # warm: the question path and its caches
        client.post("/v1/chat/completions", json={"messages": QUESTION})
    warm = rss_mb(pid)
    body = {"model": "m" * MODEL_NAME_CHARS, "messages": QUESTION, "stream": True}
    opened = []
    for _ in range(count):
        response = client.send(
            client.build_request("POST", "/v1/chat/completions", json=body), stream=True
        )
        opened.append(response)
    time.sleep(2)
    held = rss_mb(pid)
    for response in opened:
        response.close()
    time.sleep(5)
    after = rss_mb(pid)
    refused = client.post("/v1/chat/completions", json=body | {"model": "m" * 900_000})
    print(
        f"F8: RSS warm {warm:.0f} MB, with {count} unread streams {held:.0f} MB, after they "
        f"closed {after:.0f} MB ({100 * (after - warm) / warm:+.1f}% of warm; target within 5%); "
        f"900 KB model: HTTP {refused.status_code} ({load()})"
    )


def mcp_abuse(url: str, log: Path, seconds: float = 10.0) -> None:
    stop = threading.Event()
    payload = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "resources/read",
        "params": {"uri": "kb://documents/" + "a" * 250_000},
    }
    sent = [0]

    def hammer() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while not stop.is_set():
                client.post("/mcp", json=payload, headers=MCP_HEADERS)
                sent[0] += 1

    log_before = log.stat().st_size
    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    latencies = []
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=url, timeout=60) as client:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            client.get("/healthz")
            latencies.append(1000 * (time.perf_counter() - started))
            time.sleep(0.05)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        big = dict(payload, params={"uri": "kb://documents/" + "a" * 950_000})
        refused = client.post("/mcp", json=big, headers=MCP_HEADERS)
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(
        f"F5: {sent[0]} abusive /mcp requests in {seconds:.0f} s; /healthz over "
        f"{len(latencies)} probes: median {statistics.median(latencies):.1f} ms, p95 "
        f"{p95:.1f} ms, max {latencies[-1]:.1f} ms (target < 100 ms); server log grew "
        f"{log.stat().st_size - log_before:,} bytes; 950 KB URI: HTTP {refused.status_code} "
        f"({load()})"
    )


def main() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    with tempfile.TemporaryDirectory() as tmp:
        env["KB_DATA_DIR"] = str(Path(tmp) / "data")
        env["KB_MAX_BODY_BYTES"] = "2000000"  # so each bound is met by its own check
        kb_command("ingest", str(CORPUS), "--json", env=env)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path(tmp) / "serve.log"
        with log.open("wb") as sink:
            server = subprocess.Popen(
                [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--no-access-log"],
                cwd=ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_ready(url, server)
                streams(url, server.pid)
                mcp_abuse(url, log)
            finally:
                server.terminate()
                server.wait(timeout=60)


if __name__ == "__main__":
    main()
