"""`KnowledgeBase`: the one way in. The CLI, the API, the MCP server and the report
ask, stream, search and list documents through it; `kb/__init__.py` exports it.

A question (or a conversation, whose last user turn is first made to stand on its
own: `kb.conversation`) is a few named steps: pin one committed corpus version (so a
concurrent re-index never mixes versions), route (the router decides, self_route's
escalation included), gather the evidence (retrieved passages or the corpus
snapshot), ask the backend, cite, price.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from kb.backends import AnswerBackend, Completion, StreamDelta, get_backend
from kb.backends.cost import estimate_cost
from kb.backends.prompts import Prompt, long_context_prompt, rag_prompt
from kb.citations import resolve_citations
from kb.conversation import REWRITE_CACHE_BYTES, RewriteCache, Turn, standalone_question
from kb.core.errors import InvalidRequestError
from kb.core.models import Answer, Citation, DocumentList, Route, SearchResult, Usage
from kb.core.settings import Settings, check_mode, check_top_k
from kb.router import Router, Sizes
from kb.search.embedding import Embedder, shared_embedder
from kb.search.passages import build_passages
from kb.search.retrieval import Retriever
from kb.store.corpus import CorpusVersion, Layout
from kb.store.vectors import VectorStore, forget_embedded_clients


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
        self.embedder = embedder or shared_embedder(settings)
        self.backend = backend or get_backend(settings, embedder=self.embedder)
        self.router = Router(settings, self.backend)
        self.layout = Layout(settings.data_dir)
        self._corpus: CorpusVersion | None = None
        self.warm_version: str | None = None  # the version `warm_up` last loaded
        self._store: VectorStore | None = None
        self._lock = threading.Lock()
        self.rewrites = RewriteCache(REWRITE_CACHE_BYTES)  # follow-ups rewritten, per instance

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

    # ---- knowledge bases ----
    def loaded_store(self) -> VectorStore | None:
        """The vector store if a question has opened it, else None (what unloading frees)."""
        with self._lock:
            return self._store

    def validated_question(self, question: str) -> str:
        """`question` stripped, if it is one this service answers; else InvalidRequestError."""
        return self._validate(question, None, None)[0]

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
            auto_route=self.router.route(
                corpus.corpus_tokens, "auto", "", self.settings.top_k, manifest
            ),
        )

    def sizes(self, corpus: CorpusVersion, question: str) -> Sizes:
        """The token counts the router compares for `question` on `corpus`."""
        return self.router.sizes(corpus.corpus_tokens, question)

    def warm_up(self) -> None:
        """Load the embedding model and the committed corpus's indexes before the first
        question, so no question pays for them; and when the backend needs warming
        (the extractive reader loads its sentence index of the corpus version), ask
        one question: on the long-context path when the corpus fits, else on the
        retrieval path. A priced backend is never called here."""
        self.embedder.embed_one("warm up")
        if self.layout.current_version() is None:
            return
        corpus = self.corpus()
        self.retriever(corpus).search("warm up", self.settings.top_k)
        if self.backend.needs_warm_up and not self.backend.priced:
            fits = self.sizes(corpus, "warm up").fits
            self.ask("warm up", mode="long_context" if fits else "rag")
        self.warm_version = corpus.version

    # -- asking -------------------------------------------------------------------

    def ask(
        self, question: str | Sequence[Turn], mode: str | None = None, top_k: int | None = None
    ) -> Answer:
        """Answer `question` (or the last user turn of a conversation) with citations,
        the route and why, usage and cost."""
        *_, answer = self._answer(question, mode, top_k, stream=False)
        assert isinstance(answer, Answer)
        return answer

    def stream(
        self, question: str | Sequence[Turn], mode: str | None = None, top_k: int | None = None
    ) -> Iterator[StreamDelta | Answer]:
        """Like `ask`, but yields the answer text as it is generated, then the Answer."""
        yield from self._answer(question, mode, top_k, stream=True)

    def search(self, query: str, top_k: int | None = None) -> SearchResult:
        """The passages retrieval finds for `query`, numbered and cited with exact
        spans, without an answer (no backend call)."""
        query, _, top_k = self._validate(query, None, top_k)
        corpus = self.corpus()
        hits = self.retriever(corpus).search(query, top_k)
        passages = build_passages(corpus, hits, self.settings.rag_context_tokens, top_k)
        return SearchResult(query, corpus.version, passages)

    def documents(self, offset: int = 0, limit: int | None = None) -> DocumentList:
        """The committed version's documents in document-id order, `limit` from `offset`."""
        corpus = self.corpus()
        docs = corpus.manifest.documents
        end = None if limit is None else offset + limit
        return DocumentList(corpus.version, len(docs), docs[offset:end])

    def document_text(self, doc_id: str) -> str | None:
        """The text of one document of the committed version, or None if it has none."""
        corpus = self.corpus()
        for span_doc, start, end in corpus.document_spans():
            if span_doc == doc_id:
                return corpus.snapshot[start:end]
        return None

    def _answer(
        self, question: str | Sequence[Turn], mode: str | None, top_k: int | None, *, stream: bool
    ) -> Iterator[StreamDelta | Answer]:
        """A conversation's last user turn made standalone (kb.conversation), then asked;
        the final Answer says how, unless the turn was asked as written."""
        if not isinstance(question, list | tuple):  # one question (checked in `_run`)
            yield from self._run(question, mode, top_k, stream=stream)  # type: ignore[arg-type]
            return
        standalone = standalone_question(
            question, self.backend, self.settings.max_question_chars, self.rewrites
        )
        for event in self._run(standalone.question, mode, top_k, stream=stream):
            if isinstance(event, Answer) and standalone.method != "as_is":
                event.standalone_question = standalone.question
                event.standalone_method = standalone.method
            yield event

    def _run(
        self, question: str, mode: str | None, top_k: int | None, *, stream: bool
    ) -> Iterator[StreamDelta | Answer]:
        started = time.perf_counter()
        question, mode, top_k = self._validate(question, mode, top_k)
        in_flight = _InFlight(self.corpus(), question, stream=stream)  # pin one version
        route = self.router.route(
            in_flight.corpus.corpus_tokens, mode, question, top_k, in_flight.corpus.manifest
        )
        prompt = self._gather(in_flight, route, top_k)
        route, prompt, completion = yield from self._ask(in_flight, route, prompt)
        text, citations = _cite(completion, prompt)
        in_flight.timings["total_s"] = time.perf_counter() - started
        yield Answer(
            answer=text,
            refused=completion.refused,
            citations=citations,
            route=route,
            usage=in_flight.usage,
            cost_usd=self._price(in_flight.usage),
            backend=self.backend.name,
            corpus_version=in_flight.corpus.version,
            timings={k: round(v, 4) for k, v in in_flight.timings.items()},
            retrieved=in_flight.retrieved,
        )

    def _gather(self, in_flight: _InFlight, route: Route, top_k: int) -> Prompt:
        """The evidence for `route` as a prompt: retrieved passages, or the whole corpus."""
        if route.path == "long_context":
            return long_context_prompt(in_flight.corpus, in_flight.question)
        t0 = time.perf_counter()
        hits = self.retriever(in_flight.corpus).search(in_flight.question, top_k)
        in_flight.timings["retrieve_s"] = time.perf_counter() - t0
        in_flight.retrieved = build_passages(
            in_flight.corpus, hits, self.settings.rag_context_tokens, top_k
        )
        return rag_prompt(in_flight.retrieved, in_flight.question, in_flight.corpus)

    def _ask(
        self, in_flight: _InFlight, route: Route, prompt: Prompt
    ) -> Generator[StreamDelta, None, tuple[Route, Prompt, Completion]]:
        """Ask the backend. On self_route the router then keeps the retrieval answer or
        escalates to long context, whose answer replaces it (only the answer that
        stands is streamed)."""
        if not self.router.may_escalate(route):
            completion = yield from self._complete(in_flight, prompt, stream=in_flight.stream)
            return route, prompt, completion
        first = yield from self._complete(in_flight, prompt, stream=False)
        route = self.router.after_retrieval(
            route, in_flight.corpus.corpus_tokens, in_flight.question, refused=first.refused
        )
        if route.path == "rag":
            if in_flight.stream:
                yield StreamDelta(first.text)
            return route, prompt, first
        prompt = long_context_prompt(in_flight.corpus, in_flight.question)
        completion = yield from self._complete(in_flight, prompt, stream=in_flight.stream)
        return route, prompt, completion

    def _complete(
        self, in_flight: _InFlight, prompt: Prompt, *, stream: bool
    ) -> Generator[StreamDelta, None, Completion]:
        """Ask the backend (streaming its deltas when asked) and count its usage."""
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
        key = "generate_s" if "generate_s" not in in_flight.timings else "escalate_s"
        in_flight.timings[key] = time.perf_counter() - t0
        in_flight.add_usage(completion.usage)
        return completion

    def _price(self, usage: Usage) -> float | None:
        """USD for `usage`: 0 on an unpriced backend, None when the price is unknown."""
        if not self.backend.priced:
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
        mode = check_mode(mode or self.settings.default_mode)
        top_k = check_top_k(self.settings.top_k if top_k is None else top_k)
        return question, mode, top_k


@dataclass(slots=True)
class _InFlight:
    """One question in flight: the corpus version it is pinned to, what retrieval
    found, and what it has spent so far (usage summed over every backend call,
    timings by step)."""

    corpus: CorpusVersion
    question: str
    stream: bool
    retrieved: list[Citation] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    timings: dict[str, float] = field(default_factory=dict)

    def add_usage(self, part: Usage) -> None:
        self.usage.input_tokens += part.input_tokens
        self.usage.cache_read_tokens += part.cache_read_tokens
        self.usage.cache_write_tokens += part.cache_write_tokens
        self.usage.output_tokens += part.output_tokens


def _cite(completion: Completion, prompt: Prompt) -> tuple[str, list[Citation]]:
    """The answer text and its citations: the backend's own, or its markers resolved."""
    if completion.citations is not None:
        return completion.text, completion.citations
    return resolve_citations(completion.text, prompt)
