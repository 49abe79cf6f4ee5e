"""Turn a folder (or one file) into documents, skipping what cannot be read, with reasons.

Supported: .md .markdown .txt .rst (text), .html .htm (visible text, not markup),
.pdf (text layer, via pypdf) and .jsonl in the datasets' corpus format
(one `{"doc_id", "title", "text"}` object per line).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kb.models import Document, SkippedFile

TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".rst"}
HTML_SUFFIXES = {".html", ".htm"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".jsonl"}


class SkipFile(Exception):
    """Raised by a loader: this file is skipped for the given reason."""


@dataclass
class LoadResult:
    documents: list[Document] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)

    def skip(self, path: str, reason: str) -> None:
        self.skipped.append(SkippedFile(path=path, reason=reason))


def load_corpus(root: Path, max_file_bytes: int) -> LoadResult:
    """Every document under `root` (a folder or a single file), in a stable order."""
    root = root.expanduser()
    if not root.exists():
        raise FileNotFoundError(f"Corpus path {root} does not exist")
    result = LoadResult()
    real_root = root.resolve()
    base = root if root.is_dir() else root.parent
    seen: dict[str, str] = {}
    paths = list(_walk(root, result))
    # A symlink to a file the corpus holds anyway would index it twice.
    own_files = {p.resolve(): p.relative_to(base).as_posix() for p in paths if not p.is_symlink()}
    for path in paths:
        rel = path.relative_to(base).as_posix()
        if path.is_symlink() and path.resolve() in own_files:
            result.skip(
                rel, f"symlink to {own_files[path.resolve()]}, which is indexed under its own name"
            )
            continue
        try:
            docs = _load_file(path, rel, real_root, max_file_bytes, result)
        except SkipFile as skip:
            result.skip(rel, str(skip))
            continue
        for doc in docs:
            if doc.doc_id in seen:
                result.skip(
                    doc.source,
                    f"duplicate document id {doc.doc_id!r} (first seen in {seen[doc.doc_id]})",
                )
                continue
            seen[doc.doc_id] = doc.source
            result.documents.append(doc)
    result.documents.sort(key=lambda d: d.doc_id)
    return result


def _walk(root: Path, result: LoadResult) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        kept = []
        for name in sorted(dirs):
            if name.startswith("."):
                continue
            if (here / name).is_symlink():
                result.skip(
                    (here / name).relative_to(root).as_posix(), "symlinked folder is not followed"
                )
                continue
            kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            if not name.startswith("."):
                yield here / name


def _load_file(
    path: Path, rel: str, real_root: Path, max_file_bytes: int, result: LoadResult
) -> list[Document]:
    if path.is_symlink():
        target = path.resolve()
        if not target.is_relative_to(real_root):
            raise SkipFile(f"symlink points outside the corpus root (to {target})")
        if not target.exists():
            raise SkipFile("broken symlink")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise SkipFile(
            f"unsupported file type {suffix or '(none)'!r}; supported: "
            + ", ".join(sorted(SUPPORTED_SUFFIXES))
        )
    size = path.stat().st_size
    if size > max_file_bytes:
        raise SkipFile(
            f"file is {size:,} bytes, over the {max_file_bytes:,}-byte limit (KB_MAX_FILE_BYTES)"
        )
    if size == 0:
        raise SkipFile("empty file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SkipFile(f"cannot read file: {exc.strerror or exc}") from exc
    if suffix == ".pdf":
        text, title = _pdf_text(raw), path.stem
    elif suffix == ".jsonl":
        return _jsonl_documents(_decode(raw), rel, result)
    elif suffix in HTML_SUFFIXES:
        text, title = _html_text(_decode(raw), path.stem)
    else:
        text = _decode(raw)
        title = _text_title(text, suffix) or path.stem
    text = normalize_text(text)
    if not text.strip():
        raise SkipFile("no text after extraction")
    return [Document(doc_id=rel, title=title, source=rel, text=text)]


def normalize_text(text: str) -> str:
    """Unix newlines, no trailing white space at the ends: spans index into this text."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def _decode(raw: bytes) -> str:
    if b"\x00" in raw[:8192]:
        raise SkipFile("binary file (NUL bytes); convert it to text first")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SkipFile(
            f"not valid UTF-8 (byte {exc.start}); re-save the file as UTF-8"
        ) from exc


