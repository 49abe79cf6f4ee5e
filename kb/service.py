"""The one call the CLI, the API and the report share: `KnowledgeBase.ask`.

It pins one committed corpus version per question (so a concurrent re-index never
mixes versions), routes, builds the prompt, asks the backend, resolves citations
and prices the usage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from types import TracebackType

from kb.backends import AnswerBackend, Completion, Prompt, StreamDelta, get_backend
from kb.backends.base import INSTRUCTIONS_LONG_CONTEXT, INSTRUCTIONS_RAG
from kb.citations import resolve_citations
from kb.corpus import CorpusVersion, Layout
from kb.cost import FREE_PROVIDERS, estimate_cost
from kb.embedding import Embedder, shared_embedder
from kb.errors import InvalidRequestError
from kb.models import Answer, Citation, Route, Usage
from kb.prompts import long_context_prompt, passages_from_hits, rag_prompt
from kb.retrieval import Hit, Retriever
from kb.router import Costs, Sizes, choose_path
from kb.settings import MODES, Settings
from kb.store import VectorStore, forget_embedded_clients
from kb.tokens import count_tokens

PROMPT_MARKUP_TOKENS = 16  # role markers and separators around instructions and question
TYPICAL_OUTPUT_TOKENS = 200  # for the per-question cost estimate the router compares


@dataclass
class CorpusStatus:
    corpus_version: str
    documents: int
    chunks: int
    corpus_tokens: int
    last_ingest: str
    corpus_root: str
    embedding_model: str
    backend: str
    auto_route: Route


class KnowledgeBase:
    """Answers questions over the corpus in `settings.data_dir` with one backend."""

    def __init__(
        self,
        settings: Settings,
        *,
        backend: AnswerBackend | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.settings = settings
        self.backend = backend or get_backend(settings)
        self.embedder = embedder or shared_embedder(settings)
        self.layout = Layout(settings.data_dir)
        self._corpus: CorpusVersion | None = None
        self._store: VectorStore | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.backend.close()

    # -- corpus -------------------------------------------------------------------

    def corpus(self) -> CorpusVersion:
        """The committed corpus version now (reloaded when an ingest has swapped it)."""
        version = self.layout.current_version()
        with self._lock:
            if self._corpus is None or self._corpus.version != version:
                fresh = CorpusVersion.open(self.settings.data_dir)
                if self._corpus is not None and not self.settings.chroma_url:
                    # The new version's vectors may come from another process.
                    forget_embedded_clients()
                    self._store = None
                self._corpus = fresh
            return self._corpus

    @property
    def store(self) -> VectorStore:
        with self._lock:
            if self._store is None:
                self._store = VectorStore(self.settings)
            return self._store

    def retriever(self, corpus: CorpusVersion) -> Retriever:
        return Retriever(corpus, self.store, self.embedder, hops=self.settings.retrieval_hops)

    def status(self) -> CorpusStatus:
        corpus = self.corpus()
        manifest = corpus.manifest
        return CorpusStatus(
            corpus_version=corpus.version,
            documents=len(manifest.documents),
            chunks=manifest.chunk_count,
            corpus_tokens=manifest.corpus_tokens,
            last_ingest=manifest.created_at,
            corpus_root=manifest.corpus_root,
            embedding_model=manifest.embedding_model,
            backend=self.backend.name,
            auto_route=self.route(corpus, "auto", "", self.settings.top_k),
        )

    # -- routing ------------------------------------------------------------------

    def sizes(self, corpus: CorpusVersion, question: str) -> Sizes:
        window = self.settings.context_window or self.backend.window
        return Sizes(
            corpus_tokens=corpus.corpus_tokens,
            overhead_tokens=count_tokens(INSTRUCTIONS_LONG_CONTEXT)
            + count_tokens(question)
            + PROMPT_MARKUP_TOKENS,
            answer_reserve=self.settings.answer_reserve,
            budget=self.settings.long_context_budget,
            window=window,
        )

    def costs(self, sizes: Sizes, question: str, top_k: int) -> Costs | None:
        """Expected USD per question on each path, when the backend has a price."""
        if self.backend.provider in FREE_PROVIDERS:
            return None
        question_tokens = count_tokens(question) + PROMPT_MARKUP_TOKENS
        long_context = estimate_cost(
            self.backend.name,
            Usage(
                input_tokens=question_tokens,
                cache_read_tokens=sizes.corpus_tokens + count_tokens(INSTRUCTIONS_LONG_CONTEXT),
                output_tokens=TYPICAL_OUTPUT_TOKENS,
            ),
            overrides=self.settings.price_overrides,
        )
        rag = estimate_cost(
            self.backend.name,
            Usage(
                input_tokens=question_tokens
                + count_tokens(INSTRUCTIONS_RAG)
                + top_k * self.settings.chunk_tokens,
                output_tokens=TYPICAL_OUTPUT_TOKENS,
            ),
            overrides=self.settings.price_overrides,
        )
        if long_context is None or rag is None:
            return None
        return Costs(long_context=long_context, rag=rag)

    def route(self, corpus: CorpusVersion, mode: str, question: str, top_k: int) -> Route:
        sizes = self.sizes(corpus, question)
        return choose_path(
            mode, sizes, self.costs(sizes, question, top_k), self.settings.auto_max_cost_ratio
        )

    # -- asking -------------------------------------------------------------------

    def ask(self, question: str, mode: str | None = None, top_k: int | None = None) -> Answer:
        """Answer `question` with citations, the route and why, usage and cost."""
        answer: Answer | None = None
        for event in self._run(question, mode, top_k, stream=False):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def stream(
        self, question: str, mode: str | None = None, top_k: int | None = None
    ) -> Iterator[StreamDelta | Answer]:
        """Like `ask`, but yields the answer text as it is generated, then the Answer."""
        yield from self._run(question, mode, top_k, stream=True)

    def _run(
        self, question: str, mode: str | None, top_k: int | None, *, stream: bool
    ) -> Iterator[StreamDelta | Answer]:
        started = time.perf_counter()
        question, mode, top_k = self._validate(question, mode, top_k)
        corpus = self.corpus()
        route = self.route(corpus, mode, question, top_k)
        timings: dict[str, float] = {}
        retrieved: list[Citation] = []
        usage = Usage()

        if route.path == "rag":
            t0 = time.perf_counter()
            hits: list[Hit] = self.retriever(corpus).search(question, top_k)
            timings["retrieve_s"] = time.perf_counter() - t0
            retrieved = passages_from_hits(hits)
            prompt = rag_prompt(retrieved, question, corpus)
            final = mode != "self_route"
            completion = yield from self._complete(prompt, timings, stream=stream and final)
            _add_usage(usage, completion.usage)
            if mode == "self_route" and completion.refused:
                sizes = self.sizes(corpus, question)
                if sizes.fits:
                    route = Route(
                        mode,
                        "long_context",
                        f"retrieval's passages could not answer, so escalated to long "
                        f"context: {sizes.explain()}",
                        fallback=True,
                        numbers=route.numbers,
                    )
                    prompt = long_context_prompt(corpus, question)
                    completion = yield from self._complete(prompt, timings, stream=stream)
                    _add_usage(usage, completion.usage)
                else:
                    route.reason = (
                        f"retrieval's passages could not answer and the corpus does not fit "
                        f"long context ({sizes.explain()}), so the refusal stands"
                    )
            elif mode == "self_route":
                route.reason = "retrieval's passages answered, so no escalation was needed"
                if stream:
                    yield StreamDelta(completion.text)
        else:
            prompt = long_context_prompt(corpus, question)
            completion = yield from self._complete(prompt, timings, stream=stream)
            _add_usage(usage, completion.usage)

        if completion.citations is not None:
            text, citations = completion.text, completion.citations
        else:
            text, citations = resolve_citations(completion.text, prompt)
        timings["total_s"] = time.perf_counter() - started
        yield Answer(
            answer=text,
            refused=completion.refused,
            citations=citations,
            route=route,
            usage=usage,
            cost_usd=self._cost(usage),
            backend=self.backend.name,
            corpus_version=corpus.version,
            timings={k: round(v, 4) for k, v in timings.items()},
            retrieved=retrieved,
        )

    def _complete(
        self, prompt: Prompt, timings: dict[str, float], *, stream: bool
    ) -> Generator[StreamDelta, None, Completion]:
        t0 = time.perf_counter()
        completion: Completion | None = None
        if stream:
            for event in self.backend.stream(prompt):
                if isinstance(event, Completion):
                    completion = event
                else:
                    yield event
        else:
            completion = self.backend.complete(prompt)
        assert completion is not None
        key = "generate_s" if "generate_s" not in timings else "escalate_s"
        timings[key] = time.perf_counter() - t0
        return completion

    def _cost(self, usage: Usage) -> float | None:
        if self.backend.provider in FREE_PROVIDERS:
            return 0.0
        return estimate_cost(self.backend.name, usage, overrides=self.settings.price_overrides)

    def _validate(self, question: str, mode: str | None, top_k: int | None) -> tuple[str, str, int]:
        if not isinstance(question, str) or not question.strip():
            raise InvalidRequestError("The question is empty: send the text of a question.")
        question = question.strip()
        if len(question) > self.settings.max_question_chars:
            raise InvalidRequestError(
                f"The question has {len(question):,} characters; the limit is "
                f"{self.settings.max_question_chars:,} (KB_MAX_QUESTION_CHARS)."
            )
        mode = mode or self.settings.default_mode
        if mode not in MODES:
            raise InvalidRequestError(f"Unknown mode {mode!r}: use one of {', '.join(MODES)}.")
        top_k = self.settings.top_k if top_k is None else top_k
        if not 1 <= top_k <= 100:
            raise InvalidRequestError(f"top_k must be between 1 and 100, got {top_k}.")
        return question, mode, top_k


def _add_usage(total: Usage, part: Usage) -> None:
    total.input_tokens += part.input_tokens
    total.cache_read_tokens += part.cache_read_tokens
    total.cache_write_tokens += part.cache_write_tokens
    total.output_tokens += part.output_tokens
