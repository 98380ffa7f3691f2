"""Outlook .msg files and OLE packages (embedded objects).

A .msg is an OLE compound file of MAPI properties (MS-OXMSG): subject, sender and
recipients' display names, plain/HTML body, and attachment storages, which may hold
a file (``37010102``) or another message (``3701000D``). Read with olefile directly:
no extra dependency. Bodies are attachment content (not ``in_body``): the .msg is a
file attached to the mail, so encrypting attachments does protect it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

import olefile

from dlp_gateway.extract.archive import Dispatch
from dlp_gateway.extract.units import TextUnit, Unit, Unscannable

if TYPE_CHECKING:
    from dlp_gateway.extract.files import Context

_ATTACH = "__attach_version1.0_#"
_HEADER_PROPS = (("0037", "件名"), ("0C1A", "差出人"), ("0E04", "宛先"), ("0E03", "CC"))


class _Msg:
    """One message inside an OLE file: the storage at ``prefix`` (root = [])."""

    def __init__(self, ole: olefile.OleFileIO, prefix: list[str], entries: list[list[str]]):
        self.ole, self.prefix, self.entries = ole, prefix, entries

    def children(self) -> list[str]:
        n = len(self.prefix)
        return sorted({e[n] for e in self.entries if len(e) > n and e[:n] == self.prefix})

    def stream(self, name: str) -> bytes | None:
        entry = [*self.prefix, name]
        if entry not in self.entries or self.ole.get_type(entry) != olefile.STGTY_STREAM:
            return None
        return self.ole.openstream(entry).read()

    def text(self, prop: str) -> str | None:
        """A string property, Unicode (001F) or 8-bit (001E, usually cp932)."""
        from dlp_gateway.extract.text import decode_bytes

        raw = self.stream(f"__substg1.0_{prop}001F")
        if raw is not None:
            return raw.decode("utf-16-le", errors="replace").rstrip("\0")
        raw = self.stream(f"__substg1.0_{prop}001E")
        if raw is not None:
            return decode_bytes(raw.rstrip(b"\0"))
        return None


def _rtf_body(compressed: bytes) -> tuple[str | None, bool]:
    """(text, intact) of a compressed RTF body: no text if it does not decompress, not
    intact if its groups do not balance (text may be missing: the caller holds it)."""
    from dlp_gateway.extract.rtf import decompress_rtf, rtf_to_text

    damage: list[str] = []
    try:
        text = rtf_to_text(decompress_rtf(compressed), damage)
    except (ValueError, struct.error, IndexError):
        return None, False
    return text, not damage


def ole_damage(ole: olefile.OleFileIO, path: str) -> Iterator[Unscannable]:
    """``corrupt`` when olefile met broken structure while reading (a chain out of range,
    a stream shorter than declared): what was read is scanned, but streams may hold
    bytes read from the wrong sectors, so the part is held."""
    if ole.parsing_issues:
        issues = sorted({message for _, message in ole.parsing_issues})
        yield Unscannable(path, "corrupt", "damaged OLE structure: " + "; ".join(issues[:3]))


def extract_msg(path: str, data: bytes, ctx: Context, depth: int, dispatch: Dispatch
                ) -> Iterator[Unit]:
    """Headers, body and attachments of an Outlook .msg file."""
    ole = olefile.OleFileIO(data)
    try:
        entries = ole.listdir(streams=True, storages=True)
        yield from _message(path, _Msg(ole, [], entries), ctx, depth, dispatch)
        yield from ole_damage(ole, path)
    finally:
        ole.close()


def _message(path: str, msg: _Msg, ctx: Context, depth: int, dispatch: Dispatch
             ) -> Iterator[Unit]:
    from dlp_gateway.extract.html import html_to_text
    from dlp_gateway.extract.text import decode_bytes

    headers = [f"{label}: {value}" for prop, label in _HEADER_PROPS
               if (value := msg.text(prop))]
    body = msg.text("1000")
    if body is None:
        html = msg.stream("__substg1.0_10130102")
        html_text = msg.text("1013")
        if html is not None:
            body = html_to_text(decode_bytes(html))
        elif html_text is not None:
            body = html_to_text(html_text)
    compressed_rtf = msg.stream("__substg1.0_10090102")
    if body is None and compressed_rtf is not None:
        body, intact = _rtf_body(compressed_rtf)
        if not intact:
            yield Unscannable(f"{path}!body", "corrupt", "unreadable compressed RTF body")
    text = "\n".join([*headers, "", body or ""])
    yield TextUnit(text, part=path, location=f"{path}!body")
    attachments = [c for c in msg.children() if _attachment_storage(msg, c)]
    if attachments and depth + 1 > ctx.limits.max_depth:
        yield Unscannable(path, "too_deep", f"attachments nested over {ctx.limits.max_depth}")
        return
    used: set[str] = set()
    for index, storage in enumerate(attachments[: ctx.limits.max_members], 1):
        yield from _attachment(path, msg, storage, index, used, ctx, depth, dispatch)


def _attachment_storage(msg: _Msg, child: str) -> bool:
    """An attachment storage: by its name, or - a damaged name - by holding attachment
    data (any storage but the recipients' and the named-property map is read)."""
    if child.startswith(_ATTACH):
        return True
    if child.startswith(("__recip_version1.0_", "__nameid_version1.0")):
        return False
    entry = [*msg.prefix, child]
    return entry in msg.entries and msg.ole.get_type(entry) == olefile.STGTY_STORAGE


def _attachment(path: str, msg: _Msg, storage: str, index: int, used: set[str], ctx: Context,
                depth: int, dispatch: Dispatch) -> Iterator[Unit]:
    sub = _Msg(msg.ole, [*msg.prefix, storage], msg.entries)
    name = sub.text("3707") or sub.text("3704") or sub.text("3001") or f"attachment-{index}"
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip() or f"attachment-{index}"
    if name in used:
        name = f"{index}-{name}"
    used.add(name)
    child = f"{path}/{name}"
    embedded = [*sub.prefix, "__substg1.0_3701000D"]
    if embedded in msg.entries:
        inner = _Msg(msg.ole, embedded, msg.entries)
        yield from _message(child if name.lower().endswith(".msg") else f"{child}.msg",
                            inner, ctx, depth + 1, dispatch)
        return
    content = sub.stream("__substg1.0_37010102")
    if content is None:
        yield Unscannable(child, "unsupported_format", "attachment without data (OLE object?)")
        return
    if not ctx.take_bytes(len(content)):
        yield Unscannable(child, "too_large", "content over the total limit")
        return
    yield from dispatch(child, content, ctx, depth + 1)


# --- OLE packages: files embedded as objects in Office documents ----------------------------


def extract_ole_package(path: str, data: bytes, ctx: Context, depth: int, dispatch: Dispatch
                        ) -> Iterator[Unit]:
    """An embedded object (``oleObject1.bin``): its ``Package`` or ``Ole10Native`` payload."""
    if depth + 1 > ctx.limits.max_depth:
        yield Unscannable(path, "too_deep", f"embedded objects nested over {ctx.limits.max_depth}")
        return
    with olefile.OleFileIO(data) as ole:
        if ole.exists("Package"):
            package = ole.openstream("Package").read()
            yield from ole_damage(ole, path)
            yield from dispatch(f"{path}/package", package, ctx, depth + 1)
            return
        native = ole.openstream("\x01Ole10Native").read()
        yield from ole_damage(ole, path)
    name, content = _ole10native(native)
    yield from dispatch(f"{path}/{name}", content, ctx, depth + 1)


def _cstring(data: bytes, pos: int) -> tuple[bytes, int]:
    end = data.index(b"\0", pos)
    return data[pos:end], end + 1


def _ole10native(native: bytes) -> tuple[str, bytes]:
    """(file name, bytes) of an Ole10Native stream; the raw payload if the layout differs."""
    try:
        pos = 4 + 2
        label, pos = _cstring(native, pos)
        _, pos = _cstring(native, pos)
        pos += 4
        (temp_len,) = struct.unpack_from("<I", native, pos)
        pos += 4 + temp_len
        (size,) = struct.unpack_from("<I", native, pos)
        pos += 4
        if pos + size > len(native):
            raise ValueError("payload past the end")
        name = label.decode("cp932", errors="replace").replace("\\", "/").rsplit("/", 1)[-1]
        return name or "object.bin", native[pos : pos + size]
    except (ValueError, struct.error):
        return "object.bin", native[4:]

