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

import bisect
import itertools
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
MAX_CUTS = 12  # places tried when cutting a page into bands of their own columns
HEADER_BAND_LINES = 3  # a band this short may be the header of the band below
WRAP_PITCH = 0.8  # lines closer than this share of the row pitch may be one wrapped row
ALIGN_SLACK = 1.5  # points by which cells of one column may differ in alignment
WRAP_SLACK = 2.0  # points a wrapped cell's line may reach past its column
GAP_PITCH = 1.3  # a vertical gap this many row pitches wide separates blocks (a blank row)
MIN_SHARED_GAP_LINES = 4  # from this many grid lines, a gap needs two lines to bridge it
CELL_GAP_EM = 0.7  # a horizontal gap wider than this many line heights (~ ems) splits cells
MAX_PAGES = 5000


@dataclass(slots=True)
class _Run:
    """Characters of one line that sit next to each other: a cell candidate."""

    text: str
    left: float
    right: float
    y: float = 0.0  # the line's vertical centre


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
    columns: list[tuple[float, float]] = []  # the last grid page's, for the pages after it
    held: list[_Run] | None = None  # that page's last line, if it did not fit its columns
    for index in range(min(len(document), MAX_PAGES)):
        page = document[index]
        lines = _page_lines(page)
        if not lines and _has_drawing(page):
            content.drawn_without_text.append(index + 1)
        grid = _grid(lines, columns, held)
        if grid is not None:
            if content.rows and held is None and len(lines[0]) == 1:
                content.rows.append([])  # a page that opens with a title opens a block
            rows, columns, held = grid
            content.rows.extend(rows)
        else:
            if held is not None:
                content.rows.append(_cells([held], columns))
                held = None
            content.text_lines.extend(" ".join(run.text for run in line) for line in lines)
        page.close()
    if held is not None:
        content.rows.append(_cells([held], columns))
    return content


def _has_drawing(page) -> bool:  # type: ignore[no-untyped-def]
    """Anything drawn (an image, or paths: text converted to outlines) on a textless page."""
    return any(True for _ in page.get_objects(max_depth=2))


def _chars(page):  # type: ignore[no-untyped-def]
    """(char, left, bottom, right, top, middle, after_space) for every visible character
    (``_Boxes``)."""
    textpage = page.get_textpage()
    try:
        count = textpage.count_chars()
        if count <= 0:
            return []
        text = textpage.get_text_range(0, count)
        if len(text) != count:  # characters outside the BMP: ask one by one
            import pypdfium2.raw as raw

            text = "".join(chr(raw.FPDFText_GetUnicode(textpage, i)) for i in range(count))
        boxes = _Boxes(textpage)
        chars: list[tuple] = []
        spaced = False
        for i, ch in enumerate(text):
            if ch.isspace() or ch == "\ufffe":
                if chars and not spaced:
                    chars[-1] = boxes.through_space(chars[-1], i)
                spaced = True
                continue
            chars.append((ch, *boxes.box(i), spaced))
            spaced = False
        return chars
    finally:
        textpage.close()


