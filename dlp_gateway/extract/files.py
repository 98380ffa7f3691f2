"""One file (an attachment, an archive member, a path on the command line) -> units.

``extract_part`` is the single dispatch point: it sniffs the content and hands the
bytes to the right reader. Every file ends in exactly one of three states: units
read from it, ``Skipped`` (a known-harmless kind from ``patterns/harmless.toml``),
or ``Unscannable`` with a named reason. Whatever a reader raises becomes
``Unscannable(part, "corrupt")`` for that file only; extraction goes on.

Formats announced by a marker that text can also carry (``%PDF-``, SpreadsheetML,
vCard) are read by their reader first; if it cannot open them and the bytes read
as text, they are scanned as text instead (a csv that starts with ``%PDF-``).
"""

from __future__ import annotations

import dataclasses
import itertools
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass

from dlp_gateway.extract import archive, office, text
from dlp_gateway.extract.html import html_to_text, html_units, looks_like_html, meta_charset
from dlp_gateway.extract.sniff import Kind, clean_text_bytes, extension, sniff, text_profile
from dlp_gateway.extract.units import (
    NOT_THIS_FORMAT,
    Limits,
    Skipped,
    TableUnit,
    TextUnit,
    Unit,
    Unscannable,
)

_HTML_EXTENSIONS = {".html", ".htm", ".xhtml", ".mht", ".mhtml"}
_MESSAGE_EXTENSIONS = {".eml"}
_MESSAGE_TYPES = ("message/rfc822", "message/global")
# Readers whose failure to open means "maybe this is text after all".
_TEXT_FALLBACK = {"pdf", "spreadsheetml", "vcard", "rtf"}
NOTHING_READ = "the reader produced nothing"


@dataclass(slots=True)
class Context:
    """Limits and the budgets they draw on, shared by every part of one message."""

    limits: Limits
    total_bytes: int = 0
    cells: int = 0
    total_exceeded: bool = False

    def take_bytes(self, count: int) -> bool:
        """Account for decompressed bytes; False once the message-wide total is passed."""
        self.total_bytes += count
        if self.total_bytes > self.limits.max_total_bytes:
            self.total_exceeded = True
        return not self.total_exceeded

    def take_cells(self, count: int) -> bool:
        self.cells += count
        return self.cells <= self.limits.max_cells


def base_name(name: str) -> str:
    """File name without directories (either slash), as used for ``part``."""
    return posixpath.basename(name.replace("\\", "/")) or name


def extract_file(name: str, data: bytes, limits: Limits) -> Iterator[Unit]:
    """Units of a single file; their ``part`` starts with the file's base name."""
    yield from extract_part(base_name(name), data, Context(limits), 0)


def extract_part(
    path: str,
    data: bytes,
    ctx: Context,
    depth: int,
    content_type: str | None = None,
    charset: str | None = None,
) -> Iterator[Unit]:
    """Units of the file at ``path`` (``depth`` = archive nesting level). Never raises."""
    produced = False
    try:
        if len(data) > ctx.limits.max_part_bytes:
            yield Unscannable(path, "too_large", f"{len(data)} bytes over the part limit")
            return
        for unit in _dispatch(path, data, ctx, depth, content_type, charset):
            produced = True
            yield unit
    except MemoryError:  # over the memory cap of the scan (see extract/isolate.py)
        produced = True
        yield Unscannable(path, "too_large", "memory limit")
    except Exception as exc:
        produced = True
        yield Unscannable(path, "corrupt", f"{type(exc).__name__}: {exc}")
    if not produced:  # safety net: a reader that read nothing must not let the part pass
        yield Unscannable(path, "unsupported_format", NOTHING_READ)


def _member_dispatch(path: str, data: bytes, ctx: Context, depth: int) -> Iterator[Unit]:
    return extract_part(path, data, ctx, depth)


def _dispatch(
    path: str,
    data: bytes,
    ctx: Context,
    depth: int,
    content_type: str | None,
    charset: str | None,
) -> Iterator[Unit]:
    kind = sniff(path, data, ctx.limits.harmless_dir)
    if kind.kind in _TEXT_FALLBACK:
        yield from _or_text(path, data, ctx, depth, kind, charset)
    elif kind.kind in ("text", "html"):
        yield from _text(path, data, ctx, depth, kind.kind, content_type, charset)
    else:
        yield from _binary(path, data, ctx, depth, kind)


