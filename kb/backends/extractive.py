"""The offline default reader: answers with the unit(s) of its context (a sentence,
list item or table row) that best answer the question, scored by the bundled
embedding model plus lexical overlap, and refuses below a threshold. No key, no
network.

It honestly reads whatever context it is given: the whole corpus snapshot on the
long-context path, the numbered passages on the retrieval path. What it needs per
corpus version, every unit's vector, is computed at ingest time
(`kb.sentence_index`); its "prompt cache" is that index, reported as cache-read
tokens on the long-context path. A data folder ingested without it gets it built by
the first question (reported as cache-write tokens) and saved.

It answers rather than echoes: headings, titles and FAQ question lines give
context to the units under them but are never an answer, a unit that only restates
the question is skipped, and among the units that score alike the one that carries
the asked-for kind of fact (a number, a date, a name) wins.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from kb.backends.base import AnswerBackend, Completion
from kb.corpus import CorpusVersion, Layout
from kb.embedding import MODEL_NAME, Embedder, shared_embedder
from kb.fact_kinds import asked_kinds, carries, restates
from kb.models import Citation, Usage
from kb.prompts import REFUSAL, Prompt
from kb.sentence_index import (
    DocumentText,
    SentenceIndex,
    SentenceIndexes,
    corpus_documents,
    hash64,
)
from kb.settings import Settings
from kb.text import content_words
from kb.tokens import count_tokens

VECTOR_WEIGHT = 0.6  # the rest is lexical overlap; both lie in [0, 1]
SECOND_SENTENCE_RATIO = 0.92  # a second source must score this close to the best
KIND_BONUS = 0.05  # for a unit that carries the kind of fact the question asks for
CANDIDATES = 24  # best-scoring units looked at closely per question


@dataclass(frozen=True, slots=True)
class Sentence:
    """A unit as read from the context, with offsets in its own document."""

    doc_id: str
    title: str
    source: str
    start: int
    end: int
    text: str


@dataclass(slots=True)
class Reading:
    """What the reader was given to read: an index, the rows of it that the context
    holds, and where each document's text sits in the context."""

    index: SentenceIndex
    rows: np.ndarray
    # doc_id -> pieces of context (base, text): character i of the document is
    # text[i - base] (the snapshot holds whole documents; a passage a slice of one).
    texts: dict[str, list[tuple[int, str]]]
    titles: dict[str, tuple[str, str]]  # doc_id -> (title, source)

    def sentence(self, row: int) -> Sentence:
        doc_id = self.index.doc_ids[int(self.index.doc[row])]
        start, end = int(self.index.start[row]), int(self.index.end[row])
        title, source = self.titles[doc_id]
        for base, text in self.texts[doc_id]:
            if base <= start and end - base <= len(text):
                return Sentence(doc_id, title, source, start, end, text[start - base : end - base])
        raise LookupError(f"unit {start}-{end} of {doc_id} is not in the context")


