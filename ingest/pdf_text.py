"""The text layer of a PDF, page by page, within the file's extraction budget."""

from __future__ import annotations

import io
import logging

from pypdf import PdfReader

from ingest.corpus_files import FileSkipped
from ingest.extract_budget import ExtractBudget

logging.getLogger("pypdf").setLevel(logging.ERROR)


def pdf_text(raw: bytes, budget: ExtractBudget) -> str:
    """The pages' text joined by blank lines; FileSkipped for an encrypted, unreadable,
    scanned or over-budget PDF."""
    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            raise FileSkipped("encrypted PDF; decrypt it first")
        budget.check_pages(len(reader.pages))
        pages = []
        for number, page in enumerate(reader.pages, start=1):
            budget.check_time(f"page {number}")
            text = (page.extract_text() or "").strip()
            budget.spend(text, f"page {number}")
            pages.append(text)
    except FileSkipped:
        raise
    except Exception as exc:  # pypdf raises many kinds (LimitReachedError, AttributeError...)
        raise FileSkipped(f"unreadable PDF: {exc}") from exc
    text = "\n\n".join(page for page in pages if page)
    if not text:
        raise FileSkipped("PDF has no text layer (scanned?); run OCR first")
    return text
