"""Our side of the ingest benchmark: the phases that run our pipeline, each in a fresh
process of bench/ingest_bench.py (`--phase ours`, `--phase prefill`), which imports
this module only there."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.ingest_timing import Clock, PhaseTimes, TokenCount, peak_rss_mb
from ingest import run_ingest
from kb.core import encoding, load_settings
from kb.search import DIMENSIONS, Embedder, set_embedding_threads, shared_embedder, threads_for


def phase_ours(corpus: Path, data_dir: Path) -> dict[str, Any]:
    """One `run_ingest` of `corpus` into `data_dir`, with the model loaded beforehand and
    the embedding threads `kb ingest` sets."""
    settings = load_settings(data_dir=data_dir)
    set_embedding_threads(threads_for(settings, "ingest"))  # as api/cli.py's ingest does
    embedder = shared_embedder(settings)  # the embedder `kb ingest` gets
    embedder.embed(["warm up the model"])
    encoding()
    # The chromadb package is imported before the clock, as the baseline's phase does
    # (about 0.5 s of a fresh process); the client is opened inside, by `run_ingest`.
    import chromadb  # noqa: F401

    embedder.texts_embedded, embedder.seconds = 0, 0.0
    tokens = TokenCount(embedder.model)
    embed_cpu = 0.0
    model_embed = embedder.embed

    def embed(texts: Sequence[str]) -> Any:
        nonlocal embed_cpu
        started = time.process_time()
        try:
            return model_embed(texts)
        finally:
            embed_cpu += time.process_time() - started

    embedder.embed = embed  # type: ignore[method-assign]
    times = PhaseTimes(embedder)
    with Clock() as clock:
        summary = run_ingest(settings, corpus, embedder=embedder, progress=times)
    return {
        **clock.figures(),
        **tokens.figures(clock.wall),
        "split": times.split(),
        "sentences_embedded": summary.sentences_embedded,
        "sentences_pooled": summary.sentences_pooled,
        "threads": threads_for(settings, "ingest"),
        "summary_seconds": summary.seconds,
        "embed_seconds": summary.embed_seconds,
        "embed_cpu_seconds": embed_cpu,
        "model_seconds": embedder.seconds,
        "documents": summary.documents,
        "chunks": summary.chunks,
        "chunks_embedded": summary.chunks_embedded,
        "added": summary.added,
        "changed": summary.changed,
        "unchanged": summary.unchanged,
        "corpus_tokens": summary.corpus_tokens,
        "text_tokens": summary.text_tokens,
        "corpus_version": summary.corpus_version,
        "peak_rss_mb": peak_rss_mb(),
    }


def phase_prefill(corpus: Path, data_dir: Path) -> dict[str, Any]:
    """Ingest `corpus` with PLACEHOLDER vectors (hash-seeded random unit vectors, not
    the model), so that the incremental figures (`--ingested`) can be measured on a
    large corpus on a busy machine without an hour of embedding first. Everything else
    (chunks, snapshot, BM25, Chroma writes) is the real pipeline; the measured runs
    that follow use the real model. Never use such a data dir to answer questions."""
    with Clock() as clock:
        summary = run_ingest(
            load_settings(data_dir=data_dir), corpus, embedder=PlaceholderEmbedder()
        )
    return {**clock.figures(), "chunks": summary.chunks, "corpus_tokens": summary.corpus_tokens}


class PlaceholderEmbedder(Embedder):
    """Hash-seeded random unit vectors in place of the model's: see `phase_prefill`."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            row = np.random.default_rng(seed).standard_normal(DIMENSIONS)
            rows.append(row / np.linalg.norm(row))
        self.texts_embedded += len(texts)
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), DIMENSIONS)
