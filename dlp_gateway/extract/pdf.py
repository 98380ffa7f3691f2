"""PDF text layer (PDFium via pypdfium2), with table rows rebuilt from positions.

A roster printed to PDF is a grid of text runs. Characters are grouped into lines
by their vertical position, and a page's columns are found by projecting every
multi-cell line's runs on the x axis: x ranges no run covers (on nearly every line)
separate columns, whatever the alignment (left, right, centred). Pages that show
such a grid become rows of one ``TableUnit`` (one person per row for the table
engine); other pages are free text. pypdfium2 was chosen by measuring it against
pdfminer.six and pypdf (``bench/pdf_bench.py``, figures in the README).

Outcomes: a PDF that needs a password is ``encrypted_pdf``; one with pages that show
something (a scanned image, text converted to outlines) but carry no text is
``no_text_layer``; one PDFium cannot open is
``corrupt`` (``files.py`` first tries it as text: a csv that begins ``%PDF-``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from dlp_gateway.extract.units import (
    NOT_THIS_FORMAT,
    CellValue,
    Row,
    TableUnit,
    TextUnit,
    Unit,
    Unscannable,
)

COLUMN_GAP_SHARE = 0.05  # an x position covered on at most 5 % of grid lines still separates
MIN_GRID_LINES = 3  # lines with 2+ cells a page needs before it is read as a table
CELL_GAP_EM = 0.9  # a horizontal gap wider than this many character heights splits cells
MAX_PAGES = 5000


@dataclass(slots=True)
class _Run:
    """Characters of one line that sit next to each other: a cell candidate."""

    text: str
    left: float
    right: float


@dataclass(slots=True)
class _PdfContent:
    """What the child process hands back: plain, picklable data."""

    pages: int = 0
    rows: list[list[CellValue]] = field(default_factory=list)
    text_lines: list[str] = field(default_factory=list)
    drawn_without_text: list[int] = field(default_factory=list)
    error: str = ""  # "password" or a PDFium message


def extract_pdf(path: str, data: bytes, timeout: float = 60.0) -> Iterator[Unit]:
    """The PDF's units; PDFium runs in a child process (``isolate.py``)."""
    from dlp_gateway.extract.isolate import IsolatedFailure, run_isolated

    try:
        content = run_isolated(_read_pdf, data, timeout=timeout)
    except IsolatedFailure as exc:
        yield Unscannable(path, exc.reason, f"PDF: {exc.detail}")  # type: ignore[arg-type]
        return
    yield from _units(path, content)


def _read_pdf(data: bytes) -> _PdfContent:
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        return _PdfContent(error="password" if "password" in str(exc).lower() else str(exc))
    try:
        return _document_content(document)
    finally:
        document.close()


def _units(path: str, content: _PdfContent) -> Iterator[Unit]:
    if content.error == "password":
        yield Unscannable(path, "encrypted_pdf", "PDF needs a password to open")
        return
    if content.error:
        yield Unscannable(path, "corrupt", f"{NOT_THIS_FORMAT}PDF: {content.error}")
        return
    if content.pages > MAX_PAGES:
        yield Unscannable(path, "too_large", f"{content.pages} pages over {MAX_PAGES}")
    if content.drawn_without_text:
        pages = ", ".join(str(p) for p in content.drawn_without_text[:10])
        yield Unscannable(path, "no_text_layer", f"pages drawn without any text: {pages}")
    rows = [Row(number, cells) for number, cells in enumerate(content.rows, 1)]
    if rows:
        yield TableUnit(part=path, location=path, rows=lambda: iter(rows), cell_style="rc")
    if content.text_lines or not rows:
        yield TextUnit("\n".join(content.text_lines), part=path, location=f"{path}!text")


def _document_content(document) -> _PdfContent:  # type: ignore[no-untyped-def]
    content = _PdfContent(pages=len(document))
    for index in range(min(len(document), MAX_PAGES)):
        page = document[index]
        lines = _page_lines(page)
        if not lines and _has_drawing(page):
            content.drawn_without_text.append(index + 1)
        rows = _grid(lines)
        if rows is not None:
            content.rows.extend(rows)
        else:
            content.text_lines.extend(" ".join(run.text for run in line) for line in lines)
        page.close()
    return content


