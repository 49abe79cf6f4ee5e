"""Issue 20, F6 and F7: a file whose name is not valid UTF-8. `kb ingest --watch` exited
on it (watchfiles raised `Unable to decode path`) and never indexed a later edit; and
`kb ingest --json` and `POST /v1/ingest` failed to encode the summary that names it
(after the version was committed)."""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from pathlib import Path

import pytest

from api.cli import main
from ingest.watch import Reindex, describe, watch_corpus
from kb.core.settings import load_settings
from kb.search.embedding import Embedder
from tests.conftest import write_corpus
from tests.live_server import SERVICE_KEY, make_settings, serving

FILES = {"a.md": "# A\n\nAlpha is the first letter.\n", "b.md": "# B\n\nBeta is second.\n"}
BAD_NAME = b"bad\xff\xfename.md"  # not UTF-8: Python keeps it as lone surrogates
SHOWN = "bad\\xff\\xfename.md"


def _write_bad(folder: Path) -> None:
    with open(os.fsencode(folder) + b"/" + BAD_NAME, "wb") as handle:
        handle.write(b"# Bad name\n\nThe text is fine, the name is not.\n")


@pytest.mark.integration
def test_the_watcher_survives_an_undecodable_name_and_indexes_later_edits(
    tmp_path: Path, embedder: Embedder
) -> None:
    corpus = write_corpus(tmp_path / "corpus", FILES)
    settings = load_settings(data_dir=tmp_path / "data")
    done: queue.Queue[Reindex] = queue.Queue()
    stop = threading.Event()
    watcher = threading.Thread(
        target=watch_corpus,
        args=(settings, corpus, done.put),
        kwargs={"embedder": embedder, "debounce_s": 0.3, "stop": stop},
        daemon=True,
    )
    watcher.start()
    try:
        time.sleep(1.0)
        _write_bad(corpus)
        first = done.get(timeout=120)
        time.sleep(1.5)  # watching again
        (corpus / "later.md").write_text("# Later\n\nAn edit after the bad name.\n", "utf-8")
        deadline = time.monotonic() + 120
        later = first
        while not (later.summary and "later.md" in later.summary.added_ids):
            later = done.get(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert not watcher.is_alive()
    assert first.summary is not None, first.error
    assert {s.path: s.reason for s in first.summary.skipped}[SHOWN].startswith("id is not valid")
    json.dumps(first.summary.model_dump())  # encodable: the name is escaped
    # watchfiles raised on the name: reported, the folder re-indexed, watching again.
    assert first.watcher_error is not None and "Unable to decode path" in first.watcher_error
    assert "the file watcher failed" in describe(first) and "restarted" in describe(first)


@pytest.mark.integration
def test_ingest_json_and_the_api_report_an_undecodable_name(
    tmp_path: Path, embedder: Embedder, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_corpus(tmp_path / "corpus", FILES)
    _write_bad(corpus)
    assert main(["ingest", str(corpus), "--data-dir", str(tmp_path / "data"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [s["path"] for s in summary["skipped"]] == [SHOWN]

    settings = make_settings(
        tmp_path / "serve",
        data_dir=tmp_path / "data2",
        corpus_dir=corpus,
        service_api_key=SERVICE_KEY,
        max_body_bytes=4_000,
    )
    with serving(settings, embedder, wait_ready=False) as live, live.client(SERVICE_KEY) as client:
        response = client.post("/v1/ingest")
    assert response.status_code == 200, response.text
    assert [s["path"] for s in response.json()["skipped"]] == [SHOWN]
