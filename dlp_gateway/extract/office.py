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
import itertools
import posixpath
import re
import zipfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from lxml import etree

from dlp_gateway.extract.units import (
    AltPath,
    CellValue,
    Row,
    TableUnit,
    TextUnit,
    Unit,
    Unscannable,
)

if TYPE_CHECKING:
    from dlp_gateway.extract.files import Context

# Japanese built-in date formats (32 and 33 are times of day, left alone).
ERA_FORMAT_IDS = frozenset(set(range(27, 37)) | set(range(50, 59))) - {32, 33}

_NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_X = f"{{{_NS_MAIN}}}"
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


# Cell types ``_convert`` returns unchanged (text other than "", int, date, datetime).
_KEPT_AS_IS = frozenset({str, int, dt.date, dt.datetime})


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


class _LazySheet:
    """A calamine sheet read row by row each time (``to_python`` would hold every cell
    of the sheet as a Python object for as long as the table is scanned).

    ``iter_rows`` starts at the sheet's first row, not at its used area: the rows above
    ``start`` are skipped so the rows are those of ``to_python(skip_empty_area=True)``.
    """

    __slots__ = ("sheet", "skip")

    def __init__(self, sheet: Any, skip: int):
        self.sheet, self.skip = sheet, skip

    def __iter__(self) -> Iterator[list[Any]]:
        return itertools.islice(self.sheet.iter_rows(), self.skip, None)


def _sheet_rows(
    raw: list[list[Any]] | _LazySheet,
    start: tuple[int, int],
    era: set[tuple[int, int]],
    date1904: bool,
) -> Callable[[], Iterator[Row]]:
    row0, col0 = start
    pad: list[CellValue] = [None] * col0

    def rows() -> Iterator[Row]:
        for offset, values in enumerate(raw):
            if "" not in values and set(map(type, values)) <= _KEPT_AS_IS:
                cells = list(values)  # nothing to convert (a copy: rows() runs again)
            else:
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


def extract_workbook(
    path: str, data: bytes, ctx: Context, ooxml: bool, depth: int = 0
) -> Iterator[Unit]:
    """Every sheet of a workbook as a TableUnit (location ``path!SheetName``), then
    (xlsx) cell comments and whatever else the package holds.

    An xlsx is guarded before calamine sees it: its sheets' extents are read from the
    XML (a 2 KB file with cells at A1 and XFD1048576 would make calamine allocate
    512 GiB and abort the process) and non-UTF-8 XML parts are re-encoded. Binary
    and OpenDocument workbooks, whose extents cannot be read cheaply, are read in a
    forked child with a memory cap, where a crash becomes ``corrupt``.
    """
    pkg: _Package | None = None
    if ooxml:
        try:
            pkg = _Package(data, ctx.limits.max_part_bytes)
            problem = _sheet_extent_problem(pkg, ctx.limits.max_cells)
        except _PartTooLarge as exc:
            yield Unscannable(path, "too_large", str(exc))
            return
        except Exception:  # calamine judges the package itself
            pkg, problem = None, None
        plan = _pivot_plan(pkg) if pkg is not None else {}
        alts = {sheet: ((f"{path}!pivot!{sheet}", "sheet"),) for sheet in plan.values() if sheet}
        if problem:
            yield Unscannable(path, "too_large", problem)
        else:
            yield from _calamine_sheets(path, _recoded(pkg, data), ctx, ooxml, alts)
        if pkg is not None:
            yield from _workbook_extras(path, pkg, ctx, depth, plan)
        return
    try:
        from dlp_gateway.extract.isolate import IsolatedFailure, run_isolated

        sheets = run_isolated(_read_sheets_raw, data, ctx.limits.max_cells,
                              memory_bytes=ctx.limits.max_parser_memory_bytes,
                              timeout=ctx.limits.timeout_seconds)
    except IsolatedFailure as exc:
        yield Unscannable(path, exc.reason, f"workbook reader: {exc.detail}")
        return
    yield from _sheet_units(path, sheets, ctx, {}, False)


def _calamine_sheets(path: str, data: bytes, ctx: Context, ooxml: bool,
                     alts: dict[str, AltPath] | None = None) -> Iterator[Unit]:
    era: dict[str, set[tuple[int, int]]] = {}
    date1904 = False
    if ooxml:
        try:
            era, date1904 = era_cells(data)
        except Exception:  # era styles are a refinement; the cells are still read
            era = {}
    yield from _sheet_units(path, _read_sheets_raw(data, ctx.limits.max_cells, lazy=True), ctx,
                            era, date1904, alts or {})


