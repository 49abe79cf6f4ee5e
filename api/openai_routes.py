"""OpenAI-compatible routes, so OpenAI clients and chat front-ends can use the service
as a model.

How the kb answer maps onto OpenAI's shape:
- the question is the text of the last `user` message; earlier `user` and `assistant`
  messages are its conversation, from which a follow-up is made standalone before
  routing and retrieval (kb.conversation; `kb.standalone_question` shows it);
- `model` picks the mode: `kb-auto`, `kb-rag`, `kb-long_context`, `kb-self_route`
  (hyphens or underscores); any other name uses KB_DEFAULT_MODE;
- the message content is the answer, then a blank line and a `Sources:` list, one
  `[n] title (source, chars start-end)` line per citation;
- two extra top-level fields carry the structured data: `citations` (as in
  /v1/query) and `kb` (route, cost, corpus version, timings). The `openai` Python
  client keeps them in `response.model_extra`; in a stream they ride on the chunk
  that has `finish_reason`;
- usage is OpenAI's: `prompt_tokens` counts cached and uncached prompt tokens,
  `prompt_tokens_details.cached_tokens` the cached ones.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import anyio.to_thread
from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse

from api.deps import Caller, Operator, ServiceState, State, shown_error
from api.keys import require_read
from api.routes import QUERY_ERRORS, error_responses, logger, to_response
from api.schemas import (
    ChatChoice,
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatDelta,
    ChatMessage,
    ChatResponseMessage,
    ChatUsage,
    Citation,
    ErrorResponse,
    KBDetails,
    ModelCard,
    ModelList,
    PromptTokensDetails,
    error_payload,
)
from api.streaming import SSE_HEADERS, prefetched, sse
from kb import Access, Answer, KnowledgeBase, Turn, not_found
from kb.backends import StreamDelta
from kb.core import DEFAULT_KB, MODES, InvalidRequestError, KBError

router = APIRouter(prefix="/v1", tags=["openai"])

MODEL_DESCRIPTIONS = {
    "auto": "The router picks long context or retrieval per corpus and question.",
    "long_context": "The whole corpus from the cached prompt.",
    "rag": "Retrieve passages within a token budget and answer from them, with citations.",
    "self_route": "Retrieve first; escalate to long context if the passages cannot answer.",
}

STREAM_EXAMPLE = (
    'data: {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": '
    '[{"index": 0, "delta": {"role": "assistant", "content": ""}}], ...}\n\n'
    'data: {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": '
    '[{"index": 0, "delta": {"content": "Deploys are frozen from Friday 15:00 [1]"}}], ...}\n\n'
    'data: {..., "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], '
    '"citations": [...], "kb": {...}}\n\n'
    "data: [DONE]\n\n"
)


def mode_for_model(model: str) -> str | None:
    """The mode a `kb-<mode>` model name selects; None (the default mode) otherwise."""
    key = model.strip().lower().replace("-", "_")
    for mode in MODES:
        if key == f"kb_{mode}":
            return mode
    return None


def text_of(message: ChatMessage) -> str:
    if isinstance(message.content, list):
        return "\n".join(part.text or "" for part in message.content if part.type == "text")
    return message.content or ""


def turns_of(messages: list[ChatMessage]) -> list[Turn]:
    """The user and assistant messages as a conversation (system and tool messages are
    not part of what the corpus is asked)."""
    turns = [
        Turn("user" if message.role == "user" else "assistant", text_of(message))
        for message in messages
        if message.role in ("user", "assistant")
    ]
    if not any(turn.role == "user" for turn in turns):
        raise InvalidRequestError(
            "messages has no message with role 'user': the last user message is the question."
        )
    return turns


def sources_block(answer: Answer) -> str:
    """The `Sources:` list appended to the message content."""
    if not answer.citations:
        return ""
    lines = [
        f"[{c.number}] {c.title} ({c.source}, chars {c.start}-{c.end})" for c in answer.citations
    ]
    return "\n\nSources:\n" + "\n".join(lines)


def chat_usage(answer: Answer) -> ChatUsage:
    prompt = answer.usage.total_input_tokens
    return ChatUsage(
        prompt_tokens=prompt,
        completion_tokens=answer.usage.output_tokens,
        total_tokens=prompt + answer.usage.output_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=answer.usage.cache_read_tokens),
    )


def kb_details(answer: Answer) -> tuple[list[Citation], KBDetails]:
    response = to_response(answer)
    details = KBDetails(
        route=response.route,
        refused=response.refused,
        cost_usd=response.cost_usd,
        backend=response.backend,
        corpus_version=response.corpus_version,
        timings=response.timings,
        usage=response.usage,
        standalone_question=response.standalone_question,
        standalone_method=response.standalone_method,
    )
    return response.citations, details


@router.post(
    "/chat/completions",
    summary="OpenAI-compatible chat completion",
    description="Answer the last user message (made standalone from the conversation "
    "when it is a follow-up) as an OpenAI `chat.completion` (or, with "
    "`stream: true`, `chat.completion.chunk` server-sent events ending with "
    "`data: [DONE]`). Citations come twice: as a `Sources:` list at the end of the "
    "message content, and as the extra top-level `citations` field (with `kb` for the "
    "route, cost and corpus version).",
    response_model=ChatCompletionResponse,
    response_model_exclude_none=True,
    responses={
        200: {
            "description": "A chat completion, or an SSE stream of chunks.",
            "content": {"text/event-stream": {"example": STREAM_EXAMPLE}},
        },
        **QUERY_ERRORS,
    },
)
async def chat_completions(
    body: ChatCompletionRequest, state: State, caller: Caller, operator: Operator
) -> ChatCompletionResponse | StreamingResponse:
    turns = turns_of(body.messages)
    base, mode = model_target(state, caller, body.model)  # issue 19: a model per knowledge base
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if body.stream:
        events = await prefetched(base.stream(turns, mode, None), state.query_limiter)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        frames = _chunks(events, completion_id, created, body.model, include_usage, operator)
        return StreamingResponse(frames, media_type="text/event-stream", headers=SSE_HEADERS)
    answer = await anyio.to_thread.run_sync(
        base.ask, turns, mode, None, limiter=state.query_limiter
    )
    citations, details = kb_details(answer)
    return ChatCompletionResponse(
        id=completion_id,
        created=created,
        model=body.model,
        system_fingerprint=f"kb-{answer.corpus_version}",
        choices=[
            ChatChoice(message=ChatResponseMessage(content=answer.answer + sources_block(answer)))
        ],
        usage=chat_usage(answer),
        citations=citations,
        kb=details,
    )


async def _chunks(
    events: AsyncIterator[StreamDelta | Answer],
    completion_id: str,
    created: int,
    model: str,
    include_usage: bool,
    operator: bool,
) -> AsyncIterator[str]:
    def chunk(delta: ChatDelta | None, **extra: object) -> str:
        choices = [] if delta is None else [ChatChunkChoice(delta=delta)]
        frame = ChatCompletionChunk(
            id=completion_id,
            created=created,
            model=model,
            choices=choices,
            **extra,  # type: ignore[arg-type]
        )
        return sse(frame.model_dump(mode="json", exclude_none=True))

    yield chunk(ChatDelta(role="assistant", content=""))
    try:
        async for event in events:
            if isinstance(event, StreamDelta):
                if event.text:
                    yield chunk(ChatDelta(content=event.text))
                continue
            sources = sources_block(event)
            if sources:
                yield chunk(ChatDelta(content=sources))
            citations, details = kb_details(event)
            fingerprint = f"kb-{event.corpus_version}"
            final = ChatCompletionChunk(
                id=completion_id,
                created=created,
                model=model,
                system_fingerprint=fingerprint,
                choices=[ChatChunkChoice(delta=ChatDelta(), finish_reason="stop")],
                citations=citations,
                kb=details,
            )
            yield sse(final.model_dump(mode="json", exclude_none=True))
            if include_usage:
                yield chunk(None, usage=chat_usage(event), system_fingerprint=fingerprint)
    except KBError as exc:
        yield sse(error_payload(*shown_error(exc, operator)))
    except Exception:
        logger.exception("a streamed chat completion failed")
        yield sse(error_payload("InternalError", "The answer failed; see the server log."))
    yield "data: [DONE]\n\n"


@router.get(
    "/models",
    summary="List the kb models",
    description="One model name per mode over the default knowledge base (`kb-<mode>`), and "
    "one per named knowledge base the key may read (its name; `NAME:<mode>` picks a mode), "
    "so a chat front-end picks a knowledge base the way it picks a model.",
    response_model=ModelList,
    responses=error_responses(401),
)
async def list_models(state: State, caller: Caller) -> ModelList:
    cards = []
    if caller.can_read(DEFAULT_KB):
        cards = [_card(mode, state.started_at) for mode in MODES]
    names = caller.readable(state.knowledge_bases.names())
    cards += [_kb_card(name, state.started_at) for name in names if name != DEFAULT_KB]
    return ModelList(data=cards)


@router.get(
    "/models/{model_id}",
    summary="Describe one kb model",
    description="The card of one `kb-<mode>` model name or knowledge base the key may read; "
    "404 for any other name.",
    response_model=ModelCard,
    responses=error_responses(401, 422)
    | {404: {"model": ErrorResponse, "description": "Not a kb model name."}},
)
async def get_model(model_id: str, state: State, caller: Caller) -> ModelCard:
    mode = mode_for_model(model_id)
    if mode is not None and caller.can_read(DEFAULT_KB):
        return _card(mode, state.started_at)
    name = model_id.partition(":")[0]
    if name != DEFAULT_KB and caller.can_read(name) and state.knowledge_bases.exists(name):
        return _kb_card(name, state.started_at)
    raise HTTPException(
        404, f"No model {model_id[:80]!r}: GET /v1/models lists the models your key may use."
    )


def _card(mode: str, created: int) -> ModelCard:
    return ModelCard(
        id=f"kb-{mode}", created=created, owned_by="kb", description=MODEL_DESCRIPTIONS[mode]
    )


# ---- a model per knowledge base ----


def _kb_card(name: str, created: int) -> ModelCard:
    return ModelCard(
        id=name,
        created=created,
        owned_by="kb",
        description=f"Knowledge base {name}: the router picks long context or retrieval "
        f"for it (`{name}:rag`, `{name}:long_context` pick a path).",
    )


def model_target(
    state: ServiceState, caller: Access, model: str
) -> tuple[KnowledgeBase, str | None]:
    """The knowledge base and mode a chat `model` names: `kb-<mode>` (or any name that is
    not a knowledge base) the default one, `NAME` or `NAME:<mode>` a named one. A name
    the key may not read is answered like a missing one."""
    name, _, mode_name = model.strip().partition(":")
    if name != DEFAULT_KB and mode_for_model(model) is None and state.knowledge_bases.exists(name):
        if not caller.can_read(name):
            raise not_found(name)
        mode = mode_for_model(f"kb-{mode_name}") if mode_name else None
        if mode_name and mode is None:
            raise InvalidRequestError(
                f"Unknown mode {mode_name!r} in model {model[:80]!r}: use one of "
                f"{', '.join(MODES)}."
            )
        return state.knowledge_bases.get(name), mode
    require_read(caller, DEFAULT_KB)
    return state.kb, mode_for_model(model)
