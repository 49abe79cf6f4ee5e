"""Verify and repair (issue rows 5, 6, 11): every kind of damage to a data dir is named
by `kb check` and by a clear error instead of a raw traceback, and one `kb ingest`
brings the data dir back to a clean check without losing the committed version."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest.pipeline import run_ingest
from kb.core.errors import CorpusDamagedError
from kb.core.settings import Settings, load_settings
from kb.search.embedding import Embedder
from kb.service import KnowledgeBase
from kb.store.check import check_data_dir
from kb.store.corpus import LEXICAL, CorpusVersion, Layout
from kb.store.vectors import forget_embedded_clients
from tests.conftest import write_corpus

DOCS = {
    "deploys.md": "# Deploys\n\nProduction deploys are frozen from Friday 15:00 until Monday.\n",
    "travel.md": "# Travel\n\nThe nightly hotel cap in New York is 350 dollars.\n",
    "oncall.md": "# On-call\n\nThe on-call engineer acknowledges a page within five minutes.\n",
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> tuple[Path, Path]:
    """A corpus and its data dir, ingested once; each test damages a copy."""
    root = tmp_path_factory.mktemp("repair")
    corpus = write_corpus(root / "corpus", DOCS)
    run_ingest(load_settings(data_dir=root / "data", chunk_tokens=48), corpus, embedder=embedder)
    return corpus, root / "data"


def _copy(pristine: tuple[Path, Path], tmp_path: Path) -> Settings:
    forget_embedded_clients()
    shutil.copytree(pristine[1], tmp_path / "data")
    return load_settings(data_dir=tmp_path / "data", chunk_tokens=48)


def _version_folder(settings: Settings) -> Path:
    return CorpusVersion.open(settings.data_dir).folder


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE: dict[str, tuple[str, Callable[[Settings], None]]] = {
    "truncated current.json": (
        "pointer",
        lambda s: _truncate(Layout(s.data_dir).current),
    ),
    "garbage current.json": (
        "pointer",
        lambda s: Layout(s.data_dir).current.write_bytes(b"\x00\xff garbage"),
    ),
    "deleted version folder": (
        "pointer",
        lambda s: shutil.rmtree(_version_folder(s)),
    ),
    "manifest of another shape": (
        "manifest",
        lambda s: (_version_folder(s) / "manifest.json").write_text('{"documents": 7}'),
    ),
    "truncated chunks.jsonl": (
        "chunks",
        lambda s: _truncate(_version_folder(s) / "chunks.jsonl"),
    ),
    "deleted snapshot.txt": (
        "snapshot",
        lambda s: (_version_folder(s) / "snapshot.txt").unlink(),
    ),
    "garbage lexical index": (
        "lexical",
        lambda s: (_version_folder(s) / LEXICAL).write_bytes(b"garbage"),
    ),
    "deleted lexical index": (
        "lexical",
        lambda s: (_version_folder(s) / LEXICAL).unlink(),
    ),
    "deleted chroma.sqlite3": (
        "vectors",
        lambda s: (s.data_dir / "chroma" / "chroma.sqlite3").unlink(),
    ),
}


@pytest.mark.integration
@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damage_is_named_and_one_ingest_repairs_it(
    kind: str, pristine: tuple[Path, Path], tmp_path: Path, embedder: Embedder
) -> None:
    settings = _copy(pristine, tmp_path)
    before = check_data_dir(settings)
    assert before.ok, before.damage
    part, damage = DAMAGE[kind]
    damage(settings)

    found = check_data_dir(settings)
    assert not found.ok
    assert [d.part for d in found.damage] == [part], found.damage
    assert found.damage[0].path.startswith(str(settings.data_dir))

    if part != "vectors":  # a reader gets an error naming the file, never a raw traceback
        with pytest.raises(CorpusDamagedError) as raised, KnowledgeBase(settings) as kb:
            corpus = kb.corpus()
            _ = corpus.chunks, corpus.snapshot, corpus.lexical
        assert "kb ingest" in raised.value.message

    summary = run_ingest(settings, pristine[0], embedder=embedder)
    assert summary.repaired, "the ingest must say what it repaired"
    forget_embedded_clients()
    after = check_data_dir(settings)
    assert after.ok, after.damage
    assert after.version == before.version  # the same documents give the same version back
    assert after.chunks == before.chunks and not after.missing_vectors


@pytest.mark.integration
def test_missing_vectors_are_reembedded_not_the_rest(
    pristine: tuple[Path, Path], tmp_path: Path, embedder: Embedder
) -> None:
    settings = _copy(pristine, tmp_path)
    from kb.store.vectors import VectorStore

    ids = [c.chunk_id for c in CorpusVersion.open(settings.data_dir).chunks]
    VectorStore(settings).delete(ids[:2])
    report = check_data_dir(settings)
    assert sorted(report.missing_vectors) == sorted(ids[:2])
    assert str(report.damage[0]).endswith(
        "(kb ingest re-embeds the missing vectors from the chunks)"
    )

    embedded_before = embedder.texts_embedded
    summary = run_ingest(settings, pristine[0], embedder=embedder)
    assert embedder.texts_embedded - embedded_before == 2
    assert summary.repaired == [f"re-embedded 2 missing vectors of version {report.version}"]
    # Issue 20: the summary counts them (it said chunks_embedded 0, embed_seconds 0.0).
    assert summary.chunks_embedded == 2 and summary.embed_seconds > 0
    assert summary.vectors_repaired == 2
    assert check_data_dir(settings).ok


@pytest.mark.integration
def test_a_damaged_pointer_is_restored_to_the_newest_complete_version(
    pristine: tuple[Path, Path], tmp_path: Path, embedder: Embedder
) -> None:
    settings = _copy(pristine, tmp_path)
    corpus = shutil.copytree(pristine[0], tmp_path / "corpus")
    (corpus / "new.md").write_text("# New\n\nA new page on badges.\n", "utf-8")
    newer = run_ingest(settings, corpus, embedder=embedder).corpus_version
    layout = Layout(settings.data_dir)
    layout.current.write_text("{not json")

    summary = run_ingest(settings, corpus, embedder=embedder)
    assert summary.repaired[0].endswith(f"restored it to version {newer}")
    assert (summary.added, summary.changed, summary.unchanged) == (0, 0, len(DOCS) + 1)
    assert layout.current_version() == newer and check_data_dir(settings).ok


@pytest.mark.integration
def test_a_damaged_version_is_rebuilt_while_the_one_before_answers(
    pristine: tuple[Path, Path], tmp_path: Path, embedder: Embedder
) -> None:
    settings = _copy(pristine, tmp_path)
    older = Layout(settings.data_dir).current_version()
    corpus = shutil.copytree(pristine[0], tmp_path / "corpus")
    (corpus / "new.md").write_text("# New\n\nA new page on badges.\n", "utf-8")
    newer = run_ingest(settings, corpus, embedder=embedder).corpus_version
    (_version_folder(settings) / "chunks.jsonl").write_text("garbage\n")

    summary = run_ingest(settings, corpus, embedder=embedder)
    assert f"starting from version {older}" in summary.repaired[0]
    assert summary.added == 1 and summary.chunks_embedded == 0  # its vectors were kept
    assert summary.corpus_version == newer and check_data_dir(settings).ok


@pytest.mark.integration
def test_kb_check_exits_1_naming_the_damage_and_0_when_sound(
    pristine: tuple[Path, Path], tmp_path: Path
) -> None:
    import subprocess
    import sys

    settings = _copy(pristine, tmp_path)
    command = [sys.executable, "-m", "api.cli", "check", "--data-dir", str(settings.data_dir)]
    cwd = Path(__file__).resolve().parents[1]
    sound = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert sound.returncode == 0 and sound.stdout.startswith("ok: version"), sound.stderr
    (_version_folder(settings) / "snapshot.txt").write_text("tampered")
    damaged = subprocess.run(
        [*command, "--json"], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert damaged.returncode == 1, damaged.stderr
    report = json.loads(damaged.stdout)
    assert report["ok"] is False
    assert [d["part"] for d in report["damage"]] == ["snapshot"]


@pytest.mark.integration
def test_the_reader_cache_is_pruned_with_the_versions(
    pristine: tuple[Path, Path], tmp_path: Path, embedder: Embedder
) -> None:
    settings = _copy(pristine, tmp_path)
    corpus = shutil.copytree(pristine[0], tmp_path / "corpus")
    cache = Layout(settings.data_dir).cache_dir("extractive")
    written = []
    for step in range(4):
        (corpus / "changing.md").write_text(f"# Changing\n\nRevision {step} of the page.\n")
        run_ingest(settings, corpus, embedder=embedder)
        with KnowledgeBase(settings, embedder=embedder) as kb:
            kb.ask("What revision is the page?", mode="long_context")
        written.append(CorpusVersion.open(settings.data_dir).version)
        assert len(list(cache.glob("*.npz"))) <= 2  # this version's and the one before
    assert sorted(p.name for p in Layout(settings.data_dir).versions.iterdir()) == sorted(
        written[-2:]
    )


@pytest.mark.integration
def test_a_sound_version_is_read_whole_once_not_at_every_ingest(
    pristine: tuple[Path, Path], tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ingest.repair
    from kb.store.check import VERIFIED, known_sound

    settings = _copy(pristine, tmp_path)
    layout = Layout(settings.data_dir)
    version = layout.current_version()
    assert version is not None and known_sound(layout, version)  # noted by its ingest
    reads: list[str] = []
    real = ingest.repair.check_version_files
    monkeypatch.setattr(
        ingest.repair,
        "check_version_files",
        lambda layout, version: reads.append(version) or real(layout, version),
    )
    run_ingest(settings, pristine[0], embedder=embedder)
    assert reads == []  # unchanged since its ingest noted it sound: not read again

    (layout.version_dir(version) / VERIFIED).unlink()  # e.g. written by an older release
    run_ingest(settings, pristine[0], embedder=embedder)
    run_ingest(settings, pristine[0], embedder=embedder)
    assert reads == [version]  # read whole once, then noted sound

    snapshot = layout.version_dir(version) / "snapshot.txt"
    snapshot.write_text(snapshot.read_text("utf-8").replace("350", "999"), "utf-8")  # same size
    summary = run_ingest(settings, pristine[0], embedder=embedder)
    assert reads == [version, version] and summary.repaired  # a changed file is read again
    assert check_data_dir(settings).ok