def _read_sheets_raw(data: bytes, max_cells: int, lazy: bool = False) -> list[tuple[str, Any, int]]:
    """(sheet name, (raw rows, start) or an error string, cells) per sheet.

    ``lazy`` (in this process only: a child returns plain lists): the rows are read from
    calamine's sheet each time the table is read, not held as Python lists.
    """
    try:
        from python_calamine import CalamineWorkbook

        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except Exception as exc:
        if "password" in type(exc).__name__.lower() or "password" in str(exc).lower():
            return [("", "encrypted_office", 0)]
        return [("", f"corrupt:{type(exc).__name__}: {exc}", 0)]
    out: list[tuple[str, Any, int]] = []
    total = 0
    for name in workbook.sheet_names:
        try:
            sheet = workbook.get_sheet_by_name(name)
            cells = (sheet.height or 0) * (sheet.width or 0)
            total += cells
            if total > max_cells:
                out.append((name, "too_large", cells))
                return out
            start = sheet.start or (0, 0)
            raw = _LazySheet(sheet, start[0]) if lazy else sheet.to_python(skip_empty_area=True)
        except Exception as exc:
            out.append((name, f"corrupt:sheet {name}: {type(exc).__name__}: {exc}", 0))
            continue
        out.append((name, (raw, (start[0], start[1])), cells))
    return out


def _sheet_units(path: str, sheets: list[tuple[str, Any, int]], ctx: Context,
                 era: dict[str, set[tuple[int, int]]], date1904: bool,
                 alts: dict[str, AltPath] | None = None) -> Iterator[Unit]:
    for name, content, cells in sheets:
        if content == "encrypted_office":
            yield Unscannable(path, "encrypted_office", "password-protected workbook")
            return
        if isinstance(content, str) and content.startswith("corrupt:"):
            yield Unscannable(path, "corrupt", content[len("corrupt:"):])
            continue
        if content == "too_large" or not ctx.take_cells(cells):
            yield Unscannable(path, "too_large", f"sheet {name}: {cells} cells over the limit")
            return
        raw, start = content
        rows = _sheet_rows(raw, start, era.get(name, set()), date1904)
        yield TableUnit(part=path, location=f"{path}!{name}", rows=rows, cell_style="a1",
                        alt=(alts or {}).get(name, ()))


# Row numbers of cell (r="C7") and row (r="7") references, and column letters; the
# literal prefix keeps the scans fast (no group of tuples, few unique values).
_REF_ROW = re.compile(rb' r="[A-Z]*([0-9]+)"')
_REF_COLUMN = re.compile(rb' r="([A-Z]+)[0-9]')
_DIMENSION = re.compile(rb'\bref="([A-Z]*)([0-9]*)(?::([A-Z]*)([0-9]*))?"')


_UPPER = bytes(range(ord("A"), ord("Z") + 1))


def _surely_small(xml: bytes, max_cells: int) -> bool:
    """A fast bound that clears ordinary sheets without listing every reference:
    no row number has more digits than the last one, and the widest column name
    bounds the width."""
    at = xml.find(b"dimension ", 0, 1 << 16)
    dimension = _DIMENSION.search(xml, at, at + 200) if at >= 0 else None
    digits_only = xml.translate(None, _UPPER)  # r="C7" -> r="7"
    at = digits_only.rfind(b' r="')
    if at < 0:
        return True
    end = at + 4
    while end < len(digits_only) and 48 <= digits_only[end] <= 57:
        end += 1
    digits = end - at - 4
    if not digits or re.search(b' r="[0-9]{%d}' % (digits + 1), digits_only):
        return False
    letters = 1 if not re.search(rb' r="[A-Z]{2}', xml) else (  # one scan when A-Z
        3 if re.search(rb' r="[A-Z]{3}', xml) else 2)
    if dimension:  # the declared extent must fit the same bound
        cols, nums = dimension.group(1, 3), dimension.group(2, 4)
        if any(len(n) > digits for n in nums) or any(len(c) > letters for c in cols):
            return False
    return 10**digits * (26, 702, 16384)[letters - 1] <= max_cells


def _sheet_targets(pkg: _Package) -> list[str]:
    workbook = next((t for _i, k, t in pkg.rels("") if k.endswith(_OFFICE_DOCUMENT)),
                    "xl/workbook.xml")
    return [t for _i, k, t in pkg.rels(workbook)
            if k.endswith(("/worksheet", "/chartsheet", "/dialogsheet", "/xlMacrosheet"))
            and t in pkg.names]


def _sheet_extent_problem(pkg: _Package, max_cells: int) -> str | None:
    """Why a sheet's extent (from its cell references) is too large to read, or None.

    Cheap: a regex over the sheet XML, no parse. The extent spans the smallest and
    largest cell reference (and the declared <dimension>), as calamine allocates it.
    """
    for target in _sheet_targets(pkg):
        xml = pkg.read(target)
        if xml[:2] in (b"\xff\xfe", b"\xfe\xff"):
            xml = xml.decode("utf-16").encode("utf-8")
        if _surely_small(xml, max_cells):
            continue
        row_refs = set(_REF_ROW.findall(xml))
        letters = set(_REF_COLUMN.findall(xml))
        at = xml.find(b"dimension ", 0, 1 << 16)  # it precedes sheetData
        dimension = _DIMENSION.search(xml, at, at + 200) if at >= 0 else None
        if dimension:
            cols, nums = dimension.group(1, 3), dimension.group(2, 4)
            letters.update(c for c in cols if c)
            row_refs.update(n for n in nums if n)
        rows = [int(r) for r in row_refs]
        if not rows:
            continue
        width = 1
        if letters:
            indexes = [_column_index(c) for c in letters]
            width = max(indexes) - min(indexes) + 1
        area = (max(rows) - min(rows) + 1) * width
        if area > max_cells:
            return f"{target}: extent of {area:,} cells over the limit"
    return None


