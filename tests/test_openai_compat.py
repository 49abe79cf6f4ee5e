"""The official `openai` client against our /v1/chat/completions and /v1/models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from kb.search.embedding import Embedder
from kb.store.corpus import CorpusVersion
from tests.live_server import SERVICE_KEY, LiveServer, make_settings, serving

QUESTION = "When are production deploys frozen?"


@pytest.fixture(scope="module")
def data_dir(handbook: tuple[Path, Path]) -> Path:
    return handbook[1]


@pytest.fixture(scope="module")
def server(
    data_dir: Path, embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("keyed"),
        data_dir=data_dir,
        service_api_key=SERVICE_KEY,
        require_key_for_queries=True,
    )
    with serving(settings, embedder) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{server.url}/v1", api_key=SERVICE_KEY, max_retries=0) as client:
        yield client


@pytest.mark.integration
def test_chat_completion_with_usage_and_citations(client: OpenAI, data_dir: Path) -> None:
    version = CorpusVersion.open(data_dir).version
    response = client.chat.completions.create(
        model="kb-rag",
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Who approves a hotfix?"},
            {"role": "assistant", "content": "The incident commander."},
            {"role": "user", "content": QUESTION},
        ],
        temperature=0.2,  # accepted and ignored
    )
    assert response.object == "chat.completion"
    assert response.id.startswith("chatcmpl-")
    assert response.model == "kb-rag"
    assert response.system_fingerprint == f"kb-{version}"
    choice = response.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    content = choice.message.content or ""
    answer, _, sources = content.partition("\n\nSources:\n")
    assert "Friday 15:00" in answer  # the last user message was the question
    extra = response.model_extra or {}
    citations = extra["citations"]
    assert citations[0]["doc_id"] == "engineering/deploys.md"
    assert citations[0]["text"] in answer
    assert sources.splitlines() == [
        f"[{c['number']}] {c['title']} ({c['source']}, chars {c['start']}-{c['end']})"
        for c in citations
    ]
    assert extra["kb"]["route"]["path"] == "rag"
    assert extra["kb"]["corpus_version"] == version
    usage = response.usage
    assert usage is not None
    assert usage.prompt_tokens == extra["kb"]["usage"]["total_input_tokens"] > 0
    assert usage.completion_tokens == extra["kb"]["usage"]["output_tokens"] > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0  # retrieval has no prompt cache


@pytest.mark.integration
def test_cached_tokens_on_the_long_context_path(client: OpenAI) -> None:
    question = [{"role": "user", "content": "How long do access grants last?"}]
    client.chat.completions.create(model="kb-long-context", messages=question)  # type: ignore[arg-type]
    response = client.chat.completions.create(model="kb-long_context", messages=question)  # type: ignore[arg-type]
    usage = response.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    kb = (response.model_extra or {})["kb"]
    assert kb["route"]["path"] == "long_context"
    assert usage.prompt_tokens_details.cached_tokens == kb["usage"]["cache_read_tokens"] > 0
    assert usage.prompt_tokens > usage.prompt_tokens_details.cached_tokens
    assert "eight hours" in (response.choices[0].message.content or "")


@pytest.mark.integration
def test_streaming_chunks_match_the_plain_answer(client: OpenAI) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": QUESTION}]}]
    plain = client.chat.completions.create(model="kb-rag", messages=messages)  # type: ignore[arg-type]
    stream = client.chat.completions.create(
        model="kb-rag",
        messages=messages,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason == "stop"]
    assert len(finals) == 1
    extra = finals[0].model_extra or {}
    assert extra["citations"] == (plain.model_extra or {})["citations"]
    assert extra["kb"]["route"]["path"] == "rag"
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert plain.usage is not None
    assert last.usage.prompt_tokens == plain.usage.prompt_tokens
    assert last.usage.completion_tokens == plain.usage.completion_tokens


@pytest.mark.integration
def test_stream_without_usage_option_sends_no_usage_chunk(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="kb-rag", messages=[{"role": "user", "content": QUESTION}], stream=True
    )
    chunks = list(stream)
    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)


@pytest.mark.integration
def test_model_names_pick_the_mode(client: OpenAI) -> None:
    models = client.models.list()
    assert {m.id for m in models.data} == {"kb-auto", "kb-rag", "kb-long_context", "kb-self_route"}
    assert client.models.retrieve("kb-rag").id == "kb-rag"
    for name, mode in [("gpt-4o-mini", "auto"), ("kb-self_route", "self_route")]:
        response = client.chat.completions.create(
            model=name, messages=[{"role": "user", "content": QUESTION}]
        )
        assert response.model == name
        assert (response.model_extra or {})["kb"]["route"]["mode"] == mode


@pytest.mark.integration
def test_errors_reach_the_client_typed(server: LiveServer, client: OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as no_user:
        client.chat.completions.create(
            model="kb-rag", messages=[{"role": "system", "content": "Be brief."}]
        )
    assert "role 'user'" in no_user.value.message
    with pytest.raises(openai.UnprocessableEntityError) as empty:
        client.chat.completions.create(model="kb-rag", messages=[{"role": "user", "content": " "}])
    assert "question is empty" in empty.value.message
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")
    with (
        OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError) as denied,
    ):
        wrong.chat.completions.create(model="kb-rag", messages=[{"role": "user", "content": "q"}])
    assert "wrong" in denied.value.message
