"""The derive phase: indexes readers need per corpus version, computed before the
version is committed, so the first question after an ingest is as fast as the tenth.
Each is a function of a `Derivation` that reuses what it can from the previous
version and is idempotent (a killed run repeats it); `DERIVED_INDEXES` lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kb.backends.extractive.index_builder import build_sentence_index, corpus_documents
from kb.core.models import IngestSummary
from kb.core.settings import Settings
from kb.search.embedding import Embedder
from kb.store.corpus import CorpusVersion

Progress = Callable[[str, int, int], None]  # (phase, done, total)


@dataclass(frozen=True)
class Derivation:
    """What a derived index is computed from."""

    settings: Settings
    version: CorpusVersion  # written, not yet committed: write into `version.folder`
    previous: CorpusVersion | None  # the version before, same config: reuse what it has
    embedder: Embedder
    progress: Progress  # report as (its name, done, total)
    summary: IngestSummary  # where a derived index reports what it embedded
    unit_vectors: dict[int, np.ndarray]  # reader unit vectors the embed phase pooled
    # The committed version if its vectors are this model's and runtime's (chunking or
    # snapshot format may differ): reader unit vectors are reused from it by text.
    same_vectors: CorpusVersion | None


def sentence_index(job: Derivation) -> None:
    """The extractive reader's sentence vectors (kb/backends/extractive/sentence_index.py)."""
    built = build_sentence_index(
        job.settings,
        job.version.version,
        corpus_documents(job.version),
        job.embedder,
        previous_version=job.same_vectors.version if job.same_vectors else None,
        progress=lambda done, total: job.progress("derive", done, total),
        pooled=job.unit_vectors,
    )
    job.summary.sentences_embedded, job.summary.sentences_reused = built.embedded, built.reused
    job.summary.sentences_pooled = built.pooled
    job.summary.embed_seconds += built.embed_seconds


DERIVED_INDEXES: list[Callable[[Derivation], None]] = [sentence_index]


def derive_indexes(job: Derivation) -> None:
    """Every derived index of `job.version`, in order."""
    for build in DERIVED_INDEXES:
        build(job)