def _has_drawing(page) -> bool:  # type: ignore[no-untyped-def]
    """Anything drawn (an image, or paths: text converted to outlines) on a textless page."""
    return any(True for _ in page.get_objects(max_depth=2))


def _chars(page):  # type: ignore[no-untyped-def]
    """(char, left, bottom, right, top, after_space) for every visible character."""
    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        if count <= 0:
            return []
        text = textpage.get_text_range(0, count)
        if len(text) != count:  # characters outside the BMP: ask one by one
            import pypdfium2.raw as raw

            text = "".join(chr(raw.FPDFText_GetUnicode(textpage, i)) for i in range(count))
        chars = []
        spaced = False
        for i, ch in enumerate(text):
            if ch.isspace() or ch == "\ufffe":
                spaced = True
                continue
            chars.append((ch, *textpage.get_charbox(i), spaced))
            spaced = False
        return chars
    finally:
        textpage.close()


def _page_lines(page) -> list[list[_Run]]:  # type: ignore[no-untyped-def]
    """Lines top to bottom, each a list of runs left to right."""
    chars = _chars(page)
    if not chars:
        return []
    heights = sorted(c[4] - c[2] for c in chars)
    height = max(heights[len(heights) // 2], 1.0)
    chars.sort(key=lambda c: -(c[2] + c[4]) / 2)
    lines: list[list[tuple]] = []
    center = None
    for ch in chars:
        mid = (ch[2] + ch[4]) / 2
        if center is None or center - mid > height * 0.5:
            lines.append([])
            center = mid
        lines[-1].append(ch)
    return [_runs(sorted(line, key=lambda c: c[1]), height) for line in lines]


def _runs(line: list[tuple], height: float) -> list[_Run]:
    runs: list[_Run] = []
    for ch, left, _, right, _, spaced in line:
        if runs and left - runs[-1].right <= height * CELL_GAP_EM:
            run = runs[-1]
            if spaced:
                run.text += " "
            run.text += ch
            run.right = max(run.right, right)
        else:
            runs.append(_Run(ch, left, right))
    return runs


def _grid(lines: list[list[_Run]]) -> list[list[CellValue]] | None:
    """Rows of cells by the page's column ranges, or None if the page is not a grid."""
    multi = [line for line in lines if len(line) > 1]
    if len(multi) < MIN_GRID_LINES:
        return None
    columns = _columns(multi)
    if len(columns) < 2:
        return None
    rows: list[list[CellValue]] = []
    for line in lines:
        cells: list[CellValue] = [None] * len(columns)
        for run in line:
            index = _column_of(columns, run)
            previous = cells[index]
            cells[index] = run.text if previous is None else f"{previous} {run.text}"
        while cells and cells[-1] is None:
            cells.pop()
        rows.append(cells)
    return rows


def _columns(lines: list[list[_Run]]) -> list[tuple[float, float]]:
    """x ranges covered by runs on more than COLUMN_GAP_SHARE of the lines."""
    width = int(max(run.right for line in lines for run in line)) + 2
    delta = [0] * (width + 2)
    for line in lines:
        for run in line:
            delta[min(max(int(run.left), 0), width)] += 1
            delta[min(int(run.right) + 1, width)] -= 1
    coverage, running = [], 0
    for step in delta:
        running += step
        coverage.append(running)
    floor = len(lines) * COLUMN_GAP_SHARE
    columns: list[tuple[float, float]] = []
    start = None
    for x, covered in enumerate(coverage):
        if covered > floor and start is None:
            start = x
        elif covered <= floor and start is not None:
            columns.append((start, x))
            start = None
    return columns


def _column_of(columns: list[tuple[float, float]], run: _Run) -> int:
    """The column the run overlaps most, else the nearest one. A header wider than its
    column (①連番 over one-digit numbers) reaches past the column's end: its centre may
    lie beyond it, but it still starts there."""

    def overlap(column: tuple[float, float]) -> float:
        return min(run.right, column[1]) - max(run.left, column[0])

    def distance(column: tuple[float, float]) -> float:
        return max(column[0] - run.right, run.left - column[1], 0.0)

    best = max(range(len(columns)), key=lambda i: overlap(columns[i]))
    if overlap(columns[best]) > 0:
        return best
    return min(range(len(columns)), key=lambda i: distance(columns[i]))