class ExtractiveBackend(AnswerBackend):
    provider = "extractive"
    # It reads any length; the long-context budget is what bounds it.
    context_window = 100_000_000
    supports_prompt_cache = True
    needs_warm_up = True  # the server loads the corpus version's sentence index at start
    has_refusal_threshold = True
    generative = False  # it picks sentences: a conversation is joined, not rewritten

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None) -> None:
        super().__init__(MODEL_NAME)
        self.embedder = embedder or shared_embedder(settings)
        self.threshold = settings.extractive_threshold
        self.indexes = SentenceIndexes(Layout(settings.data_dir))
        self._loaded: OrderedDict[str, SentenceIndex] = OrderedDict()
        self._spans: dict[str, dict[str, tuple[int, int]]] = {}
        self._adhoc: SentenceIndex | None = None  # for prompts without a corpus
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return "extractive"

    # -- the one method a backend must have -----------------------------------

    def complete(self, prompt: Prompt) -> Completion:
        reading, built = self._reading(prompt)
        if prompt.path == "long_context":
            corpus_tokens = (
                prompt.corpus.corpus_tokens if prompt.corpus else count_tokens(prompt.context)
            )
            usage = Usage(
                input_tokens=count_tokens(prompt.instructions) + count_tokens(prompt.question),
                cache_read_tokens=0 if built else corpus_tokens,
                cache_write_tokens=corpus_tokens if built else 0,
            )
        else:
            usage = Usage(input_tokens=count_tokens(prompt.prefix) + count_tokens(prompt.question))
        return self._answer(prompt, reading, usage)

    # -- what to read ---------------------------------------------------------------

    def index_for(self, corpus: CorpusVersion) -> tuple[SentenceIndex, bool]:
        """The sentence index of `corpus`, and whether it had to be built now (a data
        folder ingested before the reader index existed)."""
        with self._lock:
            index = self._loaded.get(corpus.version)
            built = False
            if index is None:
                index = self.indexes.load(corpus.version)
                if index is None:
                    index = SentenceIndex.build(corpus_documents(corpus), self.embedder)
                    index.save(self.indexes.folder(corpus.version))
                    built = True
                self._loaded[corpus.version] = index
                while len(self._loaded) > 2:
                    self._loaded.popitem(last=False)
            self._loaded.move_to_end(corpus.version)
            return index, built

    def _reading(self, prompt: Prompt) -> tuple[Reading, bool]:
        if prompt.corpus is None:
            return self._read_without_corpus(prompt), True
        corpus = prompt.corpus
        index, built = self.index_for(corpus)
        titles = {d.doc_id: (d.title, d.source) for d in corpus.manifest.documents}
        if prompt.path == "long_context":
            spans = self._document_spans(corpus)
            texts = {doc_id: [(-start, prompt.context)] for doc_id, (start, _) in spans.items()}
            return Reading(index, np.arange(len(index)), texts, titles), built
        pieces: dict[str, list[tuple[int, str]]] = {}
        found = [np.zeros(0, dtype=np.int64)]
        for passage in prompt.passages:
            pieces.setdefault(passage.doc_id, []).append((passage.start, passage.text))
            found.append(index.rows_within(passage.doc_id, passage.start, passage.end))
        return Reading(index, np.unique(np.concatenate(found)), pieces, titles), built

    def _document_spans(self, corpus: CorpusVersion) -> dict[str, tuple[int, int]]:
        spans = self._spans.get(corpus.version)
        if spans is None:
            spans = {doc_id: (start, end) for doc_id, start, end in corpus.document_spans()}
            self._spans = {corpus.version: spans}
        return spans

    def _read_without_corpus(self, prompt: Prompt) -> Reading:
        """A prompt built by hand: its passages (or whole context) indexed now,
        reusing the vectors of the previous such prompt."""
        if prompt.passages:
            docs = _stitched(prompt)
            titles = {p.doc_id: (p.title, p.source) for p in prompt.passages}
        else:
            docs = [DocumentText("context", "", prompt.context)]
            titles = {"context": ("", "")}
        with self._lock:
            index = SentenceIndex.build(docs, self.embedder, previous=self._adhoc)
            self._adhoc = index
        texts = {d.doc_id: [(0, d.text)] for d in docs}
        return Reading(index, np.arange(len(index)), texts, titles)

    # -- scoring ------------------------------------------------------------------

    def _scores(self, prompt: Prompt, reading: Reading) -> np.ndarray:
        """0.6 x cosine similarity + 0.4 x IDF-weighted share of the question's words."""
        index, rows = reading.index, reading.rows
        if len(rows) == 0:
            return np.zeros(0, dtype=np.float32)
        question_vector = self.embedder.embed_one(prompt.question)
        vectors = index.dense if len(rows) == len(index) else index.vectors[rows]
        similarity = np.clip(np.asarray(vectors, dtype=np.float32) @ question_vector, 0, 1)
        words = sorted({hash64(w) for w in content_words(prompt.question)})
        lexical: np.ndarray = np.zeros(len(rows), dtype=np.float32)
        if words:
            idf = index.idf(words)
            weights = dict(zip(words, idf.tolist(), strict=True))
            lexical = index.overlap(rows, weights) / float(idf.sum())
        scores: np.ndarray = VECTOR_WEIGHT * similarity + (1 - VECTOR_WEIGHT) * lexical
        return scores

    def _candidates(
        self, prompt: Prompt, reading: Reading, scores: np.ndarray
    ) -> list[tuple[float, float, Sentence, str]]:
        """(rank score, score, sentence, context) of the answerable units that clear the
        threshold and say something the question does not, best first."""
        index, rows = reading.index, reading.rows
        eligible = np.flatnonzero(index.answerable[rows] & (scores >= self.threshold))
        top = eligible[np.argsort(-scores[eligible], kind="stable")[:CANDIDATES]]
        kinds = asked_kinds(prompt.question)
        question_words = content_words(prompt.question)
        out = []
        for at in top:
            row = int(rows[at])
            sentence = reading.sentence(row)
            if restates(sentence.text, question_words | content_words(sentence.title), kinds):
                continue
            has_kind = bool(kinds) and carries(sentence.text, kinds, prompt.question)
            if "number" in kinds and not has_kind:
                continue  # "how many / how long ..." is not answered without a quantity
            score = float(scores[at])
            bonus = KIND_BONUS if has_kind else 0.0
            out.append((score + bonus, score, sentence, index.context_of(row)))
        out.sort(key=lambda c: -c[0])
        return out

    # -- the answer ---------------------------------------------------------------

    def _answer(self, prompt: Prompt, reading: Reading, usage: Usage) -> Completion:
        candidates = self._candidates(prompt, reading, self._scores(prompt, reading))
        if not candidates:
            usage.output_tokens = count_tokens(REFUSAL)
            return Completion(REFUSAL, usage, self.name, refused=True, citations=[])
        best_rank, best_score, best, best_context = candidates[0]
        picked = [(best, best_score)]
        for rank, score, sentence, context in candidates[1:5]:
            if rank < SECOND_SENTENCE_RATIO * best_rank:
                break
            # A second source: another document, or the next item or row of one list.
            sibling = context == best_context and sentence.doc_id == best.doc_id and context
            if sentence.doc_id != best.doc_id or sibling:
                picked.append((sentence, score))
                break
        picked.sort(key=lambda p: (p[0].doc_id, p[0].start))
        citations = [
            _cite(number, sentence, score, prompt)
            for number, (sentence, score) in enumerate(picked, start=1)
        ]
        text = " ".join(f"{c.text} [{c.number}]" for c in citations)
        usage.output_tokens = count_tokens(text)
        return Completion(text, usage, self.name, refused=False, citations=citations)


