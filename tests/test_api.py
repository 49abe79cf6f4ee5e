"""The HTTP API against a real uvicorn server on loopback over an ingested handbook."""

from __future__ import annotations

import hmac
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from filelock import FileLock

from kb.backends import AnswerBackend, Completion, Prompt, StreamDelta
from kb.core.errors import (
    BackendAuthError,
    BackendError,
    BackendRateLimitError,
    BackendTimeoutError,
    BackendUnavailableError,
)
from kb.search.embedding import Embedder
from kb.store.corpus import CorpusVersion, Layout
from tests.live_server import (
    HANDBOOK,
    SERVICE_KEY,
    TEST_SETTINGS,
    LiveServer,
    ingest_handbook,
    make_settings,
    parse_sse,
    readiness_after_warm_up,
    serving,
)
from tests.scripted import PricedScriptedBackend

DEPLOY_QUESTION = "When are production deploys frozen?"


@pytest.fixture(scope="module")
def server(
    handbook: tuple[Path, Path], embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """Open for queries; no service key, so ingest is disabled."""
    _, data_dir = handbook
    with serving(
        make_settings(tmp_path_factory.mktemp("open"), data_dir=data_dir), embedder
    ) as live:
        yield live


@pytest.fixture(scope="module")
def keyed_server(
    handbook: tuple[Path, Path], embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A service key that protects ingest and queries."""
    corpus_dir, data_dir = handbook
    settings = make_settings(
        tmp_path_factory.mktemp("keyed"),
        data_dir=data_dir,
        corpus_dir=corpus_dir,
        service_api_key=SERVICE_KEY,
        require_key_for_queries=True,
    )
    with serving(settings, embedder) as live:
        yield live


def current_corpus(data_dir: Path) -> CorpusVersion:
    return CorpusVersion.open(data_dir)


def assert_error(response: httpx.Response, status: int, kind: str, *fragments: str) -> str:
    """The one error shape, the status, the type, and a message naming the fix."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"type", "message"}
    assert body["error"]["type"] == kind
    message: str = body["error"]["message"]
    for fragment in fragments:
        assert fragment in message, message
    return message


# ---- health, corpus, documents ---------------------------------------------------------


@pytest.mark.integration
def test_health_and_readiness(server: LiveServer, handbook: tuple[Path, Path]) -> None:
    with server.client() as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "ready": True,
        "reason": "ready",
        "corpus_version": current_corpus(handbook[1]).version,
        "backend": "extractive",
        "warm_version": current_corpus(handbook[1]).version,  # warmed before it said ready
    }


@pytest.mark.integration
def test_not_ingested_service_is_not_ready_and_says_why(tmp_path: Path, embedder: Embedder) -> None:
    settings = make_settings(tmp_path, data_dir=tmp_path / "empty")
    with serving(settings, embedder, wait_ready=False) as live, live.client() as client:
        ready = readiness_after_warm_up(client, timeout=30)
        assert ready.status_code == 503
        assert ready.json()["ready"] is False
        assert "no corpus has been ingested" in ready.json()["reason"]
        assert client.get("/healthz").status_code == 200
        assert_error(client.get("/v1/corpus"), 409, "NotIngestedError", "kb ingest")
        assert_error(
            client.post("/v1/query", json={"question": DEPLOY_QUESTION}),
            409,
            "NotIngestedError",
        )


@pytest.mark.integration
def test_corpus_status(server: LiveServer, handbook: tuple[Path, Path]) -> None:
    corpus = current_corpus(handbook[1])
    with server.client() as client:
        status = client.get("/v1/corpus").json()
    assert status["documents"] == len(HANDBOOK)
    assert status["chunks"] == corpus.manifest.chunk_count == len(corpus.chunks)
    assert status["corpus_tokens"] == corpus.corpus_tokens
    assert status["corpus_version"] == corpus.version
    assert status["last_ingest"] == corpus.manifest.created_at
    assert status["backend"] == "extractive"
    assert status["embedding_model"] == "all-MiniLM-L6-v2"
    assert status["ingest_running"] is False
    # A small corpus fits the long-context budget, and the reason gives the numbers.
    assert status["auto_route"]["path"] == "long_context"
    assert f"{corpus.corpus_tokens:,}" in status["auto_route"]["reason"]
    assert status["auto_route"]["numbers"]["fits"] is True


@pytest.mark.integration
def test_documents_are_paged_in_manifest_order(
    server: LiveServer, handbook: tuple[Path, Path]
) -> None:
    manifest = current_corpus(handbook[1]).manifest
    with server.client() as client:
        first = client.get("/v1/documents", params={"limit": 2}).json()
        second = client.get("/v1/documents", params={"offset": 2, "limit": 2}).json()
        rest = client.get("/v1/documents", params={"offset": 4, "limit": 50}).json()
        assert_error(client.get("/v1/documents", params={"limit": 0}), 422, "InvalidRequestError")
        assert_error(
            client.get("/v1/documents", params={"offset": -1}),
            422,
            "InvalidRequestError",
            "offset",
        )
    assert first["total"] == second["total"] == len(HANDBOOK)
    assert first["corpus_version"] == manifest.corpus_version
    listed = first["items"] + second["items"] + rest["items"]
    assert [d["doc_id"] for d in listed] == [d.doc_id for d in manifest.documents]
    by_id = manifest.by_id()
    for item in listed:
        doc = by_id[item["doc_id"]]
        assert item == {
            "doc_id": doc.doc_id,
            "title": doc.title,
            "source": doc.source,
            "tokens": doc.tokens,
            "chunks": len(doc.chunk_ids),
        }
    assert "Deploys" in {d["title"] for d in listed}


# ---- queries -----------------------------------------------------------------------


@pytest.mark.integration
def test_query_rag_answers_with_citations(server: LiveServer, handbook: tuple[Path, Path]) -> None:
    corpus = current_corpus(handbook[1])
    with server.client() as client:
        response = client.post(
            "/v1/query", json={"question": DEPLOY_QUESTION, "mode": "rag", "top_k": 3}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["refused"] is False
    assert "Friday 15:00" in body["answer"]
    assert body["route"]["path"] == "rag" and body["route"]["mode"] == "rag"
    assert body["corpus_version"] == corpus.version
    # top_k caps the chunks at 3; neighbouring chunks of one document become one passage.
    assert 1 <= len(body["retrieved"]) <= 3
    for passage in (p for p in body["retrieved"] if p["doc_id"].endswith(".md")):
        source = (handbook[0] / passage["doc_id"]).read_text("utf-8")
        assert source[passage["start"] : passage["end"]] == passage["text"]
    cited = body["citations"][0]
    assert cited["doc_id"] == "engineering/deploys.md"
    assert "[1]" in body["answer"]
    # The span points at the cited text in the source document.
    document = (handbook[0] / "engineering/deploys.md").read_text("utf-8")
    assert cited["text"] in document
    chunk_ids = {c.chunk_id for c in corpus.chunks}
    assert {c["chunk_id"] for c in body["citations"] + body["retrieved"]} <= chunk_ids
    assert body["usage"]["input_tokens"] > 0 and body["usage"]["output_tokens"] > 0
    assert body["usage"]["total_input_tokens"] == body["usage"]["input_tokens"]
    assert body["cost_usd"] == 0.0
    assert body["timings"]["total_s"] >= body["timings"]["retrieve_s"] > 0


@pytest.mark.integration
def test_query_long_context_writes_then_reads_the_cache(server: LiveServer) -> None:
    question = {"question": "How long do access grants last?", "mode": "long_context"}
    with server.client() as client:
        first = client.post("/v1/query", json=question).json()
        second = client.post("/v1/query", json=question).json()
        auto = client.post("/v1/query", json={"question": question["question"]}).json()
    assert first["route"]["path"] == "long_context"
    assert "eight hours" in first["answer"]
    assert first["citations"][0]["doc_id"] == "security/access.md"
    total = first["usage"]["cache_write_tokens"] + first["usage"]["cache_read_tokens"]
    assert total > 0
    assert second["usage"]["cache_read_tokens"] == total
    assert second["usage"]["cache_write_tokens"] == 0
    assert auto["route"]["mode"] == "auto" and auto["route"]["path"] == "long_context"
    assert "limit" in auto["route"]["reason"]


@pytest.mark.integration
def test_query_refuses_what_the_corpus_does_not_say(server: LiveServer) -> None:
    with server.client() as client:
        body = client.post(
            "/v1/query",
            json={"question": "What is the boiling point of liquid nitrogen?", "mode": "rag"},
        ).json()
    assert body["refused"] is True
    assert body["citations"] == []


@pytest.mark.integration
def test_query_streams_server_sent_events(server: LiveServer) -> None:
    with (
        server.client() as client,
        client.stream(
            "POST", "/v1/query", json={"question": DEPLOY_QUESTION, "mode": "rag", "stream": True}
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()
    frames = parse_sse(text)
    names = [name for name, _ in frames]
    assert names[-1] == "answer" and set(names[:-1]) == {"delta"} and len(names) >= 2
    answer = json.loads(frames[-1][1])
    streamed = "".join(json.loads(data)["text"] for name, data in frames if name == "delta")
    assert streamed == answer["answer"]
    assert "Friday 15:00" in answer["answer"]
    assert answer["citations"][0]["doc_id"] == "engineering/deploys.md"


@pytest.mark.integration
def test_stream_of_a_bad_question_is_a_plain_error(server: LiveServer) -> None:
    with server.client() as client:
        response = client.post("/v1/query", json={"question": "   ", "stream": True})
    assert_error(response, 422, "InvalidRequestError", "question is empty")


# ---- validation -------------------------------------------------------------------------

MAX_CHARS = int(TEST_SETTINGS["max_question_chars"])  # type: ignore[call-overload]
MAX_BODY = int(TEST_SETTINGS["max_body_bytes"])  # type: ignore[call-overload]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("body", "kind", "fragments"),
    [
        ({"question": ""}, "InvalidRequestError", ["question", "at least 1 character"]),
        ({"question": "  \n "}, "InvalidRequestError", ["question is empty"]),
        (
            {"question": "x" * (MAX_CHARS + 1)},
            "InvalidRequestError",
            [f"{MAX_CHARS + 1}", f"limit is {MAX_CHARS}", "KB_MAX_QUESTION_CHARS"],
        ),
        ({"question": "q", "mode": "fast"}, "InvalidRequestError", ["mode", "'rag'", "'fast'"]),
        ({"question": "q", "top_k": 0}, "InvalidRequestError", ["top_k", "greater than"]),
        ({"question": "q", "top_k": 101}, "InvalidRequestError", ["top_k", "less than"]),
        ({"question": "q", "top_k": "many"}, "InvalidRequestError", ["top_k", "integer"]),
        ({"question": 42}, "InvalidRequestError", ["question", "string"]),
        ({"question": "q", "topk": 3}, "InvalidRequestError", ["topk", "unknown field"]),
        ({}, "InvalidRequestError", ["question", "Field required"]),
    ],
)
def test_query_validation(
    server: LiveServer, body: dict[str, Any], kind: str, fragments: list[str]
) -> None:
    with server.client() as client:
        assert_error(client.post("/v1/query", json=body), 422, kind, *fragments)


@pytest.mark.integration
def test_malformed_and_missing_bodies(server: LiveServer) -> None:
    with server.client() as client:
        broken = client.post(
            "/v1/query",
            content=b'{"question": "When',
            headers={"Content-Type": "application/json"},
        )
        missing = client.post("/v1/query")
        listed = client.post("/v1/query", json=["When are deploys frozen?"])
    assert_error(broken, 400, "MalformedJSONError", "not valid JSON", '{"question": "..."}')
    assert_error(missing, 422, "InvalidRequestError", "JSON body is required")
    assert_error(listed, 422, "InvalidRequestError")


@pytest.mark.integration
def test_oversized_bodies_are_rejected_before_parsing(server: LiveServer) -> None:
    big = json.dumps({"question": "x" * (MAX_BODY + 10)}).encode()

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    with server.client() as client:
        declared = client.post(
            "/v1/query", content=big, headers={"Content-Type": "application/json"}
        )
        streamed = client.post(
            "/v1/query", content=chunked(), headers={"Content-Type": "application/json"}
        )
        assert "content-length" not in streamed.request.headers
        chat = client.post(
            "/v1/chat/completions",
            json={"model": "kb-rag", "messages": [{"role": "user", "content": "x" * MAX_BODY}]},
        )
    for response in (declared, streamed, chat):
        assert_error(response, 413, "PayloadTooLargeError", f"{MAX_BODY:,}", "KB_MAX_BODY_BYTES")
    assert f"{len(big):,} bytes" in declared.json()["error"]["message"]


@pytest.mark.integration
def test_unknown_routes_and_methods_use_the_error_shape(server: LiveServer) -> None:
    with server.client() as client:
        assert_error(client.get("/v1/nothing"), 404, "NotFoundError", "/v1/nothing", "/docs")
        assert_error(client.get("/v1/query"), 405, "MethodNotAllowedError", "GET")


# ---- auth ------------------------------------------------------------------------------


@pytest.mark.integration
def test_ingest_is_disabled_without_a_service_key(server: LiveServer) -> None:
    with server.client(key="anything") as client:
        response = client.post("/v1/ingest")
    assert_error(response, 403, "IngestDisabledError", "KB_SERVICE_API_KEY", "kb ingest")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/query", {"question": DEPLOY_QUESTION}),
        ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
        ("GET", "/v1/corpus", None),
        ("GET", "/v1/documents", None),
        ("GET", "/v1/models", None),
        ("POST", "/v1/ingest", None),
    ],
)
def test_protected_routes_need_the_key(
    keyed_server: LiveServer, method: str, path: str, body: dict[str, Any] | None
) -> None:
    with keyed_server.client() as anonymous:
        missing = anonymous.request(method, path, json=body)
    with keyed_server.client(key="not-the-key") as wrong_client:
        wrong = wrong_client.request(method, path, json=body)
    assert_error(missing, 401, "AuthError", "Authorization: Bearer")
    assert missing.headers["www-authenticate"] == 'Bearer realm="kb"'
    assert_error(wrong, 401, "AuthError", "wrong")
    assert wrong.headers["www-authenticate"] == 'Bearer realm="kb", error="invalid_token"'
    with keyed_server.client() as basic:
        response = basic.request(method, path, json=body, auth=("user", SERVICE_KEY))
    assert response.status_code == 401  # only a bearer key counts


@pytest.mark.integration
def test_the_key_opens_queries_and_ingest(
    keyed_server: LiveServer, handbook: tuple[Path, Path]
) -> None:
    version = current_corpus(handbook[1]).version
    with keyed_server.client(key=SERVICE_KEY) as client:
        answer = client.post("/v1/query", json={"question": DEPLOY_QUESTION, "mode": "rag"})
        assert answer.status_code == 200 and "Friday" in answer.json()["answer"]
        assert client.get("/v1/corpus").json()["corpus_version"] == version
        summary = client.post("/v1/ingest")
    assert summary.status_code == 200, summary.text
    assert summary.json()["unchanged"] == len(HANDBOOK)
    assert summary.json()["chunks_embedded"] == 0
    assert summary.json()["corpus_version"] == version
    with keyed_server.client() as anonymous:  # probes and the page need no key
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/readyz").status_code == 200
        assert anonymous.get("/").status_code == 200


@pytest.mark.integration
def test_keys_are_compared_in_constant_time(
    keyed_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    with keyed_server.client(key="guess") as client:
        assert client.get("/v1/corpus").status_code == 401
    with keyed_server.client(key=SERVICE_KEY) as client:
        assert client.get("/v1/corpus").status_code == 200
    # Each request compares its key once for access and once to decide what it may see
    # (an absolute path, upstream detail: api.deps.shown_error); every time in constant time.
    assert set(seen) == {(b"guess", SERVICE_KEY.encode()), (SERVICE_KEY.encode(),) * 2}


@pytest.mark.integration
def test_queries_stay_open_when_only_ingest_is_protected(
    handbook: tuple[Path, Path], embedder: Embedder, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, data_dir=handbook[1], service_api_key=SERVICE_KEY)
    with serving(settings, embedder) as live, live.client() as client:
        assert client.post("/v1/query", json={"question": DEPLOY_QUESTION}).status_code == 200
        assert_error(client.post("/v1/ingest"), 401, "AuthError")
        keyed = client.post("/v1/ingest", headers={"Authorization": f"Bearer {SERVICE_KEY}"})
    # The key is right, but there is no folder to re-index.
    assert_error(keyed, 409, "NoCorpusDirError", "KB_CORPUS_DIR")


@pytest.mark.integration
def test_one_ingest_at_a_time(keyed_server: LiveServer, handbook: tuple[Path, Path]) -> None:
    lock = FileLock(str(Layout(handbook[1]).lock))
    with lock, keyed_server.client(key=SERVICE_KEY) as client:  # as if `kb ingest` were running
        response = client.post("/v1/ingest")
    assert_error(response, 409, "IngestBusyError", "Another ingest is running")


# ---- backend failures ---------------------------------------------------------------------


class FailingBackend(AnswerBackend):
    """A provider that fails the way the real SDK wrappers report it."""

    provider = "openai"

    def __init__(self, error: Exception, *, after_delta: bool = False) -> None:
        super().__init__("gpt-test")
        self.error = error
        self.after_delta = after_delta
        self.prompts: list[Prompt] = []

    def complete(self, prompt: Prompt) -> Completion:
        self.prompts.append(prompt)
        raise self.error

    def stream(self, prompt: Prompt) -> Iterator[StreamDelta | Completion]:
        self.prompts.append(prompt)
        if self.after_delta:
            yield StreamDelta("The deploy freeze starts")
        raise self.error


@pytest.mark.integration
@pytest.mark.parametrize(
    ("error", "status"),
    [
        (BackendTimeoutError("the provider did not answer within 120s", provider="openai"), 504),
        (BackendRateLimitError("rate limited; retry after 20s", provider="openai"), 503),
        (BackendUnavailableError("connection refused", provider="openai"), 503),
        (BackendAuthError("the provider rejected KB_API_KEY", provider="openai"), 502),
    ],
)
def test_backend_failures_map_to_gateway_errors(
    handbook: tuple[Path, Path],
    embedder: Embedder,
    tmp_path: Path,
    error: BackendError,
    status: int,
) -> None:
    backend = FailingBackend(error)
    settings = make_settings(tmp_path, data_dir=handbook[1])
    with serving(settings, embedder, backend=backend) as live, live.client() as client:
        response = client.post("/v1/query", json={"question": DEPLOY_QUESTION, "mode": "rag"})
        chat = client.post(
            "/v1/chat/completions",
            json={"model": "kb-rag", "messages": [{"role": "user", "content": DEPLOY_QUESTION}]},
        )
    # Without the service key a caller gets the error's type and what to do, not the
    # provider's words (they may name internal hosts): issue 20 F9.
    assert_error(response, status, error.kind, error.public_message)
    assert_error(chat, status, error.kind, error.public_message)
    assert error.message not in response.text
    # The backend was asked with the retrieved passages and the question, last.
    assert backend.prompts[0].path == "rag"
    assert backend.prompts[0].question == DEPLOY_QUESTION
    assert any(p.doc_id == "engineering/deploys.md" for p in backend.prompts[0].passages)


@pytest.mark.integration
def test_unexpected_errors_are_a_generic_500_and_mid_stream_errors_an_event(
    handbook: tuple[Path, Path], embedder: Embedder, tmp_path: Path
) -> None:
    backend = FailingBackend(RuntimeError("secret internal detail"), after_delta=True)
    settings = make_settings(tmp_path, data_dir=handbook[1])
    with serving(settings, embedder, backend=backend) as live, live.client() as client:
        crash = client.post("/v1/query", json={"question": DEPLOY_QUESTION, "mode": "rag"})
        stream = client.post(
            "/v1/query", json={"question": DEPLOY_QUESTION, "mode": "rag", "stream": True}
        )
    message = assert_error(crash, 500, "InternalError", "server log")
    assert "secret" not in message and "Traceback" not in crash.text
    frames = parse_sse(stream.text)
    assert [name for name, _ in frames] == ["delta", "error"]
    assert json.loads(frames[1][1])["error"]["type"] == "InternalError"
    assert "secret" not in stream.text


@pytest.mark.integration
def test_a_broken_setting_is_a_500_that_keeps_its_details_in_the_log(
    handbook: tuple[Path, Path],
    embedder: Embedder,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text("{not json", encoding="utf-8")
    settings = make_settings(tmp_path, data_dir=handbook[1], price_overrides=prices)
    with serving(settings, embedder, backend=PricedScriptedBackend()) as live, live.client() as c:
        response = c.post("/v1/query", json={"question": DEPLOY_QUESTION, "mode": "rag"})
    message = assert_error(response, 500, "SettingsError", "misconfigured", "server log")
    assert str(prices) not in message
    assert any(str(prices) in record.getMessage() for record in caplog.records)


# ---- queries during a re-index -----------------------------------------------------------


def _filler(topic: str, paragraphs: int) -> str:
    """A long, varied document so the re-index takes a while to embed."""
    words = ["ledger", "harbor", "quartz", "meadow", "signal", "lantern", "orbit", "copper"]
    return "\n\n".join(
        f"Section {n} of the {topic} guide: the {words[n % 8]} procedure runs after the "
        f"{words[(n * 3) % 8]} check, and team {n} owns step {n * 7 % 13}. Records for the "
        f"{words[(n * 5) % 8]} review are kept for {n + 2} months in archive {n * 11}."
        for n in range(paragraphs)
    )


@pytest.mark.integration
def test_queries_keep_answering_from_one_version_during_a_reindex(
    tmp_path: Path, embedder: Embedder
) -> None:
    corpus_dir, data_dir, first = ingest_handbook(tmp_path, embedder)
    old = CorpusVersion.open(data_dir)
    old_chunks = {c.chunk_id: c for c in old.chunks}
    settings = make_settings(
        tmp_path, data_dir=data_dir, corpus_dir=corpus_dir, service_api_key=SERVICE_KEY
    )
    # The change: deploys now freeze on Thursday, travel is gone, a long guide is new.
    deploys = corpus_dir / "engineering/deploys.md"
    deploys.write_text(
        deploys.read_text("utf-8").replace("Friday 15:00", "Thursday 17:00"), "utf-8"
    )
    (corpus_dir / "policies/travel.md").unlink()
    (corpus_dir / "guides").mkdir()
    (corpus_dir / "guides/archive.md").write_text(_filler("archive", 150), "utf-8")

    results: list[dict[str, Any]] = []
    failures: list[str] = []
    stop = threading.Event()
    window: dict[str, float] = {}

    def ask_repeatedly(live: LiveServer, question: str) -> None:
        with live.client() as client:
            while not stop.is_set():
                started = time.monotonic()
                response = client.post("/v1/query", json={"question": question, "mode": "rag"})
                if response.status_code != 200:
                    failures.append(response.text)
                    continue
                results.append(response.json() | {"_t": (started, time.monotonic())})

    with serving(settings, embedder) as live:
        askers = [
            threading.Thread(target=ask_repeatedly, args=(live, q))
            for q in (DEPLOY_QUESTION, "How fast must the on-call engineer acknowledge a page?")
        ]
        for thread in askers:
            thread.start()
        time.sleep(0.5)
        with live.client(key=SERVICE_KEY, timeout=300) as client:
            window["start"] = time.monotonic()
            summary = client.post("/v1/ingest")
            window["end"] = time.monotonic()
        # Keep asking until a question begun after the re-index has been answered (on a
        # loaded machine one answer can take longer than any fixed pause).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(
            r["_t"][0] > window["end"] for r in list(results)
        ):
            time.sleep(0.1)
        stop.set()
        for thread in askers:
            thread.join()

    assert summary.status_code == 200, summary.text
    new = CorpusVersion.open(data_dir)
    new_chunks = {c.chunk_id: c for c in new.chunks}
    assert summary.json()["previous_version"] == old.version == first.corpus_version
    assert summary.json()["corpus_version"] == new.version != old.version
    assert summary.json()["removed_ids"] == ["policies/travel.md"]
    assert not failures, failures[:3]

    chunks_of = {old.version: old_chunks, new.version: new_chunks}
    for result in results:
        version = result["corpus_version"]
        assert version in chunks_of
        # Every passage and citation comes from the chunks of that one version...
        for passage in result["retrieved"] + result["citations"]:
            chunk = chunks_of[version][passage["chunk_id"]]
            assert passage["doc_id"] == chunk.doc_id
        # ...and so does the text of the answer.
        if "deploys are frozen" in result["answer"]:
            expected = "Friday 15:00" if version == old.version else "Thursday 17:00"
            assert expected in result["answer"], result["answer"]
    during = [r for r in results if window["start"] < r["_t"][0] and r["_t"][1] < window["end"]]
    assert during, "no question was answered while the re-index ran"
    assert {r["corpus_version"] for r in results if r["_t"][0] > window["end"]} == {new.version}
    assert {r["corpus_version"] for r in results if r["_t"][1] < window["start"]} == {old.version}


# ---- OpenAPI and `kb serve` ----------------------------------------------------------


@pytest.mark.integration
def test_openapi_describes_every_route_and_field(server: LiveServer) -> None:
    with server.client() as client:
        spec = client.get("/openapi.json").json()
        assert client.get("/docs").status_code == 200
    operations = [
        (method, path, op) for path, ops in spec["paths"].items() for method, op in ops.items()
    ]
    assert {path for _, path, _ in operations} >= {
        "/v1/query",
        "/v1/ingest",
        "/v1/corpus",
        "/v1/documents",
        "/v1/chat/completions",
        "/v1/models",
        "/healthz",
        "/readyz",
    }
    for method, path, op in operations:
        assert op.get("summary") and op.get("description"), (method, path)
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # errors are documented as ErrorResponse
    for name, schema in schemas.items():
        for field, prop in schema.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field} has no description"
    for name in ("QueryRequest", "ChatCompletionRequest", "IngestResponse", "Citation", "Route"):
        assert schemas[name].get("examples"), f"{name} has no example"
    query = spec["paths"]["/v1/query"]["post"]
    assert "text/event-stream" in query["responses"]["200"]["content"]
    assert {"401", "413", "422", "502", "503", "504"} <= set(query["responses"])
    assert spec["components"]["securitySchemes"]["ServiceKey"]["scheme"] == "bearer"


@pytest.mark.integration
def test_kb_serve_starts_uvicorn_with_flags(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env["KB_PORT"] = "1"  # the flag wins over the setting
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--data-dir", str(tmp_path / "data")]
        + ["--port", str(port), "--log-level", "warning"],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.communicate()[0].decode()
            assert time.monotonic() < deadline, "kb serve did not start"
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        with httpx.Client(base_url=url) as client:
            ready = readiness_after_warm_up(client, timeout=deadline - time.monotonic())
        assert ready.status_code == 503
        assert str(tmp_path / "data") in ready.json()["reason"]
    finally:
        process.terminate()
        process.wait(timeout=30)