def _binary(path: str, data: bytes, ctx: Context, depth: int, kind: Kind) -> Iterator[Unit]:
    from dlp_gateway.extract import compressed, legacy, msg, packages

    k = kind.kind
    if k == "harmless":
        yield Skipped(path, kind.content_type)
    elif k == "message":
        from dlp_gateway.extract.mime import extract_embedded_message

        yield from extract_embedded_message(path, data, ctx, depth)
    elif k == "corrupt":
        yield Unscannable(path, "corrupt", kind.detail)
    elif k == "encrypted_office":
        yield Unscannable(path, "encrypted_office", kind.detail)
    elif k == "unsupported":
        yield Unscannable(path, "unsupported_format", f"{kind.content_type}: {kind.detail}")
    elif k == "zip":
        yield from archive.extract_zip(path, data, ctx, depth, _member_dispatch)
    elif k == "tnef":
        yield from archive.extract_tnef(path, data, ctx, depth, _member_dispatch)
    elif k == "libarchive":  # "-lh5-" at offset 2 is a weak signature: text may carry it
        units = compressed.READERS[k](path, data, ctx, depth, _member_dispatch)
        yield from _unless_not_this_format(path, data, ctx, depth, None, units)
    elif k in compressed.READERS:
        yield from compressed.READERS[k](path, data, ctx, depth, _member_dispatch)
    elif k == "doc":
        yield from legacy.extract_doc(path, data)
    elif k == "ppt":
        yield from legacy.extract_ppt(path, data)
    elif k == "msg":
        yield from msg.extract_msg(path, data, ctx, depth, _member_dispatch)
    elif k == "ole_package":
        yield from msg.extract_ole_package(path, data, ctx, depth, _member_dispatch)
    elif k in ("xlsx", "xls", "ods"):
        ooxml = k == "xlsx" and not _is_xlsb(data)
        yield from _workbook(path, data, ctx, ooxml, depth)
        yield from packages.extras(path, data, ctx, depth, k, _member_dispatch,
                                   members=not ooxml)
    elif k == "docx":
        yield from office.extract_docx(path, data, ctx, depth)
        yield from packages.extras(path, data, ctx, depth, k, _member_dispatch, members=False)
    elif k == "pptx":
        yield from office.extract_pptx(path, data, ctx, depth)
        yield from packages.extras(path, data, ctx, depth, k, _member_dispatch, members=False)
    elif k == "odf":
        yield from packages.extract_odf(path, data)
        yield from packages.extras(path, data, ctx, depth, k, _member_dispatch)
    else:  # a kind sniff knows but no reader handles: never let it pass unread
        yield Unscannable(path, "unsupported_format", f"no reader for {k}")


def _is_xlsb(data: bytes) -> bool:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return "xl/workbook.bin" in zf.namelist()


def _or_text(
    path: str, data: bytes, ctx: Context, depth: int, kind: Kind, charset: str | None
) -> Iterator[Unit]:
    """The marked format's reader; if it cannot open the file and it reads as text, text."""
    from dlp_gateway.extract import pdf, rtf, spreadsheetml, vcard

    def read_pdf(path: str, data: bytes) -> Iterator[Unit]:
        return pdf.extract_pdf(path, data, ctx.limits.timeout_seconds)

    readers = {"pdf": read_pdf, "spreadsheetml": spreadsheetml.extract_spreadsheetml,
               "vcard": vcard.extract_vcard, "rtf": rtf.extract_rtf}
    cells = _cell_estimate(kind.kind, data)
    if cells and not ctx.take_cells(cells):
        yield Unscannable(path, "too_large", f"about {cells} cells over the limit")
        return
    yield from _unless_not_this_format(path, data, ctx, depth, charset,
                                       readers[kind.kind](path, data))


def _unless_not_this_format(
    path: str, data: bytes, ctx: Context, depth: int, charset: str | None,
    units: Iterator[Unit],
) -> Iterator[Unit]:
    """``units``, unless its reader could not open the file and the bytes read as text."""
    first = next(units, None)
    opened = not (
        isinstance(first, Unscannable) and first.part == path
        and first.detail.startswith(NOT_THIS_FORMAT)
    )
    if first is not None and opened:
        yield from itertools.chain([first], units)
        return
    if text_profile(data) is not None:
        yield from _text(path, data, ctx, depth, "text", None, charset)
    elif first is not None:
        yield first


_CELL_MARKERS = {"spreadsheetml": re.compile(rb"<(?:ss:)?Cell[\s>/]"),
                 "vcard": re.compile(rb"BEGIN:VCARD", re.IGNORECASE),
                 "html": re.compile(rb"<t[dh][\s>]", re.IGNORECASE)}


def _cell_estimate(kind: str, data: bytes) -> int:
    """Cells a table-producing reader will make, for the message-wide cell budget."""
    marker = _CELL_MARKERS.get(kind)
    if marker is None:
        return 0
    count = sum(1 for _ in marker.finditer(data))
    return count * 7 if kind == "vcard" else count


def _workbook(
    path: str, data: bytes, ctx: Context, ooxml: bool, depth: int = 0
) -> Iterator[Unit]:
    if ooxml and not _ooxml_size_ok(data, ctx):
        yield Unscannable(path, "too_large", "workbook content over the part limit")
        return
    yield from office.extract_workbook(path, data, ctx, ooxml, depth)


def _ooxml_size_ok(data: bytes, ctx: Context) -> bool:
    """Cheap guard against a workbook that is a zip bomb (declared sizes only)."""
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        total = sum(i.file_size for i in zf.infolist())
    return total <= ctx.limits.max_part_bytes


