"""Word documents: .docx files written here with python-docx, loaded in reading order
with exact spans, and broken ones skipped with a reason like every other format."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from docx import Document as new_docx

from ingest.loaders import load_corpus
from ingest.pipeline import run_ingest
from kb.core.settings import load_settings
from kb.search.embedding import Embedder
from kb.service import KnowledgeBase
from tests.conftest import write_corpus


def policy_docx(*, title: str | None = "Remote work policy") -> bytes:
    document = new_docx()
    if title:
        document.core_properties.title = title
    document.add_heading("Remote work", level=1)
    document.add_paragraph("Employees may work remotely up to three days a week.")
    document.add_heading("Equipment", level=2)
    document.add_paragraph("The company pays for one external monitor per employee.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Item", "Budget"
    table.cell(1, 0).text, table.cell(1, 1).text = "Chair", "400 EUR"
    document.add_paragraph("Questions go to the people team.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def zip_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


@pytest.mark.integration
def test_docx_text_in_reading_order_with_title(tmp_path: Path) -> None:
    root = write_corpus(
        tmp_path / "c",
        {"policy.docx": policy_docx(), "untitled.docx": policy_docx(title=None)},
    )
    result = load_corpus(root, 1_000_000)
    assert result.skipped == []
    docs = {doc.doc_id: doc for doc in result.documents}
    policy = docs["policy.docx"]
    assert policy.title == "Remote work policy"
    assert docs["untitled.docx"].title == "Remote work"  # the first Heading 1
    assert policy.text == (
        "# Remote work\n\n"
        "Employees may work remotely up to three days a week.\n\n"
        "## Equipment\n\n"
        "The company pays for one external monitor per employee.\n\n"
        "Item | Budget\n\n"
        "Chair | 400 EUR\n\n"
        "Questions go to the people team."
    )


@pytest.mark.integration
def test_broken_docx_files_are_skipped_with_a_reason(tmp_path: Path) -> None:
    empty = new_docx()
    empty_bytes = io.BytesIO()
    empty.save(empty_bytes)
    root = write_corpus(
        tmp_path / "c",
        {
            "garbage.docx": b"this is not a zip file at all",
            "truncated.docx": policy_docx()[:500],
            "not-word.docx": zip_of({"hello.txt": b"hi"}),
            "empty.docx": empty_bytes.getvalue(),
            "good.docx": policy_docx(),
        },
    )
    result = load_corpus(root, 1_000_000)
    assert [doc.doc_id for doc in result.documents] == ["good.docx"]
    reasons = {skip.path: skip.reason for skip in result.skipped}
    assert reasons["garbage.docx"].startswith("not a Word .docx file")
    assert reasons["truncated.docx"].startswith("not a Word .docx file")
    assert reasons["not-word.docx"].startswith("unreadable .docx: ")
    assert reasons["empty.docx"] == "no text after extraction"


@pytest.mark.integration
def test_a_docx_answer_cites_its_exact_span(tmp_path: Path, embedder: Embedder) -> None:
    root = write_corpus(tmp_path / "c", {"policy.docx": policy_docx()})
    settings = load_settings(data_dir=tmp_path / "data")
    run_ingest(settings, root, embedder=embedder)
    with KnowledgeBase(settings, embedder=embedder) as kb:
        answer = kb.ask("How many days a week may employees work remotely?", "rag")
    (citation,) = answer.citations
    assert citation.doc_id == "policy.docx" and citation.title == "Remote work policy"
    text = load_corpus(root, 1_000_000).documents[0].text
    assert "three days a week" in text[citation.start : citation.end]
