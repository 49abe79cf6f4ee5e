"""Shared fixtures: real parts on temp folders, and a clean KB_* environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kb.core.settings import Settings, load_settings
from kb.search.embedding import Embedder, shared_embedder
from tests.chroma_server import chroma_server  # noqa: F401  (a fixture, shared)

pytest_plugins = ["tests.lanes", "pytester"]

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Debian's chromium, driven by Playwright (never `playwright install`); the flags keep
# it from reaching out to the network this machine does not have.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(autouse=True)
def clean_kb_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No KB_* variable or .env of the developer's leaks into a test. Subprocesses
    (`python -m api.cli`, run from tmp_path) import this checkout, not whichever one the
    venv's editable install points at."""
    for name in list(os.environ):
        if name.startswith("KB_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    # From the temp folder, a `python -m api.cli` subprocess must still import this
    # checkout (not whatever copy the venv has installed).
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), path])))
    yield


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real bundled model, loaded once per test session."""
    return shared_embedder()


@pytest.fixture(scope="session")
def handbook(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> tuple[Path, Path]:
    """The HTTP tests' handbook (corpus folder, data dir), ingested once per session.
    Tests only read it; an ingest over it through the API changes nothing."""
    from tests.live_server import ingest_handbook

    corpus_dir, data_dir, _ = ingest_handbook(tmp_path_factory.mktemp("handbook"), embedder)
    return corpus_dir, data_dir


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data")


def write_corpus(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root
