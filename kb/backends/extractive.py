"""The offline default reader: answers with the sentence(s) of its context that best
answer the question, scored by the bundled embedding model plus lexical overlap,
and refuses below a threshold. No key, no network.

It honestly reads whatever context it is given: the whole corpus snapshot on the
long-context path, the numbered passages on the retrieval path. Its "prompt
cache" is the sentence index of a snapshot (every sentence embedded once): the
first long-context question on a corpus version writes it (reported as cache
write tokens), later questions read it (cache read tokens), from memory or disk.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from kb.backends.base import AnswerBackend, Completion
from kb.corpus import CorpusVersion, Layout
from kb.embedding import MODEL_NAME, Embedder, shared_embedder
from kb.models import Citation, Usage
from kb.prompts import REFUSAL, Prompt
from kb.settings import Settings
from kb.snapshot import SnapshotDocument, parse_snapshot
from kb.text import content_words, sentence_spans
from kb.tokens import count_tokens

logger = logging.getLogger("kb.extractive")

VECTOR_WEIGHT = 0.6  # the rest is lexical overlap; both lie in [0, 1]
SECOND_SENTENCE_RATIO = 0.92  # a second source must score this close to the best
RAG_CANDIDATES = 12  # sentences of the passages the reader embeds per question


@dataclass(frozen=True, slots=True)
class Sentence:
    doc_id: str
    title: str
    source: str
    start: int  # offsets in the document's text
    end: int
    text: str

    @property
    def embedding_text(self) -> str:
        return f"{self.title}: {self.text}"


class SentenceIndex:
    """Every sentence of a snapshot with its vector: the reader's prompt cache."""

    def __init__(self, sentences: list[Sentence], vectors: np.ndarray) -> None:
        self.sentences = sentences
        self.vectors = vectors
        self.position = {(s.doc_id, s.start): row for row, s in enumerate(sentences)}

    @cached_property
    def words(self) -> list[set[str]]:
        return [content_words(f"{s.title} {s.text}") for s in self.sentences]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
        try:
            np.savez(
                tmp,
                vectors=self.vectors,
                doc_ids=np.array([s.doc_id for s in self.sentences], dtype=object),
                spans=np.array([(s.start, s.end) for s in self.sentences], dtype=np.int64),
            )
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)  # a half-written file (a full disk) is not left

    @classmethod
    def load(cls, path: Path, sentences: list[Sentence]) -> SentenceIndex | None:
        """The cached vectors for `sentences`, or None if the file does not match them."""
        try:
            data = np.load(path, allow_pickle=True)
            spans, vectors = data["spans"], data["vectors"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            return None  # unreadable or from another layout: rebuilt and rewritten
        if len(spans) != len(sentences) or any(
            (s.start, s.end) != (int(a), int(b)) for s, (a, b) in zip(sentences, spans, strict=True)
        ):
            return None
        return cls(sentences, vectors)


def cache_key(context: str) -> str:
    """The name of the cache file of a snapshot."""
    return hashlib.sha256(context.encode()).hexdigest()[:24]


def prune_cache(cache_dir: Path, keep_contexts: list[str]) -> int:
    """Delete the cache files of every snapshot but `keep_contexts` (the versions an
    ingest keeps); how many files were deleted."""
    keep = {f"{cache_key(context)}.npz" for context in keep_contexts}
    deleted = 0
    for path in cache_dir.glob("*.npz") if cache_dir.is_dir() else []:
        if path.name not in keep:
            path.unlink(missing_ok=True)
            deleted += 1
    return deleted


def read_snapshot(context: str, documents: list[SnapshotDocument] | None = None) -> list[Sentence]:
    """The sentences of a corpus snapshot, with offsets in their own documents.
    `documents` is the corpus version's reference map (`CorpusVersion.documents`);
    without it the headers are parsed and reference numbers stand in for ids."""
    if documents is None:
        documents = [
            SnapshotDocument(ref, str(ref), title, "", start, end)
            for ref, title, start, end in parse_snapshot(context)
        ]
    sentences: list[Sentence] = []
    for doc in documents:
        for start, end in sentence_spans(context, doc.start, doc.end):
            sentences.append(
                Sentence(
                    doc.doc_id,
                    doc.title,
                    doc.source,
                    start - doc.start,
                    end - doc.start,
                    context[start:end],
                )
            )
    return sentences


class ExtractiveBackend(AnswerBackend):
    provider = "extractive"
    # It reads any length; the long-context budget is what bounds it.
    context_window = 100_000_000
    supports_prompt_cache = True
    needs_warm_up = True  # its sentence index of the snapshot is built on first use
    has_refusal_threshold = True
    generative = False  # it selects sentences; it cannot rewrite a question

    def __init__(self, settings: Settings, *, embedder: Embedder | None = None) -> None:
        super().__init__(MODEL_NAME)
        self.embedder = embedder or shared_embedder(settings.embed_batch_size)
        self.threshold = settings.extractive_threshold
        self.cache_dir = Layout(settings.data_dir).cache_dir("extractive")
        self._indexes: OrderedDict[str, SentenceIndex] = OrderedDict()
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._idf: dict[str, tuple[dict[str, float], float]] = {}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return "extractive"

    # -- the one method a backend must have -----------------------------------

    def complete(self, prompt: Prompt) -> Completion:
        question_vector = self.embedder.embed_one(prompt.question)
        question_words = content_words(prompt.question)
        idf = self._idf_for(prompt.corpus)
        if prompt.path == "long_context":
            corpus = prompt.corpus
            documents = corpus.documents if corpus and prompt.context is corpus.snapshot else None
            index, cache_hit = self._index_for(prompt.context, documents)
            scores = self._score(
                question_vector,
                question_words,
                index.vectors,
                index.words,
                idf,
            )
            sentences = index.sentences
            corpus_tokens = (
                prompt.corpus.corpus_tokens if prompt.corpus else count_tokens(prompt.context)
            )
            usage = Usage(
                input_tokens=count_tokens(prompt.instructions) + count_tokens(prompt.question),
                cache_read_tokens=corpus_tokens if cache_hit else 0,
                cache_write_tokens=0 if cache_hit else corpus_tokens,
            )
        else:
            sentences, scores = self._read_passages(prompt, question_vector, question_words, idf)
            usage = Usage(input_tokens=count_tokens(prompt.prefix) + count_tokens(prompt.question))
        return self._answer(prompt, sentences, scores, usage)

    # -- reading ------------------------------------------------------------------

    def _index_for(
        self, context: str, documents: list[SnapshotDocument] | None
    ) -> tuple[SentenceIndex, bool]:
        """The sentence index of `context`, and whether it came from the cache."""
        key = cache_key(context)
        with self._lock:
            if key in self._indexes:
                self._indexes.move_to_end(key)
                return self._indexes[key], True
            sentences = read_snapshot(context, documents)
            path = self.cache_dir / f"{key}.npz"
            index = SentenceIndex.load(path, sentences) if path.exists() else None
            hit = index is not None
            if index is None:
                vectors = self.embedder.embed([s.embedding_text for s in sentences])
                index = SentenceIndex(sentences, vectors)
                try:
                    index.save(path)
                except OSError as exc:  # e.g. a full disk: answer from memory all the same
                    logger.warning("could not write the reader cache %s: %s", path, exc)
            self._indexes[key] = index
            while len(self._indexes) > 2:
                self._indexes.popitem(last=False)
            return index, hit

    def _read_passages(
        self,
        prompt: Prompt,
        question_vector: np.ndarray,
        question_words: set[str],
        idf: tuple[dict[str, float], float],
    ) -> tuple[list[Sentence], np.ndarray]:
        sentences: list[Sentence] = []
        priors: list[float] = []
        top = max((p.score or 0.0 for p in prompt.passages), default=0.0) or 1.0
        for passage in prompt.passages:
            for start, end in sentence_spans(passage.text):
                sentences.append(
                    Sentence(
                        passage.doc_id,
                        passage.title,
                        passage.source,
                        passage.start + start,
                        passage.start + end,
                        passage.text[start:end],
                    )
                )
                priors.append((passage.score or 0.0) / top)
        if not sentences:
            return [], np.zeros(0, dtype=np.float32)
        words = [content_words(f"{s.title} {s.text}") for s in sentences]
        lexical = self._lexical(question_words, words, idf)
        # Skim first: only the most promising sentences are embedded.
        skim = 0.6 * lexical + 0.4 * np.asarray(priors, dtype=np.float32)
        keep = np.argsort(-skim, kind="stable")[:RAG_CANDIDATES]
        chosen = [sentences[i] for i in keep]
        vectors = self._sentence_vectors(chosen)
        scores = (
            VECTOR_WEIGHT * np.clip(vectors @ question_vector, 0, 1)
            + (1 - VECTOR_WEIGHT) * lexical[keep]
        )
        return chosen, scores

    def _sentence_vectors(self, sentences: list[Sentence]) -> np.ndarray:
        """Vectors from a cached snapshot index or a small memo; embeds only the rest."""
        rows: list[np.ndarray | None] = []
        index = next(reversed(self._indexes.values()), None) if self._indexes else None
        for s in sentences:
            vector = self._vectors.get(s.embedding_text)
            if vector is None and index is not None:
                row = index.position.get((s.doc_id, s.start))
                if row is not None and index.sentences[row].text == s.text:
                    vector = index.vectors[row]
            rows.append(vector)
        missing = [i for i, v in enumerate(rows) if v is None]
        if missing:
            fresh = self.embedder.embed([sentences[i].embedding_text for i in missing])
            for i, vector in zip(missing, fresh, strict=True):
                rows[i] = vector
                self._vectors[sentences[i].embedding_text] = vector
            while len(self._vectors) > 50_000:
                self._vectors.popitem(last=False)
        return np.vstack([v for v in rows if v is not None])

    # -- scoring ------------------------------------------------------------------

    def _idf_for(self, corpus: CorpusVersion | None) -> tuple[dict[str, float], float]:
        """Inverse document frequency over the corpus's chunks (and a default for
        unseen words), so rare words in the question weigh more."""
        if corpus is None:
            return {}, 1.0
        cached = self._idf.get(corpus.version)
        if cached is None:
            df: dict[str, int] = {}
            for chunk in corpus.chunks:
                for word in content_words(f"{chunk.title} {chunk.text}"):
                    df[word] = df.get(word, 0) + 1
            n = len(corpus.chunks)
            idf = {w: math.log(1 + (n - d + 0.5) / (d + 0.5)) for w, d in df.items()}
            cached = (idf, math.log(1 + (n + 0.5) / 0.5))
            self._idf = {corpus.version: cached}
        return cached

    @staticmethod
    def _lexical(
        question_words: set[str], words: list[set[str]], idf: tuple[dict[str, float], float]
    ) -> np.ndarray:
        weights, unseen = idf
        if not question_words:
            return np.zeros(len(words), dtype=np.float32)
        weight = {w: weights.get(w, unseen) for w in question_words}
        total = sum(weight.values())
        return np.fromiter(
            (sum(weight[w] for w in question_words & ws) / total for ws in words),
            dtype=np.float32,
            count=len(words),
        )

    def _score(
        self,
        question_vector: np.ndarray,
        question_words: set[str],
        vectors: np.ndarray,
        words: list[set[str]],
        idf: tuple[dict[str, float], float],
    ) -> np.ndarray:
        similarity = np.clip(vectors @ question_vector, 0, 1)
        scores: np.ndarray = VECTOR_WEIGHT * similarity + (1 - VECTOR_WEIGHT) * self._lexical(
            question_words, words, idf
        )
        return scores

    # -- the answer ---------------------------------------------------------------

    def _answer(
        self, prompt: Prompt, sentences: list[Sentence], scores: np.ndarray, usage: Usage
    ) -> Completion:
        if len(sentences) == 0 or float(scores.max()) < self.threshold:
            usage.output_tokens = count_tokens(REFUSAL)
            return Completion(REFUSAL, usage, self.name, refused=True, citations=[])
        order = np.argsort(-scores, kind="stable")
        best = int(order[0])
        picked = [best]
        for row in order[1:5]:
            row = int(row)
            if float(scores[row]) < max(self.threshold, SECOND_SENTENCE_RATIO * scores[best]):
                break
            if sentences[row].doc_id != sentences[best].doc_id:
                picked.append(row)
                break
        picked.sort(key=lambda r: (sentences[r].doc_id, sentences[r].start))
        citations = [
            self._cite(number, sentences[row], float(scores[row]), prompt)
            for number, row in enumerate(picked, start=1)
        ]
        text = " ".join(f"{c.text} [{c.number}]" for c in citations)
        usage.output_tokens = count_tokens(text)
        return Completion(text, usage, self.name, refused=False, citations=citations)

    @staticmethod
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
