"""The `openai`, `anthropic` and `local` backends through the official clients.

For real against llama.cpp's server on loopback (xllamacpp + SmolLM2-135M, one
server per session, marked slow): the exact request bodies, real answers,
streaming, usage and prompt-cache fields parsed from real responses, and real
401 and context-too-long errors. Anthropic fields llama.cpp does not emit (cache
writes) are checked on recorded response shapes behind `httpx2.MockTransport`;
other provider errors come from a scripted HTTP server on loopback.
(`openai` and `anthropic` run on httpx2, httpx's successor, so hooks and mock
transports are httpx2's.) Answers of a 135M model are not asserted on.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import pytest
from openai.types import CompletionUsage

from kb.backends import get_backend
from kb.backends.anthropic_backend import AnthropicBackend
from kb.backends.base import AnswerBackend, Completion, StreamDelta, is_refusal
from kb.backends.cost import estimate_cost, model_context_window
from kb.backends.local import DEFAULT_N_CTX, LlamaServer
from kb.backends.openai_backend import OpenAIBackend, usage_from_openai
from kb.backends.prompts import INSTRUCTIONS_LONG_CONTEXT, INSTRUCTIONS_RAG, REFUSAL, Prompt
from kb.backends.prompts import rag_prompt as build_rag_prompt
from kb.core.errors import (
    BackendAuthError,
    BackendError,
    BackendRateLimitError,
    BackendTimeoutError,
    BackendUnavailableError,
    ContextTooLongError,
    SettingsError,
)
from kb.core.models import Citation, Usage
from kb.core.settings import Settings, load_settings
from tests import llm_server
from tests.llm_server import count_tokens

llama_server = llm_server.llama_server  # the one session-wide llama.cpp server

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MAX_TOKENS = 16


class Recorder:
    """An httpx2 client whose event hooks keep every request sent and JSON body received."""

    def __init__(self, transport: httpx2.BaseTransport | None = None) -> None:
        self.requests: list[httpx2.Request] = []
        self.responses: list[dict[str, Any]] = []
        self.client = httpx2.Client(
            transport=transport,
            event_hooks={"request": [self._on_request], "response": [self._on_response]},
        )

    def _on_request(self, request: httpx2.Request) -> None:
        request.read()
        self.requests.append(request)

    def _on_response(self, response: httpx2.Response) -> None:
        if response.headers.get("content-type", "").startswith("application/json"):
            response.read()
            self.responses.append(response.json())

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(request.content) for request in self.requests]


def capitals_prompt(tag: str, question: str) -> Prompt:
    """A short long-context prompt; `tag` makes its prefix unique to one test from the
    corpus block on (the server's cache matches the longest common prefix, so the tag
    must come before the text other tests share)."""
    context = (
        f"§1 Capitals of {tag}\nParis is the capital of France. Madrid is the capital of Spain.\n\n"
    )
    return Prompt(
        path="long_context",
        instructions=INSTRUCTIONS_LONG_CONTEXT,
        context=context,
        question=question,
        cache_key=f"kb-{tag}",
    )


CAPITALS_PASSAGE = Citation(
    number=1,
    chunk_id="capitals-0",
    doc_id="capitals.md",
    title="Capitals",
    source="capitals.md",
    start=0,
    end=31,
    text="Paris is the capital of France.",
)


def rag_prompt(question: str) -> Prompt:
    return build_rag_prompt([CAPITALS_PASSAGE], question, None)


def server_settings(server: LlamaServer, path: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "base_url": f"{server.url}{path}",
        "api_key": server.api_key,
        "max_output_tokens": MAX_TOKENS,
    }
    return load_settings(**(values | overrides))


def split_stream(events: list[StreamDelta | Completion]) -> tuple[list[StreamDelta], Completion]:
    *deltas, final = events
    assert all(isinstance(delta, StreamDelta) for delta in deltas)
    assert isinstance(final, Completion)
    return deltas, final  # type: ignore[return-value]


# ---- OpenAI client against llama.cpp's /v1/chat/completions ------------------------


@pytest.mark.slow
def test_openai_sends_prefix_first_and_parses_real_usage(llama_server: LlamaServer) -> None:
    recorder = Recorder()
    backend = OpenAIBackend(
        server_settings(llama_server, "/v1"), "smollm2", http_client=recorder.client
    )
    prompt = capitals_prompt("openai-complete", "What is the capital of France?")

    completion = backend.complete(prompt)

    (request,) = recorder.requests
    assert request.method == "POST"
    assert request.url.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {llama_server.api_key}"
    assert recorder.bodies[0] == {
        "model": "smollm2",
        "messages": [
            {"role": "system", "content": INSTRUCTIONS_LONG_CONTEXT},
            {
                "role": "user",
                "content": f"{prompt.context}\n\nQuestion: What is the capital of France?",
            },
        ],
        "temperature": 0,
        "max_tokens": MAX_TOKENS,
        "prompt_cache_key": "kb-openai-complete",
    }
    raw = recorder.responses[0]["usage"]
    cached = raw["prompt_tokens_details"]["cached_tokens"]
    assert completion.usage == Usage(
        input_tokens=raw["prompt_tokens"] - cached,
        cache_read_tokens=cached,
        output_tokens=raw["completion_tokens"],
    )
    # The chat template wraps prefix and question in role markers: more tokens, not fewer.
    assert completion.usage.total_input_tokens > count_tokens(
        llama_server, prompt.prefix + prompt.question
    )
    assert 1 <= completion.usage.output_tokens <= MAX_TOKENS
    assert completion.text and completion.text == completion.text.strip()
    assert completion.refused == is_refusal(completion.text)


@pytest.mark.slow
def test_openai_prefix_cache_serves_the_next_question(llama_server: LlamaServer) -> None:
    recorder = Recorder()
    backend = OpenAIBackend(
        server_settings(llama_server, "/v1"), "smollm2", http_client=recorder.client
    )
    first_prompt = capitals_prompt("openai-cache", "What is the capital of France?")
    prefix_tokens = count_tokens(llama_server, first_prompt.prefix)

    first = backend.complete(first_prompt)
    second = backend.complete(capitals_prompt("openai-cache", "What is the capital of Spain?"))

    assert [body["prompt_cache_key"] for body in recorder.bodies] == ["kb-openai-cache"] * 2
    assert first.usage.cache_read_tokens < prefix_tokens  # this corpus was never seen
    assert second.usage.cache_read_tokens >= prefix_tokens  # the whole prefix came from cache
    assert second.usage.input_tokens < first.usage.input_tokens


@pytest.mark.slow
def test_openai_streams_deltas_then_usage(llama_server: LlamaServer) -> None:
    recorder = Recorder()
    backend = OpenAIBackend(
        server_settings(llama_server, "/v1"), "smollm2", http_client=recorder.client
    )
    prompt = capitals_prompt("openai-stream", "What is the capital of Spain?")

    deltas, final = split_stream(list(backend.stream(prompt)))

    assert recorder.bodies[0] == backend.request(prompt) | {
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert len(deltas) >= 2
    assert "".join(delta.text for delta in deltas).strip() == final.text
    assert final.usage.output_tokens >= len(deltas)
    assert final.usage.total_input_tokens > count_tokens(llama_server, prompt.prefix)


# ---- Anthropic client against llama.cpp's /v1/messages -----------------------------


@pytest.mark.slow
def test_anthropic_marks_corpus_block_and_reads_real_cache(llama_server: LlamaServer) -> None:
    recorder = Recorder()
    backend = AnthropicBackend(
        server_settings(llama_server, ""), "smollm2", http_client=recorder.client
    )
    first_prompt = capitals_prompt("anthropic", "What is the capital of France?")
    second_prompt = capitals_prompt("anthropic", "What is the capital of Spain?")

    first = backend.complete(first_prompt)
    deltas, second = split_stream(list(backend.stream(second_prompt)))

    request = recorder.requests[0]
    assert request.url.path == "/v1/messages"
    assert request.headers["authorization"] == f"Bearer {llama_server.api_key}"
    assert recorder.bodies[0] == {
        "model": "smollm2",
        "max_tokens": MAX_TOKENS,
        "system": [{"type": "text", "text": INSTRUCTIONS_LONG_CONTEXT}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": first_prompt.context,
                        "cache_control": {"type": "ephemeral"},
                    },
                    {"type": "text", "text": "Question: What is the capital of France?"},
                ],
            }
        ],
    }
    assert recorder.bodies[1] == backend.request(second_prompt) | {"stream": True}
    raw = recorder.responses[0]["usage"]
    assert first.usage == Usage(
        input_tokens=raw["input_tokens"],
        cache_read_tokens=raw["cache_read_input_tokens"],
        output_tokens=raw["output_tokens"],
    )
    # Earlier tests may have cached the instructions, never this corpus block.
    prefix_tokens = count_tokens(llama_server, INSTRUCTIONS_LONG_CONTEXT) + count_tokens(
        llama_server, first_prompt.context
    )
    assert first.usage.cache_read_tokens < prefix_tokens
    # The streamed second question read instructions and corpus from the cache.
    assert second.usage.cache_read_tokens >= prefix_tokens
    assert second.usage.input_tokens < first.usage.input_tokens
    assert len(deltas) >= 2
    assert "".join(delta.text for delta in deltas).strip() == second.text
    assert 1 <= second.usage.output_tokens <= MAX_TOKENS


# ---- real errors from the real server -----------------------------------------------


def _openai(settings: Settings) -> AnswerBackend:
    return OpenAIBackend(settings, "smollm2", max_retries=0)


def _anthropic(settings: Settings) -> AnswerBackend:
    return AnthropicBackend(settings, "smollm2", max_retries=0)


BACKENDS = pytest.mark.parametrize(
    ("make", "path"), [(_openai, "/v1"), (_anthropic, "")], ids=["openai", "anthropic"]
)


@pytest.mark.slow
@BACKENDS
def test_wrong_key_is_a_backend_auth_error(
    llama_server: LlamaServer, make: Callable[[Settings], AnswerBackend], path: str
) -> None:
    backend = make(server_settings(llama_server, path, api_key="wrong-key"))
    with pytest.raises(BackendAuthError) as caught:
        backend.complete(rag_prompt("What is the capital of France?"))
    message = caught.value.message
    assert "HTTP 401 authentication_error: Invalid API Key" in message
    assert "KB_API_KEY" in message
    assert caught.value.http_status == 502


@pytest.mark.slow
@BACKENDS
def test_prompt_over_the_window_is_context_too_long(
    llama_server: LlamaServer, make: Callable[[Settings], AnswerBackend], path: str
) -> None:
    backend = make(server_settings(llama_server, path))
    too_long = Prompt(
        path="long_context",
        instructions=INSTRUCTIONS_LONG_CONTEXT,
        context="word " * (DEFAULT_N_CTX + 500),
        question="What is the word?",
    )
    with pytest.raises(ContextTooLongError) as caught:
        backend.complete(too_long)
    message = caught.value.message
    assert f"exceeds the available context size ({DEFAULT_N_CTX} tokens)" in message
    assert "rag mode" in message


# ---- the local backend: its own server, started and stopped -------------------------


@pytest.mark.slow
def test_local_backend_answers_with_no_key_and_shuts_its_server_down() -> None:
    backend = get_backend(load_settings(backend="local", max_output_tokens=8))
    try:
        assert backend.name == "local:SmolLM2-135M-Instruct.Q4_1"
        assert backend.window == DEFAULT_N_CTX
        assert backend.supports_prompt_cache
        server: LlamaServer = backend.server  # type: ignore[attr-defined]
        props = httpx2.get(
            f"{server.url}/props", headers={"Authorization": f"Bearer {server.api_key}"}
        ).json()
        assert props["default_generation_settings"]["n_ctx"] == DEFAULT_N_CTX
        assert server.url.startswith("http://127.0.0.1:")

        prompt = rag_prompt("What is the capital of France?")
        # What the local model is sent: instructions alone, then the data, question last.
        assert isinstance(backend, OpenAIBackend)
        assert backend.request(prompt) == {
            "model": "SmolLM2-135M-Instruct.Q4_1",
            "messages": [
                {"role": "system", "content": INSTRUCTIONS_RAG},
                {
                    "role": "user",
                    "content": '<passage number="1" title="Capitals" source="capitals.md">\n'
                    "Paris is the capital of France.\n</passage>\n\n"
                    "Question: What is the capital of France?",
                },
            ],
            "temperature": 0,
            "max_tokens": 8,
        }

        completion = backend.complete(prompt)

        assert completion.text
        assert completion.usage.total_input_tokens > 0 and completion.usage.output_tokens > 0
        assert not backend.priced  # runs here: free
        assert estimate_cost(backend.name, completion.usage) is None
    finally:
        backend.close()
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"{server.url}/health", timeout=5)


# ---- Anthropic fields llama.cpp does not emit: recorded response shapes --------------


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def anthropic_with(
    handler: Callable[[httpx2.Request], httpx2.Response],
) -> tuple[AnthropicBackend, Recorder]:
    recorder = Recorder(transport=httpx2.MockTransport(handler))
    settings = load_settings(api_key="sk-ant-test", max_output_tokens=256)
    return AnthropicBackend(settings, "claude-sonnet-4-5", http_client=recorder.client), recorder


@pytest.mark.integration
def test_anthropic_cache_write_then_read_on_recorded_responses() -> None:
    replies = iter(["anthropic_message_cache_write.json", "anthropic_message_cache_read.json"])
    backend, recorder = anthropic_with(lambda _: httpx2.Response(200, json=recorded(next(replies))))
    first_prompt = capitals_prompt("capitals", "What is the capital of France?")

    first = backend.complete(first_prompt)
    second = backend.complete(capitals_prompt("capitals", "What is the capital of Spain?"))

    request = recorder.requests[0]
    assert str(request.url) == "https://api.anthropic.com/v1/messages"
    assert request.headers["authorization"] == "Bearer sk-ant-test"
    assert request.headers["anthropic-version"]
    assert recorder.bodies[0] == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "system": [{"type": "text", "text": INSTRUCTIONS_LONG_CONTEXT}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": first_prompt.context,
                        "cache_control": {"type": "ephemeral"},
                    },
                    {"type": "text", "text": "Question: What is the capital of France?"},
                ],
            }
        ],
    }
    # One cacheable prefix: the same instructions, then the same cache-marked corpus block.
    assert recorder.bodies[1]["system"] == recorder.bodies[0]["system"]
    first_turn, second_turn = (body["messages"][0]["content"] for body in recorder.bodies)
    assert first_turn[0] == second_turn[0] and first_turn[1] != second_turn[1]
    assert first.usage == Usage(
        input_tokens=14, cache_write_tokens=2188, cache_read_tokens=0, output_tokens=13
    )
    assert second.usage == Usage(
        input_tokens=15, cache_write_tokens=0, cache_read_tokens=2188, output_tokens=12
    )
    assert first.text == "Paris is the capital of France [doc:capitals]."
    assert first.model == "claude-sonnet-4-5-20250929"
    assert not first.refused


@pytest.mark.integration
def test_anthropic_stream_reports_cache_write_from_recorded_events() -> None:
    events = recorded("anthropic_stream_cache_write.json")
    sse = "".join(f"event: {e['event']}\ndata: {json.dumps(e['data'])}\n\n" for e in events)
    backend, recorder = anthropic_with(
        lambda _: httpx2.Response(
            200, content=sse.encode(), headers={"content-type": "text/event-stream"}
        )
    )
    prompt = capitals_prompt("capitals", "What is the capital of France?")

    deltas, final = split_stream(list(backend.stream(prompt)))

    assert recorder.bodies[0] == backend.request(prompt) | {"stream": True}
    assert [delta.text for delta in deltas] == [
        "Paris is",
        " the capital of France",
        " [doc:capitals].",
    ]
    assert final.text == "Paris is the capital of France [doc:capitals]."
    assert final.usage == Usage(
        input_tokens=14, cache_write_tokens=2188, cache_read_tokens=0, output_tokens=13
    )


@pytest.mark.integration
def test_anthropic_rag_prompt_marks_nothing_for_caching() -> None:
    backend, recorder = anthropic_with(
        lambda _: httpx2.Response(200, json=recorded("anthropic_message_cache_read.json"))
    )
    prompt = rag_prompt("What is the capital of France?")

    backend.complete(prompt)

    assert recorder.bodies[0] == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "system": [{"type": "text", "text": INSTRUCTIONS_RAG}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": '<passage number="1" title="Capitals" source="capitals.md">\n'
                        "Paris is the capital of France.\n</passage>",
                    },
                    {"type": "text", "text": "Question: What is the capital of France?"},
                ],
            }
        ],
    }


# ---- OpenAI's own API shape (no base URL): recorded response behind a mock transport --


def openai_reply(content: str | None, finish_reason: str = "stop") -> dict[str, Any]:
    """A chat completion as api.openai.com returns it, with a cache hit."""
    return {
        "id": "chatcmpl-BxQ3bM1u8wV2",
        "object": "chat.completion",
        "created": 1761000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": 2306,
            "completion_tokens": 11,
            "total_tokens": 2317,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "system_fingerprint": "fp_0ba0d124f1",
    }


def openai_with(reply: dict[str, Any]) -> tuple[OpenAIBackend, Recorder]:
    recorder = Recorder(transport=httpx2.MockTransport(lambda _: httpx2.Response(200, json=reply)))
    settings = load_settings(api_key="sk-test", max_output_tokens=256)
    return OpenAIBackend(settings, "gpt-4o-mini", http_client=recorder.client), recorder


@pytest.mark.integration
def test_openai_api_request_and_cached_usage_on_a_recorded_response() -> None:
    backend, recorder = openai_with(openai_reply(REFUSAL))
    prompt = capitals_prompt("capitals", "Who founded Paris?")

    completion = backend.complete(prompt)

    assert str(recorder.requests[0].url) == "https://api.openai.com/v1/chat/completions"
    assert recorder.requests[0].headers["authorization"] == "Bearer sk-test"
    assert recorder.bodies[0] == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": INSTRUCTIONS_LONG_CONTEXT},
            {"role": "user", "content": f"{prompt.context}\n\nQuestion: Who founded Paris?"},
        ],
        "temperature": 0,
        "max_completion_tokens": 256,  # OpenAI's own field; other servers get max_tokens
        "prompt_cache_key": "kb-capitals",
    }
    assert completion.usage == Usage(input_tokens=386, cache_read_tokens=1920, output_tokens=11)
    assert completion.refused
    assert completion.model == "gpt-4o-mini-2024-07-18"

    backend.complete(rag_prompt("Who founded Paris?"))  # retrieval prompts carry no cache key
    assert "prompt_cache_key" not in recorder.bodies[1]


@pytest.mark.integration
def test_openai_cache_writes_are_split_out_of_prompt_tokens() -> None:
    reported = CompletionUsage.model_validate(
        {
            "prompt_tokens": 5_000,
            "completion_tokens": 10,
            "total_tokens": 5_010,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 4_800},
        }
    )
    assert usage_from_openai(reported) == Usage(
        input_tokens=200, cache_write_tokens=4_800, output_tokens=10
    )
    assert usage_from_openai(None) == Usage()


@pytest.mark.integration
def test_openai_empty_answer_is_an_error_not_a_blank() -> None:
    backend, _ = openai_with(openai_reply(None, finish_reason="length"))
    with pytest.raises(BackendError, match=r"empty answer \(finish_reason=length\).*MAX_OUTPUT"):
        backend.complete(rag_prompt("What is the capital of France?"))


@pytest.mark.integration
def test_missing_key_is_a_settings_error() -> None:
    for spec in ("openai:gpt-4o-mini", "anthropic:claude-sonnet-4-5"):
        with pytest.raises(SettingsError, match="KB_API_KEY"):
            get_backend(load_settings(), spec)


@pytest.mark.integration
def test_context_window_from_setting_then_price_table_then_default() -> None:
    keyed = load_settings(api_key="sk-test")
    known = OpenAIBackend(keyed, "gpt-4o-mini")
    assert known.window == model_context_window("openai", "gpt-4o-mini") is not None
    assert OpenAIBackend(keyed, "my-own-finetune").window == 128_000
    assert OpenAIBackend(load_settings(api_key="k", context_window=32_000), "gpt-4o").window == (
        32_000
    )
    assert AnthropicBackend(keyed, "claude-sonnet-4-5").window == model_context_window(
        "anthropic", "claude-sonnet-4-5"
    )


# ---- provider errors from a scripted server on loopback -----------------------------


class ScriptedProvider:
    """A real HTTP server on 127.0.0.1 that answers every POST with one scripted reply."""

    def __init__(self) -> None:
        self.status, self.delay = 200, 0.0
        self.reply: dict[str, Any] = {}
        self.paths: list[str] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                provider.paths.append(self.path)
                time.sleep(provider.delay)
                payload = json.dumps(provider.reply).encode()
                try:
                    self.send_response(provider.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout test)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def scripted() -> Iterator[ScriptedProvider]:
    provider = ScriptedProvider()
    yield provider
    provider.close()


def _anthropic_error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


def _openai_error(kind: str, code: str | None, message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


ERROR_CASES = [
    (
        "openai",
        429,
        _openai_error(
            "tokens",
            "rate_limit_exceeded",
            "Rate limit reached for gpt-4o-mini on tokens per min (TPM): Limit 200000.",
        ),
        BackendRateLimitError,
        "Wait and retry",
    ),
    (
        "openai",
        429,
        _openai_error(
            "insufficient_quota",
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
        ),
        BackendRateLimitError,
        "quota is used up",
    ),
    (
        "openai",
        400,
        _openai_error(
            "invalid_request_error",
            "context_length_exceeded",
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 131072 tokens. Please reduce the length of the messages.",
        ),
        ContextTooLongError,
        "rag mode",
    ),
    (
        "openai",
        404,
        _openai_error(
            "invalid_request_error",
            "model_not_found",
            "The model `gpt-9` does not exist or you do not have access to it.",
        ),
        BackendError,
        "Check the model name and KB_BASE_URL",
    ),
    (
        "openai",
        400,
        _openai_error(
            "invalid_request_error",
            "unsupported_value",
            "Unsupported value: 'temperature' does not support 0 with this model.",
        ),
        BackendError,
        "rejected the request",
    ),
    (
        "openai",
        503,
        _openai_error("server_error", None, "The engine is currently overloaded."),
        BackendUnavailableError,
        "Retry in a moment",
    ),
    (
        "anthropic",
        429,
        _anthropic_error(
            "rate_limit_error",
            "This request would exceed the rate limit for your organization of 50,000 "
            "input tokens per minute.",
        ),
        BackendRateLimitError,
        "Wait and retry",
    ),
    (
        "anthropic",
        400,
        _anthropic_error("invalid_request_error", "prompt is too long: 215312 tokens > 200000"),
        ContextTooLongError,
        "KB_LONG_CONTEXT_BUDGET",
    ),
    (
        "anthropic",
        413,
        _anthropic_error("request_too_large", "Request exceeds the maximum allowed bytes."),
        ContextTooLongError,
        "rag mode",
    ),
    (
        "anthropic",
        403,
        _anthropic_error("permission_error", "Your API key does not have permission."),
        BackendAuthError,
        "KB_API_KEY",
    ),
    (
        "anthropic",
        529,
        _anthropic_error("overloaded_error", "Overloaded"),
        BackendUnavailableError,
        "Retry in a moment",
    ),
]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("provider", "status", "reply", "expected", "advice"),
    ERROR_CASES,
    ids=[f"{case[0]}-{case[1]}-{case[3].__name__}" for case in ERROR_CASES],
)
def test_provider_errors_become_typed_errors_that_say_what_to_do(
    scripted: ScriptedProvider,
    provider: str,
    status: int,
    reply: dict[str, Any],
    expected: type[BackendError],
    advice: str,
) -> None:
    scripted.status, scripted.reply, scripted.delay = status, reply, 0.0
    scripted.paths.clear()
    make, path = (_openai, "/v1") if provider == "openai" else (_anthropic, "")
    backend = make(load_settings(base_url=f"{scripted.url}{path}", api_key="k"))

    with pytest.raises(BackendError) as caught:
        backend.complete(rag_prompt("What is the capital of France?"))

    error = caught.value
    assert type(error) is expected
    provider_message = reply["error"]["message"]
    assert f"HTTP {status} {reply['error']['type']}: {provider_message}" in error.message
    assert advice in error.message
    assert (error.provider, error.model) == (provider, "smollm2")
    assert scripted.paths == [
        f"{path}/chat/completions" if provider == "openai" else "/v1/messages"
    ]


@pytest.mark.integration
@BACKENDS
def test_slow_provider_is_a_timeout(
    scripted: ScriptedProvider, make: Callable[[Settings], AnswerBackend], path: str
) -> None:
    scripted.status, scripted.reply, scripted.delay = 200, {}, 1.5
    backend = make(
        load_settings(base_url=f"{scripted.url}{path}", api_key="k", request_timeout=0.2)
    )
    with pytest.raises(BackendTimeoutError, match=r"within 0\.2 s\. Raise KB_REQUEST_TIMEOUT"):
        backend.complete(rag_prompt("What is the capital of France?"))


@pytest.mark.integration
@BACKENDS
def test_closed_port_is_unavailable(make: Callable[[Settings], AnswerBackend], path: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = make(load_settings(base_url=f"http://127.0.0.1:{port}{path}", api_key="k"))
    with pytest.raises(BackendUnavailableError) as caught:
        backend.complete(rag_prompt("What is the capital of France?"))
    assert f"Could not reach {backend.name} at http://127.0.0.1:{port}" in caught.value.message
    assert "refused" in caught.value.message.lower()
    assert "KB_BASE_URL" in caught.value.message
