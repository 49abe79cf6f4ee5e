"""More than one machine: two `kb serve` processes (each with its own model and caches)
read one data directory and one Chroma server while a `kb ingest` from a third process
commits a new version. Both keep answering under load, with no errors, and both answer
from the new version once it is committed, having loaded it by themselves."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.chroma_server import ChromaServer, free_port, stop_process
from tests.conftest import ROOT, write_corpus

OLD = "The quarterly offsite is held in Lisbon in the first week of June."
NEW = "The quarterly offsite moved to Porto, in the second week of September."
QUESTION = "Where is the quarterly offsite held?"


def _env(chroma_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    # The subprocesses import this checkout, whatever the current folder is.
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", KB_CHROMA_URL=chroma_url)
    env.update(KB_CHUNK_TOKENS="64", KB_CHUNK_OVERLAP="8")
    return env


def _ingest(corpus: Path, data_dir: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "ingest", str(corpus), "--data-dir", str(data_dir)],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


class Server:
    """One `kb serve` process on a free loopback port."""

    def __init__(self, data_dir: Path, env: dict[str, str], log: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = log.open("wb")
        port = self.url.rsplit(":", 1)[1]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--data-dir", str(data_dir),
             "--port", port, "--log-level", "warning", "--no-access-log"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def wait_ready(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"kb serve exited; see {self.log.name}"
            try:
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"{self.url} not ready after {timeout}s")

    def wait_warm(self, version: str, timeout: float = 120) -> None:
        """Until the server has loaded and warmed `version` by itself (no question asks
        for it: `/readyz` reports what the server's own warm-up last loaded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if httpx.get(f"{self.url}/readyz", timeout=5).json().get("warm_version") == version:
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.url} did not warm version {version} in {timeout}s")

    def stop(self) -> None:
        stop_process(self.process, timeout=30)
        self.log.close()


def _ask(client: httpx.Client, url: str) -> tuple[int, str, str]:
    response = client.post(f"{url}/v1/query", json={"question": QUESTION, "mode": "rag"})
    if response.status_code != 200:
        return response.status_code, response.text, ""
    body = response.json()
    return 200, body["answer"], body["corpus_version"]


@pytest.mark.integration
def test_two_servers_answer_from_a_version_an_external_ingest_commits(
    chroma_server: ChromaServer, tmp_path: Path
) -> None:
    env = _env(chroma_server.url)
    data_dir = tmp_path / "shared-data"
    corpus = write_corpus(
        tmp_path / "docs",
        {
            "events/offsite.md": f"# Offsite\n\n{OLD}\nEveryone travels by train.",
            "it/laptops.md": "# Laptops\n\nLaptops are replaced every four years.",
            "office/kitchen.md": "# Kitchen\n\nThe dishwasher runs every evening at six.",
        },
    )
    _ingest(corpus, data_dir, env)
    servers = [Server(data_dir, env, tmp_path / f"serve-{n}.log") for n in range(2)]
    stop = threading.Event()
    outcomes: list[tuple[int, str, str]] = []
    try:
        for server in servers:
            server.wait_ready()
        with httpx.Client(timeout=120) as client:
            before = {_ask(client, s.url) for s in servers}
        assert {(status, "Lisbon" in answer) for status, answer, _ in before} == {(200, True)}
        (old_version,) = {version for _, _, version in before}

        def load(url: str) -> None:  # a bounded load: one question at a time per server
            with httpx.Client(timeout=120) as client:
                while not stop.is_set():
                    outcomes.append(_ask(client, url))

        workers = [threading.Thread(target=load, args=(s.url,)) for s in servers for _ in (0, 1)]
        for worker in workers:
            worker.start()
        (corpus / "events" / "offsite.md").write_text(f"# Offsite\n\n{NEW}\n", "utf-8")
        (corpus / "office" / "kitchen.md").unlink()
        _ingest(corpus, data_dir, env)  # a third process, as from another host
        new_version = httpx.get(f"{servers[0].url}/v1/corpus", timeout=60).json()
        time.sleep(1.0)  # answers under load after the commit, too
        stop.set()
        for worker in workers:
            worker.join(timeout=300)
        for server in servers:  # each loads the new version without being asked
            server.wait_warm(new_version["corpus_version"])

        with httpx.Client(timeout=120) as client:
            after = [_ask(client, s.url) for s in servers]
    finally:
        stop.set()
        for server in servers:
            server.stop()

    errors = [outcome for outcome in outcomes if outcome[0] != 200]
    assert not errors, errors[:3]
    assert len(outcomes) >= 4
    assert new_version["corpus_version"] != old_version
    for status, answer, version in after:
        assert (status, version) == (200, new_version["corpus_version"])
        assert "Porto" in answer and "Lisbon" not in answer
    # Every answer under load came from the old or the new version, never a third state.
    assert {version for _, _, version in outcomes} <= {old_version, new_version["corpus_version"]}
