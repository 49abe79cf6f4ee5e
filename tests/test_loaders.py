"""Loaders: each supported format yields its text, each bad input is skipped with a
reason, and the walk goes on past every skip."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from pypdf import PdfWriter

from ingest.loaders import SUPPORTED_SUFFIXES, LoadResult, load_corpus
from tests.conftest import DATASETS, FIXTURES, write_corpus

HOTPOT = DATASETS / "hotpotqa-100" / "corpus.jsonl"
MAX = 1_000_000


def _reasons(result: LoadResult) -> dict[str, str]:
    return {s.path: s.reason for s in result.skipped}


def _blank_pdf(encrypt: bool = False) -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    if encrypt:
        writer.encrypt("secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.integration
def test_markdown_text_and_rst_keep_their_text_and_find_a_title(tmp_path: Path) -> None:
    root = write_corpus(
        tmp_path / "c",
        {
            "guide.md": "Intro line\n\n# Travel Policy\n\nBook trains for trips under 4 hours.\n",
            "notes.txt": "Plain notes.\r\nSecond line with CRLF.\r\n",
            "sub/design.rst": "Design Notes\n============\n\nThe cache key is the version.\n",
        },
    )
    result = load_corpus(root, MAX)
    assert result.skipped == []
    docs = {d.doc_id: d for d in result.documents}
    assert list(docs) == ["guide.md", "notes.txt", "sub/design.rst"]  # sorted, posix ids

    assert docs["guide.md"].title == "Travel Policy"
    assert docs["guide.md"].text == (
        "Intro line\n\n# Travel Policy\n\nBook trains for trips under 4 hours."
    )
    assert docs["notes.txt"].title == "notes"  # no heading: the file name
    assert docs["notes.txt"].text == "Plain notes.\nSecond line with CRLF."  # unix newlines
    assert docs["sub/design.rst"].title == "Design Notes"
    assert docs["sub/design.rst"].source == "sub/design.rst"
    assert "The cache key is the version." in docs["sub/design.rst"].text


@pytest.mark.integration
def test_html_yields_visible_text_not_markup(tmp_path: Path) -> None:
    root = tmp_path / "c"
    root.mkdir()
    shutil.copy(FIXTURES / "guide.html", root / "guide.html")
    (doc,) = load_corpus(root, MAX).documents
    assert doc.title == "Onboarding Guide"
    assert "<" not in doc.text and ">" not in doc.text
    for hidden in ("SHOULD-NOT-APPEAR", "ALSO-NOT-TEXT", "font-family", "trackingCode"):
        assert hidden not in doc.text
    # Inline markup stays inside its sentence; entities are decoded; block elements
    # break lines.
    assert "New starters receive a laptop on their first day & a badge for the office." in (
        doc.text.splitlines()
    )
    assert "The help desk answers tickets within four hours." in doc.text.splitlines()
    assert "Install the VPN client." in doc.text.splitlines()


@pytest.mark.integration
def test_pdf_text_layer_is_extracted_page_by_page(tmp_path: Path) -> None:
    root = tmp_path / "c"
    root.mkdir()
    shutil.copy(FIXTURES / "handbook.pdf", root / "handbook.pdf")
    (doc,) = load_corpus(root, MAX).documents
    assert doc.doc_id == "handbook.pdf"
    assert doc.text.splitlines() == [
        "Expense Policy",
        "Employees may claim travel expenses within thirty days.",
        "Receipts are required for every claim above twenty euros.",
        "",
        "Remote Work",
        "Staff may work remotely up to three days per week.",
    ]


@pytest.mark.integration
def test_jsonl_in_the_datasets_format_gives_one_document_per_line(tmp_path: Path) -> None:
    lines = HOTPOT.read_text("utf-8").splitlines()[:5]
    root = write_corpus(tmp_path / "c", {"part.jsonl": "\n".join(lines) + "\n"})
    result = load_corpus(root, MAX)
    records = [json.loads(line) for line in lines]
    assert result.skipped == []
    assert [d.doc_id for d in result.documents] == sorted(r["doc_id"] for r in records)
    by_id = {d.doc_id: d for d in result.documents}
    for record in records:
        doc = by_id[record["doc_id"]]
        assert doc.title == record["title"]
        assert doc.text == record["text"].strip()
        assert doc.source == "part.jsonl"


@pytest.mark.integration
def test_bad_jsonl_lines_are_skipped_one_by_one_and_good_lines_kept(tmp_path: Path) -> None:
    root = write_corpus(
        tmp_path / "c",
        {
            "mixed.jsonl": "\n".join(
                [
                    '{"doc_id": "a", "title": "A", "text": "alpha"}',
                    "not json at all",
                    "[1, 2, 3]",
                    '{"title": "no id", "text": "orphan"}',
                    '{"doc_id": "b", "title": "B", "text": "   "}',
                    "",
                    '{"doc_id": "c", "text": "gamma, no title"}',
                    '{"doc_id": "a", "title": "again", "text": "duplicate id"}',
                ]
            )
        },
    )
    result = load_corpus(root, MAX)
    assert [(d.doc_id, d.title, d.text) for d in result.documents] == [
        ("a", "A", "alpha"),
        ("c", "c", "gamma, no title"),  # a missing title falls back to the id
    ]
    reasons = [(s.path, s.reason) for s in result.skipped]
    assert reasons[:4] == [
        ("mixed.jsonl:2", "invalid JSON: Expecting value"),
        ("mixed.jsonl:3", "line is not a JSON object"),
        ("mixed.jsonl:4", 'missing "doc_id" (a non-empty string)'),
        ("mixed.jsonl:5", 'missing or empty "text"'),
    ]
    assert reasons[4][0] == "mixed.jsonl"
    assert reasons[4][1].startswith("duplicate document id 'a'")


@pytest.mark.integration
def test_jsonl_without_documents_is_skipped_even_after_other_skips(tmp_path: Path) -> None:
    root = write_corpus(
        tmp_path / "c",
        {"a-empty.txt": "", "b-blank.jsonl": "\n\n   \n", "c-ok.md": "fine"},
    )
    reasons = _reasons(load_corpus(root, MAX))
    assert reasons == {"a-empty.txt": "empty file", "b-blank.jsonl": "no documents in JSONL file"}


@pytest.mark.integration
def test_every_bad_input_is_skipped_with_its_reason_and_the_rest_loads(tmp_path: Path) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text("secret notes outside the corpus", "utf-8")
    good_pdf = (FIXTURES / "handbook.pdf").read_bytes()
    root = write_corpus(
        tmp_path / "c",
        {
            "binary.md": b"header\x00\x01\x02\x03 payload",
            "latin1.txt": "caf\xe9 cr\xe8me".encode("latin-1"),
            "empty.txt": b"",
            "blank.md": "  \n\n\t\n",
            "huge.txt": "x" * 2_000,
            "truncated.pdf": good_pdf[:300],
            "garbage.pdf": b"%PDF-1.4\nthis is not a pdf\n",
            "scanned.pdf": _blank_pdf(),
            "locked.pdf": _blank_pdf(encrypt=True),
            "image.png": b"\x89PNG\r\n\x1a\n....",
            "ok.md": "# Kept\n\nThis one loads.",
            "inside.md": "target inside the root",
            ".hidden.md": "dot files are ignored",
        },
    )
    os.symlink(outside, root / "escape.md")
    os.symlink(root / "inside.md", root / "alias.md")
    os.symlink(root / "missing.md", root / "broken.md")
    os.symlink(tmp_path, root / "loop")  # a symlinked folder is never followed

    result = load_corpus(root, max_file_bytes=1_000)
    reasons = _reasons(result)
    assert reasons["binary.md"] == "binary file (NUL bytes); convert it to text first"
    assert reasons["latin1.txt"] == "not valid UTF-8 (byte 3); re-save the file as UTF-8"
    assert reasons["empty.txt"] == "empty file"
    assert reasons["blank.md"] == "no text after extraction"
    assert reasons["huge.txt"] == (
        "file is 2,000 bytes, over the 1,000-byte limit (KB_MAX_FILE_BYTES)"
    )
    assert reasons["truncated.pdf"].startswith("unreadable PDF: ")
    assert reasons["garbage.pdf"].startswith("unreadable PDF: ")
    assert reasons["scanned.pdf"] == "PDF has no text layer (scanned?); run OCR first"
    assert reasons["locked.pdf"] == "encrypted PDF; decrypt it first"
    assert reasons["image.png"].startswith("unsupported file type '.png'")
    assert reasons["escape.md"] == (
        f"symlink points outside the corpus root (to {outside.resolve()})"
    )
    assert reasons["broken.md"] == "broken symlink"
    assert reasons["loop"] == "symlinked folder is not followed"
    assert reasons["alias.md"] == "symlink to inside.md, which is indexed under its own name"
    assert len(reasons) == len(result.skipped) == 14

    docs = {d.doc_id: d for d in result.documents}
    assert sorted(docs) == ["inside.md", "ok.md"]  # the linked file is indexed once
    assert docs["inside.md"].text == "target inside the root"
    assert all("secret notes" not in d.text for d in result.documents)


@pytest.mark.integration
@pytest.mark.parametrize("size", [1_000, 999])
def test_size_limit_is_inclusive(tmp_path: Path, size: int) -> None:
    root = write_corpus(tmp_path / "c", {"a.txt": "y" * 1_000})
    result = load_corpus(root, max_file_bytes=size)
    assert len(result.documents) == (1 if size >= 1_000 else 0)


@pytest.mark.integration
def test_a_single_file_can_be_the_corpus(tmp_path: Path) -> None:
    root = write_corpus(tmp_path / "c", {"one.md": "# One\n\nonly me", "two.md": "not me"})
    result = load_corpus(root / "one.md", MAX)
    assert [(d.doc_id, d.title) for d in result.documents] == [("one.md", "One")]


@pytest.mark.integration
def test_missing_path_raises() -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_corpus(Path("no-such-folder"), MAX)


@pytest.mark.integration
def test_loading_is_deterministic(tmp_path: Path) -> None:
    root = write_corpus(
        tmp_path / "c",
        {f"d{n}/f{m}.md": f"doc {n}.{m}" for n in range(3) for m in range(3)},
    )
    first, second = load_corpus(root, MAX), load_corpus(root, MAX)
    assert first.documents == second.documents
    assert [d.doc_id for d in first.documents] == sorted(d.doc_id for d in first.documents)


@pytest.mark.integration
def test_supported_suffixes_are_the_issue_list() -> None:
    assert {".md", ".txt", ".rst", ".html", ".pdf", ".jsonl"} <= SUPPORTED_SUFFIXES