class _Boxes:
    """Character boxes straight from PDFium (one call per box, no wrapper objects: a page
    has thousands of characters)."""

    def __init__(self, textpage) -> None:  # type: ignore[no-untyped-def]
        import ctypes

        import pypdfium2.raw as raw
        from pypdfium2 import PdfiumError

        self.error = PdfiumError
        self.handle = textpage.raw
        self.ink = [ctypes.c_double() for _ in range(4)]  # left, right, bottom, top
        self.ink_refs = [ctypes.byref(v) for v in self.ink]
        self.rect = raw.FS_RECTF()
        self.rect_ref = ctypes.byref(self.rect)
        self.char_box = raw.FPDFText_GetCharBox
        self.loose_box = raw.FPDFText_GetLooseCharBox

    def box(self, index: int) -> tuple[float, float, float, float, float]:
        """(left, bottom, right, top, middle): the character's line box (its advance
        across, the font's height), else its ink box.

        Ink boxes leave a wide gap after a narrow glyph (a full-width "１" is a thin stroke
        in a full em), which would split "９６７８０９１５３６" into two cells; the loose box
        spans the character's advance, so characters set next to each other touch.
        Likewise the ink of "．" or "ー" sits low or in the middle of the line: the line
        box's middle, the same for every character of the font on that line, says which
        line it is on."""
        rect = self.rect
        if (
            self.loose_box(self.handle, index, self.rect_ref)
            and rect.right > rect.left
            and rect.top > rect.bottom
        ):
            left, bottom, right, top = rect.left, rect.bottom, rect.right, rect.top
            return left, bottom, right, top, (bottom + top) / 2
        if not self.char_box(self.handle, index, *self.ink_refs):
            raise self.error("Failed to get charbox.")
        ink = self.ink
        left, right, bottom, top = ink[0].value, ink[1].value, ink[2].value, ink[3].value
        return left, bottom, right, top, (bottom + top) / 2

    def through_space(self, char: tuple, index: int) -> tuple:
        """The character widened over one space typed right after it ("4962　5628　8333",
        "山田　花子"): a single space of the text, unlike a gap PDFium reports as a space
        or two spaces, does not end a cell. PDFium's own spaces have no width."""
        rect = self.rect
        if not self.loose_box(self.handle, index, self.rect_ref):
            return char
        if rect.right > rect.left and abs(rect.left - char[3]) < 0.5:
            return (*char[:3], rect.right, *char[4:])
        return char