def _recoded(pkg: _Package | None, data: bytes) -> bytes:
    """``data``, or a normalised copy calamine reads right: XML parts re-encoded as
    UTF-8 when a part it reads (workbook, sheets, shared strings) is UTF-16 or declares
    another encoding (calamine reads such a sheet as empty: it would pass unread), and
    shared strings stored under another name copied to ``xl/sharedStrings.xml``."""
    if pkg is None:
        return data
    workbook = next((t for _i, k, t in pkg.rels("") if k.endswith(_OFFICE_DOCUMENT)),
                    "xl/workbook.xml")
    strings = [t for _i, k, t in pkg.rels(workbook)
               if k.endswith("/sharedStrings") and t in pkg.names]
    names = [workbook, *_sheet_targets(pkg), *strings]
    odd = any(_odd_encoding(pkg, n) for n in names if n in pkg.names)
    moved = strings[0] if strings and strings[0].lower() != "xl/sharedstrings.xml" else None
    if not odd and not moved:
        return data
    return _normalized_package(pkg, moved)


def _odd_encoding(pkg: _Package, name: str) -> bool:
    with pkg.zf.open(name) as stream:
        head = stream.read(120)
    declared = re.search(rb'encoding="([^"]+)"', head.replace(b"\x00", b""))
    return head[:2] in (b"\xff\xfe", b"\xfe\xff") or bool(
        declared and declared.group(1).lower() not in (b"utf-8", b"utf8"))


def _normalized_package(pkg: _Package, strings: str | None) -> bytes:
    odd = {n for n in pkg.names if n.endswith((".xml", ".rels")) and _odd_encoding(pkg, n)}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in pkg.zf.infolist():
            if strings and info.filename.lower() == "xl/sharedstrings.xml":
                continue  # replaced by the part the workbook really points to
            content = pkg.read(info.filename)
            if info.filename in odd:
                root = etree.fromstring(content, _SAFE_PARSER)
                content = etree.tostring(root, encoding="UTF-8", xml_declaration=True)
            dst.writestr(info.filename, content)
            if info.filename == strings:
                dst.writestr("xl/sharedStrings.xml", content)
    return out.getvalue()


_COMMENT_TAGS = ("comment", "threadedComment")


def _comment_lines(root: Any) -> list[str]:
    lines = []
    for el in root.iter():
        if isinstance(el.tag, str) and etree.QName(el).localname in _COMMENT_TAGS:
            text = " ".join(t.strip() for t in el.itertext() if t.strip())
            if text:
                lines.append(f"{el.get('ref', '')} {text}".strip())
    return lines


def _workbook_extras(path: str, pkg: _Package, ctx: Context, depth: int,
                     plan: dict[str, str | None]) -> Iterator[Unit]:
    """Cell comments (legacy and threaded), then the rest of the package."""
    for name in sorted(pkg.names):
        base = posixpath.basename(name)
        if name.endswith(".xml") and (base.startswith("comment")
                                      or "/threadedComments/" in "/" + name):
            try:
                lines = _comment_lines(pkg.xml(name))
            except Exception as exc:
                yield Unscannable(f"{path}/{name}", "corrupt", f"{type(exc).__name__}: {exc}")
                continue
            if lines:
                yield TextUnit("\n".join(lines), part=path, location=f"{path}!{base}")
    for name, sheet in plan.items():
        alt: AltPath = ((f"{path}!pivot!{sheet}", name),) if sheet else ()
        try:
            yield from _pivot_cache_units(path, pkg, name, alt)
        except _PartTooLarge as exc:
            yield Unscannable(f"{path}/{name}", "too_large", str(exc))
        except Exception as exc:
            yield Unscannable(f"{path}/{name}", "corrupt", f"{type(exc).__name__}: {exc}")
    workbook = next((t for _i, k, t in pkg.rels("") if k.endswith(_OFFICE_DOCUMENT)),
                    "xl/workbook.xml")
    read_by_calamine = {workbook, *_sheet_targets(pkg)}
    read_by_calamine |= {t for _i, k, t in pkg.rels(workbook)
                         if k.endswith(("/sharedStrings", "/styles"))}
    pkg.read_parts |= read_by_calamine
    yield from _package_rest(path, pkg, ctx, depth, workbook, [])


