"""Conversations: a follow-up is made standalone before routing and retrieval.

The follow-up "How long do its grants last?" means nothing alone (the reader refuses
it); after "Who runs the access portal?" it must cite the access-review page. Offline
(the extractive reader joins the recent user turns), over HTTP with the official
`openai` client and the page's `/v1/query` history, and with the `openai` backend
against the real llama.cpp server (one rewrite call, whose exact request is checked).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from kb.backends.base import AnswerBackend, Completion
from kb.backends.local import LlamaServer
from kb.backends.openai_backend import OpenAIBackend
from kb.backends.prompts import REFUSAL, REWRITE_INSTRUCTIONS, Prompt
from kb.conversation import (
    REWRITE_CACHE_BYTES,
    RewriteCache,
    Turn,
    needs_context,
    standalone_question,
)
from kb.core.models import Usage
from kb.search.embedding import Embedder
from kb.service import KnowledgeBase
from tests import llm_server
from tests.live_server import LiveServer, make_settings, serving
from tests.test_backends_llm import Recorder, server_settings

llama_server = llm_server.llama_server

FIRST = "Who runs the access portal?"
FIRST_ANSWER = "Engineers request temporary access through the access portal. [1]"
FOLLOW_UP = "How long do its grants last?"
RIGHT_DOC = "security/access.md"


def conversation() -> list[Turn]:
    return [Turn("user", FIRST), Turn("assistant", FIRST_ANSWER), Turn("user", FOLLOW_UP)]


@pytest.fixture(scope="module")
def data_dir(handbook: tuple[Path, Path]) -> Path:
    return handbook[1]


@pytest.fixture(scope="module")
def offline(
    data_dir: Path, embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KnowledgeBase]:
    settings = make_settings(tmp_path_factory.mktemp("conv"), data_dir=data_dir)
    with KnowledgeBase(settings, embedder=embedder) as kb:
        yield kb


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["rag", "long_context"])
def test_offline_follow_up_cites_the_document_of_the_conversation(
    offline: KnowledgeBase, mode: str
) -> None:
    alone = offline.ask(FOLLOW_UP, mode)
    assert alone.refused and RIGHT_DOC not in {c.doc_id for c in alone.citations}

    answer = offline.ask(conversation(), mode)
    assert not answer.refused
    assert [c.doc_id for c in answer.citations] == [RIGHT_DOC]
    assert "eight hours" in answer.answer
    assert answer.standalone_question == f"{FIRST} {FOLLOW_UP}"
    assert answer.standalone_method == "recent_turns"
    assert answer.route.path == mode


@pytest.mark.integration
def test_a_first_question_is_used_as_written(offline: KnowledgeBase) -> None:
    standalone = standalone_question(
        [Turn("user", FIRST)], offline.backend, 4_000, RewriteCache(REWRITE_CACHE_BYTES)
    )
    assert (standalone.question, standalone.method) == (FIRST, "as_is")
    answer = offline.ask([Turn("user", FIRST)], "rag")
    assert answer.standalone_question is None


@pytest.mark.integration
def test_recent_turns_query_keeps_the_last_turns_within_the_limit(
    offline: KnowledgeBase,
) -> None:
    turns = [Turn("user", f"What is it{i}?") for i in range(5)]
    assert standalone_question(
        turns, offline.backend, 4_000, RewriteCache(REWRITE_CACHE_BYTES)
    ).question == ("What is it2? What is it3? What is it4?")
    assert (
        standalone_question(turns, offline.backend, 25, RewriteCache(REWRITE_CACHE_BYTES)).question
        == "What is it3? What is it4?"
    )


@pytest.mark.integration
@pytest.mark.parametrize(
    ("question", "leans"),
    [
        ("How long do its grants last?", True),
        ("When did she last review it?", True),
        ("And elsewhere?", True),
        ("What about Sieve?", True),
        ("Why?", True),
        ("When are production deploys frozen?", False),
        ("Who approves a hotfix during the freeze?", False),
    ],
)
def test_needs_context(question: str, leans: bool) -> None:
    assert needs_context(question) is leans


@pytest.mark.integration
def test_offline_new_topic_is_asked_as_written(offline: KnowledgeBase) -> None:
    turns = [*conversation()[:2], Turn("user", "When are production deploys frozen?")]
    answer = offline.ask(turns, "rag")
    assert answer.standalone_question is None
    assert [c.doc_id for c in answer.citations] == ["engineering/deploys.md"]


@pytest.fixture(scope="module")
def server(
    data_dir: Path, embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    with serving(
        make_settings(tmp_path_factory.mktemp("convhttp"), data_dir=data_dir), embedder
    ) as live:
        yield live


@pytest.mark.integration
def test_chat_completions_keeps_the_conversation(server: LiveServer) -> None:
    with OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0) as client:
        response = client.chat.completions.create(
            model="kb-rag",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": FIRST},
                {"role": "assistant", "content": FIRST_ANSWER + "\n\nSources:\n[1] Access"},
                {"role": "user", "content": FOLLOW_UP},
            ],
        )
    extra = response.model_extra or {}
    assert [c["doc_id"] for c in extra["citations"]] == [RIGHT_DOC]
    assert extra["kb"]["standalone_question"] == f"{FIRST} {FOLLOW_UP}"
    assert extra["kb"]["standalone_method"] == "recent_turns"
    assert extra["kb"]["route"]["path"] == "rag"


@pytest.mark.integration
def test_query_with_history_streams_the_standalone_question(server: LiveServer) -> None:
    from tests.live_server import parse_sse

    body = {
        "question": FOLLOW_UP,
        "mode": "rag",
        "stream": True,
        "history": [
            {"role": "user", "content": FIRST},
            {"role": "assistant", "content": FIRST_ANSWER},
        ],
    }
    with server.client() as client:
        frames = parse_sse(client.post("/v1/query", json=body).text)
        plain = client.post("/v1/query", json=body | {"stream": False}).json()
        bad = client.post("/v1/query", json=body | {"history": [{"role": "system"}]})
    import json

    answer = json.loads(frames[-1][1])
    assert frames[-1][0] == "answer"
    assert answer["standalone_question"] == plain["standalone_question"] == f"{FIRST} {FOLLOW_UP}"
    assert [c["doc_id"] for c in plain["citations"]] == [RIGHT_DOC]
    assert bad.status_code == 422


class ScriptedBackend(AnswerBackend):
    """A generative backend that replies with scripted text and keeps every prompt."""

    provider = "scripted"

    def __init__(self, replies: list[str]) -> None:
        super().__init__("v1")
        self.replies = replies
        self.prompts: list[Prompt] = []

    def complete(self, prompt: Prompt) -> Completion:
        self.prompts.append(prompt)
        return Completion(self.replies.pop(0), Usage(), self.model)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("reply", "method", "question"),
    [
        (
            "How long do access portal grants last?",
            "rewrite",
            "How long do access portal grants last?",
        ),
        (
            "Standalone question: How long do access portal grants last?",
            "rewrite",
            "How long do access portal grants last?",
        ),
        (FOLLOW_UP, "rewrite", FOLLOW_UP),  # judged standalone already
        ("How long does it take to get a grant?", "recent_turns", f"{FIRST} {FOLLOW_UP}"),
        ("The access portal grants last eight hours.", "recent_turns", f"{FIRST} {FOLLOW_UP}"),
        (REFUSAL, "recent_turns", f"{FIRST} {FOLLOW_UP}"),
    ],
)
def test_a_rewrite_is_used_only_when_it_resolves_the_reference(
    reply: str, method: str, question: str
) -> None:
    backend = ScriptedBackend([reply])
    rewrites = RewriteCache(REWRITE_CACHE_BYTES)
    standalone = standalone_question(conversation(), backend, 4_000, rewrites)
    assert (standalone.method, standalone.question) == (method, question)
    (prompt,) = backend.prompts
    assert prompt.instructions == REWRITE_INSTRUCTIONS
    assert prompt.context == f"Conversation:\nUser: {FIRST}\nAssistant: {FIRST_ANSWER}"
    assert prompt.question == FOLLOW_UP
    # Asked again, the same conversation costs no call.
    assert standalone_question(conversation(), backend, 4_000, rewrites) == standalone
    assert len(backend.prompts) == 1


@pytest.mark.slow
def test_openai_backend_follow_up_against_llama_cpp(
    llama_server: LlamaServer, data_dir: Path, embedder: Embedder
) -> None:
    """One rewrite call with an exact body; then the answer request carries the
    standalone question and the access page is the one passage it may cite. (SmolLM2-135M
    tends to drop the reference when it rewrites, so which standalone question wins is
    read from its real reply, never assumed.)"""
    recorder = Recorder()
    settings = server_settings(
        llama_server, "/v1", data_dir=data_dir, max_output_tokens=24, top_k=1
    )
    backend = OpenAIBackend(settings, "smollm2", http_client=recorder.client, max_retries=0)
    with KnowledgeBase(settings, backend=backend, embedder=embedder) as kb:
        answer = kb.ask(conversation(), "rag")
        sent = recorder.bodies
        assert len(sent) == 2  # the rewrite, then the answer
        assert sent[0] == {
            "model": "smollm2",
            "messages": [
                {"role": "system", "content": REWRITE_INSTRUCTIONS},
                {
                    "role": "user",
                    "content": f"Conversation:\nUser: {FIRST}\nAssistant: {FIRST_ANSWER}"
                    f"\n\nQuestion: {FOLLOW_UP}",
                },
            ],
            "temperature": 0,
            "max_tokens": 24,
        }
        reply = recorder.responses[0]["choices"][0]["message"]["content"]
        expected = standalone_question(
            conversation(), ScriptedBackend([reply]), 4_000, RewriteCache(REWRITE_CACHE_BYTES)
        )
        assert (answer.standalone_question, answer.standalone_method) == (
            expected.question,
            expected.method,
        )
        answer_turn = sent[1]["messages"][1]["content"]
        assert answer_turn.endswith(f"\n\nQuestion: {answer.standalone_question}")
        assert [c.doc_id for c in answer.retrieved] == [RIGHT_DOC]
        assert answer_turn.startswith(
            '<passage number="1" title="Access reviews" source="security/access.md">'
        )
        assert {c.doc_id for c in answer.citations} <= {RIGHT_DOC}

        # The same conversation again: the rewrite comes from the cache.
        kb.ask(conversation(), "rag")
        assert len(recorder.bodies) == 3
