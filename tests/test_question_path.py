"""Every branch of the question path (`kb.service`, `kb.router`), fast and
deterministic: a tiny real corpus (real Chroma, the real embedding model) and the
scripted backend standing where a provider would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.pipeline import run_ingest
from kb.backends.base import Completion, StreamDelta
from kb.backends.cost import estimate_cost
from kb.backends.extractive.reader import ExtractiveBackend
from kb.backends.prompts import INSTRUCTIONS_LONG_CONTEXT, REFUSAL, Prompt
from kb.core.errors import InvalidRequestError
from kb.core.models import Answer, Route, Usage
from kb.core.settings import Settings, load_settings
from kb.core.tokens import count_tokens
from kb.router import Costs, Router, choose_path
from kb.search.embedding import Embedder
from kb.service import KnowledgeBase
from tests.conftest import write_corpus
from tests.scripted import (
    PricedScriptedBackend,
    ScriptedBackend,
    UncachedScriptedBackend,
    WarmingScriptedBackend,
    refuse_on_rag,
)

pytestmark = pytest.mark.fast

DOCS = {
    "deploys.md": "# Deploys\n\nProduction deploys run through the Conveyor pipeline. "
    "A deploy is frozen on Fridays after 14:00.",
    "retention.txt": "Data retention\n\nRaw event logs are kept for 30 days. "
    "Customer exports are deleted after 7 days.",
}
QUESTION = "When are deploys frozen?"
PRICES = {"input_mtok": 1.0, "cache_read_mtok": 0.1, "cache_write_mtok": 1.25, "output_mtok": 4.0}
# Cache reads dearer than input a thousand times over: long context loses on cost.
DEAR_CACHE = {"input_mtok": 0.01, "cache_read_mtok": 10.0, "output_mtok": 0.01}


@pytest.fixture(scope="module")
def corpus_settings(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Settings:
    base = tmp_path_factory.mktemp("question-path")
    settings = load_settings(data_dir=base / "data")
    run_ingest(settings, write_corpus(base / "docs", DOCS), embedder=embedder)
    prices = base / "prices.json"
    prices.write_text(
        json.dumps({"scripted:test": PRICES, "scripted:dear-cache": DEAR_CACHE}), encoding="utf-8"
    )
    return settings.model_copy(update={"price_overrides": prices})


def knowledge_base(
    settings: Settings, embedder: Embedder, backend: ScriptedBackend | None = None, **update: object
) -> KnowledgeBase:
    return KnowledgeBase(
        settings.model_copy(update=update), backend=backend or ScriptedBackend(), embedder=embedder
    )


def too_small(settings: Settings) -> dict[str, object]:
    """Settings under which the corpus never fits long context."""
    return {"long_context_budget": 1_000, "answer_reserve": 1_000}


def split(events: list[StreamDelta | Answer]) -> tuple[str, Answer]:
    *deltas, answer = events
    assert isinstance(answer, Answer)
    assert all(isinstance(delta, StreamDelta) for delta in deltas)
    return "".join(delta.text for delta in deltas if isinstance(delta, StreamDelta)), answer


# ---- the two paths ------------------------------------------------------------------


def test_rag_asks_with_numbered_passages_and_cites_them(
    corpus_settings: Settings, embedder: Embedder
) -> None:
    backend = ScriptedBackend()
    answer = knowledge_base(corpus_settings, embedder, backend).ask(QUESTION, mode="rag", top_k=2)

    (prompt,) = backend.prompts
    assert prompt.path == "rag" and prompt.question == QUESTION and prompt.cache_key is None
    assert [p.number for p in prompt.passages] == [1, 2] == [p.number for p in answer.retrieved]
    assert answer.answer == "From the passages [1]."
    assert answer.citations == [answer.retrieved[0]]
    assert answer.route == Route("rag", "rag", "retrieval was requested (mode rag)", False,
                                 answer.route.numbers)  # fmt: skip
    assert answer.cost_usd == 0.0 and answer.backend == "scripted:test"
    assert set(answer.timings) == {"retrieve_s", "generate_s", "total_s"}
    assert answer.usage.input_tokens > 0 and answer.usage.cache_read_tokens == 0


def test_long_context_asks_with_the_snapshot_and_resolves_document_citations(
    corpus_settings: Settings, embedder: Embedder
) -> None:
    backend = ScriptedBackend()
    base = knowledge_base(corpus_settings, embedder, backend)
    first = base.ask(QUESTION, mode="long_context")
    second = base.ask("How long are raw logs kept?", mode="auto")

    assert [p.path for p in backend.prompts] == ["long_context", "long_context"]
    assert backend.prompts[0].context == base.corpus().snapshot
    assert backend.prompts[0].cache_key == f"kb-{base.corpus().version}"
    assert first.answer == "From the corpus [1]." and first.citations[0].doc_id == "deploys.md"
    assert first.retrieved == [] and "retrieve_s" not in first.timings
    assert first.usage.cache_write_tokens > 0 and second.usage.cache_read_tokens > 0
    assert second.route.mode == "auto" and "the whole corpus goes in" in second.route.reason


def test_a_backend_that_cites_for_itself_is_taken_at_its_word(
    corpus_settings: Settings, embedder: Embedder
) -> None:
    def own_citations(prompt: Prompt) -> Completion:
        return Completion("Frozen on Fridays [1].", Usage(), "test", citations=prompt.passages[-1:])

    answer = knowledge_base(corpus_settings, embedder, ScriptedBackend(own_citations)).ask(
        QUESTION, mode="rag", top_k=2
    )
    assert answer.answer == "Frozen on Fridays [1]."
    assert answer.citations == [answer.retrieved[-1]]  # not [1], as resolving would give


# ---- self_route: the router keeps or escalates, the service follows -------------------


def test_self_route_keeps_an_answer_from_the_passages(
    corpus_settings: Settings, embedder: Embedder
) -> None:
    backend = ScriptedBackend()
    answer = knowledge_base(corpus_settings, embedder, backend).ask(QUESTION, mode="self_route")

    assert [p.path for p in backend.prompts] == ["rag"]
    assert answer.route.path == "rag" and not answer.route.fallback
    assert answer.route.reason == "retrieval's passages answered, so no escalation was needed"
    assert "escalate_s" not in answer.timings


def test_self_route_escalates_a_refusal_to_long_context(
    corpus_settings: Settings, embedder: Embedder
) -> None:
    backend = ScriptedBackend(refuse_on_rag)
    answer = knowledge_base(corpus_settings, embedder, backend).ask(QUESTION, mode="self_route")

    rag, long_context = backend.prompts
    assert (rag.path, long_context.path) == ("rag", "long_context")
    assert answer.route.path == "long_context" and answer.route.fallback
    assert answer.route.reason.startswith("retrieval's passages could not answer, so escalated")
    assert answer.route.numbers["fits"] is True
    assert not answer.refused and answer.citations[0].doc_id == "deploys.md"
    assert answer.retrieved  # what retrieval found is still reported
    assert {"generate_s", "escalate_s"} <= set(answer.timings)
    # Both calls are billed: the retrieval attempt's and the long-context one's usage, summed.
    fresh = ScriptedBackend(refuse_on_rag)
    calls = [fresh._usage(prompt, fresh.reply(prompt)) for prompt in (rag, long_context)]
    assert answer.usage == Usage(
        input_tokens=sum(call.input_tokens for call in calls),
        cache_read_tokens=0,
        cache_write_tokens=calls[1].cache_write_tokens,
        output_tokens=sum(call.output_tokens for call in calls),
    )
    assert calls[0].input_tokens > 0 and calls[1].cache_write_tokens > 0


def test_self_route_refusal_stands_when_the_corpus_does_not_fit(
    corpus_settings: Settings, embedder: Embedder
) -> None:
    backend = ScriptedBackend(refuse_on_rag)
    base = knowledge_base(corpus_settings, embedder, backend, **too_small(corpus_settings))
    text, answer = split(list(base.stream(QUESTION, mode="self_route")))

    assert [p.path for p in backend.prompts] == ["rag"] and backend.streamed == []
    assert answer.refused and answer.answer == REFUSAL == text  # streamed once, in full
    assert answer.route.path == "rag" and not answer.route.fallback
    assert "does not fit long context" in answer.route.reason
    assert answer.route.reason.endswith("so the refusal stands")


def test_escalation_returns_a_new_route_and_leaves_the_first_alone(
    corpus_settings: Settings,
) -> None:
    router = Router(corpus_settings, ScriptedBackend())
    first = router.route(100, "self_route", QUESTION, 8)
    kept = router.after_retrieval(first, 100, QUESTION, refused=False)
    escalated = router.after_retrieval(first, 100, QUESTION, refused=True)
    assert first.reason.startswith("self_route answers from retrieval first")
    assert kept is not first and kept.path == "rag" and "no escalation" in kept.reason
    assert escalated.path == "long_context" and escalated.numbers == first.numbers


# ---- streaming ------------------------------------------------------------------------


def test_stream_yields_the_deltas_then_the_answer(
    corpus_settings: Settings, embedder: Embedder
) -> None:
    backend = ScriptedBackend()
    text, answer = split(list(knowledge_base(corpus_settings, embedder, backend).stream(QUESTION)))
    assert text == "From the corpus [doc:deploys.md]."  # as the backend streamed it
    assert answer.answer == "From the corpus [1]."  # its marker resolved
    assert backend.streamed == backend.prompts


def test_stream_of_self_route_sends_only_the_answer_that_stands(
    corpus_settings: Settings, embedder: Embedder
) -> None:
    escalating = ScriptedBackend(refuse_on_rag)
    text, answer = split(
        list(knowledge_base(corpus_settings, embedder, escalating).stream(QUESTION, "self_route"))
    )
    assert [p.path for p in escalating.streamed] == ["long_context"]  # the refusal never streams
    assert text == "From the corpus [doc:deploys.md]." and answer.route.fallback

    keeping = ScriptedBackend()
    text, answer = split(
        list(knowledge_base(corpus_settings, embedder, keeping).stream(QUESTION, "self_route"))
    )
    assert keeping.streamed == [] and text == answer.answer == "From the passages [1]."


# ---- pricing: asked of the backend, weighed by the router ----------------------------


def test_a_priced_backend_is_billed_and_the_router_weighs_cost(
    corpus_settings: Settings, embedder: Embedder
) -> None:
    backend = PricedScriptedBackend()
    base = knowledge_base(corpus_settings, embedder, backend)
    answer = base.ask(QUESTION, mode="rag")

    assert answer.cost_usd == pytest.approx(
        estimate_cost("scripted:test", answer.usage, overrides=corpus_settings.price_overrides)
    )
    assert answer.cost_usd is not None and answer.cost_usd > 0
    numbers = answer.route.numbers
    assert numbers["long_context_cost_usd"] > 0 and numbers["rag_cost_usd"] > 0
    # A cost ratio above the limit sends auto to retrieval although the corpus fits.
    dear = knowledge_base(corpus_settings, embedder, PricedScriptedBackend(model="dear-cache"))
    route = dear.ask(QUESTION).route
    assert route.path == "rag" and route.numbers["fits"] is True
    assert "x > 20x): retrieve" in route.reason


def test_without_a_prompt_cache_the_corpus_is_priced_as_input(corpus_settings: Settings) -> None:
    cached = Router(corpus_settings, PricedScriptedBackend())
    uncached = Router(corpus_settings, UncachedScriptedBackend())
    sizes = cached.sizes(5_000, QUESTION)
    with_cache, without = cached.costs(sizes, QUESTION, 8), uncached.costs(sizes, QUESTION, 8)
    assert with_cache is not None and without is not None
    assert without.rag == with_cache.rag
    # The prefix (corpus + instructions) moves from the cache-read price to the input price.
    prefix = 5_000 + count_tokens(INSTRUCTIONS_LONG_CONTEXT)
    difference = prefix * (PRICES["input_mtok"] - PRICES["cache_read_mtok"]) / 1e6
    assert without.long_context - with_cache.long_context == pytest.approx(difference)


def test_an_unknown_price_leaves_cost_out_of_routing(
    corpus_settings: Settings, embedder: Embedder
) -> None:
    base = knowledge_base(corpus_settings, embedder, PricedScriptedBackend(model="unknown-model"))
    answer = base.ask(QUESTION)
    assert answer.cost_usd is None
    assert "cost_ratio" not in answer.route.numbers and answer.route.path == "long_context"
    assert base.router.costs(base.sizes(base.corpus(), QUESTION), QUESTION, 8) is None
    assert (
        Router(corpus_settings, ScriptedBackend()).costs(
            base.sizes(base.corpus(), QUESTION), QUESTION, 8
        )
        is None
    )  # an unpriced backend: no cost to weigh


# ---- routing around the limit -----------------------------------------------------------


def test_auto_retrieves_and_forced_long_context_fails_when_the_corpus_does_not_fit(
    corpus_settings: Settings, embedder: Embedder
) -> None:
    base = knowledge_base(corpus_settings, embedder, **too_small(corpus_settings))
    assert base.ask(QUESTION).route.path == "rag"
    with pytest.raises(InvalidRequestError, match="does not fit"):
        base.ask(QUESTION, mode="long_context")
    assert not base.sizes(base.corpus(), QUESTION).fits


def test_cheap_enough_long_context_notes_the_cost(corpus_settings: Settings) -> None:
    route = choose_path("auto", Router(corpus_settings, ScriptedBackend()).sizes(100, QUESTION),
                        Costs(long_context=0.002, rag=0.001), 20)  # fmt: skip
    assert route.path == "long_context" and "(2.0x <= 20x)" in route.reason


# ---- requests the service refuses ---------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "mode", "top_k", "message"),
    [
        ("", None, None, "question is empty"),
        ("x" * 4_001, None, None, "limit is 4,000"),
        ("ok?", "fastest", None, "Unknown mode 'fastest'"),
        ("ok?", None, 101, "top_k must be between 1 and 100, got 101"),
        ("ok?", None, True, "top_k must be between 1 and 100"),
    ],
)
def test_bad_requests_are_refused_before_any_work(
    corpus_settings: Settings,
    embedder: Embedder,
    question: str,
    mode: str | None,
    top_k: int | None,
    message: str,
) -> None:
    backend = ScriptedBackend()
    with pytest.raises(InvalidRequestError, match=message):
        knowledge_base(corpus_settings, embedder, backend).ask(question, mode, top_k)
    assert backend.prompts == []


# ---- the corpus version, status and warm-up -----------------------------------------------


def test_a_new_version_is_picked_up_and_the_embedded_store_reopened(
    tmp_path: Path, embedder: Embedder
) -> None:
    root = write_corpus(tmp_path / "docs", DOCS)
    settings = load_settings(data_dir=tmp_path / "data")
    run_ingest(settings, root, embedder=embedder)
    base = knowledge_base(settings, embedder)
    remote = knowledge_base(settings, embedder, chroma_url="http://127.0.0.1:9")
    first, store = base.corpus(), base.store
    assert base.corpus() is first and base.store is store  # unchanged: nothing reloaded
    remote_first = remote.corpus()
    remote._store = store  # stands for a client of the Chroma server (none runs here)

    write_corpus(root, {"travel.md": "# Travel\n\nHotels are reimbursed up to 180 euros."})
    run_ingest(settings, root, embedder=embedder)

    assert base.corpus().version != first.version
    assert base.store is not store  # embedded Chroma is reopened to see the new vectors
    assert remote.corpus().version != remote_first.version
    assert remote.store is store  # a Chroma server already serves them: the client is kept
    retrieved = base.ask("What is the hotel limit?", mode="rag").retrieved
    assert any("180 euros" in passage.text for passage in retrieved)  # the new vectors


def test_status_reports_the_corpus_and_the_auto_route(
    corpus_settings: Settings, embedder: Embedder
) -> None:
    status = knowledge_base(corpus_settings, embedder).status()
    assert (status.documents, status.backend) == (2, "scripted:test")
    assert status.auto_route.path == "long_context" and status.corpus_tokens > 0


def test_warm_up_asks_only_backends_that_need_it_on_the_path_the_corpus_takes(
    corpus_settings: Settings, embedder: Embedder, tmp_path: Path
) -> None:
    warming, plain, unfitting = (
        WarmingScriptedBackend(),
        ScriptedBackend(),
        WarmingScriptedBackend(),
    )
    knowledge_base(corpus_settings, embedder, warming).warm_up()
    knowledge_base(corpus_settings, embedder, plain).warm_up()
    knowledge_base(corpus_settings, embedder, unfitting, **too_small(corpus_settings)).warm_up()
    assert [p.path for p in warming.prompts] == ["long_context"]
    assert plain.prompts == []
    # A corpus too large for long context: the reader still loads its index, via retrieval.
    assert [p.path for p in unfitting.prompts] == ["rag"]

    empty = WarmingScriptedBackend()
    knowledge_base(corpus_settings, embedder, empty, data_dir=tmp_path / "none").warm_up()
    assert empty.prompts == []  # nothing ingested yet: only the model is loaded


def test_the_injected_embedder_reaches_the_extractive_reader(
    corpus_settings: Settings, embedder: Embedder
) -> None:
    with KnowledgeBase(corpus_settings, embedder=embedder) as base:
        assert isinstance(base.backend, ExtractiveBackend)
        assert base.backend.embedder is base.embedder is embedder
        assert base.backend.needs_warm_up and not base.backend.priced
