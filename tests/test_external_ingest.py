"""A long-running reader (as `kb serve` is) sees what a separate `kb ingest` process
wrote: embedded Chroma keeps its vector index in memory per process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ingest.pipeline import run_ingest
from kb.core.settings import load_settings
from kb.search.embedding import Embedder
from kb.service import KnowledgeBase
from tests.conftest import write_corpus


@pytest.mark.integration
def test_reader_sees_vectors_written_by_another_process(tmp_path: Path, embedder: Embedder) -> None:
    root = write_corpus(
        tmp_path / "docs",
        {
            "a.md": "# Kettles\n\nThe office kettle is descaled every second Tuesday.",
            "b.md": "# Bikes\n\nBicycles are parked in the basement rack behind door 4.",
        },
    )
    settings = load_settings(data_dir=tmp_path / "data")
    run_ingest(settings, root, embedder=embedder)
    with KnowledgeBase(settings, embedder=embedder) as base:
        # Load this process's vector index before the other process writes.
        assert "basement" in base.ask("Where are bicycles parked?", mode="rag").answer
        (root / "c.md").write_text(
            "# Aquarium\n\nThe aquarium filter is replaced by the facilities team in March."
        )
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "api.cli",
                "ingest",
                str(root),
                "--json",
                "--data-dir",
                str(settings.data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        corpus = base.corpus()
        new_rows = {row for row, c in enumerate(corpus.chunks) if c.doc_id == "c.md"}
        vector = embedder.embed_one("Who replaces the aquarium filter?")
        hits = base.retriever(corpus).vector_search(vector, 3)
        assert new_rows & {row for row, _ in hits}, "the new chunk's vector was not found"
        answer = base.ask("Who replaces the aquarium filter?", mode="rag")
    assert "facilities team" in answer.answer
