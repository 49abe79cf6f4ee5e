"""Requests an attacker sends (issue rows 9, 10, 12), over real HTTP on loopback: each
gets a 4xx saying what is wrong, never a 500; the page carries its security headers;
probes without the key say ready or not and nothing more."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.cli_serve import exposure_warning
from kb.core.settings import load_settings
from kb.search.embedding import Embedder
from tests.live_server import SERVICE_KEY, LiveServer, make_settings, serving

JSON = {"Content-Type": "application/json"}
QUESTION = "When are production deploys frozen?"


@pytest.fixture(scope="module")
def server(
    handbook: tuple[Path, Path], embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """Bodies up to 1 MB, so that a 100k-deep JSON reaches the parser."""
    settings = make_settings(
        tmp_path_factory.mktemp("hard"), data_dir=handbook[1], max_body_bytes=1_000_000
    )
    with serving(settings, embedder) as live:
        yield live


@pytest.fixture(scope="module")
def keyed(
    handbook: tuple[Path, Path], embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("hard-keyed"), data_dir=handbook[1], service_api_key=SERVICE_KEY
    )
    with serving(settings, embedder) as live:
        yield live


def _error(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["type"] == kind
    return str(body["error"]["message"])


# Row 9: a lone surrogate anywhere in a chat request is a 422, as in /v1/query.


@pytest.mark.integration
@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"messages": [{"role": "user", "content": "hi \\ud800"}]}', "messages.0.content"),
        (b'{"model": "kb-\\udfff", "messages": [{"role": "user", "content": "hi"}]}', "model"),
        (
            b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "\\ud800"}]}]}',
            "messages.0.content",
        ),
    ],
)
def test_a_lone_surrogate_in_a_chat_request_is_a_422(
    server: LiveServer, body: bytes, field: str
) -> None:
    with server.client() as client:
        response = client.post("/v1/chat/completions", content=body, headers=JSON)
    message = _error(response, 422, "InvalidRequestError")
    assert message.startswith(field) and "lone surrogate" in message


# Row 10: strict types; unreadable bodies are a 400 that says what is wrong.


@pytest.mark.integration
@pytest.mark.parametrize(
    ("path", "extra", "field", "expected"),
    [
        ("/v1/query", {"top_k": True}, "top_k", "valid integer"),
        ("/v1/query", {"top_k": "8"}, "top_k", "valid integer"),
        ("/v1/query", {"top_k": 8.0}, "top_k", "valid integer"),
        ("/v1/query", {"stream": 0}, "stream", "valid boolean"),
        ("/v1/query", {"stream": "true"}, "stream", "valid boolean"),
        ("/v1/chat/completions", {"stream": 0}, "stream", "valid boolean"),
        ("/v1/chat/completions", {"stream_options": {"include_usage": 1}}, "stream_options", ""),
    ],
)
def test_numbers_and_booleans_are_strict(
    server: LiveServer, path: str, extra: dict[str, Any], field: str, expected: str
) -> None:
    base: dict[str, Any] = (
        {"question": QUESTION}
        if path == "/v1/query"
        else {"messages": [{"role": "user", "content": QUESTION}]}
    )
    with server.client() as client:
        message = _error(client.post(path, json=base | extra), 422, "InvalidRequestError")
    assert message.startswith(field) and expected in message


@pytest.mark.integration
def test_a_body_that_is_not_utf8_is_a_400_naming_the_byte(server: LiveServer) -> None:
    with server.client() as client:
        response = client.post("/v1/query", content=b'{"question": "caf\xe9"}', headers=JSON)
    message = _error(response, 400, "MalformedJSONError")
    assert "not valid UTF-8 (byte 17 is 0xe9)" in message


@pytest.mark.integration
@pytest.mark.parametrize("path", ["/v1/query", "/v1/chat/completions"])
def test_json_nested_100k_deep_is_a_400_saying_so(server: LiveServer, path: str) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with server.client() as client:
        response = client.post(path, content=b'{"messages": ' + deep + b"}", headers=JSON)
        assert client.get("/healthz").status_code == 200
    assert "nested too deeply" in _error(response, 400, "MalformedJSONError")


# Row 12: headers on the page, the key kept per session, a warning, terse probes.


@pytest.mark.integration
def test_the_page_forbids_framing_sniffing_and_foreign_scripts(server: LiveServer) -> None:
    with server.client() as client:
        page = client.get("/")
        script = client.get("/static/app.js")
        api = client.get("/healthz")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    for response in (page, script, api):
        assert response.headers["x-content-type-options"] == "nosniff"
    # The key is kept for the tab's session only, and an old saved copy is erased.
    assert "localStorage.setItem" not in script.text
    assert "sessionStorage.setItem" in script.text
    assert "localStorage.removeItem" in script.text


@pytest.mark.integration
def test_serving_beyond_loopback_without_a_key_warns(tmp_path: Path) -> None:
    exposed = load_settings(data_dir=tmp_path, host="0.0.0.0")
    warning = exposure_warning(exposed)
    assert warning is not None and "0.0.0.0" in warning and "KB_SERVICE_API_KEY" in warning
    assert exposure_warning(load_settings(data_dir=tmp_path)) is None  # 127.0.0.1
    keyed = load_settings(data_dir=tmp_path, host="0.0.0.0", service_api_key="k" * 24)
    assert exposure_warning(keyed) is None


@pytest.mark.integration
def test_readyz_without_the_key_says_ready_and_nothing_more(keyed: LiveServer) -> None:
    with keyed.client() as anonymous, keyed.client(SERVICE_KEY) as holder:
        terse = anonymous.get("/readyz")
        wrong = anonymous.get("/readyz", headers={"Authorization": "Bearer wrong"})
        full = holder.get("/readyz")
    assert terse.status_code == wrong.status_code == full.status_code == 200
    assert terse.json() == wrong.json() == {"ready": True, "reason": "ready"}
    assert set(full.json()) == {"ready", "reason", "corpus_version", "backend", "warm_version"}
    assert full.json()["backend"] == "extractive"
