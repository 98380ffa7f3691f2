"""HTML tables as rows (an HTML table saved as .xls is a spreadsheet in disguise).

``split_tables`` returns the rows of every outermost table and the HTML with those
tables cut out, so the text around them is still read (by ``html.html_to_text``)
and nothing is counted twice.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from dlp_gateway.extract.units import CellValue, Row

_TABLE_TAG = re.compile(r"<(/?)table\b[^>]*>", re.IGNORECASE)
_SKIP = {"script", "style"}
_BREAKS = {"br", "p", "div", "li"}


class _TableParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[Row]] = []
        self.depth = 0
        self.skip = 0
        self.row: list[CellValue] | None = None
        self.cell: list[str] | None = None
        self.pad = 0
        self.spans: dict[int, int] = {}  # column -> rows still covered by a rowspan above
        self.new_spans: dict[int, int] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip += 1
        elif tag == "table":
            self.depth += 1
            if self.depth == 1:
                self.tables.append([])
                self.spans, self.new_spans = {}, {}
        elif self.depth == 1 and tag == "tr":
            self._end_row()
            self.row = []
        elif self.depth == 1 and tag in ("td", "th"):
            self._end_cell()
            if self.row is None:
                self.row = []
            self.cell = []
            self._skip_spanned()
            self.pad = _span(dict(attrs).get("colspan")) - 1
            rows = _span(dict(attrs).get("rowspan"))
            if rows > 1:
                for col in range(len(self.row), len(self.row) + self.pad + 1):
                    self.new_spans[col] = rows - 1
        elif tag in _BREAKS and self.cell is not None:
            self.cell.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip = max(self.skip - 1, 0)
        elif tag == "table":
            if self.depth == 1:
                self._end_row()
            self.depth = max(self.depth - 1, 0)
        elif self.depth == 1 and tag in ("td", "th"):
            self._end_cell()
        elif self.depth == 1 and tag == "tr":
            self._end_row()

    def handle_data(self, data: str) -> None:
        if self.cell is not None and not self.skip:
            self.cell.append(data)

    def _end_cell(self) -> None:
        if self.cell is not None and self.row is not None:
            text = " ".join("".join(self.cell).split())
            self.row.append(text or None)
            self.row.extend([None] * self.pad)
        self.cell = None

    def _skip_spanned(self) -> None:
        """Columns covered by a rowspan from a row above stay empty in this row, so the
        cells after them keep their columns (番号 under 被保険者, not under No.)."""
        assert self.row is not None
        while self.spans.get(len(self.row), 0) > 0:
            self.row.append(None)

    def _end_row(self) -> None:
        self._end_cell()
        if self.row is not None:
            left = {c: n - 1 for c, n in self.spans.items() if n > 1}
            self.spans = {**left, **self.new_spans}
            self.new_spans = {}
        if self.row is not None and self.tables:
            table = self.tables[-1]
            while self.row and self.row[-1] is None:
                self.row.pop()
            table.append(Row(len(table) + 1, self.row))
        self.row = None


def _span(value: str | None) -> int:
    """A colspan/rowspan attribute as a count (1 when absent or odd, at most 256)."""
    value = (value or "1").strip()
    return min(max(int(value), 1), 256) if value.isdigit() else 1


def _cut_tables(source: str) -> str:
    """The HTML with every outermost <table>...</table> removed."""
    pieces: list[str] = []
    depth, start = 0, 0
    for match in _TABLE_TAG.finditer(source):
        if match.group(1) == "":
            if depth == 0:
                pieces.append(source[start : match.start()])
            depth += 1
        elif depth > 0:
            depth -= 1
            if depth == 0:
                start = match.end()
    if depth == 0:
        pieces.append(source[start:])
    return "\n".join(pieces)


def split_tables(source: str) -> tuple[list[list[Row]], str]:
    parser = _TableParser()
    parser.feed(source)
    parser.close()
    tables = [t for t in parser.tables if t]
    if not tables:
        return [], source
    return tables, _cut_tables(source)
