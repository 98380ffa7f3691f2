"""What else an Office/OpenDocument package holds, and OpenDocument text.

The Office readers read the parts a package is made of. A package can hold more:
files embedded in it (``xl/embeddings/*.xlsx``, ``word/embeddings/oleObject1.bin``),
members nobody put there by the standard (``名簿.csv`` added to a docx), and the
zip comment. Those are dispatched as files of their own, so nothing in a package
goes unread. OpenDocument text (.odt, .odp, ...) is read from ``content.xml``.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

from dlp_gateway.extract.archive import Dispatch, comment_unit, holds_data, member_units
from dlp_gateway.extract.units import Row, TableUnit, TextUnit, Unit, Unscannable

if TYPE_CHECKING:
    from dlp_gateway.extract.files import Context

# Members the package readers themselves read, or that carry no user data (printer
# settings, VBA projects, embedded fonts, customXml data stores: office.py). Everything
# else (media, embeddings, members nobody put there by the standard) is a file of its own.
_OOXML_OWN = re.compile(
    r"(\[Content_Types\]\.xml|(.*/)?_rels/.*\.rels|docProps/.*|customXml/.*|_xmlsignatures/.*"
    r"|(word|xl|ppt)/(?!embeddings/|media/)(.*\.(xml|rels|vml|bin|odttf|fntdata|sigs)))",
    re.IGNORECASE,
)
_ODF_OWN = re.compile(
    r"(mimetype|META-INF/.*|content\.xml|styles\.xml|meta\.xml|settings\.xml|manifest\.rdf"
    r"|Thumbnails/.*|Pictures/.*|Configurations2/.*|layout-cache)",
    re.IGNORECASE,
)


def extras(path: str, data: bytes, ctx: Context, depth: int, kind: str, dispatch: Dispatch,
           members: bool = True) -> Iterator[Unit]:
    """Embedded files, non-standard members and the comment of an Office/ODF package.

    ``members=False``: the comment and the media folder only (the OOXML readers in
    office.py dispatch the embedded and unreferenced members themselves, and leave
    ``*/media/*`` to this check by content: a csv renamed image1.png is read).
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return  # an OLE workbook (.xls) is not a package
    own = _ODF_OWN if kind in ("ods", "odf") else _OOXML_OWN
    with zf:
        yield from comment_unit(path, zf.comment)
        others = [i for i in zf.infolist() if holds_data(i) and not own.fullmatch(i.filename)
                  and (members or "/media/" in f"/{i.filename}")]
        if depth + 1 > ctx.limits.max_depth and others:
            yield Unscannable(path, "too_deep", f"embedded files over depth {ctx.limits.max_depth}")
            return
        yield from member_units(path, zf, others[: ctx.limits.max_members], ctx, depth,
                                dispatch)


# --- OpenDocument text ------------------------------------------------------------------------

_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"


def _safe_parser():  # type: ignore[no-untyped-def]
    from lxml import etree

    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False,
                           load_dtd=False)


def _odf_text(element) -> str:  # type: ignore[no-untyped-def]
    """Text of a paragraph; <text:s/>, <text:tab/> and <text:line-break/> as spaces."""
    parts = [element.text or ""]
    for child in element:
        if child.tag in (f"{_TEXT}s", f"{_TEXT}tab", f"{_TEXT}line-break"):
            parts.append(" ")
        elif isinstance(child.tag, str):
            parts.append(_odf_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _odf_rows(table) -> list[Row]:  # type: ignore[no-untyped-def]
    rows = []
    for number, row in enumerate(table.iter(f"{_TABLE}table-row"), 1):
        cells = []
        for cell in row:
            if cell.tag not in (f"{_TABLE}table-cell", f"{_TABLE}covered-table-cell"):
                continue
            text = "\n".join(_odf_text(p) for p in cell.iter(f"{_TEXT}p")).strip()
            repeat = min(int(cell.get(f"{_TABLE}number-columns-repeated", "1") or 1), 64)
            cells.extend([text or None] * (repeat if text else 1))
        rows.append(Row(number, cells))
    return rows


def extract_odf(path: str, data: bytes) -> Iterator[Unit]:
    """Paragraphs (outside tables) as text and each table as a TableUnit."""
    from lxml import etree

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        root = etree.fromstring(zf.read("content.xml"), _safe_parser())
    lines: list[str] = []
    tables = []
    for node in root.iter(f"{_TEXT}p", f"{_TEXT}h", f"{_TABLE}table"):
        if any(a.tag == f"{_TABLE}table" for a in node.iterancestors()):
            continue
        if node.tag == f"{_TABLE}table":
            tables.append(_odf_rows(node))
        else:
            lines.append(_odf_text(node))
    yield TextUnit("\n".join(lines), part=path, location=f"{path}!body", line_label="p")
    for index, rows in enumerate(tables, 1):
        yield TableUnit(part=path, location=f"{path}!table{index}", rows=lambda r=rows: iter(r),
                        cell_style="rc")
