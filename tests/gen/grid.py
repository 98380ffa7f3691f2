"""A sheet as blocks of cells placed on a grid; the renderers turn it into files."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

Cell = Any  # str | int | float | datetime.date | None


@dataclass
class Block:
    """A rectangle of cells; ``merges`` are (row0, col0, row1, col1) inclusive, block-relative.

    ``title`` marks a one-cell title line (a paragraph in docx/html/pdf); ``date_format`` is
    the Excel number format of date cells in this block.
    """

    rows: list[list[Cell]]
    merges: list[tuple[int, int, int, int]] = field(default_factory=list)
    title: bool = False
    date_format: str = "yyyy/mm/dd"
    th_rows: int = 0  # leading rows an HTML rendering writes as <th> (web-system exports)

    @property
    def width(self) -> int:
        return max((len(r) for r in self.rows), default=0)


@dataclass
class Sheet:
    name: str
    placed: list[tuple[int, int, Block]] = field(default_factory=list)  # (row, col, block)

    def add(self, row: int, col: int, block: Block) -> int:
        """Place ``block``; return the first row below it."""
        self.placed.append((row, col, block))
        return row + len(block.rows)

    def grid(self) -> list[list[Cell]]:
        """All blocks flattened on one grid (merged cells keep their first cell only)."""
        height = max((r + len(b.rows) for r, _, b in self.placed), default=0)
        width = max((c + b.width for _, c, b in self.placed), default=0)
        out: list[list[Cell]] = [[None] * width for _ in range(height)]
        for r0, c0, block in self.placed:
            for r, row in enumerate(block.rows):
                for c, value in enumerate(row):
                    if value is not None:
                        out[r0 + r][c0 + c] = value
        return out

    def in_reading_order(self) -> list[Block]:
        return [b for _, _, b in sorted(self.placed, key=lambda p: (p[0], p[1]))]


def title(text: str) -> Block:
    return Block([[text]], title=True)


# -- half-width katakana (legacy system exports) ---------------------------------------------
def _halfwidth_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for code in range(0xFF61, 0xFFA0):
        hw = chr(code)
        table.setdefault(unicodedata.normalize("NFKC", hw), hw)
    for code in range(0x30A0, 0x3100):
        full = chr(code)
        decomposed = unicodedata.normalize("NFD", full)
        if len(decomposed) == 2 and decomposed[0] in table:
            mark = {"\u3099": "\uff9e", "\u309a": "\uff9f"}.get(decomposed[1])
            if mark:
                table[full] = table[decomposed[0]] + mark
    table.pop(" ", None)
    return table


HALFWIDTH = _halfwidth_table()


def to_halfwidth_kana(text: str) -> str:
    return "".join(HALFWIDTH.get(c, c) for c in text)