def _page_lines(page) -> list[list[_Run]]:  # type: ignore[no-untyped-def]
    """Lines top to bottom, each a list of runs left to right."""
    chars = _chars(page)
    if not chars:
        return []
    heights = sorted(c[4] - c[2] for c in chars)
    height = max(heights[len(heights) // 2], 1.0)
    chars.sort(key=lambda c: -c[5])
    lines: list[list[tuple]] = []
    center = None
    for ch in chars:
        mid = ch[5]
        if center is None or center - mid > height * 0.5:
            lines.append([])
            center = mid
        lines[-1].append(ch)
    return [_runs(sorted(line, key=lambda c: c[1]), height) for line in lines]


def _runs(line: list[tuple], height: float) -> list[_Run]:
    runs: list[_Run] = []
    y = sum(c[5] for c in line) / len(line)
    for ch, left, _, right, _, _, spaced in line:
        if runs and left - runs[-1].right <= height * CELL_GAP_EM:
            run = runs[-1]
            if spaced:
                run.text += " "
            run.text += ch
            run.right = max(run.right, right)
        else:
            runs.append(_Run(ch, left, right, y))
    return runs


def _grid(
    lines: list[list[_Run]], previous: list[tuple[float, float]], held: list[_Run] | None = None
) -> tuple[list[list[CellValue]], list[tuple[float, float]], list[_Run] | None] | None:
    """Rows of cells by the page's column ranges and the last ranges used, or None if the
    page is not a grid. Tables stacked on one page with other columns (statistics above a
    roster) are read band by band, each by its own columns. A band that continues the
    previous band's or page's table (its runs fall on those columns) keeps the previous
    column numbers, so its rows stay under the header printed above; a last page with one
    or two people is read by the previous page's columns too, if most of its lines have
    several cells.

    A header printed as the last line of a page, its table on the next (``held``: the
    line did not fit the columns of the band above it), is read by the next page's
    columns when it fits them; the page's own last line is handed back to be ``held``
    when it does not fit its columns."""
    multi = [line for line in lines if len(line) > 1]
    lead = _continued(lines, previous, multi)
    if lead:
        rest = _grid(lines[lead:], previous)
        if rest is not None:
            head = [] if held is None else [_cells([held], previous)]
            head += [_cells([line], previous) for line in lines[:lead]]
            pitch = _row_pitch(lines)
            if pitch and lines[lead - 1][0].y - lines[lead][0].y > GAP_PITCH * pitch:
                head.append([])  # the gap before the table below (see the bands loop)
            return head + rest[0], rest[1], rest[2]
    # (bands, not the page as a whole: stacked tables may cover each other's gaps)
    bands = _bands(lines) if _is_grid(multi) else []
    if not any(len(columns) >= 2 for _, columns in bands):
        if not (previous and 2 * len(multi) >= len(lines) > 0):
            return None
        if not _fits(multi, previous, strict=True):
            return None
        bands = [(lines, previous)]
    rows: list[list[CellValue]] = []
    pitch = _row_pitch(lines)
    last_y = 0.0
    bands = _headers_joined(bands)
    if held is not None:
        band, first = bands[0]
        if (
            first is not previous
            and _fits([held], first, strict=False)
            and not _fits([line for line in band if len(line) > 1], previous, strict=False)
        ):
            previous = first  # the header of this page's table, not of the one above
        rows.append(_cells([held], previous))
    group: list[list[_Run]] = []
    for band, columns in bands:
        band_multi = [line for line in band if len(line) > 1]
        if previous and columns is not previous and _fits(band_multi, previous, strict=False):
            columns = previous
        for group in _wrapped(band, columns, pitch):
            if rows and pitch and last_y - group[0][0].y > GAP_PITCH * pitch:
                rows.append([])  # a gap between blocks reads as the blank row it was
            rows.append(_cells(group, columns))
            last_y = group[-1][0].y
        previous = columns
    if len(group) == 1 and len(group[0]) > 1 and _shared(group, previous) > 0:
        rows.pop()
        return rows, previous, group[0]
    return rows, previous, None


def _continued(
    lines: list[list[_Run]], previous: list[tuple[float, float]], multi: list[list[_Run]]
) -> int:
    """How many lines at the top of a page are the last people of the previous page's
    table, above a table of other columns (a tally under the roster's last person): they
    fit the previous columns, not the page's."""
    if not previous or len(multi) < MIN_GRID_LINES:
        return 0
    own = _columns(multi)
    lead = 0
    while (
        lead < len(lines) - MIN_GRID_LINES
        and len(lines[lead]) > 1
        and _fits([lines[lead]], previous, strict=False)
        and _shared([lines[lead]], own) > 0
    ):
        lead += 1
    return lead


def _headers_joined(bands: list[tuple[list[list[_Run]], list[tuple[float, float]]]]):  # type: ignore[no-untyped-def]
    """A band of a few lines (header lines wider than the digit cells under them) that
    fits the columns of the band below it is read by those columns: it is that table's
    header, not a table of its own."""
    out = list(bands)
    for index in range(len(out) - 2, -1, -1):
        band, _ = out[index]
        below_band, below = out[index + 1]
        band_multi = [line for line in band if len(line) > 1]
        below_multi = [line for line in below_band if len(line) > 1]
        if len(band_multi) <= HEADER_BAND_LINES < len(below_multi) and _fits(
            band_multi, below, strict=False
        ):
            out[index] = (band, below)
    return out


def _row_pitch(lines: list[list[_Run]]) -> float:
    """The usual distance between two grid lines next to each other (a header and its
    first person), else between any two lines of the page (0 if unknown). Lines of
    wrapped cells, closer together, would make it too short."""
    pairs = [(a, b) for a, b in itertools.pairwise(lines) if a and b]
    steps = sorted(a[0].y - b[0].y for a, b in pairs if len(a) > 1 and len(b) > 1)
    if not steps:
        steps = sorted(a[0].y - b[0].y for a, b in pairs)
    return steps[len(steps) // 2] if steps else 0.0


def _wrapped(
    lines: list[list[_Run]], columns: list[tuple[float, float]], pitch: float
) -> list[list[list[_Run]]]:
    """Lines grouped into table rows: a line closer to its neighbour than rows are to
    each other, whose cells all lie in columns the neighbour fills too, is the other line
    of cells that wrap (個人 over 番号 in a header cell with a line break, an address's
    second line)."""
    groups: list[list[list[_Run]]] = []
    for line in lines:
        if groups and _wraps(groups[-1], line, columns, pitch):
            groups[-1].append(line)
        else:
            groups.append([line])
    return groups


def _wraps(
    group: list[list[_Run]], line: list[_Run], columns: list[tuple[float, float]], pitch: float
) -> bool:
    """The line is close below the group and the side with fewer cells has each of them
    inside a column the other side fills too (a wide "No." header may overhang its
    column; the wrapped cell's own lines may not), or both are one cell inside the same
    column."""
    above = group[-1]
    if not pitch or not line or not above or above[0].y - line[0].y >= WRAP_PITCH * pitch:
        return False
    runs = [run for runs in group for run in runs]
    small, large = (line, runs) if len(line) <= len(runs) else (runs, line)
    inside = [_single_column(run, columns) for run in small]
    if None in inside or len(set(inside)) < len(small):
        return False
    filled = {_column_of(columns, run) for run in large}
    if len(small) == len(large) == 1:  # 生年 over 月日: two lines of one cell
        return _single_column(large[0], columns) in filled and set(inside) == filled
    return len(filled) >= 2 and set(inside) <= filled  # type: ignore[operator]


def _single_column(run: _Run, columns: list[tuple[float, float]]) -> int | None:
    """The column the run lies within (a title wider than the column lies in none)."""
    for index, (left, right) in enumerate(columns):
        if run.left >= left - WRAP_SLACK and run.right <= right + WRAP_SLACK:
            return index
    return None


def _bands(lines: list[list[_Run]]) -> list[tuple[list[list[_Run]], list[tuple[float, float]]]]:
    """The page's lines cut where the column layout changes, each band with its columns;
    lines of one cell (titles) go with the band below them."""
    multi_at = [i for i, line in enumerate(lines) if len(line) > 1]
    titled = {id(lines[b]) for a, b in itertools.pairwise(multi_at) if b > a + 1}
    parts = _split([lines[i] for i in multi_at], titled)
    bands = []
    start, seen = 0, 0
    for number, part in enumerate(parts):
        seen += len(part)
        end = len(lines) if number == len(parts) - 1 else multi_at[seen - 1] + 1
        bands.append((lines[start:end], _columns(part)))
        start = end
    return bands


def _split(
    multi: list[list[_Run]], titled: set[int] | None = None
) -> list[list[list[_Run]]]:
    """Consecutive parts of the grid lines such that each part's runs, read by the part's
    own columns, share cells far less than by the columns of all of them together.
    ``titled``: ids of lines with a title line above them (a table may start there)."""
    shared = _shared(multi, _columns(multi))
    if shared < 2 or len(multi) < 4:
        return [multi]
    best, cut = shared, 0
    for k in _cut_candidates(multi, titled or set()):
        top, bottom = multi[:k], multi[k:]
        cost = _shared(top, _columns(top)) + _shared(bottom, _columns(bottom))
        if cost < best:
            best, cut = cost, k
    if not cut or 2 * best > shared:
        return [multi]
    return _split(multi[:cut], titled) + _split(multi[cut:], titled)


def _cut_candidates(multi: list[list[_Run]], titled: set[int]) -> list[int]:
    """Where one line's cells straddle the gaps of the line above, else where the number
    of cells changes (at most MAX_CUTS places), leaving two lines or more on each side;
    and always under a title line (statistics, then a titled roster of as many columns
    whose cells fall in the gaps of the other)."""
    places = range(2, len(multi) - 1)
    cuts = [k for k in places if _straddles(multi[k - 1], multi[k])]
    if not cuts:
        cuts = [k for k in places if len(multi[k]) != len(multi[k - 1])]
    sampled = cuts[:: -(-len(cuts) // MAX_CUTS) or 1]
    return sorted({*sampled, *(k for k in places if id(multi[k]) in titled)})


def _straddles(upper: list[_Run], lower: list[_Run]) -> bool:
    """A run of one line overlaps two runs of the other."""
    for one, other in ((upper, lower), (lower, upper)):
        for run in one:
            if sum(1 for o in other if o.left < run.right and run.left < o.right) > 1:
                return True
    return False


def _shared(lines: list[list[_Run]], columns: list[tuple[float, float]]) -> int:
    """How many runs land in a column another run of the same line already took (a run
    counted in the column it starts in, or the next one: a cheap measure)."""
    if not columns:
        return sum(len(line) - 1 for line in lines)
    rights = [right for _, right in columns]
    last = len(columns) - 1
    return sum(
        len(line) - len({min(bisect.bisect_left(rights, run.left), last) for run in line})
        for line in lines
    )


def _is_grid(multi: list[list[_Run]]) -> bool:
    """Enough lines of several cells; two suffice when both have cells in three or more
    of the same columns, or two cells each aligned one above the other (a header and one
    person)."""
    if len(multi) >= MIN_GRID_LINES:
        return True
    if len(multi) < 2:
        return False
    columns = _columns(multi)
    if len(columns) >= 3 and all(_spread(line, columns) >= 3 for line in multi):
        return True
    return len(multi) == 2 == len(multi[0]) == len(multi[1]) and all(
        _aligned(upper, lower) for upper, lower in zip(*multi, strict=True)
    )


def _aligned(upper: _Run, lower: _Run) -> bool:
    """Two cells one above the other that start, end or centre at the same x."""
    return (
        abs(upper.left - lower.left) <= ALIGN_SLACK
        or abs(upper.right - lower.right) <= ALIGN_SLACK
        or abs(upper.left + upper.right - lower.left - lower.right) <= 2 * ALIGN_SLACK
    )


def _spread(line: list[_Run], columns: list[tuple[float, float]]) -> int:
    """How many columns the line's runs fall in."""
    return len({_column_of(columns, run) for run in line})


def _fits(lines: list[list[_Run]], columns: list[tuple[float, float]], strict: bool) -> bool:
    """Every run overlaps one of the columns and no two runs of a line share one (strict:
    and it overlaps only one column)."""
    for line in lines:
        taken: set[int] = set()
        for run in line:
            hits = [i for i, col in enumerate(columns) if _overlap(run, col) > 0]
            if not hits or (strict and len(hits) > 1):
                return False
            index = max(hits, key=lambda i: _overlap(run, columns[i]))
            if index in taken:
                return False
            taken.add(index)
    return True


def _cells(group: list[list[_Run]], columns: list[tuple[float, float]]) -> list[CellValue]:
    """One row's cells: runs of one line in a column joined by a space, the lines of a
    wrapped cell by a line break."""
    cells: list[CellValue] = [None] * len(columns)
    for line in group:
        taken: set[int] = set()
        for run in line:
            index = _column_of(columns, run)
            previous = cells[index]
            glue = " " if index in taken else "\n"
            cells[index] = run.text if previous is None else f"{previous}{glue}{run.text}"
            taken.add(index)
    while cells and cells[-1] is None:
        cells.pop()
    return cells


def _columns(lines: list[list[_Run]]) -> list[tuple[float, float]]:
    """x ranges covered by runs on more than COLUMN_GAP_SHARE of the lines (a page may
    place text left of x=0: the ranges are counted from the leftmost run). Two lines (a
    header and one person): the cells of the line with more of them, so a header wider
    than the one-digit cells under it does not join them."""
    if len(lines) == 2 and len(lines[0]) != len(lines[1]):
        return [(run.left, run.right) for run in max(lines, key=len)]
    origin = int(min(run.left for line in lines for run in line)) - 1
    width = int(max(run.right for line in lines for run in line)) - origin + 2
    delta = [0] * (width + 2)
    for line in lines:
        for run in line:
            delta[min(max(int(run.left) - origin, 0), width)] += 1
            delta[min(int(run.right) - origin + 1, width)] -= 1
    coverage, running = [], 0
    for step in delta:
        running += step
        coverage.append(running)
    floor = len(lines) * COLUMN_GAP_SHARE
    if len(lines) >= MIN_SHARED_GAP_LINES:
        floor = max(floor, 1)  # one line (a wide header) does not bridge a gap by itself
    columns: list[tuple[float, float]] = []
    start = None
    for x, covered in enumerate(coverage):
        if covered > floor and start is None:
            start = x
        elif covered <= floor and start is not None:
            columns.append((start + origin, x + origin))
            start = None
    return columns


def _overlap(run: _Run, column: tuple[float, float]) -> float:
    return min(run.right, column[1]) - max(run.left, column[0])


def _column_of(columns: list[tuple[float, float]], run: _Run) -> int:
    """The column the run overlaps most, else the nearest one. A header wider than its
    column (①連番 over one-digit numbers) reaches past the column's end: its centre may
    lie beyond it, but it still starts there. A header over several columns it covers
    alike (個人番号 over twelve one-digit cells) goes to the first of them."""

    def overlap(column: tuple[float, float]) -> float:
        return _overlap(run, column)

    def distance(column: tuple[float, float]) -> float:
        return max(column[0] - run.right, run.left - column[1], 0.0)

    overlaps = [overlap(column) for column in columns]
    most = max(overlaps)
    if most > 0:
        return next(i for i, value in enumerate(overlaps) if value >= 0.5 * most)
    return min(range(len(columns)), key=lambda i: distance(columns[i]))
