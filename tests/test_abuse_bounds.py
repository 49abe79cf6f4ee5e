"""Issue 20, F2, F5 and F8-F11: requests built to make the service do unbounded work,
over real HTTP on loopback. The answer backend is the real `openai` client whose
transport records every request instead of calling a paid provider, so each test
can assert what reached the "model": nothing over its bound, ever."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from api.mcp_bounds import MCP_NAME_CHARS, MCP_URI_CHARS
from api.schemas import MODEL_NAME_CHARS
from kb.backends.openai_backend import OpenAIBackend
from kb.conversation import TRANSCRIPT_CHARS, RewriteCache, Turn, transcript
from kb.search.embedding import Embedder
from tests.live_server import SERVICE_KEY, LiveServer, make_settings, serving

LIMIT = 500  # the test settings' KB_MAX_QUESTION_CHARS
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}
UPSTREAM = "http://upstream.internal.example:8000/v1"


class Upstream:
    """The model endpoint's side of the wire: every request body it received, and what
    it answers (a short rewrite, or a 503 whose body names internal things)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.failing = False

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.bodies.append(request.read())
        if self.failing:
            return httpx2.Response(
                503, json={"error": {"message": "pool exhausted on gpu-7 /srv/secret/llm"}}
            )
        text = "Who maintains the on-call rotation?"
        if json.loads(self.bodies[-1]).get("stream"):
            return httpx2.Response(200, text=_sse(text), headers={"Content-Type": SSE})
        message = {"role": "assistant", "content": text}
        return httpx2.Response(
            200,
            json={
                "id": "c1",
                "object": "chat.completion",
                "created": 0,
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            },
        )


SSE = "text/event-stream"


def _sse(text: str) -> str:
    """A streamed chat completion as OpenAI frames it: a delta, the finish, usage, DONE."""
    base = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    frames = [
        base | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": text}}]},
        base | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        base
        | {
            "choices": [],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        },
    ]
    return "".join(f"data: {json.dumps(frame)}\n\n" for frame in frames) + "data: [DONE]\n\n"


@pytest.fixture(scope="module")
def upstream() -> Upstream:
    return Upstream()


@pytest.fixture(scope="module")
def server(
    handbook: tuple[Path, Path],
    embedder: Embedder,
    upstream: Upstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveServer]:
    """Bodies up to 2 MB (so every bound below is met by its own check, not the body
    limit), a service key (the operator's), queries open."""
    settings = make_settings(
        tmp_path_factory.mktemp("abuse"),
        data_dir=handbook[1],
        max_body_bytes=2_000_000,
        service_api_key=SERVICE_KEY,
        base_url=UPSTREAM,
        api_key="sk-test",
    )
    client = httpx2.Client(transport=httpx2.MockTransport(upstream))
    backend = OpenAIBackend(settings, "gpt-4o-mini", http_client=client, max_retries=0)
    with serving(settings, embedder, backend=backend) as live:
        yield live


@pytest.fixture
def sent(upstream: Upstream, server: LiveServer) -> Iterator[list[bytes]]:
    upstream.bodies.clear()
    upstream.failing = False
    server.app.state.service.kb.rewrites.clear()  # every test's rewrite reaches the model
    yield upstream.bodies
    upstream.failing = False


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text[:500]
    return str(response.json()["error"]["message"])


def _chat(server: LiveServer, messages: list[dict[str, str]], **extra: Any) -> httpx.Response:
    with server.client() as client:
        return client.post(
            "/v1/chat/completions", json={"model": "kb-rag", "messages": messages, **extra}
        )


# F2: a follow-up's rewrite call ran before the length check.


@pytest.mark.integration
def test_a_huge_follow_up_is_refused_before_the_rewrite_call(
    server: LiveServer, sent: list[bytes]
) -> None:
    messages = [
        {"role": "user", "content": "Who maintains the rotation?"},
        {"role": "assistant", "content": "The on-call engineer."},
        {"role": "user", "content": "And " + "x" * 910_000},
    ]
    message = _error(_chat(server, messages), 422)
    assert "User message 3 of the conversation has 910,004 characters" in message
    assert "KB_MAX_QUESTION_CHARS" in message
    assert sent == []  # nothing reached the model endpoint


