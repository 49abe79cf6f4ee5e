"""`kb ingest --watch` and the ingest summary that names files: the watcher over a
real folder (real file events, the real model and Chroma), the CLI in-process for
the summary formats, and one real `kb ingest --watch` process."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from api.cli import main
from ingest.pipeline import run_ingest
from ingest.watch import Reindex, describe, describe_changes, name_some, watch_corpus
from kb.core.models import IngestSummary
from kb.core.settings import load_settings
from kb.search.embedding import Embedder
from tests.conftest import ROOT, write_corpus

FILES = {
    "a.md": "# A\n\nAlpha is the first letter.\n",
    "b.md": "# B\n\nBeta is the second letter.\n",
    "c.md": "# C\n\nGamma is the third letter.\n",
}


@pytest.mark.integration
def test_name_some_shows_the_first_few_then_a_count() -> None:
    assert name_some([]) == ""
    assert name_some(["b.md", "a.md"]) == "a.md, b.md"
    assert name_some([f"{i}.md" for i in range(10)]) == "0.md, 1.md, 2.md and 7 more"
    summary = IngestSummary(changed_ids=["x.md"], removed_ids=["y.md", "z.md"])
    assert describe_changes(summary) == "changed x.md; removed y.md, z.md"
    assert describe_changes(IngestSummary()) == "no document changed"


@pytest.mark.integration
def test_watch_reindexes_each_burst_of_changes(tmp_path: Path, embedder: Embedder) -> None:
    corpus = write_corpus(tmp_path / "corpus", FILES)
    settings = load_settings(data_dir=tmp_path / "data")
    run_ingest(settings, corpus, embedder=embedder)
    done: queue.Queue[Reindex] = queue.Queue()
    stop = threading.Event()
    watcher = threading.Thread(
        target=watch_corpus,
        args=(settings, corpus, done.put),
        kwargs={"embedder": embedder, "debounce_s": 0.5, "stop": stop},
        daemon=True,
    )
    watcher.start()
    try:
        time.sleep(1.0)  # the watcher is subscribed
        (corpus / "a.md").write_text("# A\n\nAlpha comes before beta.\n", "utf-8")
        (corpus / "d.md").write_text("# D\n\nDelta is the fourth letter.\n", "utf-8")
        (corpus / "c.md").unlink()
        reindex = done.get(timeout=120)
        assert reindex.summary is not None, reindex.error
        summary = reindex.summary
        assert (summary.changed_ids, summary.added_ids, summary.removed_ids) == (
            ["a.md"],
            ["d.md"],
            ["c.md"],
        )
        assert reindex.events >= 3
        line = describe(reindex)
        assert "changed a.md; added d.md; removed c.md" in line
        assert f"corpus {summary.corpus_version}: 3 documents" in line
        # One burst, one re-index: nothing else was queued.
        time.sleep(1.5)
        assert done.empty()
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert not watcher.is_alive()


@pytest.mark.integration
def test_summary_names_files_and_json_keeps_id_lists_behind_full(
    tmp_path: Path, embedder: Embedder, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {f"doc{i:02d}.md": f"# Doc {i}\n\nFact number {i} is here.\n" for i in range(6)}
    corpus = write_corpus(tmp_path / "corpus", files)
    data = str(tmp_path / "data")
    assert main(["ingest", str(corpus), "--data-dir", data, "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["added"] == 6 and not {"added_ids", "changed_ids", "removed_ids"} & set(first)

    (corpus / "doc00.md").write_text("# Doc 0\n\nFact zero changed.\n", "utf-8")
    (corpus / "doc01.md").unlink()
    (corpus / "new.md").write_text("# New\n\nA new fact.\n", "utf-8")
    assert main(["ingest", str(corpus), "--data-dir", data]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "added 1 (new.md), changed 1 (doc00.md), removed 1 (doc01.md), unchanged 4, skipped 0"
    )
    for name in files:
        (corpus / name).unlink(missing_ok=True)
    assert main(["ingest", str(corpus), "--data-dir", data, "--json", "--full"]) == 0
    full = json.loads(capsys.readouterr().out)
    assert full["removed_ids"] == ["doc00.md", "doc02.md", "doc03.md", "doc04.md", "doc05.md"]


@pytest.mark.slow
def test_kb_ingest_watch_prints_a_line_per_reindex(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus", FILES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "ingest", str(corpus), "--watch", "--debounce", "0.3",
         "--data-dir", str(tmp_path / "data")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=lambda: [lines.put(line) for line in process.stdout],
            daemon=True,  # type: ignore[union-attr]
        ).start()
        first = lines.get(timeout=300)
        assert first.startswith("added 3 (a.md, b.md, c.md), changed 0, removed 0")
        while not lines.get(timeout=60).startswith("corpus "):
            pass
        time.sleep(1.5)  # watching
        (corpus / "b.md").write_text("# B\n\nBeta is the second letter, after alpha.\n", "utf-8")
        line = lines.get(timeout=120)
        while "re-indexed after" not in line:  # the rest of the first summary
            line = lines.get(timeout=120)
        assert "changed b.md;" in line, line
        assert "1 chunks embedded" in line
    finally:
        process.terminate()
        process.wait(timeout=30)
