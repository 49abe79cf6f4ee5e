"""A real Chroma server for tests: `chroma run` on a free loopback port, which can be
stopped and started again, and the `chroma_server` fixture (see tests/conftest.py)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMA = Path(sys.executable).parent / "chroma"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_heartbeat(url: str, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"chroma run exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no Chroma heartbeat at {url} after {timeout}s")
        time.sleep(0.2)


class ChromaServer:
    """A `chroma run` subprocess on 127.0.0.1 that can be stopped and started again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(CHROMA), "run", "--path", str(self.path), "--host", "127.0.0.1",
             "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_for_heartbeat(self.url, self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=20)
        self.process = None


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Terminate a test's subprocess; kill it if it has not exited after `timeout`."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[ChromaServer]:
    if not CHROMA.exists() and shutil.which("chroma") is None:
        pytest.skip("the chroma CLI is not installed (pip install chromadb)")
    server = ChromaServer(tmp_path / "chroma-server")
    server.start()
    try:
        yield server
    finally:
        server.stop()
