"""`kb mcp` with the official MCP SDK's own client: over stdio (a real `kb mcp`
subprocess) and over streamable HTTP at /mcp of a real `kb serve` app on loopback."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from kb.search.embedding import Embedder
from tests.conftest import ROOT
from tests.live_server import SERVICE_KEY, LiveServer, make_settings, serving

QUESTION = "How long do access grants last?"


@pytest.fixture(scope="module")
def data_dir(handbook: tuple[Path, Path]) -> Path:
    return handbook[1]


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    data = result.structured_content
    assert isinstance(data, dict)
    return data


async def session_over_stdio(data_dir: Path) -> dict[str, Any]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "api.cli", "mcp", "--data-dir", str(data_dir)],
        cwd=ROOT,
        env={"HF_HUB_OFFLINE": "1"},
    )
    seen: dict[str, Any] = {}
    async with Client(params, read_timeout_seconds=120) as client:
        seen["tools"] = sorted(tool.name for tool in (await client.list_tools()).tools)
        seen["ask"] = structured(
            await client.call_tool("ask", {"question": QUESTION, "mode": "rag"})
        )
        seen["search"] = structured(
            await client.call_tool("search", {"query": "hotel cap New York", "top_k": 3})
        )
        seen["status"] = structured(await client.call_tool("corpus_status", {}))
        resources = (await client.list_resources()).resources
        seen["resources"] = {str(r.uri): r.title for r in resources}
        read = await client.read_resource("kb://documents/security/access.md")
        seen["document"] = read.contents[0].text  # type: ignore[union-attr]
        seen["error"] = await client.call_tool("ask", {"question": " "})
    return seen


@pytest.mark.integration
def test_stdio_session_lists_four_tools_and_gets_a_cited_answer(data_dir: Path) -> None:
    seen = anyio.run(session_over_stdio, data_dir)
    assert seen["tools"] == ["ask", "corpus_status", "knowledge_bases", "search"]

    ask = seen["ask"]
    assert "eight hours" in ask["answer"] and not ask["refused"]
    assert ask["route"]["path"] == "rag" and ask["route"]["reason"]
    citation = ask["citations"][0]
    assert citation["doc_id"] == "security/access.md"
    assert "eight hours" in citation["text"]
    assert citation["end"] > citation["start"] >= 0
    document = seen["document"]
    assert document.startswith("# Access reviews")
    # The span points into the document's own text.
    assert "eight hours" in document[citation["start"] : citation["end"]]

    search = seen["search"]
    assert "answer" not in search
    assert search["passages"][0]["number"] == 1
    assert "policies/travel.md" in {p["doc_id"] for p in search["passages"]}

    assert seen["status"]["documents"] == 5 and seen["status"]["corpus_version"]
    assert seen["resources"]["kb://documents/security/access.md"] == "Access reviews"
    assert len(seen["resources"]) == 5
    assert seen["error"].is_error
    assert "The question is empty" in seen["error"].content[0].text


@pytest.fixture(scope="module")
def keyed_server(
    data_dir: Path, embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("mcp"),
        data_dir=data_dir,
        service_api_key=SERVICE_KEY,
        require_key_for_queries=True,
    )
    with serving(settings, embedder) as live:
        yield live


async def ask_over_http(url: str, key: str | None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        return await client.call_tool("ask", {"question": QUESTION, "mode": "rag"})


@pytest.mark.integration
def test_streamable_http_beside_the_api_with_the_same_key(keyed_server: LiveServer) -> None:
    result = anyio.run(ask_over_http, f"{keyed_server.url}/mcp", SERVICE_KEY)
    assert structured(result)["citations"][0]["doc_id"] == "security/access.md"

    with keyed_server.client() as client:  # no key: the API's 401, body and header
        refused = client.post(
            "/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
        )
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert json.loads(refused.text)["error"]["type"] == "AuthError"
