"""One file (an attachment, an archive member, a path on the command line) -> units.

``extract_part`` is the single dispatch point: it sniffs the content and hands the
bytes to the right reader. Whatever a reader raises becomes ``Unscannable(part,
"corrupt")`` for that file only; extraction goes on with the next part.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

from dlp_gateway.extract import archive, office, text
from dlp_gateway.extract.html import html_units, looks_like_html
from dlp_gateway.extract.sniff import extension, sniff
from dlp_gateway.extract.units import Limits, Skipped, Unit, Unscannable

_HTML_EXTENSIONS = {".html", ".htm", ".xhtml", ".mht", ".mhtml"}
_MESSAGE_EXTENSIONS = {".eml"}


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
    try:
        if len(data) > ctx.limits.max_part_bytes:
            yield Unscannable(path, "too_large", f"{len(data)} bytes over the part limit")
            return
        yield from _dispatch(path, data, ctx, depth, content_type, charset)
    except MemoryError:  # over the memory cap of the scan (see extract/isolate.py)
        yield Unscannable(path, "too_large", "memory limit")
    except Exception as exc:
        yield Unscannable(path, "corrupt", f"{type(exc).__name__}: {exc}")


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
    kind = sniff(path, data)
    ext = extension(path)
    if kind.kind == "empty":
        yield Skipped(path, "empty")
    elif kind.kind == "corrupt":
        yield Unscannable(path, "corrupt", kind.detail)
    elif kind.kind == "encrypted_office":
        yield Unscannable(path, "encrypted_office", kind.detail)
    elif kind.kind == "skip":
        yield from _skipped(path, data, ctx, depth, kind.content_type)
    elif kind.kind == "zip":
        yield from archive.extract_zip(path, data, ctx, depth, _member_dispatch)
    elif kind.kind in ("xlsx", "xls", "ods"):
        yield from _workbook(path, data, ctx, kind.kind == "xlsx" and ext != ".xlsb", depth)
    elif kind.kind == "docx":
        yield from office.extract_docx(path, data, ctx, depth)
    elif kind.kind == "pptx":
        yield from office.extract_pptx(path, data, ctx, depth)
    else:
        yield from _text(path, data, ctx, depth, ext, content_type, charset)


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


def _skipped(
    path: str, data: bytes, ctx: Context, depth: int, content_type: str
) -> Iterator[Unit]:
    if content_type == "application/ms-tnef":
        yield from archive.extract_tnef(path, data, ctx, depth, _member_dispatch)
        return
    yield Skipped(path, content_type)


def _text(
    path: str,
    data: bytes,
    ctx: Context,
    depth: int,
    ext: str,
    content_type: str | None,
    charset: str | None,
) -> Iterator[Unit]:
    if ext in _MESSAGE_EXTENSIONS or content_type in ("message/rfc822", "message/global"):
        from dlp_gateway.extract.mime import extract_embedded_message

        yield from extract_embedded_message(path, data, ctx, depth)
        return
    head = data[:4096].decode("latin-1")
    if ext in _HTML_EXTENSIONS or content_type == "text/html" or looks_like_html(head):
        yield from html_units(path, path, data, charset)
        return
    units, cells = text.text_file_units(path, data, ext, charset)
    if cells and not ctx.take_cells(cells):
        yield Unscannable(path, "too_large", f"about {cells} cells over the limit")
        return
    yield from units
