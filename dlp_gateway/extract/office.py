"""Spreadsheets (xlsx/xlsm/xlsb/xls/ods via python-calamine), docx and pptx.

Spreadsheet cells keep their type: numbers stored as numbers stay numbers (an
integral float becomes an int so a My Number stored numerically reads as its
digits), date cells become ``datetime.date``. Calamine does not know the Japanese
built-in era formats (numFmtId 27-36, 50-58: 昭和45年3月2日 shown from a serial)
and returns their serials as plain numbers, so those cells are found through
``xl/styles.xml`` and converted here.
"""

from __future__ import annotations

import datetime as dt
import io
import posixpath
import re
import zipfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from lxml import etree
from python_calamine import CalamineWorkbook

from dlp_gateway.extract.units import CellValue, Row, TableUnit, TextUnit, Unit, Unscannable

if TYPE_CHECKING:
    from dlp_gateway.extract.files import Context

# Japanese built-in date formats (32 and 33 are times of day, left alone).
ERA_FORMAT_IDS = frozenset(set(range(27, 37)) | set(range(50, 59))) - {32, 33}

_NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_NS_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_NS_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_SAFE_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


# --- spreadsheets -------------------------------------------------------------------------


def _convert(value: Any) -> CellValue:
    if isinstance(value, str):
        return value if value != "" else None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value
    if isinstance(value, int | dt.date):
        return value
    if isinstance(value, dt.time | dt.timedelta):
        return str(value)
    return None if value is None else str(value)


def _fast_convert(value: Any) -> CellValue:
    """``_convert`` with the two common cases (text, number) handled inline."""
    kind = type(value)
    if kind is str:
        return value or None
    if kind is float:
        return int(value) if value.is_integer() and -(2**53) < value < 2**53 else value
    return _convert(value)


def serial_to_date(serial: float, date1904: bool = False) -> dt.date | dt.datetime:
    """Excel serial day number to a date (a datetime when it has a time part)."""
    if date1904:
        base = dt.datetime(1904, 1, 1)
    elif serial < 61:
        base = dt.datetime(1899, 12, 31)  # Lotus 1900-02-29 bug: serials before it are off by 1
    else:
        base = dt.datetime(1899, 12, 30)
    moment = base + dt.timedelta(days=serial)
    if float(serial).is_integer():
        return moment.date()
    return moment


def _xml(zf: zipfile.ZipFile, name: str) -> Any:
    return etree.fromstring(zf.read(name), _SAFE_PARSER)


def _rels(zf: zipfile.ZipFile, part: str) -> dict[str, str]:
    """Relationship id -> target path (resolved) for an OOXML part."""
    folder, base = posixpath.split(part)
    rels_name = posixpath.join(folder, "_rels", base + ".rels")
    if rels_name not in zf.namelist():
        return {}
    out: dict[str, str] = {}
    for rel in _xml(zf, rels_name).iter(f"{{{_NS_PKG_REL}}}Relationship"):
        target = rel.get("Target", "")
        if target.startswith("/"):
            path = target.lstrip("/")
        else:
            path = posixpath.normpath(posixpath.join(folder, target))
        out[rel.get("Id", "")] = path
    return out


