"""The embedding runtimes (ONNX Runtime and torch, torch in fp32 and bf16) and the
thread bound."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import get_args

import numpy as np
import pytest

from ingest.pipeline import config_key, run_ingest
from kb.core.errors import SettingsError
from kb.core.settings import EmbedBackend, load_settings
from kb.search import embedding
from kb.search.embedding import MODEL_NAME, Embedder, available_cores, model_path, threads_for
from kb.search.onnx_export import ONNX_INT8_FILE, onnx_model_dir
from kb.store.corpus import CorpusVersion
from tests.conftest import write_corpus

TEXTS = [
    "Trains are booked for trips under four hours.",
    "The nightly hotel limit in Lisbon is 140 euros, breakfast included.",
    "Kettles are descaled every second Tuesday by the facilities team.",
]


@pytest.mark.integration
def test_onnx_and_torch_give_the_same_vectors(embedder: Embedder) -> None:
    assert embedder.backend == "torch"  # the default
    torch = Embedder(precision="fp32").embed(TEXTS)
    onnx = Embedder(backend="onnx").embed(TEXTS)
    assert onnx.shape == torch.shape == (3, 384)
    assert np.abs(onnx - torch).max() < 1e-4
    assert np.allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)


@pytest.mark.integration
def test_bf16_vectors_stay_within_the_noise_of_fp32() -> None:
    """bf16 autocast changes the vectors (it really runs) by less than the config key
    tolerates: cosine 0.9999+ of fp32's, unit length, the same nearest text; questions
    stay in fp32."""
    fp32 = Embedder(precision="fp32")
    bf16 = Embedder(precision="bf16")
    assert (fp32.arithmetic, bf16.arithmetic) == ("fp32", "bf16")
    texts = [*TEXTS, "How much may a night in a Lisbon hotel cost?"]
    a, b = fp32.embed(texts), bf16.embed(texts)
    assert not np.allclose(a, b, atol=1e-6)
    assert (a * b).sum(axis=1).min() > 0.9999
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert np.argmax(b[:3] @ b[3]) == np.argmax(a[:3] @ a[3]) == 1
    # a question is embedded in fp32 whatever the precision
    assert np.allclose(bf16.embed_one(texts[3]), a[3], atol=1e-6)
    spans = [[(0, 6)], [(4, 16)], [(0, 8)]]
    pooled_a = fp32.embed_with_spans(TEXTS, spans)[1]
    pooled_b = bf16.embed_with_spans(TEXTS, spans)[1]
    for x, y in zip(pooled_a, pooled_b, strict=True):
        assert (x * y).sum() > 0.999


@pytest.mark.integration
def test_batches_follow_token_length_and_leave_each_vector_as_alone() -> None:
    """Texts go to the model in batches of similar token length, longest first, and
    each text's vector is the one it gets embedded alone."""
    embedder = Embedder(batch_size=2, precision="fp32")
    texts = [*TEXTS, "Short.", "A somewhat longer sentence about the kettle rota.", "Hi"]
    lengths = [len(embedder.model.tokenizer(t)["input_ids"]) for t in texts]
    batches = embedder._batches(texts)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(texts)))
    seen = [lengths[row] for rows in batches for row in rows]
    assert seen == sorted(lengths, reverse=True)
    together = embedder.embed(texts)
    alone = np.stack([embedder.embed([t])[0] for t in texts])
    assert np.abs(together - alone).max() < 1e-5


