"""The `kb` command as a user runs it (real subprocesses): help, version, `kb ask`
through a running service (KB_URL), and `kb chat` sessions."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kb import __version__
from kb.search.embedding import Embedder
from tests.conftest import ROOT
from tests.live_server import SERVICE_KEY, LiveServer, make_settings, serving


def kb(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m api.cli ARGS` from the repository root, with only the given KB_* set."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KB_")} | env
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
        env=environ,
    )


@pytest.mark.integration
def test_plain_kb_prints_help_and_version() -> None:
    plain = kb()
    assert plain.returncode == 0, plain.stderr
    for command in ("ingest", "ask", "chat", "serve", "mcp", "report"):
        assert f"    {command} " in plain.stdout
    version = kb("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"kb {__version__}")


@pytest.fixture(scope="module")
def server(
    handbook: tuple[Path, Path], embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("cli"),
        data_dir=handbook[1],
        service_api_key=SERVICE_KEY,
        require_key_for_queries=True,
    )
    with serving(settings, embedder) as live:
        yield live


@pytest.mark.integration
def test_ask_goes_to_the_running_service_and_says_so(server: LiveServer) -> None:
    result = kb(
        "ask", "When are production deploys frozen?", "--mode", "rag",
        KB_URL=server.url, KB_SERVICE_API_KEY=SERVICE_KEY,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"asking the kb service at {server.url} (KB_URL)" in result.stderr
    assert "Friday 15:00" in result.stdout
    assert "(engineering/deploys.md, chars " in result.stdout
    assert "route: rag (mode rag)" in result.stdout

    as_json = kb("ask", "How quickly must the on-call engineer acknowledge a page?", "--json",
                 KB_URL=server.url, KB_SERVICE_API_KEY=SERVICE_KEY)  # fmt: skip
    assert json.loads(as_json.stdout)["citations"][0]["doc_id"] == "oncall/rotation.md"


@pytest.mark.integration
def test_service_errors_reach_the_command_line(server: LiveServer) -> None:
    no_key = kb("ask", "When are deploys frozen?", KB_URL=server.url)
    assert no_key.returncode == 2
    assert "AuthError" in no_key.stderr and "KB_SERVICE_API_KEY" in no_key.stderr
    assert "Traceback" not in no_key.stderr

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gone = kb("ask", "When are deploys frozen?", KB_URL=f"http://127.0.0.1:{port}")
    assert gone.returncode == 1
    assert "Could not reach the kb service" in gone.stderr and "kb serve" in gone.stderr
    assert "Traceback" not in gone.stderr

    bad = kb("ask", "x", KB_URL="localhost:8000")
    assert bad.returncode == 2 and "KB_URL" in bad.stderr


@pytest.mark.integration
def test_chat_session_keeps_the_conversation(server: LiveServer) -> None:
    lines = "Who runs the access portal?\nHow long do its grants last?\n/new\n\nWhy?\n"
    result = kb("chat", "--mode", "rag", "--json", stdin=lines, KB_URL=server.url,
                KB_SERVICE_API_KEY=SERVICE_KEY)  # fmt: skip
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(answers) == 3
    follow_up = answers[1]
    assert follow_up["standalone_question"] == (
        "Who runs the access portal? How long do its grants last?"
    )
    assert [c["doc_id"] for c in follow_up["citations"]] == ["security/access.md"]
    assert "(new conversation)" in result.stderr
    assert answers[2]["standalone_question"] is None  # "Why?" opened a new conversation


@pytest.mark.integration
def test_local_chat_loads_once_and_answers_each_line(handbook: tuple[Path, Path]) -> None:
    lines = "Who runs the access portal?\nHow long do its grants last?\n"
    result = kb("chat", "--mode", "rag", "--data-dir", str(handbook[1]), stdin=lines)
    assert result.returncode == 0, result.stderr
    assert "answering in this process" in result.stderr
    assert "eight hours" in result.stdout
    assert "asked as: Who runs the access portal? How long do its grants last?" in result.stdout