def _pivot_value(el: Any) -> CellValue:
    """One pivot cache item (s/n/d/b/e/m) as a cell value."""
    kind = etree.QName(el).localname
    value = el.get("v")
    if kind == "m" or value is None:
        return None
    if kind == "n":
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else number
    if kind == "d":
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def _pivot_cache_units(path: str, pkg: _Package, definition: str,
                       alt: AltPath) -> Iterator[Unit]:
    """A pivot cache as a table: the cache field names as the header row, one row per
    cached record. It keeps the source rows even when the source sheet was deleted
    (when the sheet is there, ``alt`` makes the cache and the sheet two readings of one
    roster, the one with more people counted). Without records, the shared items of
    each field are the table's columns."""
    root = pkg.xml(definition)
    fields = [(f.get("name"), [_pivot_value(i) for i in f.iterfind(f"{_X}sharedItems/*")])
              for f in root.iter(f"{_X}cacheField")]
    if not fields:
        return
    header = Row(1, [name for name, _items in fields])
    records = [t for _i, k, t in pkg.rels(definition)
               if k.endswith("/pivotCacheRecords") and t in pkg.names]
    rows: list[Row] = [header]
    if records:
        for record in pkg.xml(records[0]).iterfind(f"{_X}r"):
            cells: list[CellValue] = []
            for index, item in enumerate(record.iterchildren()):
                if not isinstance(item.tag, str):
                    continue
                if etree.QName(item).localname == "x":
                    shared = fields[index][1] if index < len(fields) else []
                    at = _int(item.get("v"))
                    cells.append(shared[at] if 0 <= at < len(shared) else None)
                else:
                    cells.append(_pivot_value(item))
            rows.append(Row(len(rows) + 1, cells))
    else:
        depth = max(len(items) for _name, items in fields)
        rows += [Row(n + 2, [items[n] if n < len(items) else None for _name, items in fields])
                 for n in range(depth)]
    label = posixpath.splitext(posixpath.basename(definition))[0]
    yield TableUnit(part=path, location=f"{path}!{label}", rows=lambda r=rows: iter(r), alt=alt)


def _pivot_plan(pkg: _Package) -> dict[str, str | None]:
    """Each pivot cache definition and the workbook sheet its source range is on (by
    sheet name, defined name or table name), or None when that sheet is gone."""
    definitions = sorted(n for n in pkg.names
                         if re.fullmatch(r".*/pivotCacheDefinition\d*\.xml", n))
    if not definitions:
        return {}
    already_read = set(pkg.read_parts)  # looking here does not make these parts read
    try:
        where = _source_sheets(pkg)
    except Exception:
        where = {}
    plan: dict[str, str | None] = {}
    for name in definitions:
        try:
            source = pkg.xml(name).find(f"{_X}cacheSource/{_X}worksheetSource")
        except Exception:
            source = None  # read (and reported) with the cache itself
        wanted = None if source is None else source.get("sheet") or source.get("name")
        plan[name] = where.get(wanted or "")
    pkg.read_parts = already_read
    return plan


def _source_sheets(pkg: _Package) -> dict[str, str]:
    """Sheet, defined-name and table names of the workbook -> the sheet they are on."""
    workbook = next((t for _i, k, t in pkg.rels("") if k.endswith(_OFFICE_DOCUMENT)),
                    "xl/workbook.xml")
    book = pkg.xml(workbook)
    by_rid = {rid: target for rid, _k, target in pkg.rels(workbook)}
    where: dict[str, str] = {}
    for sheet in book.iter(f"{_X}sheet"):
        name = sheet.get("name") or ""
        where[name] = name
        for _rid, kind, target in pkg.rels(by_rid.get(sheet.get(_R_ID, ""), "")):
            if kind.endswith("/table") and target in pkg.names:
                table = pkg.xml(target)
                where[table.get("name") or name] = name
                where[table.get("displayName") or name] = name
    for defined in book.iter(f"{_X}definedName"):
        sheet_name = (defined.text or "").split("!")[0].strip("'=")
        if sheet_name in where:
            where[defined.get("name") or ""] = sheet_name
    return where


def _int(text: str | None) -> int:
    try:
        return int(text or "")
    except ValueError:
        return -1


# --- docx -------------------------------------------------------------------------------

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_R_ID = f"{{{_NS_REL}}}id"
_OFFICE_DOCUMENT = "/officeDocument"
_TEXT_TAGS = {f"{_W}t", f"{_W}delText"}
_TAB_TAGS = {f"{_W}tab", f"{_W}ptab"}
_BREAK_TAGS = {f"{_W}br", f"{_W}cr"}
# Subtrees that hold no text of the paragraph itself (properties; text boxes and the
# mc:Fallback copy of a drawing are read on their own, once).
_NO_TEXT = {f"{_W}pPr", f"{_W}rPr", f"{_W}sectPr", f"{_W}tblPr", f"{_W}txbxContent",
            f"{_W}instrText", f"{_W}delInstrText", _MC_FALLBACK}
