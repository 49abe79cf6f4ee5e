"""Many knowledge bases in one server: load across three, and memory with twenty.

    .venv/bin/python bench/kbs_bench.py load --data-dir DIR [--kb handbook --kb hotpotqa ...]
    .venv/bin/python bench/kbs_bench.py memory --data-dir DIR [--kbs 20] [--max-loaded 20]

`load` serves DIR (knowledge bases made with `kb ingest PATH --kb NAME`), prints how
`auto` routes each one and why, then runs N clients (default 32) spread evenly over
the named bases for a duration (default 60 s): errors, p50/p95 per base and overall,
the paths taken, and the server's RSS sampled every 5 s.

`memory` makes `--kbs` knowledge bases of 40 hotpotqa-100 paragraphs each in DIR
(once), serves them with KB_MAX_LOADED_KBS=`--max-loaded`, and asks each one question
in turn, printing the server's RSS after each base is loaded.

Every figure is printed with the load average beside it (a shared 2-core machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load_test import (
    DATASET,
    free_port,
    percentile,
    report_rss,
    rss_bytes,
    sample_rss,
    wait_for,
)
from kb import UNLOAD_GRACE_S

KEY = "bench-admin-key-3b9e"
HEADERS = {"Authorization": f"Bearer {KEY}"}


def load_avg() -> str:
    return f"load average {os.getloadavg()[0]:.1f}"


def serve(data_dir: Path, **env_extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env |= {"KB_SERVICE_API_KEY": KEY, **env_extra}
    command = [sys.executable, "-m", "api.cli", "serve", "--data-dir", str(data_dir)]
    command += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_for(process, f"{url}/healthz", 600)
    return process, url


def questions_for(name: str, source: str | None) -> list[str]:
    """Questions for a base: its dataset's own questions where there are some, else
    "What does X say?" over its document titles."""
    candidates = []
    if source:
        src = Path(source)
        folder = src if src.is_dir() else src.parent
        candidates = [folder / "questions.jsonl", folder.parent / f"{folder.name}.questions.jsonl"]
    for path in candidates:
        if path.is_file():
            lines = path.read_text("utf-8").splitlines()
            return [json.loads(line)["question"] for line in lines if line.strip()][:200]
    return []


# ---- load ------------------------------------------------------------------------------


async def _client(
    url: str, name: str, pool: list[str], deadline: float, results: dict[str, list[float]],
    errors: list[str], paths: Counter[tuple[str, str]], offset: int,
) -> None:  # fmt: skip
    n = offset
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, timeout=120) as client:
        while time.perf_counter() < deadline:
            question = pool[n % len(pool)]
            n += 1
            started = time.perf_counter()
            try:
                response = await client.post(f"/v1/kbs/{name}/query", json={"question": question})
            except httpx.HTTPError as exc:
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            if response.status_code != 200:
                errors.append(f"{name}: {response.status_code}: {response.text[:200]}")
                continue
            results[name].append(time.perf_counter() - started)
            paths[(name, response.json()["route"]["path"])] += 1


async def run_load(
    url: str, pools: dict[str, list[str]], clients: int, duration: float, pid: int
) -> tuple[dict[str, list[float]], list[str], Counter[tuple[str, str]], list[tuple[float, int]]]:
    results: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    paths: Counter[tuple[str, str]] = Counter()
    rss: list[tuple[float, int]] = []
    sampler = asyncio.create_task(sample_rss(pid, rss))
    deadline = time.perf_counter() + duration
    names = list(pools)
    tasks = [
        _client(url, names[i % len(names)], pools[names[i % len(names)]], deadline, results,
                errors, paths, i * 7)
        for i in range(clients)
    ]  # fmt: skip
    started = time.perf_counter()
    await asyncio.gather(*tasks)
    sampler.cancel()
    rss.append((time.perf_counter() - started, rss_bytes(pid)))
    return results, errors, paths, rss


def cmd_load(args: argparse.Namespace) -> int:
    process, url = serve(args.data_dir)
    try:
        with httpx.Client(base_url=url, headers=HEADERS, timeout=600) as client:
            pools = {}
            for name in args.kb:
                info = client.get(f"/v1/kbs/{name}").json()
                route = info["auto_route"]
                print(f"{name}: {info['documents']} documents, {info['corpus_tokens']:,} tokens; "
                      f"auto -> {route['path']}: {route['reason']}")  # fmt: skip
                pools[name] = questions_for(name, info["source"]) or [
                    f"What does {t} say?" for t in _titles(client, name)
                ]
                client.post(f"/v1/kbs/{name}/query", json={"question": pools[name][0]})  # load
                print(f"  loaded {name}: server RSS {rss_bytes(process.pid) / 2**20:.0f} MB "
                      f"({load_avg()})")  # fmt: skip
            if args.cross:
                _cross(client, args.cross, args.kb)
        print(f"warm: every base loaded ({load_avg()})")
        results, errors, paths, rss = asyncio.run(
            run_load(url, pools, args.clients, args.duration, process.pid)
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
    every = [x for values in results.values() for x in values]
    print(f"{args.clients} clients over {', '.join(args.kb)} for {args.duration:.0f} s, "
          f"{os.cpu_count()} cores, {load_avg()}")  # fmt: skip
    for name, values in results.items():
        took = ", ".join(f"{path} {count}" for (kb, path), count in paths.items() if kb == name)
        print(f"  {name}: {len(values)} answers ({took}), {_ms(values)}")
    print(f"all: {len(every)} answers, {len(every) / args.duration:.1f}/s, {_ms(every)}")
    print(f"errors: {len(errors)}")
    for error in errors[:5]:
        print(f"  {error}")
    flat = report_rss(rss)
    print(f"target (0 errors, RSS flat within 5% after warm-up): "
          f"{'met' if flat and not errors else 'missed'}")  # fmt: skip
    return 0 if not errors else 1


def _cross(client: httpx.Client, question: str, names: list[str]) -> None:
    """Ask one question across `names` and print each base's route and what it cites."""
    body = client.post("/v1/kbs/query", json={"question": question, "kbs": names}).json()
    print(f"across {', '.join(names)}: {question!r}\n  answer: {body['answer']!r}")
    for part in body["per_kb"]:
        result = part["result"]
        print(f"  {part['kb']}: {result['route']['path']} ({result['route']['reason']}); "
              f"{result['usage']['total_input_tokens']:,} prompt tokens, "
              f"{part['budget_left']:,} budget left")  # fmt: skip
    for cited in body["citations"]:
        print(f"  [{cited['number']}] {cited['kb']}: {cited['title']} ({cited['doc_id']})")


