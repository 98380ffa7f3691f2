"""Excel 2003 XML (SpreadsheetML), often saved with an .xls name: one TableUnit per sheet.

Parsed with lxml with entities, DTDs and the network off (no billion laughs, no
XXE). ``ss:Index`` on rows and cells places them where Excel would.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

from dlp_gateway.extract.units import NOT_THIS_FORMAT, CellValue, Row, TableUnit, Unit, Unscannable

_SS = "{urn:schemas-microsoft-com:office:spreadsheet}"


def safe_parser():  # type: ignore[no-untyped-def]
    from lxml import etree

    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           huge_tree=False, remove_comments=True)


def _value(data) -> CellValue:  # type: ignore[no-untyped-def]
    if data is None:
        return None
    text = "".join(data.itertext()).strip()
    if not text:
        return None
    kind = data.get(f"{_SS}Type", "String")
    try:
        if kind == "Number":
            number = float(text)
            return int(number) if number.is_integer() and abs(number) < 1e15 else number
        if kind == "DateTime":
            stamp = dt.datetime.fromisoformat(text[:19])
            return stamp.date() if stamp.time() == dt.time() else stamp
    except ValueError:
        pass
    return text


def _rows(table) -> list[Row]:  # type: ignore[no-untyped-def]
    rows: list[Row] = []
    number = 0
    for row in table.iterchildren(f"{_SS}Row"):
        number = int(row.get(f"{_SS}Index", number + 1))
        cells: list[CellValue] = []
        for cell in row.iterchildren(f"{_SS}Cell"):
            index = int(cell.get(f"{_SS}Index", len(cells) + 1))
            if index > 16384:
                break
            cells.extend([None] * (index - 1 - len(cells)))
            cells.append(_value(cell.find(f"{_SS}Data")))
            cells.extend([None] * min(int(cell.get(f"{_SS}MergeAcross", 0)), 256))
        rows.append(Row(number, cells))
    return rows


def extract_spreadsheetml(path: str, data: bytes) -> Iterator[Unit]:
    from lxml import etree

    try:
        root = etree.fromstring(data, safe_parser())
    except etree.XMLSyntaxError as exc:
        yield Unscannable(path, "corrupt", f"{NOT_THIS_FORMAT}SpreadsheetML: {exc}")
        return
    if root.tag != f"{_SS}Workbook":
        yield Unscannable(path, "corrupt", f"{NOT_THIS_FORMAT}SpreadsheetML root {root.tag}")
        return
    for index, sheet in enumerate(root.iterchildren(f"{_SS}Worksheet"), 1):
        name = sheet.get(f"{_SS}Name") or f"Sheet{index}"
        rows: list[Row] = []
        for table in sheet.iterchildren(f"{_SS}Table"):
            rows.extend(_rows(table))
        yield TableUnit(part=path, location=f"{path}!{name}", rows=lambda r=rows: iter(r))
