"""Fixed-width text exports (core systems' 固定長 files): columns from aligned spacing.

Widths are display widths (full-width characters count 2, as in the cp932 byte
layout these exports use). A position that is blank on nearly every sampled line
separates columns; a file with at least three columns found that way, on most of
its lines, is read as a table, one row per line.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

from dlp_gateway.extract.units import CellValue, Row, TableUnit

SAMPLE_LINES = 200
MIN_LINES = 2
SHORT_FILE_LINES = 4  # below this, every line must fill MIN_COLUMNS columns
MIN_COLUMNS = 3
BLANK_SHARE = 0.9  # a position blank on 90 % of lines separates columns
FILLED_SHARE = 0.7  # share of lines that must fill 2+ columns


def _cells_by_width(line: str) -> list[str]:
    """One entry per display column (full-width characters take two, the second "")."""
    if line.isascii():
        return list(line)
    out: list[str] = []
    for ch in line:
        out.append(ch)
        if unicodedata.east_asian_width(ch) in ("W", "F"):
            out.append("")
    return out


def _columns(lines: list[list[str]]) -> list[tuple[int, int]]:
    width = max(len(line) for line in lines)
    blank = [0] * width
    for line in lines:
        for x in range(width):
            if x >= len(line) or line[x] == " ":
                blank[x] += 1
    needed = len(lines) * BLANK_SHARE
    columns: list[tuple[int, int]] = []
    start = None
    for x in range(width + 1):
        separator = x == width or blank[x] >= needed
        if not separator and start is None:
            start = x
        elif separator and start is not None:
            columns.append((start, x))
            start = None
    return columns


def _split(line: str, columns: list[tuple[int, int]]) -> list[CellValue]:
    cells = _cells_by_width(line)
    values: list[CellValue] = []
    bounds = [start for start, _ in columns[1:]] + [len(cells) + 1]
    begin = 0
    for end in bounds:
        text = "".join(cells[begin:end]).strip()
        values.append(text or None)
        begin = end
    while values and values[-1] is None:
        values.pop()
    return values


def fixed_width_table(text: str, part: str, location: str) -> TableUnit | None:
    """A TableUnit if ``text`` is a fixed-width export, else None."""
    sample = [line for line in text.splitlines()[:SAMPLE_LINES] if line.strip()]
    if len(sample) < MIN_LINES:
        return None
    widths = [_cells_by_width(line.rstrip()) for line in sample]
    if max(len(w) for w in widths) > 2000:
        return None
    columns = _columns(widths)
    if len(columns) < MIN_COLUMNS:
        return None
    short = len(sample) < SHORT_FILE_LINES
    needed = MIN_COLUMNS if short else 2
    filled = sum(1 for line in sample if sum(1 for v in _split(line, columns) if v) >= needed)
    if filled < len(sample) * (1.0 if short else FILLED_SHARE):
        return None

    def rows() -> Iterator[Row]:
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                yield Row(number, _split(line, columns))

    return TableUnit(part=part, location=location, rows=rows)