_REMOVED = {f"{_W}del", f"{_W}moveFrom"}
_CONTAINERS = {f"{_W}sdt", f"{_W}sdtContent", f"{_W}customXml", f"{_W}smartTag",
               f"{_W}ins", f"{_W}del", f"{_W}moveTo", f"{_W}moveFrom"}


def _collect_text(element: Any, out: list[str]) -> None:
    """Text of runs under ``element`` in document order.

    Reads what python-docx's ``Paragraph.text`` leaves out: tracked insertions and
    deletions (deleted text is still in the file, set off by spaces), inline
    content controls, smart tags, custom XML, simple and complex field results.
    """
    for child in element:
        tag = child.tag
        if not isinstance(tag, str) or tag in _NO_TEXT:
            continue
        if tag in _TEXT_TAGS:
            out.append(child.text or "")
        elif tag in _TAB_TAGS:
            out.append("\t")
        elif tag in _BREAK_TAGS:
            out.append(" ")
        elif tag == f"{_W}noBreakHyphen":
            out.append("-")
        elif tag in _REMOVED:
            out.append(" ")
            _collect_text(child, out)
            out.append(" ")
        else:
            _collect_text(child, out)
            if tag == f"{_W}p":
                out.append(" ")


def _paragraph_text(p: Any) -> str:
    out: list[str] = []
    _collect_text(p, out)
    return "".join(out).replace("\n", " ")


def _blocks(container: Any) -> Iterator[Any]:
    """Block-level paragraphs, tables and altChunks in order, through any wrapper
    (content controls, custom XML, tracked changes)."""
    for child in container.iterchildren():
        tag = child.tag
        if tag in (f"{_W}p", f"{_W}tbl", f"{_W}altChunk"):
            yield child
        elif isinstance(tag, str) and tag not in _NO_TEXT:
            yield from _blocks(child)


def _children(element: Any, tag: str) -> Iterator[Any]:
    """Children named ``tag``, also those wrapped in sdt/customXml/tracked changes."""
    for child in element.iterchildren():
        if child.tag == tag:
            yield child
        elif child.tag in _CONTAINERS:
            yield from _children(child, tag)


def _cell_text(tc: Any, nested: list[Any]) -> str | None:
    lines = []
    for block in _blocks(tc):
        if block.tag == f"{_W}p":
            lines.append(_paragraph_text(block))
        elif block.tag == f"{_W}tbl":
            nested.append(block)
    text = "\n".join(lines).strip()
    return text or None


def _int_attr(element: Any, default: int) -> int:
    if element is None:
        return default
    try:
        return max(0, min(int(element.get(f"{_W}val", default)), 1000))
    except ValueError:
        return default


def _table_rows(tbl: Any) -> tuple[list[Row], list[Any]]:
    """Rows of a docx table (merged cells emitted once, as None after the first) and
    the tables nested in its cells. Rows and cells inside content controls count."""
    rows: list[Row] = []
    nested: list[Any] = []
    for number, tr in enumerate(_children(tbl, f"{_W}tr"), 1):
        tr_pr = tr.find(f"{_W}trPr")
        before = _int_attr(tr_pr.find(f"{_W}gridBefore") if tr_pr is not None else None, 0)
        cells: list[CellValue] = [None] * before
        for tc in _children(tr, f"{_W}tc"):
            tc_pr = tc.find(f"{_W}tcPr")
            span = _int_attr(tc_pr.find(f"{_W}gridSpan") if tc_pr is not None else None, 1)
            vmerge = tc_pr.find(f"{_W}vMerge") if tc_pr is not None else None
            if vmerge is not None and vmerge.get(f"{_W}val", "continue") == "continue":
                cells.append(None)
                _cell_text(tc, nested)  # nested tables of a merged cell still count
            else:
                cells.append(_cell_text(tc, nested))
            cells.extend([None] * (max(span, 1) - 1))
        rows.append(Row(number, cells))
    return rows, nested


def _table_units(path: str, label: str, tbl: Any, depth: int = 0) -> Iterator[TableUnit]:
    rows, nested = _table_rows(tbl)
    yield TableUnit(part=path, location=f"{path}!{label}", rows=lambda r=rows: iter(r),
                    cell_style="rc")
    if depth < 5:
        for index, inner in enumerate(nested, 1):
            yield from _table_units(path, f"{label}.{index}", inner, depth + 1)


def _owner(element: Any, root: Any) -> Any:
    """The nearest table cell or text box holding ``element`` (else ``root``)."""
    for ancestor in element.iterancestors():
        if ancestor is root or ancestor.tag in (f"{_W}tc", f"{_W}txbxContent"):
            return ancestor
    return root