def _ms(values: list[float]) -> str:
    return f"p50 {percentile(values, 50) * 1000:.0f} ms, p95 {percentile(values, 95) * 1000:.0f} ms"


def _titles(client: httpx.Client, name: str) -> list[str]:
    items = client.get(f"/v1/kbs/{name}/documents", params={"limit": 200}).json()["items"]
    return [item["title"] for item in items]


# ---- memory ------------------------------------------------------------------------------


def make_bases(data_dir: Path, count: int, per_kb: int = 40) -> list[str]:
    """`count` knowledge bases of `per_kb` hotpotqa-100 paragraphs each (ingested once)."""
    lines = (DATASET / "corpus.jsonl").read_text("utf-8").splitlines()
    names = [f"kb{n:02d}" for n in range(count)]
    sources = data_dir.parent / f"{data_dir.name}-sources"
    for n, name in enumerate(names):
        if (data_dir / "kbs" / name / "current.json").is_file():
            continue
        part = lines[(n * per_kb) % len(lines) :][:per_kb]
        source = sources / f"{name}.jsonl"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("\n".join(part) + "\n", "utf-8")
        command = [sys.executable, "-m", "api.cli", "ingest", str(source), "--kb", name,
                   "--data-dir", str(data_dir), "--json"]  # fmt: skip
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return names


