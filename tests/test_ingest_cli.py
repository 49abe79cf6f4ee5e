"""`kb ingest` as a user runs it: a real subprocess, its output, its exit codes, two
runs at once, and a run killed with SIGKILL half-way through embedding."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from ingest.pipeline import run_ingest
from kb.core.settings import Settings, load_settings
from kb.search.embedding import Embedder
from kb.search.retrieval import Retriever
from kb.store.corpus import CorpusVersion, Layout
from kb.store.vectors import VectorStore, forget_embedded_clients
from tests.conftest import DATASETS, write_corpus

HOTPOT = DATASETS / "hotpotqa-100" / "corpus.jsonl"
SUMMARY_KEYS = {
    "added",
    "changed",
    "removed",
    "unchanged",
    "skipped",
    "chunks_embedded",
    "corpus_tokens",
    "corpus_version",
}


def _kb(*args: str) -> list[str]:
    return [sys.executable, "-m", "api.cli", *args]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _kb(*args), capture_output=True, text=True, env=_env(), timeout=timeout, check=False
    )


def _hotpot_lines(start: int, stop: int) -> str:
    return "\n".join(HOTPOT.read_text("utf-8").splitlines()[start:stop]) + "\n"


def _first_sentences(start: int, stop: int) -> str:
    """Records start..stop of hotpotqa cut to their first sentence: many short
    documents, so that a run has many progress steps but each is quick."""
    lines = HOTPOT.read_text("utf-8").splitlines()[start:stop]
    records = [json.loads(line) for line in lines]
    for record in records:
        record["text"] = record["text"].split(". ")[0] + "."
    return "\n".join(json.dumps(record) for record in records) + "\n"


def _fresh_chroma_view() -> None:
    """Read what another process wrote from disk, not from a client opened before."""
    forget_embedded_clients()


def _assert_store_matches_manifest(settings: Settings) -> set[str]:
    _fresh_chroma_view()
    corpus = CorpusVersion.open(settings.data_dir)
    wanted = [cid for doc in corpus.manifest.documents for cid in doc.chunk_ids]
    store = VectorStore(settings)
    assert len(wanted) == len(set(wanted)) == corpus.manifest.chunk_count
    assert store.all_ids() == set(wanted)
    assert store.count() == len(wanted)
    return set(wanted)


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    return write_corpus(
        tmp_path / "corpus",
        {
            "wiki.jsonl": _hotpot_lines(0, 6),
            "notes.md": "# Notes\n\nThe standup is at 9:30.",
            "empty.txt": "",
            "bad.jsonl": '{"doc_id": "z", "text": "fine"}\n{broken\n',
        },
    )


@pytest.mark.integration
def test_two_ingests_at_once_one_fails_clearly_the_other_prints_json(
    tmp_path: Path, small_corpus: Path
) -> None:
    data = tmp_path / "data"
    first = subprocess.Popen(
        _kb("ingest", str(small_corpus), "--data-dir", str(data), "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        deadline = time.monotonic() + 120
        while not Layout(data).lock.exists():  # the first run holds the lock from here
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second = _run("ingest", str(small_corpus), "--data-dir", str(data), "--json")
        out, err = first.communicate(timeout=300)
    finally:
        first.kill()
        first.wait()

    assert second.returncode == 1, (second.stdout, second.stderr)
    assert second.stdout == ""
    assert second.stderr.strip() == (
        f"kb: IngestBusyError: Another ingest is running on {data}; wait for it to "
        "finish (or pass --wait SECONDS)."
    )

    assert first.returncode == 0, err
    summary = json.loads(out)  # stdout holds the JSON summary and nothing else
    assert set(summary) >= SUMMARY_KEYS
    assert (summary["added"], summary["changed"], summary["removed"]) == (8, 0, 0)
    assert summary["unchanged"] == 0
    skipped = sorted(summary["skipped"], key=lambda s: s["path"])
    assert [set(s) for s in skipped] == [{"path", "reason"}] * 2
    assert skipped[0]["path"] == "bad.jsonl:2"
    assert skipped[0]["reason"].startswith("invalid JSON")
    assert skipped[1] == {"path": "empty.txt", "reason": "empty file"}
    version = CorpusVersion.open(data)
    assert summary["corpus_version"] == version.version
    assert summary["corpus_tokens"] == version.corpus_tokens > 0
    assert summary["chunks_embedded"] == version.manifest.chunk_count
    assert not Layout(data).pending.exists()
    _assert_store_matches_manifest(load_settings(data_dir=data))

    # A second run over the same folder: nothing to do, a readable report.
    again = _run("ingest", str(small_corpus), "--data-dir", str(data))
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    assert lines[0] == "added 0, changed 0, removed 0, unchanged 8, skipped 2"
    assert "  skipped empty.txt: empty file" in lines
    assert any(line.startswith("  skipped bad.jsonl:2: invalid JSON") for line in lines)
    assert lines[-3].startswith("0 chunks embedded (0 reused, 0 deleted)")
    assert lines[-2].startswith(f"corpus {version.version}: 8 documents")
    markup = version.corpus_tokens / version.manifest.text_tokens - 1
    assert lines[-1].startswith(f"long-context markup: {markup:.1%} of the text's ")
    assert again.stderr.splitlines() == ["diff: 8 documents read"]  # one line per phase


@pytest.mark.integration
def test_the_report_counts_the_readers_unit_vectors(tmp_path: Path) -> None:
    corpus = write_corpus(
        tmp_path / "docs",
        {
            "oncall.md": "# On-call\n\nA page is acknowledged within 5 minutes. "
            "Unacknowledged pages escalate after 15 minutes.\n",
            "ports.md": "# Ports\n\n| Service | Port |\n|---|---|\n| lantern | 17500 |\n",
        },
    )
    data = tmp_path / "data"
    first = _run("ingest", str(corpus), "--data-dir", str(data))
    assert first.returncode == 0, first.stderr
    summary = json.loads(
        _run("ingest", str(corpus), "--data-dir", str(tmp_path / "again"), "--json").stdout
    )
    units = [line for line in first.stdout.splitlines() if line.startswith("reader units: ")]
    assert units == [
        f"reader units: {summary['sentences_pooled']} pooled from the chunks' passes, "
        f"{summary['sentences_embedded']} embedded alone, 0 reused"
    ]
    assert summary["sentences_pooled"] > 0


@pytest.mark.integration
def test_a_waiting_ingest_runs_once_the_lock_is_free(tmp_path: Path, embedder: Embedder) -> None:
    corpus = write_corpus(tmp_path / "corpus", {"a.md": "# A\n\nAlpha."})
    data = tmp_path / "data"
    run_ingest(load_settings(data_dir=data), corpus, embedder=embedder)
    _fresh_chroma_view()
    with FileLock(str(Layout(data).lock)):
        busy = _run("ingest", str(corpus), "--data-dir", str(data), "--json")
        waiting = subprocess.Popen(
            _kb("ingest", str(corpus), "--data-dir", str(data), "--json", "--wait", "120"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        time.sleep(3)
        still_waiting = waiting.poll() is None
    out, err = waiting.communicate(timeout=120)
    assert busy.returncode == 1 and "IngestBusyError" in busy.stderr
    assert still_waiting
    assert waiting.returncode == 0, err
    assert json.loads(out)["unchanged"] == 1


@pytest.mark.integration
def test_user_mistakes_exit_2_with_a_one_line_message(tmp_path: Path) -> None:
    missing = _run("ingest", str(tmp_path / "nope"), "--data-dir", str(tmp_path / "d"))
    assert missing.returncode == 2
    assert missing.stderr.startswith(f"kb: Corpus path {tmp_path / 'nope'} does not exist")
    assert missing.stdout == ""

    env = _env() | {"KB_CHUNK_TOKENS": "64", "KB_CHUNK_OVERLAP": "64"}
    bad = subprocess.run(
        _kb("ingest", str(tmp_path), "--data-dir", str(tmp_path / "d")),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2
    assert "chunk_overlap (64) must be smaller than chunk_tokens (64)" in bad.stderr


@pytest.mark.integration
def test_a_run_killed_mid_embedding_leaves_the_old_version_and_the_next_run_completes(
    tmp_path: Path, embedder: Embedder
) -> None:
    corpus = write_corpus(tmp_path / "corpus", {"base.jsonl": _hotpot_lines(0, 10)})
    settings = load_settings(data_dir=tmp_path / "data")
    old = run_ingest(settings, corpus, embedder=embedder)
    old_ids = _assert_store_matches_manifest(settings)
    _fresh_chroma_view()

    # Enough new documents that embedding them takes more than one progress step
    # (a step is 64 chunks).
    (corpus / "more.jsonl").write_text(_first_sentences(10, 310), "utf-8")
    killed = subprocess.Popen(
        _kb("ingest", str(corpus), "--data-dir", str(settings.data_dir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert killed.stderr is not None
        progress = killed.stderr.readline()
        while progress and not progress.startswith("embedded "):
            progress = killed.stderr.readline()
        killed.send_signal(signal.SIGKILL)
    finally:
        killed.kill()
        killed.wait()
    assert progress.startswith("embedded "), killed.communicate()
    done, total = (int(n) for n in progress.split()[1].split("/"))
    assert 0 < done < total
    assert "chunks/s, ETA " in progress  # from the first batch on
    assert killed.returncode == -signal.SIGKILL

    # The previous version is still the committed one, whole and queryable.
    layout = Layout(settings.data_dir)
    assert layout.pending.exists()
    _fresh_chroma_view()
    version = CorpusVersion.open(settings.data_dir)
    assert version.version == old.corpus_version
    store = VectorStore(settings)
    assert store.existing(sorted(old_ids)) == old_ids
    leftover = store.all_ids() - old_ids
    assert len(leftover) >= done  # what the killed run upserted survived the kill
    hits = Retriever(version, store, embedder, hops=1).search("Demon Dice collectible game", 5)
    assert hits and {h.chunk.chunk_id for h in hits} <= old_ids
    assert hits[0].chunk.doc_id == "Demon Dice"

    # The next run finishes the job, reusing what the killed run had embedded.
    before = embedder.texts_embedded
    summary = run_ingest(settings, corpus, embedder=embedder)
    assert summary.resumed
    assert (summary.added, summary.changed, summary.removed) == (300, 0, 0)
    assert summary.unchanged == 10
    assert summary.chunks_reused == len(leftover) and summary.chunks_reused >= done
    assert summary.chunks_embedded + summary.sentences_embedded == embedder.texts_embedded - before
    assert summary.chunks_embedded + summary.chunks_reused == total
    assert summary.chunks_deleted == 0
    assert summary.previous_version == old.corpus_version != summary.corpus_version
    live = _assert_store_matches_manifest(settings)
    assert old_ids < live and leftover <= live
    assert not layout.pending.exists()
