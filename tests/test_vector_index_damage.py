"""Damage to Chroma's persisted HNSW files (issue 9, row 6): hnswlib loads them
without checks, so a truncated header or garbage links crashed any process that
asked a retrieval question (SIGSEGV), and a deleted index folder silently cut vector
search down to the vectors logged since the last save. Now `kb check` names the
damage without opening the store, a question gets a clear error instead of a crash,
`/readyz` says not ready and why, and one `kb ingest` rebuilds the index."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest.pipeline import run_ingest
from kb.core.errors import CorpusDamagedError
from kb.core.settings import Settings, load_settings
from kb.search.embedding import Embedder
from kb.service import KnowledgeBase
from kb.store.check import check_data_dir
from kb.store.vector_index import check_hnsw_files
from kb.store.vectors import forget_embedded_clients
from tests.conftest import ROOT, write_corpus
from tests.live_server import make_settings, readiness_after_warm_up, serving

# Chroma saves its HNSW files once about 1,000 vectors were added: one short page per
# chunk, enough pages to pass that.
PAGES = 1_100
QUESTION = "Which team owns service 417?"


def _page(n: int) -> str:
    return f"# Service {n}\n\nService {n} is owned by team {n % 37} and runs on port {9000 + n}.\n"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("hnsw")
    corpus = write_corpus(root / "corpus", {f"svc/{n:04}.md": _page(n) for n in range(PAGES)})
    run_ingest(load_settings(data_dir=root / "data"), corpus, embedder=embedder)
    forget_embedded_clients()
    return corpus, root / "data"


def _segment(settings: Settings) -> Path:
    (folder,) = [p for p in (settings.data_dir / "chroma").iterdir() if (p / "header.bin").exists()]
    return folder


def _garble(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


DAMAGE: dict[str, Callable[[Path], object]] = {
    "truncated header.bin": lambda seg: (seg / "header.bin").write_bytes(
        (seg / "header.bin").read_bytes()[:40]
    ),
    "garbage data_level0.bin": lambda seg: _garble(seg / "data_level0.bin"),
    "garbage link_lists.bin": lambda seg: _garble(seg / "link_lists.bin"),
    "deleted index folder": lambda seg: shutil.rmtree(seg),
}


@pytest.mark.integration
@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_vector_index_is_named_refused_and_rebuilt(
    kind: str, pristine: tuple[Path, Path], tmp_path: Path, embedder: Embedder
) -> None:
    forget_embedded_clients()
    shutil.copytree(pristine[1], tmp_path / "data")
    settings = load_settings(data_dir=tmp_path / "data")
    segment = _segment(settings)
    assert check_hnsw_files(segment) is not None  # the files hold vectors: the attack bites
    assert check_data_dir(settings).ok
    DAMAGE[kind](segment)

    found = check_data_dir(settings)
    assert [(d.part, d.path) for d in found.damage] == [("vector-index", str(segment))]
    assert "rebuilds the vector index" in str(found.damage[0])
    with KnowledgeBase(settings, embedder=embedder) as base:
        with pytest.raises(CorpusDamagedError) as refused:
            base.ask(QUESTION, mode="rag")
        assert "kb ingest" in refused.value.message and str(segment) in refused.value.message
        assert base.ask(QUESTION, mode="long_context").citations  # the snapshot still answers

    summary = run_ingest(settings, pristine[0], embedder=embedder)
    assert summary.repaired and "vector index was damaged" in summary.repaired[0]
    forget_embedded_clients()
    assert check_data_dir(settings).ok
    with KnowledgeBase(settings, embedder=embedder) as base:
        answer = base.ask(QUESTION, mode="rag")
    assert answer.citations[0].doc_id == "svc/0417.md"
    assert "team 10" in answer.answer  # 417 % 37


@pytest.mark.integration
def test_a_question_on_a_garbage_index_exits_with_a_message_not_a_crash(
    pristine: tuple[Path, Path], tmp_path: Path
) -> None:
    data = shutil.copytree(pristine[1], tmp_path / "data")
    _garble(_segment(load_settings(data_dir=data)) / "data_level0.bin")  # was SIGSEGV
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    asked = subprocess.run(
        [sys.executable, "-m", "api.cli", "ask", QUESTION, "--local", "--mode", "rag",
         "--data-dir", str(data)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert asked.returncode == 1, (asked.returncode, asked.stderr[-2000:])
    assert "vector index" in asked.stderr and "kb ingest" in asked.stderr
    assert "Traceback" not in asked.stderr


@pytest.mark.integration
def test_readyz_says_not_ready_naming_a_damaged_vector_index(
    pristine: tuple[Path, Path], tmp_path: Path, embedder: Embedder
) -> None:
    forget_embedded_clients()
    data = shutil.copytree(pristine[1], tmp_path / "data")
    settings = make_settings(tmp_path / "work", data_dir=data)
    _garble(_segment(settings) / "data_level0.bin")
    with serving(settings, embedder, wait_ready=False) as live, live.client() as client:
        ready = readiness_after_warm_up(client, timeout=60)
        query = client.post("/v1/query", json={"question": QUESTION, "mode": "rag"})
    assert ready.status_code == 503
    assert "vector index" in ready.json()["reason"] and "kb ingest" in ready.json()["reason"]
    assert query.status_code == 503 and "kb ingest" in query.text