def _touch(client: httpx.Client, name: str) -> None:
    """Load a base: a retrieval question (its vectors) and a long-context one (its reader)."""
    for mode in ("rag", "long_context"):
        body = {"question": "Which film came out first?", "mode": mode}
        client.post(f"/v1/kbs/{name}/query", json=body).raise_for_status()


def cmd_memory(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    names = make_bases(args.data_dir, args.kbs)
    print(f"{len(names)} knowledge bases ready in {time.perf_counter() - started:.0f} s "
          f"({load_avg()})")  # fmt: skip
    process, url = serve(args.data_dir, KB_MAX_LOADED_KBS=str(args.max_loaded))
    try:
        with httpx.Client(base_url=url, headers=HEADERS, timeout=600) as client:
            client.post("/v1/kbs/query", json={"question": "warm up", "kbs": [names[0]]})
            time.sleep(1)
            before = rss_bytes(process.pid)
            print(f"server RSS with the model and {names[0]} loaded: {before / 2**20:.0f} MB "
                  f"({load_avg()})")  # fmt: skip
            previous, deltas = before, []
            for name in names[1:]:
                _touch(client, name)
                now = rss_bytes(process.pid)
                deltas.append(now - previous)
                previous = now
                print(f"  {name} loaded: RSS {now / 2**20:.0f} MB (+{(deltas[-1]) / 2**20:.1f} "
                      f"MB), {load_avg()}")  # fmt: skip
            for n in range(2, args.passes + 1):  # again: is memory reused or does it grow?
                for name in names:
                    _touch(client, name)
                print(f"pass {n} over all {len(names)}: RSS {rss_bytes(process.pid) / 2**20:.0f} "
                      f"MB, {load_avg()}")  # fmt: skip
            info = client.get(f"/v1/kbs/{names[-1]}").json()
            time.sleep(UNLOAD_GRACE_S + 3)  # evicted bases are closed after a grace period
            settled = rss_bytes(process.pid)
            loaded = len([kb for kb in client.get("/v1/kbs").json()["data"] if kb["loaded"]])
    finally:
        process.terminate()
        process.wait(timeout=30)
    mean = sum(deltas) / len(deltas)
    print(f"{len(names)} bases, at most {args.max_loaded} kept loaded: RSS {before / 2**20:.0f} "
          f"-> {previous / 2**20:.0f} MB; mean +{mean / 2**20:.1f} MB per base loaded "
          f"(each base: {info['documents']} documents, {info['corpus_tokens']:,} tokens, "
          f"{info['index_bytes'] / 2**20:.1f} MB on disk); {load_avg()}")  # fmt: skip
    print(f"{UNLOAD_GRACE_S + 3:.0f} s later, {loaded} bases loaded (the default's included): "
          f"RSS {settled / 2**20:.0f} MB; {load_avg()}")  # fmt: skip
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    load = sub.add_parser("load", help="N clients over several bases for a duration")
    load.add_argument("--data-dir", type=Path, required=True)
    load.add_argument("--kb", action="append", required=True, help="a base to load (repeat)")
    load.add_argument("--clients", type=int, default=32)
    load.add_argument("--duration", type=float, default=60.0)
    load.add_argument("--cross", metavar="QUESTION", help="first ask this across every --kb")
    load.set_defaults(func=cmd_load)
    memory = sub.add_parser("memory", help="RSS as bases are loaded one after another")
    memory.add_argument("--data-dir", type=Path, required=True)
    memory.add_argument("--kbs", type=int, default=20)
    memory.add_argument("--max-loaded", type=int, default=20)
    memory.add_argument("--passes", type=int, default=1, help="times over every base")
    memory.set_defaults(func=cmd_memory)
    args = parser.parse_args()
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
