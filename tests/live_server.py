"""A real uvicorn server on loopback for the API tests, and a small fixture corpus.

The server runs in a thread of the test process, so it shares the session's
embedding model (and monkeypatches reach it), but every request goes over real
HTTP on 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from api.app import create_app
from ingest.pipeline import run_ingest
from kb.backends import AnswerBackend
from kb.core.models import IngestSummary
from kb.core.settings import Settings, load_settings
from kb.search.embedding import Embedder
from tests.conftest import write_corpus

SERVICE_KEY = "test-service-key-5f1c"

# A small handbook: each document states facts no other one does. One sentence per
# line: the sentence splitter also breaks at line ends.
HANDBOOK: dict[str, str] = {
    "engineering/deploys.md": """# Deploys

Production deploys are frozen from Friday 15:00 until Monday 09:00 UTC.
A hotfix during the freeze needs approval from the incident commander.

Every deploy goes through the canary stage first.
The canary receives five percent of traffic for twenty minutes.
After that the rollout continues to every region.

Rollbacks use the deploy tool's revert command.
It redeploys the previous release artifact in under four minutes.
""",
    "oncall/rotation.md": """# On-call rotation

The on-call engineer must acknowledge a page within five minutes.
Rotations last one week and hand over on Tuesdays at 10:00 local time.

A secondary engineer takes the page if the primary has not acknowledged it in fifteen minutes.
Escalation after that goes to the engineering manager.
""",
    "policies/travel.md": """# Travel policy

The nightly hotel cap in New York is 350 dollars; elsewhere it is 220 dollars.
Economy class is the default for flights shorter than six hours.

Expense reports are due within thirty days of the end of the trip.
Every item above 25 dollars needs a receipt.
""",
    "architecture/sieve.md": """# Sieve

Sieve is the internal spam-filtering service, written in Rust.
It scores each message from the ingest queue with a model retrained every night.

When the consumer lag of Sieve exceeds ten thousand messages, scale it out.
The on-call engineer scales the consumer group from four to twelve replicas.
""",
    "security/access.md": """# Access reviews

Access to production databases is reviewed every quarter by the security team.
Engineers request temporary access through the access portal; grants expire after eight hours.

Hardware security keys are mandatory for every employee with production access.
""",
}

# Settings small enough that validation limits are cheap to hit.
TEST_SETTINGS: dict[str, object] = {
    "chunk_tokens": 64,
    "chunk_overlap": 8,
    "max_question_chars": 500,
    "max_body_bytes": 4_000,
}


def make_settings(workdir: Path, **overrides: object) -> Settings:
    """Settings from explicit values only: no KB_* variable or .env of the developer."""
    saved = {name: os.environ.pop(name) for name in list(os.environ) if name.startswith("KB_")}
    cwd = Path.cwd()
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    try:
        return load_settings(**(TEST_SETTINGS | overrides))
    finally:
        os.chdir(cwd)
        os.environ.update(saved)


def ingest_handbook(
    root: Path, embedder: Embedder, files: dict[str, str] | None = None
) -> tuple[Path, Path, IngestSummary]:
    """Write the handbook under `root/corpus` and ingest it into `root/data`."""
    corpus_dir = write_corpus(root / "corpus", dict(files or HANDBOOK))
    data_dir = root / "data"
    settings = make_settings(root, data_dir=data_dir, corpus_dir=corpus_dir)
    summary = run_ingest(settings, corpus_dir, embedder=embedder)
    return corpus_dir, data_dir, summary


@dataclass
class LiveServer:
    url: str
    app: FastAPI
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, key: str | None = None, timeout: float = 60.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_server(
    settings: Settings,
    embedder: Embedder,
    *,
    backend: AnswerBackend | None = None,
    wait_ready: bool = True,
) -> LiveServer:
    """Serve `create_app(settings)` on a free loopback port; return once it accepts
    requests (and, with `wait_ready`, once /readyz says ready)."""
    app = create_app(settings, embedder=embedder, backend=backend)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    live = LiveServer(f"http://127.0.0.1:{port}", app, server, thread)
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    if wait_ready:
        with live.client() as client:
            while client.get("/readyz").status_code != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not ready: {client.get('/readyz').text}")
                time.sleep(0.05)
    return live


@contextmanager
def serving(
    settings: Settings,
    embedder: Embedder,
    *,
    backend: AnswerBackend | None = None,
    wait_ready: bool = True,
) -> Iterator[LiveServer]:
    live = start_server(settings, embedder, backend=backend, wait_ready=wait_ready)
    try:
        yield live
    finally:
        live.stop()


def readiness_after_warm_up(client: httpx.Client, timeout: float) -> httpx.Response:
    """The server's `/readyz` answer once it no longer says it is warming up."""
    deadline = time.monotonic() + timeout
    while (ready := client.get("/readyz")).json()["reason"].startswith("warming up"):
        assert time.monotonic() < deadline, f"still warming up after {timeout}s"
        time.sleep(0.1)
    return ready


def parse_sse(text: str) -> list[tuple[str, str]]:
    """(event name, data) of each frame of a text/event-stream body."""
    frames: list[tuple[str, str]] = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line[len("event:") :].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:") :].lstrip())
        frames.append((name, "\n".join(data)))
    return frames
