"""Figures in README.md and docs/*.md that are read from their source, never typed by hand.

A figure is marked in the Markdown where it stands (the comments do not render):

    <!-- fig handbook /modes/long_context/accuracy pct -->77.6%<!-- /fig -->

The three words after `fig` say where it comes from and how it is written:

SOURCE    a report name (`handbook` means reports/handbook/summary.json), or a file's
          path from the repository root: a `.json` file, or a text file (a lock file).
SELECTOR  for JSON, a JSON Pointer (RFC 6901) into it: `/modes/rag/latency_s/p50`,
          `/costs/models/openai:gpt-4.1-mini/modes/rag/monthly_with_cache_usd`,
          `/threshold_tradeoff/long_context/8/accuracy`; for a text file, a regular
          expression without spaces: the figure is the number of its matches.
FORMAT    one of FORMATS below: `pct` writes 0.7759 as 77.6%, `usd` 218.24 as $218.24.

    python scripts/doc_figures.py --check   # exit 1, naming each figure that differs
    python scripts/doc_figures.py --write   # rewrite every marked figure from its source
    python scripts/doc_figures.py --list    # every marked figure and its source

A figure that no committed file holds (a benchmark printed it) is not marked: it carries
the date and the command that produced it, next to it (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

MARKER = re.compile(r"<!-- fig (\S+) (\S+) (\S+) -->(.*?)<!-- /fig -->")


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a number: {value!r}")
    return float(value)


FORMATS: dict[str, Callable[[object], str]] = {
    "pct": lambda v: f"{_number(v) * 100:.1f}%",  # 0.7759 -> 77.6%
    "pct0": lambda v: f"{_number(v) * 100:.0f}%",  # 0.22 -> 22%
    "usd": lambda v: f"${_number(v):,.2f}",  # 2602.45 -> $2,602.45
    "int": lambda v: f"{round(_number(v)):,}",  # 16474 -> 16,474
    "ms": lambda v: f"{_number(v) * 1000:.1f} ms",  # 0.0126 -> 12.6 ms
    "ms0": lambda v: f"{_number(v) * 1000:.0f} ms",  # 0.0316 -> 32 ms
    "s": lambda v: f"{_number(v):.1f} s",  # 5.4954 -> 5.5 s
    "f2": lambda v: f"{_number(v):.2f}",  # 0.68 -> 0.68
    "f3": lambda v: f"{_number(v):.3f}",  # 0.9519 -> 0.952
    "text": str,
}


def doc_files(root: Path) -> list[Path]:
    """The documents whose figures are checked: README.md and every page of docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("**/*.md"))]


@dataclass(frozen=True)
class Figure:
    """One marked figure: where it stands, where it comes from, what the doc says."""

    doc: Path
    line: int
    source: str
    selector: str
    fmt: str
    written: str

    def where(self, root: Path) -> str:
        return f"{self.doc.relative_to(root)}:{self.line}"


class FigureError(Exception):
    """A marker whose source, selector or format cannot be read."""


def figures(root: Path) -> Iterator[Figure]:
    """Every marked figure of the docs, in reading order."""
    for doc in doc_files(root):
        for number, text in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            for match in MARKER.finditer(text):
                source, selector, fmt, written = match.groups()
                yield Figure(doc, number, source, selector, fmt, written)


def source_path(root: Path, source: str) -> Path:
    """reports/NAME/summary.json for a bare report name, else the path from the root."""
    if "/" not in source and "." not in source:
        return root / "reports" / source / "summary.json"
    return root / source


def _pointer(document: object, pointer: str) -> object:
    """RFC 6901: `/a/b/0` reads document["a"]["b"][0]; `~1` is `/`, `~0` is `~`."""
    if not pointer.startswith("/"):
        raise FigureError(f"a JSON pointer starts with '/': {pointer!r}")
    value = document
    for raw in pointer[1:].split("/"):
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            raise FigureError(f"{pointer!r}: no {key!r} there")
    return value


def source_value(root: Path, figure: Figure) -> object:
    """The raw value the figure's source holds."""
    path = source_path(root, figure.source)
    if not path.is_file():
        raise FigureError(f"source {path.relative_to(root)} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return _pointer(json.loads(text), figure.selector)
    return len(re.findall(figure.selector, text, flags=re.MULTILINE))


def expected(root: Path, figure: Figure) -> str:
    """The text the figure should read, from its source and format."""
    if figure.fmt not in FORMATS:
        raise FigureError(f"unknown format {figure.fmt!r}: use one of {', '.join(FORMATS)}")
    try:
        return FORMATS[figure.fmt](source_value(root, figure))
    except TypeError as exc:
        raise FigureError(f"{figure.selector!r}: {exc}") from exc


def problems(root: Path) -> list[str]:
    """One line per figure that differs from its source or cannot be read."""
    found = []
    for figure in figures(root):
        label = f"{figure.where(root)}: {figure.source} {figure.selector}"
        try:
            want = expected(root, figure)
        except FigureError as exc:
            found.append(f"{label}: {exc}")
            continue
        if figure.written != want:
            found.append(f"{label}: the doc says {figure.written!r}, the source {want!r}")
    return found


def write(root: Path) -> int:
    """Rewrite every marked figure from its source; the number of figures changed."""
    changed = 0
    rewritten: dict[Path, str] = {}  # written only once every source has been read
    for doc in doc_files(root):
        text = doc.read_text(encoding="utf-8")

        def fill(match: re.Match[str], doc: Path = doc) -> str:
            nonlocal changed
            source, selector, fmt, written = match.groups()
            figure = Figure(doc, 0, source, selector, fmt, written)
            want = expected(root, figure)
            changed += want != written
            return f"<!-- fig {source} {selector} {fmt} -->{want}<!-- /fig -->"

        new = MARKER.sub(fill, text)
        if new != text:
            rewritten[doc] = new
    for doc, new in rewritten.items():
        doc.write_text(new, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", action="store_true", help="exit 1 if a figure differs")
    action.add_argument("--write", action="store_true", help="rewrite figures from sources")
    action.add_argument("--list", action="store_true", help="print every marked figure")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root: Path = args.root
    if args.list:
        for figure in figures(root):
            print(f"{figure.where(root)}\t{figure.written}\t{figure.source} {figure.selector}")
        return 0
    if args.write:
        try:
            print(f"{write(root)} figure(s) rewritten from their sources")
        except FigureError as exc:
            print(f"doc_figures: {exc}", file=sys.stderr)
            return 1
        return 0
    found = problems(root)
    for line in found:
        print(line, file=sys.stderr)
    total = sum(1 for _ in figures(root))
    print(f"{total} figure(s) checked, {len(found)} differ from their source")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