def _stitched(prompt: Prompt) -> list[DocumentText]:
    """Each document of the passages as one text with the passages at their offsets
    and blank space between, so that units keep the document's offsets."""
    pieces: dict[str, list[tuple[int, str]]] = {}
    titles = {}
    for passage in prompt.passages:
        pieces.setdefault(passage.doc_id, []).append((passage.start, passage.text))
        titles[passage.doc_id] = passage.title
    docs = []
    for doc_id, parts in pieces.items():
        text = ""
        for start, piece in sorted(parts):
            if start >= len(text):
                text += "\n\n".ljust(start - len(text)) if start > len(text) else ""
                text = text[:start] + piece
            else:
                text = text[:start] + piece + text[start + len(piece) :]
        docs.append(DocumentText(doc_id, titles[doc_id], text))
    return docs


def _cite(number: int, sentence: Sentence, score: float, prompt: Prompt) -> Citation:
    chunk_id = ""
    for passage in prompt.passages:
        if passage.doc_id == sentence.doc_id and passage.start <= sentence.start < passage.end:
            chunk_id = passage.chunk_id
            break
    if not chunk_id and prompt.corpus is not None:
        chunk_id = prompt.corpus.chunk_at(sentence.doc_id, sentence.start)
    return Citation(
        number=number,
        chunk_id=chunk_id,
        doc_id=sentence.doc_id,
        title=sentence.title,
        source=sentence.source,
        start=sentence.start,
        end=sentence.end,
        text=sentence.text,
        score=round(score, 4),
    )
