"""What extracting the text of one document may cost, whatever its format.

A small file must not turn into hours of work or gigabytes of text: a 9.7 KB PDF
whose pages share one content stream extracted 36.7 million characters in 75 s, and
a 62 KB `.docx` inflated into minutes of parsing. Every extractor (PDF, DOCX, and
any format added later) spends one `ExtractBudget` per file and checks it between
pages, paragraphs or table rows; a file over budget is skipped with the reason.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ingest.corpus_files import FileSkipped

EXTRACT_SECONDS = 20.0  # wall time per file (the same bound as an HTML page)
MAX_PAGES = 2_000  # pages of one PDF
CHARS_PER_BYTE = 20  # extracted characters per byte of the file...
MIN_CHARS = 200_000  # ...but at least this many, however small the file
INFLATE_PER_BYTE = 30  # bytes an archive (.docx) may inflate to per byte of the file...
MIN_INFLATED = 10_000_000  # ...but at least this many
MAX_INFLATED = 200_000_000  # and never more than this


@dataclass
class ExtractBudget:
    """The bounds of one file's extraction, and what it has spent so far."""

    file_bytes: int
    seconds: float = EXTRACT_SECONDS
    max_pages: int = MAX_PAGES
    started: float = field(default_factory=time.monotonic)
    chars: int = 0

    @classmethod
    def for_file(cls, file_bytes: int) -> ExtractBudget:
        """The budget of a file of `file_bytes` (the bounds as this process sets them:
        a worker process that spends it is given them whole)."""
        return cls(file_bytes=file_bytes, seconds=EXTRACT_SECONDS, max_pages=MAX_PAGES)

    @property
    def max_chars(self) -> int:
        return max(MIN_CHARS, CHARS_PER_BYTE * self.file_bytes)

    @property
    def max_inflated(self) -> int:
        return min(MAX_INFLATED, max(MIN_INFLATED, INFLATE_PER_BYTE * self.file_bytes))

    def spend(self, text: str, where: str) -> None:
        """Count `text` as extracted and check the time; FileSkipped when over."""
        self.chars += len(text)
        if self.chars > self.max_chars:
            raise FileSkipped(
                f"extracted more than {self.max_chars:,} characters from a "
                f"{self.file_bytes:,}-byte file (at {where}): a file that expands this much "
                "is refused"
            )
        self.check_time(where)

    def check_time(self, where: str) -> None:
        if time.monotonic() - self.started > self.seconds:
            raise FileSkipped(
                f"text extraction took more than {self.seconds:.0f} s (stopped at {where})"
            )

    def check_pages(self, pages: int) -> None:
        if pages > self.max_pages:
            raise FileSkipped(f"PDF has {pages:,} pages, over the {self.max_pages:,} allowed")

    def check_inflated(self, inflated: int) -> None:
        if inflated > self.max_inflated:
            raise FileSkipped(
                f"archive inflates to {inflated:,} bytes, over the {self.max_inflated:,} "
                f"allowed for a {self.file_bytes:,}-byte file"
            )
