"""Hostile files (issue rows 1-4 and 13): each is generated here, never committed, and
each must end in a document indexed sanely or a file skipped with a reason, while the
rest of the folder is indexed."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

import ingest.html_text
import ingest.loaders
from ingest.corpus_files import CorpusFile
from ingest.doc_ids import MAX_ID_CHARS, MAX_TITLE_CHARS
from ingest.loaders import LoadResult, load_corpus
from ingest.pipeline import run_ingest
from kb.core.settings import Settings, load_settings
from kb.core.tokens import count_tokens
from kb.search.embedding import Embedder
from kb.store.corpus import CorpusVersion
from tests.conftest import write_corpus

MAX = 20_000_000
GOOD = "Refunds are paid within five working days of the request.\n"


def _reasons(result: LoadResult) -> dict[str, str]:
    return {s.path: s.reason for s in result.skipped}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data")


# Row 1: a run of white space that overflows tiktoken's regex stack.


@pytest.mark.integration
@pytest.mark.parametrize("space", [" ", "\xa0"])
def test_a_million_spaces_before_a_word_are_counted_not_a_panic(space: str) -> None:
    text = "start" + space * 1_000_000 + "end"
    assert count_tokens(text) > 2  # tiktoken alone raises (or panics) on this text


@pytest.mark.integration
def test_a_file_with_a_million_spaces_is_indexed_beside_the_rest(
    tmp_path: Path, settings: Settings, embedder: Embedder
) -> None:
    root = write_corpus(
        tmp_path / "c",
        {"good.md": GOOD, "spaces.txt": "Alpha section." + " " * 1_000_000 + "Omega section."},
    )
    summary = run_ingest(settings, root, embedder=embedder)
    assert summary.skipped == []
    assert sorted(summary.added_ids) == ["good.md", "spaces.txt"]
    texts = [c.text for c in CorpusVersion.open(settings.data_dir).chunks]
    assert "Alpha section." in texts and "Omega section." in texts
    assert all(len(t) < 20_000 for t in texts)  # the run is not a chunk of its own


# Row 2: deeply nested or huge HTML, bounded in time and memory.


@pytest.mark.integration
def test_html_nested_a_hundred_thousand_deep_reads_in_one_pass(tmp_path: Path) -> None:
    depth = 100_000
    page = "<html><body>" + "<div>" * depth + "<p>Deep text.</p>" + "</div>" * depth
    root = write_corpus(tmp_path / "c", {"deep.html": page + "</body></html>", "good.md": GOOD})
    result = load_corpus(root, MAX)
    docs = {d.doc_id: d for d in result.documents}
    assert result.skipped == []
    assert docs["deep.html"].text == "Deep text."


@pytest.mark.integration
def test_an_html_page_past_the_time_bound_is_skipped_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest.html_text, "PARSE_SECONDS", 0.0)
    page = "<html><body>" + "<div>x</div>" * 20_000 + "</body></html>"
    root = write_corpus(tmp_path / "c", {"slow.html": page, "good.md": GOOD})
    result = load_corpus(root, MAX)
    assert [d.doc_id for d in result.documents] == ["good.md"]
    assert _reasons(result)["slow.html"].startswith("HTML page took more than 0 s to read")


# Row 3: titles are capped, so the index grows with the text, not with the chunks.


@pytest.mark.integration
def test_a_100kb_title_is_capped_in_jsonl_and_html(tmp_path: Path) -> None:
    long_title = "T" * 100_000
    record = {"doc_id": "r1", "title": long_title, "text": "word " * 2_000}
    root = write_corpus(
        tmp_path / "c",
        {
            "records.jsonl": json.dumps(record) + "\n",
            "page.html": f"<title>{long_title}</title><p>Body text.</p>",
        },
    )
    docs = load_corpus(root, MAX).documents
    assert len(docs) == 2
    for doc in docs:
        assert len(doc.title) == MAX_TITLE_CHARS and doc.title.endswith("…")


@pytest.mark.integration
def test_an_index_of_a_long_titled_record_stays_proportional_to_its_text(
    tmp_path: Path, settings: Settings, embedder: Embedder
) -> None:
    body = " ".join(f"sentence {n} of the report." for n in range(600))
    record = {"doc_id": "r1", "title": "T" * 100_000, "text": body}
    root = write_corpus(tmp_path / "c", {"records.jsonl": json.dumps(record) + "\n"})
    run_ingest(settings, root, embedder=embedder)
    folder = CorpusVersion.open(settings.data_dir).folder
    chunks_bytes = (folder / "chunks.jsonl").stat().st_size
    # Every chunk holds its text, its title and a few ids: a small multiple of the text
    # (uncapped, each of its ~9 chunks carried the 100 KB title: 900 KB).
    assert chunks_bytes < 4 * len(body)


# Row 4: a file that disappears between the listing and the read.


@pytest.mark.integration
def test_a_file_deleted_while_the_folder_is_walked_is_skipped_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_corpus(tmp_path / "c", {"a.md": GOOD, "gone.md": "Soon gone.\n"})
    walk = ingest.loaders.walk_files

    def walk_then_delete(root_: Path, symlinks: list[str]) -> Iterator[CorpusFile]:
        for file in walk(root_, symlinks):
            if file.name == "gone.md":
                (root / "gone.md").unlink()  # another process deletes it after the listing
            yield file

    monkeypatch.setattr(ingest.loaders, "walk_files", walk_then_delete)
    result = load_corpus(root, MAX)
    assert [d.doc_id for d in result.documents] == ["a.md"]
    assert _reasons(result) == {"gone.md": "file disappeared while the folder was read"}


# Row 13: ids validated and normalised, clashes reported, UTF-16 decoded.


@pytest.mark.integration
def test_a_jsonl_record_cannot_displace_a_real_file_of_the_same_id(tmp_path: Path) -> None:
    forged = {"doc_id": "ok.md", "title": "Forged", "text": "Forged text."}
    root = write_corpus(
        tmp_path / "c", {"a.jsonl": json.dumps(forged) + "\n", "ok.md": "# Real\n\nReal text.\n"}
    )
    result = load_corpus(root, MAX)
    (doc,) = result.documents
    assert (doc.doc_id, doc.text) == ("ok.md", "# Real\n\nReal text.")
    assert _reasons(result) == {
        "a.jsonl": "duplicate document id 'ok.md': it is the path of the file ok.md"
    }


@pytest.mark.integration
def test_nul_long_and_surrogate_ids_are_rejected_one_record_at_a_time(tmp_path: Path) -> None:
    lines = [
        json.dumps({"doc_id": "bad\x00id", "text": "x"}),
        json.dumps({"doc_id": "L" * 100_000, "text": "x"}),
        '{"doc_id": "lone\\ud800", "text": "x"}',
        '{"doc_id": "fine", "text": "lone \\udc00 in text"}',
        json.dumps({"doc_id": "good", "text": "Kept."}),
        "[" * 100_000 + "]" * 100_000,
    ]
    root = write_corpus(tmp_path / "c", {"r.jsonl": "\n".join(lines) + "\n"})
    result = load_corpus(root, MAX)
    assert [d.doc_id for d in result.documents] == ["good"]
    reasons = _reasons(result)
    assert reasons["r.jsonl:1"] == 'bad "doc_id": id holds the control character U+0000'
    assert reasons["r.jsonl:2"] == (
        f'bad "doc_id": id is 100,000 characters long, over the {MAX_ID_CHARS} allowed'
    )
    assert "not valid Unicode" in reasons["r.jsonl:3"]
    assert "not valid Unicode" in reasons["r.jsonl:4"]
    assert reasons["r.jsonl:6"] == "invalid JSON: nested too deeply"


@pytest.mark.integration
def test_nfc_and_nfd_names_are_one_document_and_the_clash_is_reported(tmp_path: Path) -> None:
    nfc, nfd = unicodedata.normalize("NFC", "café.md"), unicodedata.normalize("NFD", "café.md")
    assert nfc != nfd
    root = write_corpus(tmp_path / "c", {nfc: "Composed.\n", nfd: "Decomposed.\n"})
    result = load_corpus(root, MAX)
    (doc,) = result.documents
    assert doc.doc_id == nfc
    ((path, reason),) = [(s.path, s.reason) for s in result.skipped]
    assert path == nfc and reason.startswith(f"duplicate document id {nfc!r}")


@pytest.mark.integration
@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_text_with_a_bom_is_decoded(tmp_path: Path, codec: str) -> None:
    text = "# Überblick\n\nDie Kantine öffnet um acht Uhr.\n"
    bom = {"utf-16-be": b"\xfe\xff"}.get(codec, b"")
    root = write_corpus(tmp_path / "c", {"de.md": bom + text.encode(codec)})
    result = load_corpus(root, MAX)
    assert result.skipped == []
    (doc,) = result.documents
    assert (doc.title, doc.text) == ("Überblick", text.strip())