_MD_HEADING = re.compile(r"^\s{0,3}#\s+(.+?)\s*#*\s*$", re.MULTILINE)
_RST_TITLE = re.compile(r"^(?:[=\-~^*#+]{3,}\n)?([^\n]+)\n[=\-~^*#+]{3,}\s*$", re.MULTILINE)


def _text_title(text: str, suffix: str) -> str | None:
    head = text[:4000]
    match = _MD_HEADING.search(head) if suffix in (".md", ".markdown") else None
    if match is None and suffix == ".rst":
        match = _RST_TITLE.search(head.replace("\r\n", "\n"))
    return match.group(1).strip() if match else None


_HTML_BLOCKS = (
    "address", "article", "aside", "blockquote", "div", "dl", "figure", "figcaption", "footer",
    "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "main", "nav", "ol", "p", "pre",
    "section", "table", "ul",
)  # fmt: skip
_HTML_LINES = ("br", "dd", "dt", "li", "td", "th", "tr")


def _html_text(html: str, fallback_title: str) -> tuple[str, str]:
    from bs4 import BeautifulSoup
    from bs4.element import NavigableString

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    title_tag = soup.find("title") or soup.find("h1")
    title = title_tag.get_text(" ", strip=True) if title_tag else fallback_title
    if soup.head:
        soup.head.decompose()
    body = soup.body or soup
    # Lay the text out as a browser would: white space inside text collapses, block
    # elements break lines, inline markup (<b>, <a>) stays inside its sentence.
    for node in body.find_all(string=True):
        if type(node) is NavigableString and node.find_parent("pre") is None:
            node.replace_with(re.sub(r"\s+", " ", str(node)))
    for tag in body.find_all(_HTML_BLOCKS):
        tag.insert_before("\n\n")
        tag.append("\n\n")
    for tag in body.find_all(_HTML_LINES):
        tag.insert_before("\n")
    text = body.get_text()
    lines = [re.sub(r"[ \t\xa0]+", " ", line).strip() for line in text.splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return text, title or fallback_title


def _pdf_text(raw: bytes) -> str:
    import io
    import logging

    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted:
            raise SkipFile("encrypted PDF; decrypt it first")
        pages = [page.extract_text() or "" for page in reader.pages]
    except SkipFile:
        raise
    except Exception as exc:  # pypdf raises many kinds (LimitReachedError, AttributeError...)
        raise SkipFile(f"unreadable PDF: {exc}") from exc
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise SkipFile("PDF has no text layer (scanned?); run OCR first")
    return text


def _jsonl_documents(text: str, rel: str, result: LoadResult) -> list[Document]:
    docs = []
    skipped_before = len(result.skipped)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{rel}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            result.skip(where, f"invalid JSON: {exc.msg}")
            continue
        if not isinstance(record, dict):
            result.skip(where, "line is not a JSON object")
            continue
        doc_id, body = record.get("doc_id"), record.get("text")
        if not isinstance(doc_id, str) or not doc_id.strip():
            result.skip(where, 'missing "doc_id" (a non-empty string)')
            continue
        if not isinstance(body, str) or not body.strip():
            result.skip(where, 'missing or empty "text"')
            continue
        title = record.get("title")
        docs.append(
            Document(
                doc_id=doc_id,
                title=title if isinstance(title, str) and title.strip() else doc_id,
                source=rel,
                text=normalize_text(body),
            )
        )
    if not docs and len(result.skipped) == skipped_before:
        raise SkipFile("no documents in JSONL file")
    return docs
