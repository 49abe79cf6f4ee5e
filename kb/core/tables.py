"""Tables as facts: a table row read with its header, in any of the forms documents
hold them (Markdown pipes, reStructuredText grid and simple tables, aligned plain
text, HTML tables as the loader lays them out).

Reading units keep one logical row per unit (`table_row_spans`: a grid table's row
of several lines is one unit). When the reader answers with a row, `row_at` finds the
table around it, its header and the row's cells, so the answer can read
"ledgerd — Port: 7300" instead of pipes and padding, and can lead with the one cell
that answers (`answering_cell`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_GRID_BORDER = re.compile(r"[ \t]*\+[-=+]+\+[ \t]*")
_PIPE_RULE = re.compile(
    r"[ \t]*\|?[ \t]*:?[-=]{3,}:?[ \t]*(?:\|[ \t]*:?[-=]{3,}:?[ \t]*)*\|?[ \t]*"
)
_SIMPLE_RULE = re.compile(r"[ \t]*=+(?: +=+)+[ \t]*")
_GAP = re.compile(r" {2,}|\t+")


@dataclass(frozen=True, slots=True)
class TableRow:
    """One row of a table: its span in the document (all its lines), its cells, and
    the header's cells (empty when the table has none)."""

    start: int
    end: int
    cells: tuple[str, ...]
    header: tuple[str, ...]

    def readable(self) -> str:
        """ "key — Column: value; Column: value", the first cell as the row's key."""
        if len(self.cells) < 2:
            return " ".join(self.cells)
        named = [
            f"{self.header[i]}: {cell}" if i < len(self.header) and self.header[i] else cell
            for i, cell in enumerate(self.cells[1:], start=1)
            if cell
        ]
        return f"{self.cells[0]} — {'; '.join(named)}"


def _lines(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each line of text[start:end]."""
    pos = start
    while pos < end:
        newline = text.find("\n", pos, end)
        stop = end if newline < 0 else newline
        yield pos, stop
        pos = stop + 1


def _block(text: str, start: int, end: int) -> tuple[int, int]:
    """The lines around text[start:end] up to the blank lines that bound its table."""
    lo = text.rfind("\n\n", 0, start)
    lo = 0 if lo < 0 else lo + 2
    hi = text.find("\n\n", end)
    return lo, len(text) if hi < 0 else hi


def is_grid_border(line: str) -> bool:
    return bool(_GRID_BORDER.fullmatch(line))


def _is_rule(line: str) -> bool:
    return bool(
        _GRID_BORDER.fullmatch(line) or _PIPE_RULE.fullmatch(line) or _SIMPLE_RULE.fullmatch(line)
    )


def table_row_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the rows of `|` tables, each one reading unit: a Markdown row is its
    line, a grid table's row runs from its first `|` line to its last."""
    spans: list[tuple[int, int]] = []
    row: list[tuple[int, int]] = []
    in_grid = False

    def flush() -> None:
        if row:
            spans.append((row[0][0] + _indent(text[row[0][0] : row[0][1]]), row[-1][1]))
            row.clear()

    for start, end in _lines(text, 0, len(text)):
        line = text[start:end]
        piped = line.lstrip().startswith("|")
        if is_grid_border(line) or (piped and _is_rule(line)):
            flush()
            in_grid = in_grid or is_grid_border(line)
        elif piped:
            row.append((start, len(line.rstrip()) + start))
            if not in_grid:
                flush()
        else:
            flush()
            in_grid = False
    flush()
    return spans


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _pipe_cells(lines: list[str]) -> list[str]:
    """Cells of one row given as one or more `|` lines (a grid row's lines merged)."""
    columns: list[list[str]] = []
    for line in lines:
        parts = line.strip().strip("|").split("|")
        for i, part in enumerate(parts):
            if i == len(columns):
                columns.append([])
            if part.strip():
                columns[i].append(part.strip())
    return [" ".join(" ".join(words).split()) for words in columns]


def _gap_cells(line: str) -> list[str]:
    return [cell.strip() for cell in _GAP.split(line.strip()) if cell.strip()]


def row_at(text: str, start: int, end: int) -> TableRow | None:
    """The table row that text[start:end] is (or lies in), with the table's header; None
    if the span is not in a table."""
    lo, hi = _block(text, start, end)
    lines = [(a, b) for a, b in _lines(text, lo, hi) if text[a:b].strip()]
    if not lines:
        return None
    if any(text[a:b].lstrip().startswith("|") for a, b in lines):
        return _pipe_row(text, lines, start, end)
    if any(_SIMPLE_RULE.fullmatch(text[a:b]) for a, b in lines) or len(lines) >= 2:
        return _gap_row(text, lines, start, end)
    return None


def _pipe_row(text: str, lines: list[tuple[int, int]], start: int, end: int) -> TableRow | None:
    """A Markdown or grid table row: rows are `|` lines, a grid row runs until the next
    border; the header is the first row (before a `|---|` or `|===|` rule)."""
    rows: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    grid = any(is_grid_border(text[a:b]) for a, b in lines)
    for a, b in lines:
        line = text[a:b]
        if _is_rule(line) or not line.lstrip().startswith("|"):
            if current:
                rows.append(current)
            current = []
            continue
        current.append((a, b))
        if not grid:
            rows.append(current)
            current = []
    if current:
        rows.append(current)
    header = tuple(_pipe_cells([text[a:b] for a, b in rows[0]])) if len(rows) > 1 else ()
    for row in rows[1:]:
        if row[0][0] <= end and start <= row[-1][1]:
            cells = tuple(_pipe_cells([text[a:b] for a, b in row]))
            first = row[0][0] + _indent(text[row[0][0] : row[0][1]])
            return TableRow(first, row[-1][1], cells, header)
    return None


def _gap_row(text: str, lines: list[tuple[int, int]], start: int, end: int) -> TableRow | None:
    """An aligned table (reStructuredText simple table or plain text): columns apart
    by two or more spaces; the header is the first line with cells."""
    body = [(a, b) for a, b in lines if not _is_rule(text[a:b])]
    if len(body) < 2 or not all(len(_gap_cells(text[a:b])) >= 2 for a, b in body[:2]):
        return None
    header = tuple(_gap_cells(text[body[0][0] : body[0][1]]))
    for a, b in body[1:]:
        if a <= start < b or a < end <= b:
            cells = tuple(_gap_cells(text[a:b]))
            return TableRow(a + _indent(text[a:b]), b, cells, header)
    return None
