"""Faults of the machine (issue rows 6, 7 and the fault suite): a full disk during an
ingest, lost vectors under a running server, SIGKILL at random points of an ingest.
For each: a clear answer from the CLI or the server, and no committed version lost."""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import kb.backends.extractive.reader
import kb.store.lexical
from ingest.pipeline import run_ingest
from kb.core.errors import DiskFullError
from kb.core.settings import Settings, load_settings
from kb.search.embedding import Embedder
from kb.service import KnowledgeBase
from kb.store.check import check_data_dir
from kb.store.corpus import Layout
from kb.store.vectors import forget_embedded_clients
from tests.conftest import write_corpus
from tests.live_server import make_settings, readiness_after_warm_up, serving

ROOT = Path(__file__).resolve().parents[1]
FIRST = {"deploys.md": "# Deploys\n\nProduction deploys are frozen on Fridays after 15:00.\n"}


def _pages(count: int) -> dict[str, str]:
    return {
        f"page{n}.md": f"# Page {n}\n\n"
        + " ".join(f"Sentence {i} of page {n} is about topic {n * 7 + i}." for i in range(40))
        for n in range(count)
    }


def _answers_from(settings: Settings, embedder: Embedder, version: str) -> None:
    """A fresh reader answers from `version`, by retrieval and from the whole corpus."""
    forget_embedded_clients()
    with KnowledgeBase(settings, embedder=embedder) as knowledge:
        for mode in ("rag", "long_context"):
            answer = knowledge.ask("When are production deploys frozen?", mode=mode)
            assert answer.corpus_version == version
            assert "Fridays" in answer.answer, answer.answer


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KB tmpfs (root only; skipped elsewhere, where the injected fault runs)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        forget_embedded_clients()
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.integration
def test_a_full_disk_stops_the_ingest_clearly_and_the_old_version_answers(
    small_disk: Path, tmp_path: Path, embedder: Embedder
) -> None:
    settings = load_settings(data_dir=small_disk / "data")
    corpus = write_corpus(tmp_path / "corpus", FIRST)
    first = run_ingest(settings, corpus, embedder=embedder).corpus_version
    write_corpus(corpus, _pages(12))

    with pytest.raises(DiskFullError) as raised:
        run_ingest(settings, corpus, embedder=embedder)
    assert "No space left on the device" in raised.value.message
    assert Layout(settings.data_dir).current_version() == first
    _answers_from(settings, embedder, first)

    # Space returns: the same ingest now completes and the index checks clean.
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    forget_embedded_clients()
    summary = run_ingest(settings, corpus, embedder=embedder)
    assert summary.added == 12 and summary.corpus_version != first
    assert check_data_dir(settings).ok


@pytest.mark.integration
def test_an_injected_write_failure_is_a_disk_full_error_and_commits_nothing(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same fault without root: the BM25 write of the new version fails (ENOSPC)."""
    settings = load_settings(data_dir=tmp_path / "data")
    corpus = write_corpus(tmp_path / "corpus", FIRST)
    first = run_ingest(settings, corpus, embedder=embedder).corpus_version
    write_corpus(corpus, _pages(2))

    def no_space(self: object, folder: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(folder))

    with monkeypatch.context() as patch:
        patch.setattr(kb.store.lexical.LexicalIndex, "save", no_space)
        with pytest.raises(DiskFullError):
            run_ingest(settings, corpus, embedder=embedder)
    assert Layout(settings.data_dir).current_version() == first
    assert check_data_dir(settings).ok
    _answers_from(settings, embedder, first)
    assert run_ingest(settings, corpus, embedder=embedder).added == 2
    assert check_data_dir(settings).ok


@pytest.mark.integration
def test_the_server_answers_while_its_cache_cannot_be_written(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader-cache write that fails (a full disk) costs the cache, not the answer."""
    corpus = write_corpus(tmp_path / "corpus", FIRST)
    settings = make_settings(tmp_path, data_dir=tmp_path / "data")
    run_ingest(settings, corpus, embedder=embedder)

    def no_space(file: object, **arrays: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(kb.backends.extractive.reader.np, "savez", no_space)
    with serving(settings, embedder) as live, live.client() as client:
        assert client.get("/readyz").json()["ready"] is True
        body = {"question": "When are production deploys frozen?", "mode": "long_context"}
        answered = client.post("/v1/query", json=body)
        assert answered.status_code == 200, answered.text
        assert "Fridays" in answered.json()["answer"]
        monkeypatch.setattr(kb.backends.extractive.reader.np, "savez", np.savez)  # space returns
        assert client.post("/v1/query", json=body).status_code == 200
    assert not list(Layout(settings.data_dir).cache_dir("extractive").glob(".*tmp*"))


@pytest.mark.integration
def test_readyz_says_not_ready_when_the_store_has_lost_its_vectors(
    tmp_path: Path, embedder: Embedder
) -> None:
    corpus = write_corpus(tmp_path / "corpus", FIRST)
    settings = make_settings(tmp_path, data_dir=tmp_path / "data")
    run_ingest(settings, corpus, embedder=embedder)
    forget_embedded_clients()
    (settings.data_dir / "chroma" / "chroma.sqlite3").unlink()
    with serving(settings, embedder, wait_ready=False) as live, live.client() as client:
        ready = readiness_after_warm_up(client, timeout=60)
    assert ready.status_code == 503
    assert "vectors were lost" in ready.json()["reason"]
    assert "kb ingest" in ready.json()["reason"]


@pytest.mark.integration
def test_sigkill_at_random_points_of_an_ingest_never_loses_a_version(tmp_path: Path) -> None:
    """Three `kb ingest` processes killed at random moments: after each, the committed
    version checks clean (vectors included); a last ingest completes."""
    corpus = write_corpus(tmp_path / "corpus", FIRST)
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    command = [sys.executable, "-m", "api.cli", "ingest", str(corpus), "--data-dir", str(data)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()
    settings = load_settings(data_dir=data)
    committed = {Layout(data).current_version()}
    chance = random.Random(9)
    for round_ in range(3):
        write_corpus(corpus, {f"round{round_}-{k}": v for k, v in _pages(4).items()})
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        time.sleep(chance.uniform(2.0, 12.0))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        forget_embedded_clients()
        report = check_data_dir(settings)
        assert report.ok, report.damage
        committed.add(report.version)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr.decode()
    forget_embedded_clients()
    final = check_data_dir(settings)
    assert final.ok and final.documents == 1 + 3 * 4
    shutil.rmtree(tmp_path / "corpus")