def _story_blocks(root: Any) -> tuple[list[str], list[Any]]:
    """Paragraph lines and outermost tables of a story (a header, a text box...).

    A paragraph in a table cell belongs to that table, not the free text; a table
    nested in a cell is read with its outer table; a text box in a cell is its own
    story. Copies in mc:Fallback are left out (the mc:Choice is read)."""
    lines: list[str] = []
    tables: list[Any] = []
    for el in root.iter(f"{_W}p", f"{_W}tbl"):
        if any(a.tag == _MC_FALLBACK for a in el.iterancestors()):
            continue
        if el.tag == f"{_W}p":
            owner = _owner(el, root)
            if owner is root or owner.tag != f"{_W}tc":
                lines.append(_paragraph_text(el))
        elif (owner := _owner(el, root)) is root or owner.tag != f"{_W}tc":
            tables.append(el)
    return lines, tables


def _story_text(root: Any) -> str:
    """Every paragraph of a part (footnotes, comments...) as lines."""
    lines = [
        _paragraph_text(p) for p in root.iter(f"{_W}p")
        if not any(a.tag == _MC_FALLBACK for a in p.iterancestors())
    ]
    return "\n".join(line for line in lines if line.strip())


class _Package:
    """An OOXML zip read with bounded member sizes, and its relationships."""

    def __init__(self, data: bytes, max_bytes: int):
        self.zf = zipfile.ZipFile(io.BytesIO(data))
        self.names = set(self.zf.namelist())
        self.max_bytes = max_bytes
        self.read_parts: set[str] = set()
        self._rels: dict[str, list[tuple[str, str, str]]] = {}

    def read(self, name: str) -> bytes:
        info = self.zf.getinfo(name)
        if info.file_size > self.max_bytes:
            raise _PartTooLarge(f"{name}: {info.file_size} bytes over the part limit")
        with self.zf.open(info) as stream:
            content = stream.read(self.max_bytes + 1)
        if len(content) > self.max_bytes:
            raise _PartTooLarge(f"{name}: over the part limit")
        self.read_parts.add(name)
        return content

    def xml(self, name: str) -> Any:
        return etree.fromstring(self.read(name), _SAFE_PARSER)

    def rels(self, part: str) -> list[tuple[str, str, str]]:
        """(id, type, resolved target) of each internal relationship of ``part``."""
        if part not in self._rels:
            self._rels[part] = self._read_rels(part)
        return self._rels[part]

    def _read_rels(self, part: str) -> list[tuple[str, str, str]]:
        folder, base = posixpath.split(part)
        rels_name = posixpath.join(folder, "_rels", base + ".rels")
        if rels_name not in self.names:
            return []
        out = []
        for rel in self.xml(rels_name).iter(f"{{{_NS_PKG_REL}}}Relationship"):
            if rel.get("TargetMode", "") == "External":
                continue
            target = rel.get("Target", "")
            if target.startswith("/"):
                resolved = target.lstrip("/")
            else:
                resolved = posixpath.normpath(posixpath.join(folder, target))
            out.append((rel.get("Id", ""), rel.get("Type", ""), resolved))
        return out


class _PartTooLarge(Exception):
    pass


def _main_part(pkg: _Package, default: str) -> str:
    for _id, kind, target in pkg.rels(""):
        if kind.endswith(_OFFICE_DOCUMENT) and target in pkg.names:
            return target
    return default


def extract_docx(
    path: str, data: bytes, ctx: Context | None = None, depth: int = 0
) -> Iterator[Unit]:
    """Everything a Word document holds as text: body paragraphs and tables (also
    inside content controls, tracked changes, fields), text boxes, headers, footers,
    footnotes, endnotes, comments, glossary, custom XML data, embedded chunks and
    packages, and any member the package does not reference."""
    ctx = ctx or _default_context()
    pkg = _Package(data, ctx.limits.max_part_bytes)
    main = _main_part(pkg, "word/document.xml")
    root = pkg.xml(main)
    body = root.find(f"{_W}body")
    if body is None:
        raise ValueError("word document without a body")
    rels = pkg.rels(main)
    by_id = {rid: target for rid, _kind, target in rels}
    paragraphs: list[str] = []
    tables: list[Any] = []
    chunks: list[str] = []
    for block in _blocks(body):
        if block.tag == f"{_W}p":
            paragraphs.append(_paragraph_text(block))
        elif block.tag == f"{_W}tbl":
            tables.append(block)
        elif by_id.get(block.get(_R_ID, "")):
            chunks.append(by_id[block.get(_R_ID, "")])
    yield TextUnit("\n".join(paragraphs), part=path, location=f"{path}!body", line_label="p")
    for index, table in enumerate(tables, 1):
        yield from _table_units(path, f"table{index}", table)
    boxes: list[str] = []
    box_tables: list[Any] = []
    for box in body.iter(f"{_W}txbxContent"):
        if not any(a.tag == _MC_FALLBACK for a in box.iterancestors()):
            lines, inner = _story_blocks(box)
            boxes += lines
            box_tables += inner
    if any(b.strip() for b in boxes):
        yield TextUnit("\n".join(boxes), part=path, location=f"{path}!textbox", line_label="p")
    for index, table in enumerate(box_tables, 1):
        yield from _table_units(path, f"textbox!table{index}", table)
    yield from _word_stories(path, pkg, root, rels)
    yield from _package_rest(path, pkg, ctx, depth, main, chunks)


