"""An HTTP client for the `openai` SDK that keeps every request body it sends and,
where a paid provider would stand, answers each request itself with a recorded
chat-completion shape, so a test asserts the exact request a backend makes."""

from __future__ import annotations

import json
from typing import Any

import httpx2


def chat_reply(content: str) -> dict[str, Any]:
    """A chat completion as OpenAI returns it, its one choice saying `content`."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4.1-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 90, "completion_tokens": 9, "total_tokens": 99},
    }


def recording_client(answer: str | None = None) -> tuple[httpx2.Client, list[dict[str, Any]]]:
    """A client that keeps every request body; with `answer`, it answers each request
    with `chat_reply(answer)` itself instead of sending it anywhere."""
    bodies: list[dict[str, Any]] = []

    def keep(request: httpx2.Request) -> None:
        bodies.append(json.loads(request.read()))

    reply = httpx2.MockTransport(lambda _: httpx2.Response(200, json=chat_reply(answer or "")))
    transport = reply if answer is not None else None
    client = httpx2.Client(transport=transport, event_hooks={"request": [keep]})
    return client, bodies
