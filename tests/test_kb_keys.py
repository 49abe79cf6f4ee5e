"""Scoped keys against a real server on loopback with three knowledge bases (the default
handbook, `travel`, `lab`): every route with each kind of key, the same 404 for a base
the key may not read as for a missing one, a clear 403 for ingest with a read key, and
the OpenAI client choosing a knowledge base as a model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import openai
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from kb.keys import KeyStore
from kb.search.embedding import Embedder
from tests.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.live_server import (
    SERVICE_KEY,
    LiveServer,
    ingest_handbook,
    make_settings,
    parse_sse,
    serving,
)
from tests.test_knowledge_bases import LAB, TRAVEL, ingest_named

HOTEL = "What is the nightly hotel cap?"
KINDS = ("none", "wrong", "read", "ingest", "admin", "service")


@pytest.fixture(scope="module")
def keyed(
    embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, dict[str, str | None], Path]]:
    root = tmp_path_factory.mktemp("kbs")
    corpus_dir, data_dir, _ = ingest_handbook(root, embedder)
    ingest_named(root, "travel", TRAVEL, embedder)
    ingest_named(root, "lab", LAB, embedder)
    store = KeyStore(data_dir / "keys.json")
    keys: dict[str, str | None] = {
        "none": None,
        "wrong": "kb-000000000000.not-the-right-secret-at-all",
        "read": store.create(["travel"], name="reader")[0],
        "ingest": store.create(["lab"], ingest=True)[0],
        "admin": store.create(["*"], admin=True)[0],
        "service": SERVICE_KEY,
    }
    settings = make_settings(
        root, data_dir=data_dir, corpus_dir=corpus_dir, service_api_key=SERVICE_KEY
    )
    with serving(settings, embedder) as live:
        yield live, keys, data_dir


Call = tuple[str, str, dict[str, Any] | None]
# Each route, and the status each kind of key gets: none, wrong, read (travel),
# ingest (lab), admin (scoped key with admin), service (KB_SERVICE_API_KEY).
MATRIX: list[tuple[Call, tuple[int, ...]]] = [
    (("GET", "/v1/kbs", None), (401, 401, 200, 200, 200, 200)),
    (("GET", "/v1/kbs/travel", None), (401, 401, 200, 404, 200, 200)),
    (("POST", "/v1/kbs/travel/query", {"question": HOTEL}), (401, 401, 200, 404, 200, 200)),
    (("GET", "/v1/kbs/travel/documents", None), (401, 401, 200, 404, 200, 200)),
    (("POST", "/v1/kbs/travel/ingest", None), (401, 401, 403, 404, 200, 200)),
    (("POST", "/v1/kbs/lab/ingest", None), (401, 401, 404, 200, 200, 200)),
    (
        ("POST", "/v1/kbs/query", {"question": HOTEL, "kbs": ["travel", "lab"]}),
        (401, 401, 404, 404, 200, 200),
    ),
    (("POST", "/v1/kbs", {"name": "x"}), (401, 401, 403, 403, 409, 409)),  # exists below
    (("DELETE", "/v1/kbs/nosuch", None), (401, 401, 403, 403, 404, 404)),
    (("POST", "/v1/keys", {"kbs": ["travel"]}), (401, 401, 403, 403, 201, 201)),
    (("GET", "/v1/keys", None), (401, 401, 403, 403, 200, 200)),
    (("DELETE", "/v1/keys/000000000000", None), (401, 401, 403, 403, 404, 404)),
    (("GET", "/v1/models", None), (401, 401, 200, 200, 200, 200)),
    (("GET", "/v1/models/travel", None), (401, 401, 200, 404, 200, 200)),
    (
        (
            "POST",
            "/v1/chat/completions",
            {"model": "travel", "messages": [{"role": "user", "content": HOTEL}]},
        ),
        (401, 401, 200, 404, 200, 200),
    ),
    (("POST", "/v1/query", {"question": HOTEL}), (401, 401, 404, 404, 200, 200)),
    (("GET", "/v1/documents", None), (401, 401, 404, 404, 200, 200)),
    (("GET", "/v1/corpus", None), (401, 401, 404, 404, 200, 200)),
    (("POST", "/v1/ingest", None), (401, 401, 404, 404, 200, 200)),
]


def send(live: LiveServer, key: str | None, call: Call) -> httpx.Response:
    method, path, body = call
    with live.client(key, timeout=120) as client:
        return client.request(method, path, json=body)


@pytest.mark.integration
@pytest.mark.parametrize(("call", "expected"), MATRIX, ids=[f"{c[0]} {c[1]}" for c, _ in MATRIX])
def test_every_route_with_each_kind_of_key(
    keyed: tuple[LiveServer, dict[str, str | None], Path], call: Call, expected: tuple[int, ...]
) -> None:
    live, keys, data_dir = keyed
    if call[1] == "/v1/kbs" and call[0] == "POST":  # creating a name that exists: 409
        (data_dir / "kbs" / "x").mkdir(parents=True, exist_ok=True)
        (data_dir / "kbs" / "x" / "kb.json").write_text('{"name": "x"}')
    got = {kind: send(live, keys[kind], call) for kind in KINDS}
    assert {k: r.status_code for k, r in got.items()} == dict(zip(KINDS, expected, strict=True))
    for response in got.values():
        if response.status_code >= 400:
            assert set(response.json()["error"]) == {"type", "message"}


@pytest.mark.integration
def test_a_base_the_key_may_not_read_is_answered_like_a_missing_one(
    keyed: tuple[LiveServer, dict[str, str | None], Path],
) -> None:
    live, keys, _ = keyed
    for path in ("/v1/kbs/{}", "/v1/kbs/{}/documents"):
        hidden = send(live, keys["read"], ("GET", path.format("lab"), None))
        missing = send(live, keys["read"], ("GET", path.format("nosuch"), None))
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json() == json.loads(missing.text.replace("nosuch", "lab"))
    listed = send(live, keys["read"], ("GET", "/v1/kbs", None)).json()["data"]
    assert [kb["name"] for kb in listed] == ["travel"]  # lab and default go unmentioned
    models = send(live, keys["read"], ("GET", "/v1/models", None)).json()["data"]
    assert [m["id"] for m in models] == ["travel"]


@pytest.mark.integration
def test_ingest_with_a_read_key_is_refused_with_a_clear_message(
    keyed: tuple[LiveServer, dict[str, str | None], Path],
) -> None:
    live, keys, _ = keyed
    refused = send(live, keys["read"], ("POST", "/v1/kbs/travel/ingest", None))
    assert refused.status_code == 403
    assert refused.json()["error"]["type"] == "ScopeError"
    assert "may read 'travel' but not ingest" in refused.json()["error"]["message"]


@pytest.mark.integration
def test_answers_describe_their_route_and_cross_answers_cite_both(
    keyed: tuple[LiveServer, dict[str, str | None], Path],
) -> None:
    live, keys, _ = keyed
    info = send(live, keys["read"], ("GET", "/v1/kbs/travel", None)).json()
    assert info["documents"] == 2 and info["auto_route"]["path"] == "long_context"
    assert "the whole corpus goes in the cached prompt" in info["auto_route"]["reason"]
    assert info["index_bytes"] > 0
    body = {"question": HOTEL, "kbs": ["travel", "lab"]}
    cross = send(live, keys["admin"], ("POST", "/v1/kbs/query", body)).json()
    assert {c["kb"] for c in cross["citations"]} == {"travel", "lab"}
    assert [p["kb"] for p in cross["per_kb"]] == ["travel", "lab"]
    assert all(p["result"]["route"]["reason"] for p in cross["per_kb"])
    assert "180 euros" in cross["answer"] and "150 francs" in cross["answer"]


@pytest.mark.integration
def test_an_admin_key_creates_keys_and_bases_and_deletes_them(
    keyed: tuple[LiveServer, dict[str, str | None], Path], tmp_path: Path
) -> None:
    live, keys, data_dir = keyed
    made = send(live, keys["admin"], ("POST", "/v1/keys", {"kbs": ["fresh"], "name": "t"}))
    new_key, key_id = made.json()["key"], made.json()["info"]["id"]
    stored = (data_dir / "keys.json").read_text()
    assert new_key.split(".")[1] not in stored and '"hash"' in stored  # never the key itself
    assert (data_dir / "keys.json").stat().st_mode & 0o777 == 0o600

    source = tmp_path / "fresh"
    source.mkdir()
    (source / "a.md").write_text("# Parking\n\nVisitor parking is on level minus two.\n")
    created = send(
        live, keys["admin"], ("POST", "/v1/kbs", {"name": "fresh", "source": str(source)})
    )
    assert created.status_code == 201, created.text
    assert created.json()["kb"]["documents"] == 1 and created.json()["ingest"]["added"] == 1
    asked = send(
        live, new_key, ("POST", "/v1/kbs/fresh/query", {"question": "Where is visitor parking?"})
    )
    assert "level minus two" in asked.json()["answer"]
    bad = send(live, keys["admin"], ("POST", "/v1/kbs", {"name": "Bad Name"}))
    assert bad.status_code == 422 and "lowercase letters" in bad.text

    assert send(live, keys["admin"], ("DELETE", "/v1/kbs/fresh", None)).status_code == 204
    assert send(live, new_key, ("GET", "/v1/kbs/fresh", None)).status_code == 404
    assert not (data_dir / "kbs" / "fresh").exists()
    assert send(live, keys["admin"], ("DELETE", f"/v1/keys/{key_id}", None)).status_code == 204
    assert send(live, new_key, ("GET", "/v1/kbs", None)).status_code == 401  # revoked at once


@pytest.mark.integration
def test_the_openai_client_picks_a_knowledge_base_as_a_model(
    keyed: tuple[LiveServer, dict[str, str | None], Path],
) -> None:
    live, keys, _ = keyed
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key=keys["read"], max_retries=0)
    assert [m.id for m in client.models.list()] == ["travel"]
    reply = client.chat.completions.create(
        model="travel", messages=[{"role": "user", "content": HOTEL}]
    )
    assert "180 euros" in (reply.choices[0].message.content or "")
    assert reply.model_extra is not None and reply.model_extra["kb"]["route"]["path"]
    rag = client.chat.completions.create(
        model="travel:rag", messages=[{"role": "user", "content": HOTEL}]
    )
    assert rag.model_extra is not None and rag.model_extra["kb"]["route"]["path"] == "rag"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="lab", messages=[{"role": "user", "content": HOTEL}])
    admin = openai.OpenAI(base_url=f"{live.url}/v1", api_key=keys["admin"], max_retries=0)
    ids = [m.id for m in admin.models.list()]
    assert ids[:4] == ["kb-auto", "kb-long_context", "kb-rag", "kb-self_route"]
    assert {"travel", "lab"} <= set(ids[4:])


async def mcp_calls(url: str, key: str | None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=120) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        return {
            "bases": await client.call_tool("knowledge_bases", {}),
            "travel": await client.call_tool("ask", {"question": HOTEL, "kb": "travel"}),
            "lab": await client.call_tool("ask", {"question": HOTEL, "kb": "lab"}),
            "default": await client.call_tool("corpus_status", {}),
            "search": await client.call_tool("search", {"query": "hotel", "kb": "travel"}),
        }


@pytest.mark.integration
def test_mcp_tools_take_the_knowledge_base_within_the_key_scope(
    keyed: tuple[LiveServer, dict[str, str | None], Path],
) -> None:
    live, keys, _ = keyed
    seen = anyio.run(mcp_calls, f"{live.url}/mcp", keys["read"])
    bases = seen["bases"].structured_content["data"]
    assert [b["name"] for b in bases] == ["travel"] and bases[0]["auto_route"]["path"]
    assert "180 euros" in seen["travel"].structured_content["answer"]
    assert seen["lab"].is_error and "No knowledge base named lab" in seen["lab"].content[0].text
    assert seen["default"].is_error and "named default" in seen["default"].content[0].text
    assert seen["search"].structured_content["passages"][0]["doc_id"].startswith("travel/")
    admin = anyio.run(mcp_calls, f"{live.url}/mcp", keys["admin"])
    assert {b["name"] for b in admin["bases"].structured_content["data"]} >= {"travel", "lab"}
    assert "150 francs" in admin["lab"].structured_content["answer"]


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_the_web_page_selects_a_knowledge_base_within_the_key_scope(
    keyed: tuple[LiveServer, dict[str, str | None], Path],
) -> None:
    from playwright.sync_api import sync_playwright

    live, keys, _ = keyed
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        page = browser.new_page()
        page.goto(live.url + "/")
        page.click("details.key summary")
        page.fill("#api-key", str(keys["read"]))
        page.dispatch_event("#api-key", "change")
        page.wait_for_selector("#kb-label:not([hidden])", timeout=30_000)
        assert page.locator("#kb option").all_inner_texts() == ["travel"]
        page.wait_for_selector("#status-grid:not([hidden])", timeout=30_000)
        assert "auto would use long context" in page.locator("#status-route").inner_text()
        page.fill("#question", HOTEL)
        page.click("#ask")
        page.wait_for_selector("#result[data-state=done]", timeout=60_000)
        assert "180 euros" in page.locator("#answer").inner_text()

        page.fill("#api-key", str(keys["admin"]))
        page.dispatch_event("#api-key", "change")
        page.wait_for_selector("#kb option:nth-child(3)", state="attached", timeout=30_000)
        names = page.locator("#kb option").all_inner_texts()
        assert {"default", "travel", "lab"} <= set(names)
        browser.close()


@pytest.mark.integration
def test_a_conversation_streams_from_one_knowledge_base(
    keyed: tuple[LiveServer, dict[str, str | None], Path],
) -> None:
    live, keys, _ = keyed
    body = {
        "question": "And which class is allowed on long trains?",
        "history": [
            {"role": "user", "content": "What is the hotel cap in Lisbon?"},
            {"role": "assistant", "content": "The nightly hotel cap in Lisbon is 180 euros."},
        ],
        "stream": True,
    }
    response = send(live, keys["read"], ("POST", "/v1/kbs/travel/query", body))
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = parse_sse(response.text)
    answer = json.loads(next(data for name, data in frames if name == "answer"))
    assert "First class" in answer["answer"] and answer["standalone_question"]
    assert "travel/trains.md" in {c["doc_id"] for c in answer["citations"]}