def _word_stories(path: str, pkg: _Package, root: Any,
                  rels: list[tuple[str, str, str]]) -> Iterator[Unit]:
    """Headers and footers (in reference order), notes, comments, glossary."""
    order = [ref.get(_R_ID, "") for ref in root.iter(f"{_W}headerReference",
                                                       f"{_W}footerReference")]
    rank = {rid: i for i, rid in enumerate(order)}
    seen: dict[str, set[str]] = {"header": set(), "footer": set()}
    for _rid, kind, target in sorted(rels, key=lambda r: rank.get(r[0], len(rank))):
        story = kind.rsplit("/", 1)[-1]
        if target not in pkg.names:
            continue
        if story in ("header", "footer"):
            yield from _header_units(path, story, pkg.xml(target), seen[story])
        elif story in ("footnotes", "endnotes", "comments", "commentsExtended",
                       "glossaryDocument"):
            text = _story_text(pkg.xml(target))
            if text.strip():
                label = "glossary" if story == "glossaryDocument" else story
                yield TextUnit(text, part=path, location=f"{path}!{label}", line_label="p")
            if story == "glossaryDocument":
                yield from _word_stories(path, pkg, etree.Element("x"), pkg.rels(target))


def _header_units(path: str, story: str, root: Any, seen: set[str]) -> Iterator[Unit]:
    """A header or footer: its free text, then each of its tables as a table (a
    roster in a header is one person per row, like a body table). A header repeated
    for first/even pages is read once."""
    lines, tables = _story_blocks(root)
    text = "\n".join(line for line in lines if line.strip())
    key = text + "\x00" + "\x00".join(etree.tostring(t, encoding="unicode") for t in tables)
    if not (text.strip() or tables) or key in seen:
        return
    seen.add(key)
    label = f"{story}{len(seen)}"
    if text.strip():
        yield TextUnit(text, part=path, location=f"{path}!{label}")
    for index, table in enumerate(tables, 1):
        yield from _table_units(path, f"{label}!table{index}", table)


def _default_context() -> Context:
    from dlp_gateway.extract.files import Context
    from dlp_gateway.extract.units import Limits

    return Context(Limits())


# --- what else a package holds -----------------------------------------------------------

# Parts that are layout, not content: never dispatched as files.
_STRUCTURE_SUFFIXES = (
    "styles.xml", "stylesWithEffects.xml", "settings.xml", "webSettings.xml",
    "fontTable.xml", "numbering.xml", "theme.xml", "app.xml", "commentsIds.xml",
    "people.xml", "calcChain.xml", ".rels", "[Content_Types].xml", "vbaProject.bin",
    "vbaData.xml", "printerSettings.bin", "commentsExtensible.xml",
)
_STRUCTURE_DIRS = ("/theme/", "/fonts/", "/media/", "/printerSettings/", "/drawings/",
                   "/charts/", "/diagrams/", "/slideLayouts/", "/slideMasters/",
                   "/notesMasters/", "/handoutMasters/", "/theme", "/activeX/",
                   "/ink/", "/tableStyles", "/viewProps", "/presProps", "/styles")


def _is_structure(name: str) -> bool:
    slashed = "/" + name
    if name.endswith(_STRUCTURE_SUFFIXES) or name.endswith("/"):
        return True
    if name.startswith(("docProps/thumbnail", "customXml/itemProps")):
        return True  # a preview image; the GUID of a data part
    return any(d in slashed for d in _STRUCTURE_DIRS) and not name.endswith(".xml.rels") \
        and "/embeddings/" not in slashed


def _xml_text(data: bytes) -> str:
    """All text content of an XML document, one line per element with text."""
    root = etree.fromstring(data, _SAFE_PARSER)
    lines = [t.strip() for t in root.itertext() if t.strip()]
    lines += [v.strip() for el in root.iter() if isinstance(el.tag, str)
              for v in el.attrib.values() if v.strip() and not v.startswith("http")
              and len(v) < 200 and any(ord(c) > 0x7F or c.isdigit() for c in v)]
    return "\n".join(lines)


# Document properties a person writes (author and dates are the tool's, not data).
_WRITTEN_PROPERTIES = ("title", "subject", "description", "keywords", "category",
                       "contentStatus")


def _properties_text(data: bytes) -> str:
    root = etree.fromstring(data, _SAFE_PARSER)
    return "\n".join(
        el.text.strip() for el in root
        if isinstance(el.tag, str) and etree.QName(el).localname in _WRITTEN_PROPERTIES
        and el.text and el.text.strip()
    )


