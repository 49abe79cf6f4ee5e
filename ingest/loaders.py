"""Turn a folder (or one file) into documents, skipping what cannot be read, with reasons.

Supported: .md .markdown .txt .rst (text), .html .htm (visible text, not markup),
.pdf (text layer, via pypdf), .docx (paragraphs and tables, via python-docx) and
.jsonl in the datasets' corpus format
(one `{"doc_id", "title", "text"}` object per line).

Files are found and opened by `ingest.corpus_files` (never through a link, checked
before reading); PDF and DOCX text is extracted within an `ExtractBudget`
(`ingest.extract_budget`), in a worker process stopped at its hard time bound
(`ingest.extract_worker`). Whatever a file does, it ends as documents or as a
skipped file with its reason.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from ingest.corpus_files import FileSkipped, printable, read_file, walk_files
from ingest.doc_ids import BadIdError, cap_title, normalize_id, valid_unicode
from ingest.docx_text import docx_text
from ingest.extract_budget import ExtractBudget
from ingest.extract_worker import ExtractWorker
from ingest.html_text import HtmlTooSlowError, html_text
from ingest.pdf_text import pdf_text
from kb.core.models import Document, SkippedFile

TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".rst"}
HTML_SUFFIXES = {".html", ".htm"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".jsonl", ".docx"}


SkipFile = FileSkipped  # raised by a loader: this file is skipped for the given reason


@dataclass
class LoadResult:
    documents: list[Document] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)

    def skip(self, path: str, reason: str) -> None:
        """Record a skipped file; an undecodable name is shown with `\\xNN` escapes."""
        self.skipped.append(SkippedFile(path=printable(path), reason=reason))


def load_corpus(root: Path, max_file_bytes: int) -> LoadResult:
    """Every document under `root` (a folder or a single file), in a stable order.
    Files are opened without following links (`ingest.corpus_files`)."""
    root = root.expanduser()
    if not root.exists():
        raise FileNotFoundError(f"Corpus path {root} does not exist")
    result = LoadResult()
    real_root = root.resolve()
    base = real_root if real_root.is_dir() else real_root.parent
    symlinks: list[str] = []
    loaded: list[Document] = []
    with ExtractWorker() as worker:
        for file in walk_files(real_root, symlinks):
            rel = file.rel
            try:
                _check_suffix(rel)
                rel = normalize_id(rel)
                loaded += _load_file(read_file(file, max_file_bytes), rel, result, worker)
            except (SkipFile, FileSkipped, BadIdError) as skip:
                result.skip(rel, str(skip))
    _claim_ids(loaded, result)
    own = {doc.source for doc in loaded}
    for rel in symlinks:
        result.skip(rel, _symlink_reason(base / rel, real_root, base, own))
    result.documents.sort(key=lambda d: d.doc_id)
    return result


def _symlink_reason(link: Path, real_root: Path, base: Path, own: set[str]) -> str:
    """Why a symlink is skipped (it is never opened; its target only names the reason)."""
    try:
        target = link.resolve()
    except OSError:  # swapped back for a file since the walk met it
        return "symlink is not followed"
    if target.is_dir():
        return "symlinked folder is not followed"
    if not target.is_relative_to(real_root):
        return f"symlink points outside the corpus root (to {target})"
    if not target.exists():
        return "broken symlink"
    rel_target = target.relative_to(base).as_posix()
    if rel_target in own:
        return f"symlink to {rel_target}, which is indexed under its own name"
    return f"symlink to {rel_target} is not followed; index that file under its own name"


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


def _check_suffix(rel: str) -> None:
    suffix = PurePosixPath(rel).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise SkipFile(
            f"unsupported file type {suffix or '(none)'!r}; supported: "
            + ", ".join(sorted(SUPPORTED_SUFFIXES))
        )


def _load_file(raw: bytes, rel: str, result: LoadResult, worker: ExtractWorker) -> list[Document]:
    path = PurePosixPath(rel)
    suffix = path.suffix.lower()
    budget = ExtractBudget.for_file(len(raw))
    if suffix == ".pdf":
        text, title = worker.run(pdf_text, raw, budget=budget), path.stem
    elif suffix == ".jsonl":
        return _jsonl_documents(_decode(raw), rel, result)
    elif suffix == ".docx":
        text, title = worker.run(docx_text, raw, path.stem, budget=budget)
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
