"""The offline default reader: answers with the unit(s) of its context (a sentence,
list item or table row) that best answer the question, scored by the bundled
embedding model plus lexical overlap, and refuses below a threshold. No key, no
network.

It honestly reads whatever context it is given: the whole corpus snapshot on the
long-context path, the numbered passages on the retrieval path. What it needs per
corpus version, every unit's vector, is computed at ingest time
(`kb.backends.extractive.sentence_index`; by default pooled from the chunks' forward
passes, with each question's shortlist scored again by the units' own vectors:
`rescoring`); its "prompt cache" is that index, reported as cache-read tokens on the
long-context path. A data folder ingested without it gets it built by the first
question (reported as cache-write tokens) and saved.

It answers rather than echoes: headings, titles and FAQ question lines give
context to the units under them but are never an answer, a unit that only restates
the question is skipped, and among the units that score alike the one that carries
the asked-for kind of fact (a number, a date, a name) wins. What one unit cannot
answer may take one hop (`kb.one_hop`): from a role to the person, from a term to
the unit that gives the asked fact, or from a description ("the cluster that replaced
Redshift") to the table row of the name it stands for.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace

import numpy as np

from kb.backends.base import AnswerBackend, Completion
from kb.backends.extractive.answer_phrase import Shown, readable, shown
from kb.backends.extractive.evidence import Evidence
from kb.backends.extractive.fact_kinds import asked_kinds, carries, restates
from kb.backends.extractive.index_builder import SentenceIndexes, build_index, corpus_documents
from kb.backends.extractive.one_hop import Hop, answers_a_clause, hop_answer, is_row, name_bridges
from kb.backends.extractive.quantities import (
    asks_amount,
    asks_duration,
    has_duration,
    without_durations,
)
from kb.backends.extractive.reading import Reading, Sentence
from kb.backends.extractive.rescoring import OwnUnitVectors
from kb.backends.extractive.sentence_index import DocumentText, SentenceIndex, hash64
from kb.backends.prompts import REFUSAL, Prompt
from kb.core.models import Citation, Usage
from kb.core.settings import Settings
from kb.core.text import compound_tails, content_words
from kb.core.tokens import count_tokens
from kb.search.embedding import MODEL_NAME, Embedder, shared_embedder
from kb.store.corpus import CorpusVersion, Layout

VECTOR_WEIGHT = 0.6  # the rest is lexical overlap; both lie in [0, 1]
SECOND_SENTENCE_RATIO = 0.92  # a second source must score this close to the best
KIND_BONUS = 0.05  # for a unit that carries the kind of fact the question asks for
CANDIDATES = 24  # best-scoring units looked at closely per question
TAIL_SHARE = 0.5  # of a compound's weight, what its tail alone earns (`_tail_overlap`)


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
        self._texts: dict[str, dict[str, str]] = {}
        self._adhoc: SentenceIndex | None = None  # for prompts without a corpus
        self.own_vectors = OwnUnitVectors(self.embedder)  # for indexes of pooled vectors
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
                    index = build_index(corpus_documents(corpus), self.embedder)
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
            whole = self._documents(corpus, prompt.context)
            texts = {doc_id: [(0, text)] for doc_id, text in whole.items()}
            return Reading(index, np.arange(len(index)), texts, titles, whole), built
        pieces: dict[str, list[tuple[int, str]]] = {}
        found = [np.zeros(0, dtype=np.int64)]
        for passage in prompt.passages:
            pieces.setdefault(passage.doc_id, []).append((passage.start, passage.text))
            found.append(index.rows_within(passage.doc_id, passage.start, passage.end))
        # A row's table header and a unit's document opening are its context, as in
        # the index: read from the corpus for the documents the passages come from.
        whole = self._documents(corpus, corpus.snapshot)
        documents = {doc_id: whole[doc_id] for doc_id in pieces if doc_id in whole}
        rows = np.unique(np.concatenate(found))
        return Reading(index, rows, pieces, titles, documents), built

    def _documents(self, corpus: CorpusVersion, snapshot: str) -> dict[str, str]:
        """Each document's text, cut from the corpus snapshot once per version."""
        documents = self._texts.get(corpus.version)
        if documents is None:
            documents = {d: snapshot[start:end] for d, start, end in corpus.document_spans()}
            self._texts = {corpus.version: documents}
        return documents

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
            index = build_index(docs, self.embedder, previous=self._adhoc)
            self._adhoc = index
        texts = {d.doc_id: [(0, d.text)] for d in docs}
        return Reading(index, np.arange(len(index)), texts, titles)

    # -- scoring ------------------------------------------------------------------

    def _scores(self, prompt: Prompt, reading: Reading) -> np.ndarray:
        """0.6 x cosine similarity + 0.4 x IDF-weighted share of the question's words;
        the shortlisted units of pooled vectors scored by their own (`rescoring`)."""
        index, rows = reading.index, reading.rows
        if len(rows) == 0:
            return np.zeros(0, dtype=np.float32)
        question_vector = self.embedder.embed_one(prompt.question)
        vectors = index.dense if len(rows) == len(index) else index.vectors[rows]
        similarity = np.clip(np.asarray(vectors, dtype=np.float32) @ question_vector, 0, 1)
        stems = content_words(prompt.question)
        words = sorted({hash64(w) for w in stems})
        lexical: np.ndarray = np.zeros(len(rows), dtype=np.float32)
        if words:
            idf = index.idf(words)
            weights = dict(zip(words, idf.tolist(), strict=True))
            held = index.overlap(rows, weights) + _tail_overlap(index, rows, stems, weights)
            lexical = np.minimum(held / float(idf.sum()), 1.0).astype(np.float32)
        first = VECTOR_WEIGHT * similarity + (1 - VECTOR_WEIGHT) * lexical
        similarity = self.own_vectors.similarity(reading, similarity, first, question_vector)
        scores: np.ndarray = VECTOR_WEIGHT * similarity + (1 - VECTOR_WEIGHT) * lexical
        return scores

    def _candidates(
        self, prompt: Prompt, reading: Reading, scores: np.ndarray
    ) -> list[tuple[float, float, Sentence, str]]:
        """(rank score, score, sentence, context) of the answerable units that clear the
        threshold and say something the question does not, best first. What the score
        cannot see counts too (`Evidence`): a table row the question names by its key
        and column, a range that holds the question's quantity, a qualifier ("in
        production") that the unit's section or document is about, the asked kind."""
        index, rows = reading.index, reading.rows
        floor = self.threshold - Evidence.MOST
        eligible = np.flatnonzero(index.answerable[rows] & (scores >= floor))
        top = eligible[np.argsort(-scores[eligible], kind="stable")[:CANDIDATES]]
        kinds = asked_kinds(prompt.question)
        question_words = content_words(prompt.question)
        evidence = Evidence(prompt.question)
        out = []
        for at in top:
            row = int(rows[at])
            sentence = reading.sentence(row)
            if restates(sentence.text, question_words | content_words(sentence.title), kinds):
                continue
            said = readable(sentence.text)  # a list marker ("3.") is no number it states
            if asks_amount(prompt.question):
                said = without_durations(said)  # "how much" is not answered by a duration
            has_kind = bool(kinds) and carries(said, kinds, prompt.question)
            if "number" in kinds and not has_kind:
                continue  # "how many / how long ..." is not answered without a quantity
            score = float(scores[at])
            context = index.context_of(row)
            base, text = reading.document(sentence.doc_id, sentence.start, sentence.end)
            found, around = evidence.weigh(
                text, sentence.start - base, sentence.end - base, base, sentence, context
            )
            if score + found < self.threshold:
                continue  # a row or range the unit states may lift it; the qualifier not
            found += around  # it only breaks ties among the units that clear the threshold
            bonus = KIND_BONUS if has_kind else 0.0
            if (
                has_kind
                and asks_duration(prompt.question)
                and not has_duration(sentence.text, prompt.question)
            ):
                bonus = 0.0  # "how long" wants a duration, not any number
            out.append((score + found + bonus, score, sentence, context))
        out.sort(key=lambda c: -c[0])
        return out

    def _hop_by_name(self, prompt: Prompt, reading: Reading, scores: np.ndarray) -> Hop | None:
        """A question that no unit answers, asked again around the name its best-matching
        units give ("the cluster that replaced Redshift" -> ClickHouse): answered by a
        table row that holds that name and what is still asked, and clears the
        threshold, citing both. Only a row: prose that names a thing seldom says more
        of it than the bridge did, and a wrong hop answers what should be refused."""
        for bridge, score, name, question in name_bridges(prompt.question, reading, scores):
            asked = replace(prompt, question=question)
            kept = content_words(question) - content_words(name)  # what is still asked
            found = self._candidates(asked, reading, self._scores(asked, reading))
            for _, resolver, unit, context in found:
                about = f"{unit.text} {context}"
                if (
                    unit != bridge
                    and name.lower() in about.lower()
                    and kept & content_words(about)
                    and is_row(reading, unit)
                ):
                    return Hop([(bridge, score), (unit, resolver)], "")
        return None

    # -- the answer ---------------------------------------------------------------

    def _answer(self, prompt: Prompt, reading: Reading, usage: Usage) -> Completion:
        scores = self._scores(prompt, reading)
        candidates = self._candidates(prompt, reading, scores)
        hop = hop_answer(prompt, reading, scores, candidates, self.threshold)
        if hop is None and (
            not candidates or answers_a_clause(prompt.question, candidates[0][2].text)
        ):
            hop = self._hop_by_name(prompt, reading, scores)
        if hop is not None:
            picked, phrase = hop.units, hop.phrase
        elif candidates:
            picked, phrase = _picked(candidates), ""
        else:
            usage.output_tokens = count_tokens(REFUSAL)
            return Completion(REFUSAL, usage, self.name, refused=True, citations=[])
        citations, shown_units = [], []
        for number, (sentence, score) in enumerate(picked, start=1):
            citations.append(_cite(number, sentence, score, prompt))
            shown_units.append(_shown(reading, sentence, prompt.question))
        # The phrase comes from the unit that answers: the best one, or the hop's last.
        answering = picked[-1][0] if hop is not None else candidates[0][2]
        lead = phrase or shown_units[[s for s, _ in picked].index(answering)].phrase
        supports = " ".join(f"{s.support} [{n}]" for n, s in enumerate(shown_units, start=1))
        text = f"{lead} — {supports}" if lead else supports
        usage.output_tokens = count_tokens(text)
        return Completion(text, usage, self.name, refused=False, citations=citations)


