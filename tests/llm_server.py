"""A real llama.cpp server (xllamacpp + SmolLM2-135M) on loopback, for tests and figures.

In tests, use the session fixture `llama_server` (one server for the whole run):
import it into a test module (`llama_server = llm_server.llama_server`) or list
this module in the root conftest's `pytest_plugins`.

Run as a script to print this machine's figures (start time, prompt tokens/s,
cold against cached latency of a repeated long prefix)::

    .venv/bin/python -m tests.llm_server [prefix_words] [threads]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator

import httpx2
import pytest

from kb.backends.local import LlamaServer, default_gguf


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaServer]:
    """One SmolLM2 server for the session: n_ctx 8192, a random key, a free port."""
    with LlamaServer(default_gguf()) as server:
        yield server


def count_tokens(server: LlamaServer, text: str) -> int:
    """Tokens of `text` in the served model's own tokenizer (`/tokenize`)."""
    response = httpx2.post(
        f"{server.url}/tokenize",
        json={"content": text, "add_special": False},
        headers={"Authorization": f"Bearer {server.api_key}"},
        timeout=30,
    )
    response.raise_for_status()
    return len(response.json()["tokens"])


def _figures(prefix_words: int, threads: int | None) -> None:
    with LlamaServer(default_gguf(), threads=threads) as server:
        print(f"threads={server.threads}")
        print(f"server start (model load + warmup): {server.start_seconds:.2f} s")
        headers = {"Authorization": f"Bearer {server.api_key}"}
        prefix = " ".join(f"Fact {i}: item {i} is stored in room {i % 97}." for i in range(9999))
        prefix = " ".join(prefix.split()[:prefix_words])
        for label, question in [
            ("cold", "Which room holds item 7?"),
            ("cached prefix, same question", "Which room holds item 7?"),
            ("cached prefix, new question", "Which room holds item 12?"),
        ]:
            started = time.perf_counter()
            body = httpx2.post(
                f"{server.url}/v1/chat/completions",
                json={
                    "messages": [
                        {"role": "system", "content": prefix},
                        {"role": "user", "content": question},
                    ],
                    "max_tokens": 16,
                    "temperature": 0,
                },
                headers=headers,
                timeout=600,
            ).json()
            seconds = time.perf_counter() - started
            usage, timings = body["usage"], body["timings"]
            print(
                f"{label:30s} {seconds:6.2f} s  prompt_tokens={usage['prompt_tokens']} "
                f"cached_tokens={usage['prompt_tokens_details']['cached_tokens']} "
                f"prefill={timings['prompt_n']} tok at {timings['prompt_per_second']:.0f} tok/s, "
                f"generated {timings['predicted_n']} at {timings['predicted_per_second']:.0f} tok/s"
            )


if __name__ == "__main__":
    _figures(
        int(sys.argv[1]) if len(sys.argv) > 1 else 1_200,
        int(sys.argv[2]) if len(sys.argv) > 2 else None,
    )