def era_cells(data: bytes) -> tuple[dict[str, set[tuple[int, int]]], bool]:
    """Cells (0-based row, col) per sheet name whose style is a built-in era format.

    Also returns whether the workbook uses the 1904 date system. Cheap when no style
    uses those formats (the common case): styles.xml is read, no sheet is.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        if "xl/workbook.xml" not in names:
            return {}, False
        workbook = _xml(zf, "xl/workbook.xml")
        pr = workbook.find(f"{{{_NS_MAIN}}}workbookPr")
        date1904 = pr is not None and pr.get("date1904", "0").lower() in ("1", "true")
        rels = _rels(zf, "xl/workbook.xml")
        styles_name = next((p for p in rels.values() if p.endswith("styles.xml")), "")
        if styles_name not in names:
            return {}, date1904
        era_styles = _era_style_indexes(_xml(zf, styles_name))
        if not era_styles:
            return {}, date1904
        pattern = re.compile(
            rb'<(?:\w+:)?c\s(?=[^>]*\bs="(?:' + b"|".join(str(i).encode() for i in era_styles)
            + rb')")[^>]*>'
        )
        result: dict[str, set[tuple[int, int]]] = {}
        for sheet in workbook.iter(f"{{{_NS_MAIN}}}sheet"):
            target = rels.get(sheet.get(f"{{{_NS_REL}}}id", ""), "")
            if target not in names:
                continue
            cells = set()
            for match in pattern.finditer(zf.read(target)):
                ref = re.search(rb'\br="([A-Z]+)(\d+)"', match.group(0))
                if ref:
                    cells.add((int(ref.group(2)) - 1, _column_index(ref.group(1))))
            if cells:
                result[sheet.get("name", "")] = cells
        return result, date1904


def _era_style_indexes(styles: Any) -> set[int]:
    custom = {int(f.get("numFmtId", "-1")) for f in styles.iter(f"{{{_NS_MAIN}}}numFmt")}
    cell_xfs = styles.find(f"{{{_NS_MAIN}}}cellXfs")
    if cell_xfs is None:
        return set()
    out = set()
    for index, xf in enumerate(cell_xfs.iter(f"{{{_NS_MAIN}}}xf")):
        fmt = int(xf.get("numFmtId", "0") or 0)
        if fmt in ERA_FORMAT_IDS and fmt not in custom:
            out.add(index)
    return out


def _column_index(letters: bytes) -> int:
    index = 0
    for ch in letters:
        index = index * 26 + (ch - 64)
    return index - 1


def _sheet_rows(
    raw: list[list[Any]],
    start: tuple[int, int],
    era: set[tuple[int, int]],
    date1904: bool,
) -> Callable[[], Iterator[Row]]:
    row0, col0 = start
    pad: list[CellValue] = [None] * col0

    def rows() -> Iterator[Row]:
        for offset, values in enumerate(raw):
            cells = [_fast_convert(v) for v in values]
            number = row0 + offset
            if era:
                for col, value in enumerate(cells):
                    if (number, col0 + col) in era and isinstance(value, int | float) \
                            and value >= 1:
                        cells[col] = serial_to_date(value, date1904)
            while cells and cells[-1] is None:
                cells.pop()
            if cells:
                yield Row(number + 1, pad + cells)

    return rows


def extract_workbook(path: str, data: bytes, ctx: Context, ooxml: bool) -> Iterator[Unit]:
    """Every sheet of a workbook as a TableUnit (location ``path!SheetName``)."""
    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except Exception as exc:
        if "password" in type(exc).__name__.lower() or "password" in str(exc).lower():
            yield Unscannable(path, "encrypted_office", "password-protected workbook")
        else:
            yield Unscannable(path, "corrupt", f"{type(exc).__name__}: {exc}")
        return
    era: dict[str, set[tuple[int, int]]] = {}
    date1904 = False
    if ooxml:
        try:
            era, date1904 = era_cells(data)
        except Exception:  # era styles are a refinement; the cells are still read
            era = {}
    for name in workbook.sheet_names:
        try:
            sheet = workbook.get_sheet_by_name(name)
            cells = (sheet.height or 0) * (sheet.width or 0)
            if not ctx.take_cells(cells):
                yield Unscannable(path, "too_large", f"sheet {name}: {cells} cells over the limit")
                return
            raw = sheet.to_python(skip_empty_area=True)
            start = sheet.start or (0, 0)
        except Exception as exc:
            yield Unscannable(path, "corrupt", f"sheet {name}: {type(exc).__name__}: {exc}")
            continue
        rows = _sheet_rows(raw, (start[0], start[1]), era.get(name, set()), date1904)
        yield TableUnit(part=path, location=f"{path}!{name}", rows=rows, cell_style="a1")


# --- docx -------------------------------------------------------------------------------

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"


def _register_word_variants() -> None:
    """Let python-docx open docm/dotx/dotm (same XML, other content types)."""
    from docx.opc.part import PartFactory
    from docx.parts.document import DocumentPart

    for content_type in (
        "application/vnd.ms-word.document.macroEnabled.main+xml",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml",
        "application/vnd.ms-word.template.macroEnabledTemplate.main+xml",
    ):
        PartFactory.part_type_for.setdefault(content_type, DocumentPart)


def _paragraph_text(p: Any) -> str:
    from docx.text.paragraph import Paragraph

    return Paragraph(p, None).text.replace("\n", " ")


def _blocks(container: Any) -> Iterator[Any]:
    """Body-level paragraphs and tables in order, looking inside content controls."""
    for child in container.iterchildren():
        if child.tag in (f"{_W}p", f"{_W}tbl"):
            yield child
        elif child.tag == f"{_W}sdt":
            content = child.find(f"{_W}sdtContent")
            if content is not None:
                yield from _blocks(content)


def _cell_text(cell: Any) -> str | None:
    text = "\n".join(_paragraph_text(p) for p in cell._tc.iter(f"{_W}p")
                     if p.getparent() is not None and not _in_nested_table(p, cell._tc))
    text = text.strip()
    return text or None


def _in_nested_table(p: Any, tc: Any) -> bool:
    parent = p.getparent()
    while parent is not None and parent is not tc:
        if parent.tag == f"{_W}tbl":
            return True
        parent = parent.getparent()
    return False


def _table_rows(table: Any) -> tuple[list[Row], list[Any]]:
    """Rows of a docx table (merged cells emitted once) and the tables nested in it."""
    seen: set[Any] = set()
    keep_alive: list[Any] = []  # lxml proxies must stay alive for identity checks
    rows: list[Row] = []
    nested: list[Any] = []
    for number, row in enumerate(table.rows, 1):
        cells: list[CellValue] = [None] * (getattr(row, "grid_cols_before", 0) or 0)
        for cell in row.cells:
            tc = cell._tc
            keep_alive.append(tc)
            if tc in seen:
                cells.append(None)
                continue
            seen.add(tc)
            cells.append(_cell_text(cell))
            nested.extend(cell.tables)
        rows.append(Row(number, cells))
    return rows, nested


def _table_units(path: str, label: str, table: Any, depth: int = 0) -> Iterator[TableUnit]:
    rows, nested = _table_rows(table)
    yield TableUnit(part=path, location=f"{path}!{label}", rows=lambda r=rows: iter(r),
                    cell_style="rc")
    if depth < 5:
        for index, inner in enumerate(nested, 1):
            yield from _table_units(path, f"{label}.{index}", inner, depth + 1)


def _story_text(story: Any) -> str:
    """Text of a header/footer: paragraphs, then table cells line by line."""
    lines = [_paragraph_text(p) for p in story._element.iter(f"{_W}p")]
    return "\n".join(line for line in lines if line.strip())


def extract_docx(path: str, data: bytes) -> Iterator[Unit]:
    """Body paragraphs, tables, text boxes, headers and footers of a Word document."""
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except ValueError:  # docm/dotx/dotm: same XML under another content type
        from docx.package import Package

        _register_word_variants()
        document = Package.open(io.BytesIO(data)).main_document_part.document
    body = document.element.body
    paragraphs: list[str] = []
    tables: list[Any] = []
    for block in _blocks(body):
        if block.tag == f"{_W}p":
            paragraphs.append(_paragraph_text(block))
        else:
            tables.append(Table(block, document._body))
    yield TextUnit("\n".join(paragraphs), part=path, location=f"{path}!body", line_label="p")
    for index, table in enumerate(tables, 1):
        yield from _table_units(path, f"table{index}", table)
    boxes = [
        _paragraph_text(p)
        for box in body.iter(f"{_W}txbxContent")
        if not any(a.tag == _MC_FALLBACK for a in box.iterancestors())
        for p in box.iter(f"{_W}p")
    ]
    if any(b.strip() for b in boxes):
        yield TextUnit("\n".join(boxes), part=path, location=f"{path}!textbox", line_label="p")
    yield from _headers_footers(path, document)


def _headers_footers(path: str, document: Any) -> Iterator[TextUnit]:
    seen: dict[str, set[str]] = {"header": set(), "footer": set()}
    for section in document.sections:
        for kind, stories in (
            ("header", (section.header, section.first_page_header, section.even_page_header)),
            ("footer", (section.footer, section.first_page_footer, section.even_page_footer)),
        ):
            for story in stories:
                if story.is_linked_to_previous:
                    continue
                text = _story_text(story)
                if not text.strip() or text in seen[kind]:
                    continue
                seen[kind].add(text)
                yield TextUnit(text, part=path, location=f"{path}!{kind}{len(seen[kind])}")


# --- pptx (text only, best effort) --------------------------------------------------------

_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"


def extract_pptx(path: str, data: bytes) -> Iterator[Unit]:
    """Slide text (one line per paragraph) as ``path!slideN`` TextUnits."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        slides = sorted(
            (n for n in zf.namelist() if re.fullmatch(r"ppt/slides/slide\d+\.xml", n)),
            key=lambda n: int(re.sub(r"\D", "", n)),
        )
        for name in slides:
            root = _xml(zf, name)
            lines = ["".join(t.text or "" for t in p.iter(f"{_A}t")) for p in root.iter(f"{_A}p")]
            text = "\n".join(line for line in lines if line.strip())
            if text:
                number = re.sub(r"\D", "", name)
                yield TextUnit(text, part=path, location=f"{path}!slide{number}")
