"""`kb ask` and `kb chat`: answers in seconds.

Loading the embedding model (and, after an ingest, the reader's index) takes
seconds; a running `kb serve` has done it already. With `KB_URL` set, both commands
send their questions there (standard library HTTP only, so the command starts
fast) and say so; without it, they answer in this process. `kb chat` keeps one
process, and so one loaded model, for a whole session of questions, and keeps the
conversation: a follow-up is made standalone before it is routed.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import IO, Any

from kb import KnowledgeBase, ServiceError, Turn
from kb.core import KBError, Settings

HISTORY_TURNS = 20  # earlier turns `kb chat` sends with a follow-up
REMOTE_TIMEOUT_S = 300.0


@dataclass
class Asker:
    """Where questions go: a running `kb serve` (`KB_URL`) or a knowledge base loaded
    in this process. `ask(question, history)` returns the API's QueryResponse shape."""

    settings: Settings
    mode: str | None = None
    top_k: int | None = None
    local: bool = False
    _base: KnowledgeBase | None = field(default=None, repr=False)

    @property
    def remote(self) -> bool:
        return bool(self.settings.url) and not self.local

    def where(self) -> str:
        if self.remote:
            return f"asking the kb service at {self.settings.url} (KB_URL)"
        return (
            "answering in this process: loading the model and the corpus index first "
            "(set KB_URL to a running `kb serve` to answer in a fraction of a second)"
        )

    def ask(self, question: str, history: list[dict[str, str]]) -> dict[str, Any]:
        if self.remote:
            return self._ask_remote(question, history)
        return self._ask_local(question, history)

    def close(self) -> None:
        if self._base is not None:
            self._base.close()

    def _ask_local(self, question: str, history: list[dict[str, str]]) -> dict[str, Any]:
        if self._base is None:
            self._base = KnowledgeBase(self.settings)
        turns = [
            Turn("user" if t["role"] == "user" else "assistant", t["content"]) for t in history
        ]
        turns.append(Turn("user", question))
        answer = self._base.ask(turns, self.mode, self.top_k)
        return answer.to_dict()

    def _ask_remote(self, question: str, history: list[dict[str, str]]) -> dict[str, Any]:
        body: dict[str, Any] = {"question": question}
        if self.mode:
            body["mode"] = self.mode
        if self.top_k is not None:
            body["top_k"] = self.top_k
        if history:
            body["history"] = history[-HISTORY_TURNS:]
        return post_json(self.settings, "/v1/query", body)


def post_json(settings: Settings, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST `body` to the service at KB_URL; its error body becomes a ServiceError."""
    url = (settings.url or "").rstrip("/") + path
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if settings.service_api_key:
        headers["Authorization"] = f"Bearer {settings.service_api_key}"
    request = urllib.request.Request(
        url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=REMOTE_TIMEOUT_S) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data
    except urllib.error.HTTPError as exc:
        error = _error_body(exc.read())
        raise ServiceError(
            f"{error.get('message') or exc.reason} (the service at {settings.url})",
            http_status=exc.code,
            kind=str(error.get("type") or "HTTPError"),
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServiceError(
            f"Could not reach the kb service at {settings.url} (KB_URL): {reason}. Start it "
            "with `kb serve`, fix KB_URL, or unset it (or pass --local) to answer here."
        ) from exc


def _error_body(raw: bytes) -> dict[str, Any]:
    try:
        error = json.loads(raw).get("error", {})
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def print_answer(data: dict[str, Any], out: IO[str]) -> None:
    """The human-readable answer: text, sources, the route and why, tokens and cost."""
    print(data["answer"], file=out)
    print(file=out)
    for c in data["citations"]:
        print(
            f"[{c['number']}] {c['title']} ({c['source']}, chars {c['start']}-{c['end']})", file=out
        )
    route = data["route"]
    fallback = ", fallback" if route.get("fallback") else ""
    print(f"\nroute: {route['path']} (mode {route['mode']}{fallback}): {route['reason']}", file=out)
    if data.get("standalone_question"):
        print(f"asked as: {data['standalone_question']}", file=out)
    usage = data["usage"]
    cost = "unknown" if data.get("cost_usd") is None else f"${data['cost_usd']:.6f}"
    print(
        f"tokens: {usage['input_tokens']} in, {usage['cache_read_tokens']} cache read, "
        f"{usage['cache_write_tokens']} cache write, {usage['output_tokens']} out; cost {cost}",
        file=out,
    )


def run_ask(asker: Asker, question: str, *, as_json: bool) -> int:
    if asker.remote or sys.stderr.isatty():
        print(f"kb: {asker.where()}", file=sys.stderr, flush=True)
    try:
        data = asker.ask(question, [])
    finally:
        asker.close()
    if as_json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print_answer(data, sys.stdout)
    return 0


CHAT_HELP = "one question a line; /new starts a new conversation; /quit or end of input ends"


def run_chat(asker: Asker, lines: IO[str], *, as_json: bool) -> int:
    """A session of questions, one a line, in one conversation (until `/new`)."""
    interactive = lines.isatty()
    print(f"kb chat: {asker.where()}; {CHAT_HELP}", file=sys.stderr, flush=True)
    history: list[dict[str, str]] = []
    try:
        while True:
            if interactive:
                print("> ", end="", file=sys.stderr, flush=True)
            line = lines.readline()
            if not line or line.strip() in ("/quit", "/exit"):
                return 0
            question = line.strip()
            if not question:
                continue
            if question == "/new":
                history.clear()
                print("(new conversation)", file=sys.stderr, flush=True)
                continue
            try:
                data = asker.ask(question, history)
            except KBError as exc:
                if isinstance(exc, ServiceError) and not exc.http_status:
                    raise  # the service is gone: the session cannot go on
                print(f"kb: {exc.kind}: {exc.message}", file=sys.stderr, flush=True)
                continue
            if as_json:
                print(json.dumps(data, ensure_ascii=False), flush=True)
            else:
                print_answer(data, sys.stdout)
                print(flush=True)
            history += [
                {"role": "user", "content": question},
                {"role": "assistant", "content": data["answer"]},
            ]
    finally:
        asker.close()
