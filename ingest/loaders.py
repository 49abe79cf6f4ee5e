"""Turn a folder (or one file) into documents, skipping what cannot be read, with reasons.

Supported: .md .markdown .txt .rst (text), .html .htm (visible text, not markup),
.pdf (text layer, via pypdf), .docx (paragraphs and tables, via python-docx) and
.jsonl in the datasets' corpus format
(one `{"doc_id", "title", "text"}` object per line).
"""

from __future__ import annotations

import codecs
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from ingest.doc_ids import BadIdError, cap_title, normalize_id, valid_unicode
from ingest.html_text import HtmlTooSlowError, html_text
from kb.models import Document, SkippedFile

TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".rst"}
HTML_SUFFIXES = {".html", ".htm"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".jsonl", ".docx"}


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
    paths = list(_walk(root, result))
    # A symlink to a file the corpus holds anyway would index it twice.
    own_files = {p.resolve(): p.relative_to(base).as_posix() for p in paths if not p.is_symlink()}
    loaded: list[Document] = []
    for path in paths:
        rel = path.relative_to(base).as_posix()
        if path.is_symlink() and path.resolve() in own_files:
            result.skip(
                rel, f"symlink to {own_files[path.resolve()]}, which is indexed under its own name"
            )
            continue
        try:
            rel = normalize_id(rel)
            loaded += _load_file(path, rel, real_root, max_file_bytes, result)
        except (SkipFile, BadIdError) as skip:
            result.skip(rel, str(skip))
    _claim_ids(loaded, result)
    result.documents.sort(key=lambda d: d.doc_id)
    return result


def _claim_ids(loaded: list[Document], result: LoadResult) -> None:
    """Keep the first document under each id; a file's own path is its id before any
    JSONL record may claim it (a record cannot displace the file `ok.md`)."""
    seen: dict[str, str] = {}
    for doc in sorted(loaded, key=lambda d: d.doc_id != d.source):  # stable: files first
        if doc.doc_id in seen:
            first = seen[doc.doc_id]
            why = "is the path of the file" if first == doc.doc_id else "was first seen in"
            result.skip(doc.source, f"duplicate document id {doc.doc_id!r}: it {why} {first}")
            continue
        seen[doc.doc_id] = doc.source
        result.documents.append(replace(doc, title=cap_title(doc.title)))


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
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise SkipFile("file disappeared while the folder was read") from exc
    except OSError as exc:
        raise SkipFile(f"cannot read file: {exc.strerror or exc}") from exc
    if size > max_file_bytes:
        raise SkipFile(
            f"file is {size:,} bytes, over the {max_file_bytes:,}-byte limit (KB_MAX_FILE_BYTES)"
        )
    if size == 0:
        raise SkipFile("empty file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise SkipFile("file disappeared while the folder was read") from exc
    except OSError as exc:
        raise SkipFile(f"cannot read file: {exc.strerror or exc}") from exc
    if suffix == ".pdf":
        text, title = _pdf_text(raw), path.stem
    elif suffix == ".jsonl":
        return _jsonl_documents(_decode(raw), rel, result)
    elif suffix == ".docx":
        text, title = _docx_text(raw, path.stem)
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


_BOMS = (
    ((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE), "utf-32"),  # before UTF-16: FF FE 00 00
    ((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE), "utf-16"),
)


def _decode(raw: bytes) -> str:
    for boms, codec in _BOMS:
        if raw.startswith(boms):
            try:
                text = raw.decode(codec)
            except UnicodeDecodeError as exc:
                raise SkipFile(f"not valid {codec.upper()} (byte {exc.start})") from exc
            if "\x00" in text:
                raise SkipFile("binary file (NUL characters); convert it to text first")
            return text
    if b"\x00" in raw[:8192]:
        raise SkipFile("binary file (NUL bytes); convert it to text first")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SkipFile(f"not valid UTF-8 (byte {exc.start}); re-save the file as UTF-8") from exc


_MD_HEADING = re.compile(r"^\s{0,3}#\s+(.+?)\s*#*\s*$", re.MULTILINE)
_RST_TITLE = re.compile(r"^(?:[=\-~^*#+]{3,}\n)?([^\n]+)\n[=\-~^*#+]{3,}\s*$", re.MULTILINE)


def _text_title(text: str, suffix: str) -> str | None:
    head = text[:4000]
    match = _MD_HEADING.search(head) if suffix in (".md", ".markdown") else None
    if match is None and suffix == ".rst":
        match = _RST_TITLE.search(head.replace("\r\n", "\n"))
    return match.group(1).strip() if match else None


def _html_text(html: str, fallback_title: str) -> tuple[str, str]:
    try:
        return html_text(html, fallback_title)
    except HtmlTooSlowError as exc:
        raise SkipFile(str(exc)) from exc


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


DOCX_MAX_UNCOMPRESSED = 200_000_000  # bytes a .docx may inflate to (zip bombs)


def _docx_text(raw: bytes, fallback_title: str) -> tuple[str, str]:
    """The text of a Word document, paragraphs and tables in reading order (a heading
    as a Markdown heading, a table row as cells joined by ` | `), and its title: the
    document's Title property, else its first Title or Heading 1 paragraph."""
    import io
    import zipfile

    from docx import Document as open_docx

    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
        if inflated > DOCX_MAX_UNCOMPRESSED:
            raise SkipFile(f".docx inflates to {inflated:,} bytes, over {DOCX_MAX_UNCOMPRESSED:,}")
        document = open_docx(io.BytesIO(raw))
        lines, heading = _docx_lines(document)
        title = (document.core_properties.title or "").strip() or heading
    except SkipFile:
        raise
    except zipfile.BadZipFile as exc:
        raise SkipFile("not a Word .docx file (encrypted, or an old .doc renamed?)") from exc
    except Exception as exc:  # python-docx raises KeyError, ValueError, lxml errors...
        raise SkipFile(f"unreadable .docx: {exc}") from exc
    return "\n\n".join(lines), title or fallback_title


def _docx_lines(document: object) -> tuple[list[str], str]:
    from docx.table import Table

    lines: list[str] = []
    heading = ""
    for block in document.iter_inner_content():  # type: ignore[attr-defined]
        if isinstance(block, Table):
            for row in block.rows:
                cells = [" ".join(cell.text.split()) for cell in row.cells]
                if any(cells):
                    lines.append(" | ".join(cells))
            continue
        text = block.text.strip()
        if not text:
            continue
        style = (block.style.name if block.style is not None else "") or ""
        level = style.removeprefix("Heading ").strip()
        if style == "Title" or (style.startswith("Heading ") and level.isdigit()):
            depth = 1 if style == "Title" else min(int(level), 6)
            if depth == 1 and not heading:
                heading = text
            text = f"{'#' * depth} {text}"
        lines.append(text)
    return lines, heading


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
        except RecursionError:
            result.skip(where, "invalid JSON: nested too deeply")
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
        title = title if isinstance(title, str) and title.strip() else doc_id
        try:
            doc_id = normalize_id(doc_id)
        except BadIdError as exc:
            result.skip(where, f'bad "doc_id": {exc}')
            continue
        if not (valid_unicode(body) and valid_unicode(title)):
            result.skip(where, '"text" or "title" is not valid Unicode (a lone surrogate)')
            continue
        docs.append(
            Document(
                doc_id=doc_id,
                title=title,
                source=rel,
                text=normalize_text(body),
            )
        )
    if not docs and len(result.skipped) == skipped_before:
        raise SkipFile("no documents in JSONL file")
    return docs