@pytest.mark.integration
def test_long_earlier_user_turns_are_refused_not_sent(
    server: LiveServer, sent: list[bytes]
) -> None:
    messages = [{"role": "user", "content": "y" * 150_000} for _ in range(3)]
    messages.append({"role": "user", "content": "And when?"})
    assert "User message 1 of" in _error(_chat(server, messages), 422)
    with server.client() as client:
        history = [{"role": "user", "content": "z" * (LIMIT + 1)}]
        refused = client.post("/v1/query", json={"question": "And then?", "history": history})
    assert "User message 1 of" in _error(refused, 422)
    assert sent == []


@pytest.mark.integration
def test_a_rewrite_call_stays_within_its_bounds(server: LiveServer, sent: list[bytes]) -> None:
    """Turns at the limit: the rewrite is sent, and its transcript is bounded."""
    messages: list[dict[str, str]] = []
    for _ in range(5):
        messages += [
            {"role": "user", "content": "w " * (LIMIT // 2)},
            {"role": "assistant", "content": "a " * 5_000},
        ]
    messages.append({"role": "user", "content": "And who maintains it?"})
    answered = _chat(server, messages)
    assert answered.status_code == 200, answered.text[:300]
    rewrite = json.loads(sent[0])
    assert len(json.dumps(rewrite["messages"])) < TRANSCRIPT_CHARS + 4_000
    assert all(len(body) < 64_000 for body in sent)


@pytest.mark.integration
def test_transcript_and_rewrite_cache_are_bounded_in_characters_and_bytes() -> None:
    turns = [Turn("user" if i % 2 else "assistant", "q " * 3_000) for i in range(12)]
    assert len(transcript([*turns, Turn("user", "And?")])) <= TRANSCRIPT_CHARS
    cache = RewriteCache(max_bytes=1_000_000)
    for n in range(200):
        cache.put(("openai:m", "h" * 100_000 + str(n), "q"), "r")
    assert cache.bytes <= 1_000_000
    assert 1 <= len(cache._items) <= 10
    assert cache.get(("openai:m", "h" * 100_000 + "199", "q")) == "r"  # the newest stays


# F11: a conversation ending on an assistant turn; a 5,000-digit integer.


@pytest.mark.integration
def test_a_conversation_ending_on_an_assistant_turn_is_refused(
    server: LiveServer, sent: list[bytes]
) -> None:
    messages = [
        {"role": "user", "content": "Who maintains the rotation?"},
        {"role": "assistant", "content": "The on-call engineer."},
    ]
    assert "ends with an assistant message" in _error(_chat(server, messages), 422)
    assert sent == []


@pytest.mark.integration
def test_a_five_thousand_digit_integer_gets_a_message_that_names_it(server: LiveServer) -> None:
    body = b'{"question": "When are deploys frozen?", "top_k": ' + b"9" * 5_000 + b"}"
    with server.client() as client:
        response = client.post(
            "/v1/query", content=body, headers={"Content-Type": "application/json"}
        )
    message = _error(response, 400)
    assert "integer with more than 4,300 digits" in message


# F8: a huge model name echoed in every chunk of a stream.


@pytest.mark.integration
def test_a_model_name_over_its_bound_is_refused(server: LiveServer, sent: list[bytes]) -> None:
    question = [{"role": "user", "content": "When are deploys frozen?"}]
    refused = _chat(server, question, model="m" * 900_000, stream=True)
    assert "model" in _error(refused, 422)
    assert sent == []
    with (
        server.client() as client,
        client.stream(
            "POST",
            "/v1/chat/completions",
            json={"model": "k" * MODEL_NAME_CHARS, "messages": question, "stream": True},
        ) as streamed,
    ):
        body = b"".join(streamed.iter_bytes())
    assert streamed.status_code == 200
    assert len(body) < 64_000  # each chunk carries the name: bounded by its bound


# F9: internal paths and upstream detail.


@pytest.mark.integration
def test_callers_without_the_key_see_no_path_url_or_upstream_body(
    server: LiveServer, handbook: tuple[Path, Path], upstream: Upstream, sent: list[bytes]
) -> None:
    with server.client() as client:
        root = client.get("/v1/corpus").json()["corpus_root"]
    with server.client(SERVICE_KEY) as client:
        full = client.get("/v1/corpus").json()["corpus_root"]
    assert "/" not in root and full.endswith(root) and full.startswith("/")

    upstream.failing = True
    question = {"question": "When are deploys frozen?", "mode": "rag"}
    with server.client() as client:
        public = client.post("/v1/query", json=question)
        streamed = client.post("/v1/query", json=question | {"stream": True}).text
    with server.client(SERVICE_KEY) as client:
        operator = client.post("/v1/query", json=question)
    message = _error(public, 503)
    assert message == "The answer backend is unavailable; retry in a moment."
    for shown in (public.text, streamed):
        assert "upstream.internal" not in shown and "/srv/secret" not in shown
    assert "/srv/secret" in _error(operator, 503)  # the operator sees what happened


# F5 and F10: /mcp with huge names, URIs and queries.


def _mcp(server: LiveServer, method: str, params: dict[str, Any]) -> httpx.Response:
    with server.client() as client:
        return client.post(
            "/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
            headers=MCP_HEADERS,
        )


def _mcp_raw(server: LiveServer, body: bytes) -> httpx.Response:
    with server.client() as client:
        headers = MCP_HEADERS | {"Content-Type": "application/json"}
        return client.post("/mcp", content=body, headers=headers)


@pytest.mark.integration
def test_mcp_names_and_uris_over_their_bounds_are_refused_quickly_and_quietly(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # what the root logger would let through
    started = time.monotonic()
    uri = _mcp(server, "resources/read", {"uri": "kb://documents/" + "a" * 200_000})
    name = _mcp(server, "tools/call", {"name": "n" * 200_000, "arguments": {}})
    seconds = time.monotonic() - started
    assert f"at most {MCP_URI_CHARS:,}" in _error(uri, 422)
    assert f"at most {MCP_NAME_CHARS:,}" in _error(name, 422)
    assert seconds < 2
    digits = _mcp_raw(server, b'{"jsonrpc": "2.0", "id": ' + b"7" * 5_000 + b', "method": "ping"}')
    assert "more than 4,300 digits" in _error(digits, 422)
    unknown = _mcp(server, "tools/call", {"name": "n" * MCP_NAME_CHARS, "arguments": {}})
    assert unknown.status_code == 200  # a JSON-RPC error of the SDK's own, within bounds
    logged = sum(len(record.getMessage()) for record in caplog.records)
    assert logged < 10_000


@pytest.mark.integration
def test_healthz_stays_fast_while_mcp_is_abused(server: LiveServer) -> None:
    stop = threading.Event()
    abuse = {"uri": "kb://documents/" + "a" * 250_000}

    def hammer() -> None:
        while not stop.is_set():
            _mcp(server, "resources/read", abuse)

    threads = [threading.Thread(target=hammer, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    latencies = []
    try:
        with server.client() as client:
            for _ in range(30):
                started = time.monotonic()
                assert client.get("/healthz").status_code == 200
                latencies.append(time.monotonic() - started)
                time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    latencies.sort()
    assert latencies[len(latencies) // 2] < 0.1, latencies  # median under 100 ms


async def _search(url: str, query: str) -> Any:
    async with (
        httpx2.AsyncClient(timeout=60) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        return await client.call_tool("search", {"query": query})


@pytest.mark.integration
def test_mcp_search_holds_queries_to_the_question_limit(server: LiveServer) -> None:
    url = f"{server.url}/mcp"
    refused = anyio.run(_search, url, "deploys " * 20_000)
    assert refused.is_error
    assert "the limit is 500 (KB_MAX_QUESTION_CHARS)" in refused.content[0].text
    found = anyio.run(_search, url, "When are deploys frozen?")
    assert not found.is_error


@pytest.mark.integration
def test_error_messages_name_the_data_directory_without_spelling_it_out(
    embedder: Embedder, tmp_path: Path
) -> None:
    empty = tmp_path / "nothing-ingested"
    settings = make_settings(tmp_path, data_dir=empty, service_api_key=SERVICE_KEY)
    question = {"question": "When are deploys frozen?"}
    with serving(settings, embedder, wait_ready=False) as live:
        with live.client() as client:
            public = _error(client.post("/v1/query", json=question), 409)
        with live.client(SERVICE_KEY) as client:
            operator = _error(client.post("/v1/query", json=question), 409)
    assert "No corpus has been ingested into the data directory" in public
    assert str(empty) not in public and str(empty) in operator