@pytest.mark.integration
def test_torch_runs_batches_side_by_side_on_the_embedding_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With two embedding threads, torch embeds whole batches on two threads (one core
    each), and the vectors are those of one thread."""
    texts = [f"{t} Copy {n} of the note." for n in range(12) for t in TEXTS]
    single = Embedder(batch_size=2, precision="fp32").embed(texts)
    previous = embedding.embedding_threads()
    embedder = Embedder(batch_size=2, precision="fp32")
    encode = embedder.model.encode
    threads: list[str] = []

    def recorded(batch: list[str], **kwargs: object) -> object:
        threads.append(threading.current_thread().name)
        return encode(batch, **kwargs)

    monkeypatch.setattr(embedder.model, "encode", recorded)
    try:
        embedding.set_embedding_threads(2)
        assert embedder.workers() == 2
        assert Embedder(backend="onnx").workers() == 1  # ONNX splits operations instead
        parallel = embedder.embed(texts)
    finally:
        embedding.set_embedding_threads(previous)
    assert len(threads) == len(texts) // 2
    assert set(threads) == {"kb-embed_0", "kb-embed_1"}
    assert np.abs(parallel - single).max() < 1e-5


@pytest.mark.integration
def test_questions_embed_while_an_ingest_embeds_on_the_same_model() -> None:
    """A server embeds questions on its request threads while an ingest embeds batches
    (plain and pooled) on the batch threads: the shared tokenizer is never reconfigured
    under a concurrent call, so no call fails ("Already borrowed")."""
    embedder = Embedder(batch_size=4, precision="fp32")
    texts = [f"{t} Copy {n} of the note." for n in range(30) for t in TEXTS]
    errors: list[Exception] = []
    done = threading.Event()

    def ask() -> None:
        n = 0
        while not done.is_set():
            n += 1
            try:
                embedder.embed_one(f"How much may a night in hotel {n} cost?")
            except Exception as error:  # noqa: BLE001 - any failure is the finding
                errors.append(error)

    previous = embedding.embedding_threads()
    asker = threading.Thread(target=ask)
    try:
        embedding.set_embedding_threads(2)
        asker.start()
        for _ in range(3):
            embedder.embed(texts)
            embedder.embed_with_spans(texts[:24], [[(0, 10)]] * 24)
    finally:
        done.set()
        asker.join()
        embedding.set_embedding_threads(previous)
    assert errors == []


@pytest.mark.fast
def test_auto_precision_is_bf16_only_where_the_cpu_computes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(embedding, "native_bf16", lambda native=native: native)
        assert embedding.arithmetic("auto") == expected
        assert Embedder(precision="auto").arithmetic == expected
        assert Embedder(backend="onnx", precision="auto").arithmetic == "fp32"
    assert embedding.arithmetic("fp32") == "fp32"
    assert embedding.arithmetic("bf16") == "bf16"
    with pytest.raises(
        SettingsError, match="KB_EMBED_PRECISION: Input should be .auto., .fp32. or .bf16."
    ):
        load_settings(embed_precision="fp16")


@pytest.mark.integration
def test_int8_is_quantized_once_offline_and_stays_close_to_torch(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`onnx-int8`: the fp32 export and its int8 file are made in the cache without the
    network, once; the vectors stay near torch's (bench/runtime_sweep.py: cosine 0.99)."""

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was looked for on the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    cache = tmp_path / "cache"
    int8 = Embedder(backend="onnx-int8", cache_dir=cache).embed(TEXTS)
    cosine = (int8 * embedder.embed(TEXTS)).sum(axis=1)
    assert np.allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert cosine.min() > 0.98
    assert not np.allclose(int8, embedder.embed(TEXTS), atol=1e-4)  # really quantized
    folder = onnx_model_dir(MODEL_NAME, Path(model_path()), cache, int8=True)
    made = (folder / ONNX_INT8_FILE).stat().st_mtime_ns
    again = Embedder(backend="onnx-int8", cache_dir=cache).embed(TEXTS)
    assert (folder / ONNX_INT8_FILE).stat().st_mtime_ns == made  # not quantized again
    assert np.array_equal(again, int8)
    assert [p.name for p in cache.iterdir() if "staging" in p.name] == []
    assert [p.name for p in (folder / "onnx").iterdir() if "staging" in p.name] == []


@pytest.mark.integration
def test_the_runtime_is_part_of_the_config_key(tmp_path: Path, embedder: Embedder) -> None:
    """Vectors of the two runtimes never meet in one index: switching re-embeds."""
    torch = load_settings(data_dir=tmp_path / "data")
    onnx = load_settings(data_dir=tmp_path / "data", embed_backend="onnx")
    assert config_key(onnx) != config_key(torch)
    runtimes = get_args(EmbedBackend)
    keys = {config_key(load_settings(data_dir=tmp_path, embed_backend=r)) for r in runtimes}
    assert len(keys) == len(runtimes) == 3
    corpus = write_corpus(tmp_path / "docs", {"a.md": f"# A\n\n{TEXTS[0]}"})
    first = run_ingest(torch, corpus, embedder=embedder)
    before = {c.chunk_id for c in CorpusVersion.open(torch.data_dir).chunks}
    switched = run_ingest(onnx, corpus, embedder=Embedder(backend="onnx"))
    after = {c.chunk_id for c in CorpusVersion.open(onnx.data_dir).chunks}
    assert switched.chunks_embedded == first.chunks_embedded == 1
    assert not before & after


@pytest.mark.integration
def test_threads_default_to_one_per_question_and_every_core_for_ingest(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert threads_for(settings, "questions") == 1
    assert threads_for(settings, "ingest") == available_cores()
    pinned = load_settings(data_dir=tmp_path, embed_threads=3)
    assert threads_for(pinned, "questions") == threads_for(pinned, "ingest") == 3


@pytest.mark.integration
def test_an_unknown_backend_is_a_settings_error(tmp_path: Path) -> None:
    from kb.core.errors import SettingsError

    with pytest.raises(SettingsError, match="KB_EMBED_BACKEND"):
        load_settings(data_dir=tmp_path, embed_backend="tensorflow")