def _tail_overlap(
    index: SentenceIndex, rows: np.ndarray, stems: set[str], weights: dict[int, float]
) -> np.ndarray:
    """Per row, the weight its unit earns by writing a compound of the question by its
    tail ("fixes" for "hotfix", `compound_tails`), in a document that also writes the
    compound whole: a text that names "hotfixes" may go on to say "fixes"; a "county
    line" says nothing of a "coastline" the document never names."""
    earned = np.zeros(len(rows), dtype=np.float64)
    for stem in stems:
        keys = [k for k in map(hash64, compound_tails(stem)) if k not in weights]
        docs = index.docs_holding(hash64(stem)) if keys else None
        if docs is None or not docs.size:
            continue
        weight = TAIL_SHARE * weights[hash64(stem)]
        held = np.minimum(index.overlap(rows, dict.fromkeys(keys, weight)), weight)
        earned += np.where(np.isin(index.doc[rows], docs), held, 0.0)
    return earned


def _picked(candidates: list[tuple[float, float, Sentence, str]]) -> list[tuple[Sentence, float]]:
    """The best unit, and a second source scoring close to it: another document, or
    the next item or row of the same list."""
    best_rank, best_score, best, best_context = candidates[0]
    picked = [(best, best_score)]
    for rank, score, sentence, context in candidates[1:5]:
        if rank < SECOND_SENTENCE_RATIO * best_rank:
            break
        sibling = context == best_context and sentence.doc_id == best.doc_id and context
        if sentence.doc_id != best.doc_id or sibling:
            picked.append((sentence, score))
            break
    picked.sort(key=lambda p: (p[0].doc_id, p[0].start))
    return picked


def _shown(reading: Reading, sentence: Sentence, question: str) -> Shown:
    base, text = reading.document(sentence.doc_id, sentence.start, sentence.end)
    return shown(text, sentence.start - base, sentence.end - base, question, asked_kinds(question))


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