def _package_rest(path: str, pkg: _Package, ctx: Context, depth: int, main: str,
                  chunks: list[str]) -> Iterator[Unit]:
    """Document properties and custom XML as text; embedded chunks, embedded packages
    and any member the reader did not use dispatched as files of their own."""
    from dlp_gateway.extract.files import extract_part

    for name in sorted(pkg.names):
        if name in pkg.read_parts or name == main or _is_structure(name):
            continue
        if name.endswith(".xml") and name.startswith(("docProps/", "customXml/")):
            try:
                text = _properties_text(pkg.read(name)) if name == "docProps/core.xml" \
                    else _xml_text(pkg.read(name))
            except Exception as exc:
                yield Unscannable(f"{path}/{name}", "corrupt", f"{type(exc).__name__}: {exc}")
                continue
            if text.strip():
                yield TextUnit(text, part=path, location=f"{path}!{name}")
            continue
        try:
            content = pkg.read(name)
        except _PartTooLarge as exc:
            yield Unscannable(f"{path}/{name}", "too_large", str(exc))
            continue
        if not ctx.take_bytes(len(content)):
            yield Unscannable(f"{path}/{name}", "too_large", "package content over the limit")
            return
        if name.endswith(".xml") and name not in chunks:
            yield from _xml_member(f"{path}/{name}", content)
        elif depth + 1 > ctx.limits.max_depth:
            yield Unscannable(f"{path}/{name}", "too_deep", "embedded parts nested too deep")
        else:
            yield from extract_part(f"{path}/{name}", content, ctx, depth + 1)


def _xml_member(part: str, content: bytes) -> Iterator[Unit]:
    """An XML member nobody reads (an extra sheet, a data island): its text."""
    try:
        text = _xml_text(content)
    except Exception as exc:
        yield Unscannable(part, "corrupt", f"{type(exc).__name__}: {exc}")
        return
    if text.strip():
        yield TextUnit(text, part=part, location=part)


# --- pptx (text only) --------------------------------------------------------

_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"


def _drawing_text(p: Any) -> str:
    return "".join(t.text or "" for t in p.iter(f"{_A}t"))


def _slide_table_rows(tbl: Any) -> list[Row]:
    """Rows of a slide table (a:tbl): a cell covered by a merge is None."""
    rows: list[Row] = []
    for number, tr in enumerate(tbl.iterchildren(f"{_A}tr"), 1):
        cells: list[CellValue] = []
        for tc in tr.iterchildren(f"{_A}tc"):
            if tc.get("hMerge") in ("1", "true") or tc.get("vMerge") in ("1", "true"):
                cells.append(None)
                continue
            lines = [_drawing_text(p) for p in tc.iter(f"{_A}p")]
            cells.append("\n".join(line for line in lines if line.strip()).strip() or None)
        rows.append(Row(number, cells))
    return rows


_SLIDE_PARTS = re.compile(r"ppt/(slides/slide|notesSlides/notesSlide|comments/comment)(\d+)\.xml")
_SLIDE_LABELS = {"slides/slide": "slide", "notesSlides/notesSlide": "notes",
                 "comments/comment": "comments"}


def extract_pptx(
    path: str, data: bytes, ctx: Context | None = None, depth: int = 0
) -> Iterator[Unit]:
    """Slide, speaker-note and comment text (one line per paragraph) as
    ``path!slideN`` / ``path!notesN`` TextUnits, then the rest of the package."""
    ctx = ctx or _default_context()
    pkg = _Package(data, ctx.limits.max_part_bytes)
    parts = sorted(
        ((m.group(1), int(m.group(2)), name) for name in pkg.names
         if (m := _SLIDE_PARTS.fullmatch(name))),
        key=lambda item: (item[0] != "slides/slide", item[1]),
    )
    for kind, number, name in parts:
        root = pkg.xml(name)
        label = f"{path}!{_SLIDE_LABELS[kind]}{number}"
        paragraphs = [p for p in root.iter(f"{_A}p")
                      if not any(a.tag == f"{_A}tbl" for a in p.iterancestors())]
        tables = [t for t in root.iter(f"{_A}tbl")
                  if not any(a.tag == f"{_A}tbl" for a in t.iterancestors())]
        if paragraphs or tables:
            lines = [_drawing_text(p) for p in paragraphs]
        else:  # comments: plain text elements
            lines = [t.strip() for t in root.itertext()]
        text = "\n".join(line for line in lines if line.strip())
        if text:
            yield TextUnit(text, part=path, location=label)
        for index, table in enumerate(tables, 1):
            rows = _slide_table_rows(table)
            yield TableUnit(part=path, location=f"{label}!table{index}",
                            rows=lambda r=rows: iter(r), cell_style="rc")
    main = _main_part(pkg, "ppt/presentation.xml")
    pkg.read_parts.add(main)
    yield from _package_rest(path, pkg, ctx, depth, main, [])