def _maybe_message(data: bytes, ext: str, content_type: str | None) -> bool:
    """Text that may be a mail: named or typed one, or opening with a damaged header block
    (a clean one was sniffed as a message and never gets here)."""
    from dlp_gateway.extract.sniff import mail_header

    return ext in _MESSAGE_EXTENSIONS or content_type in _MESSAGE_TYPES or (
        mail_header(data) is not None
    )


def _as_option(units: Iterator[Unit], group: str, option: str) -> Iterator[Unit]:
    """``units`` as one option of the alternative readings ``group``."""
    for unit in units:
        if isinstance(unit, TextUnit):
            unit = dataclasses.replace(unit, alt=((group, option), *unit.alt))
        elif isinstance(unit, TableUnit):
            unit.alt = ((group, option), *unit.alt)
        yield unit


def _text(
    path: str,
    data: bytes,
    ctx: Context,
    depth: int,
    kind: str,
    content_type: str | None,
    charset: str | None,
) -> Iterator[Unit]:
    ext = extension(path)
    if _maybe_message(data, ext, content_type):
        # both readings, the one with more person records counts: a damaged mail still
        # decodes its base64 parts, and a file that only wears a mail's name (a vCard
        # relabelled .eml, whose lines the parser would take for header fields) is text
        from dlp_gateway.extract.mime import extract_embedded_message
        from dlp_gateway.extract.sniff import without_stray_lines

        group = f"{path}#message"
        mail = without_stray_lines(data)
        yield from _as_option(extract_embedded_message(path, mail, ctx, depth), group, "mail")
        yield from _as_option(_plain(path, data, ctx, depth, kind, content_type, charset),
                              group, "text")
        return
    yield from _plain(path, data, ctx, depth, kind, content_type, charset)


def _plain(
    path: str,
    data: bytes,
    ctx: Context,
    depth: int,
    kind: str,
    content_type: str | None,
    charset: str | None,
) -> Iterator[Unit]:
    """Text or HTML (not a mail)."""
    ext = extension(path)
    head = data[:4096].decode("latin-1")
    if kind == "html" or ext in _HTML_EXTENSIONS or content_type == "text/html" or (
        looks_like_html(head)
    ):
        cells = _cell_estimate("html", data)
        if cells and not ctx.take_cells(cells):
            yield Unscannable(path, "too_large", f"about {cells} cells over the limit")
            return
        yield from _html(path, data, charset)
        return
    if text_profile(data) == "text":
        data = clean_text_bytes(data)
    units, cells = text.text_file_units(path, data, ext, charset)
    readings: list[Unit] = []
    for unit in units:
        readings.append(unit)
        if isinstance(unit, TextUnit):
            table = _fixed_width_table(unit)
            if table is not None:  # the same reading as columns: the better one counts
                readings[-1] = dataclasses.replace(unit, alt=_alt(unit, "text"))
                readings.append(table)
                cells = max(cells, unit.text.count("\n") * 8)
    if cells and not ctx.take_cells(cells):
        yield Unscannable(path, "too_large", f"about {cells} cells over the limit")
        return
    yield from readings


def _alt(unit: TextUnit, option: str) -> tuple[tuple[str, str], ...]:
    return ((f"{unit.part}#layout", option), *unit.alt)  # one group over all readings


def _fixed_width_table(unit: TextUnit) -> TableUnit | None:
    """Free text that may be a fixed-width export, as a table (an alternative reading:
    prose with aligned lines keeps its keyword context in the text reading)."""
    from dlp_gateway.extract import fixedwidth

    table = fixedwidth.fixed_width_table(unit.text, unit.part, unit.location)
    if table is not None:
        table.alt = _alt(unit, "fixed_width")
    return table


def _html(path: str, data: bytes, charset: str | None) -> Iterator[Unit]:
    """HTML: its tables (an HTML table saved as .xls) as tables and the rest as text,
    and, as an alternative reading of the same part, the text of every plausible
    decoding (``html_units``: broken tags that swallow numbers); the reading with the
    most person records counts."""
    from dlp_gateway.extract import htmltable

    declared = charset or meta_charset(data)
    source = text.decode_bytes(data, declared)
    tables, rest = htmltable.split_tables(source)
    if not tables:
        yield from html_units(path, path, data, charset)
        return
    group = f"{path}#html"
    as_tables: tuple[tuple[str, str], ...] = ((group, "tables"),)
    for index, rows in enumerate(tables, 1):
        location = f"{path}!table{index}" if len(tables) > 1 else path
        yield TableUnit(part=path, location=location, rows=lambda r=rows: iter(r),
                        alt=as_tables)
    body = html_to_text(rest)
    if body.strip():
        yield TextUnit(body, part=path, location=f"{path}!text", alt=as_tables)
    for unit in html_units(path, f"{path}[html]", data, charset):
        yield dataclasses.replace(unit, alt=((group, "text"), *unit.alt))
