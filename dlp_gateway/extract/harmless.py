"""Known-harmless kinds (``patterns/harmless.toml``): magic bytes plus a structure walk.

A kind is harmless only if its structure check walks the file to its end: a PNG's
chunks up to IEND with good CRCs, a JPEG's segments up to EOI, a GIF's blocks up to
the trailer, a font's table directory... Anything after the end other than NUL
padding (or, for JPEG, a second JPEG: multi-picture files) makes the part not
harmless, so a polyglot (an image with a csv appended) is never waved through.
"""

from __future__ import annotations

import os
import struct
import tomllib
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from dlp_gateway.detect.patterns import DEFAULT_PATTERNS_DIR, PatternError

MAX_TEXT_METADATA = 4096  # bytes of PNG/GIF text chunks an image may carry and stay harmless

Check = Callable[[bytes], int | None]  # end offset of the structure, or None if invalid


@dataclass(frozen=True, slots=True)
class HarmlessKind:
    kind: str
    magic: bytes
    offset: int
    check: str


# --- structure checks ---------------------------------------------------------------------


def _empty(data: bytes) -> int | None:
    return 0 if not data else None


def _zeros(data: bytes) -> int | None:
    return len(data) if not data.strip(b"\0") else None


def _png(data: bytes) -> int | None:
    pos, text_bytes, first = 8, 0, True
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if length > 1 << 31 or end > len(data) or (first and kind != b"IHDR"):
            return None
        crc = struct.unpack_from(">I", data, end - 4)[0]
        if zlib.crc32(data[pos + 4 : end - 4]) != crc:
            return None
        if kind in (b"tEXt", b"zTXt", b"iTXt", b"eXIf"):
            text_bytes += length
            if text_bytes > MAX_TEXT_METADATA:
                return None
        if kind == b"IEND":
            return end
        pos, first = end, False
    return None


def _jpeg(data: bytes) -> int | None:
    pos = 2
    while pos < len(data):
        if data[pos] != 0xFF:
            return None
        while pos < len(data) and data[pos] == 0xFF:
            pos += 1
        if pos >= len(data):
            return None
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            return pos
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue
        if pos + 2 > len(data):
            return None
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > len(data):
            return None
        pos += length
        if marker == 0xDA:
            pos = _after_entropy(data, pos)
            if pos is None:
                return None
    return None


def _after_entropy(data: bytes, pos: int) -> int | None:
    """Position of the next marker after entropy-coded data (stuffed FF00 and RSTn skipped)."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return None
        following = data[pos + 1]
        if following == 0 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            pos += 1
            continue
        return pos


def _gif_sub_blocks(data: bytes, pos: int) -> tuple[int, int] | None:
    """(position after the block terminator, payload bytes) of a GIF sub-block chain."""
    total = 0
    while pos < len(data):
        size = data[pos]
        pos += 1
        if size == 0:
            return pos, total
        pos += size
        total += size
    return None


def _gif(data: bytes) -> int | None:
    if len(data) < 13:
        return None
    flags = data[10]
    pos = 13 + (3 * (1 << ((flags & 7) + 1)) if flags & 0x80 else 0)
    comments = 0
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:
            return pos + 1
        if block == 0x2C:
            if pos + 10 > len(data):
                return None
            local = data[pos + 9]
            pos += 10 + (3 * (1 << ((local & 7) + 1)) if local & 0x80 else 0) + 1
            chain = _gif_sub_blocks(data, pos)
        elif block == 0x21 and pos + 2 <= len(data):
            label = data[pos + 1]
            chain = _gif_sub_blocks(data, pos + 2)
            if chain and label in (0xFE, 0x01):  # comment, plain text
                comments += chain[1]
        else:
            return None
        if chain is None or comments > MAX_TEXT_METADATA:
            return None
        pos = chain[0]
    return None


def _bmp(data: bytes) -> int | None:
    if len(data) < 26:
        return None
    size, _, pixels, dib = struct.unpack_from("<IIII", data, 2)
    if dib not in (12, 40, 52, 56, 64, 108, 124) or size != len(data) or pixels >= size:
        return None
    return size


def _tiff(data: bytes) -> int | None:
    if len(data) < 8:
        return None
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    if ifd < 8 or ifd + 2 > len(data):
        return None
    (entries,) = struct.unpack_from(order + "H", data, ifd)
    if entries == 0 or ifd + 2 + 12 * entries > len(data):
        return None
    return len(data)


def _webp(data: bytes) -> int | None:
    if len(data) < 16 or data[8:12] != b"WEBP":
        return None
    (size,) = struct.unpack_from("<I", data, 4)
    end = 8 + size + (size & 1)
    return end if end <= len(data) + 1 else None


def _ico(data: bytes) -> int | None:
    if len(data) < 6:
        return None
    _, kind, count = struct.unpack_from("<HHH", data, 0)
    if kind != 1 or not 0 < count <= 256 or 6 + 16 * count > len(data):
        return None
    end = 0
    for i in range(count):
        size, offset = struct.unpack_from("<II", data, 6 + 16 * i + 8)
        end = max(end, offset + size)
    return end if end <= len(data) else None


def _sfnt_end(data: bytes, base: int) -> int | None:
    if base + 12 > len(data):
        return None
    (tables,) = struct.unpack_from(">H", data, base + 4)
    if not 0 < tables <= 200 or base + 12 + 16 * tables > len(data):
        return None
    end = 0
    for i in range(tables):
        offset, length = struct.unpack_from(">II", data, base + 12 + 16 * i + 8)
        end = max(end, offset + length)
    return end if end <= len(data) else None


def _ttf(data: bytes) -> int | None:
    end = _sfnt_end(data, 0)
    return None if end is None else max(end, (end + 3) & ~3)


def _ttc(data: bytes) -> int | None:
    if len(data) < 12:
        return None
    (fonts,) = struct.unpack_from(">I", data, 8)
    if not 0 < fonts <= 256 or 12 + 4 * fonts > len(data):
        return None
    ends = [_sfnt_end(data, struct.unpack_from(">I", data, 12 + 4 * i)[0]) for i in range(fonts)]
    if any(e is None for e in ends):
        return None
    end = max(e for e in ends if e is not None)
    return max(end, (end + 3) & ~3)


def _woff(data: bytes) -> int | None:
    if len(data) < 44:
        return None
    (length,) = struct.unpack_from(">I", data, 8)
    return length if length == len(data) else None


def _appledouble(data: bytes) -> int | None:
    if len(data) < 26:
        return None
    (entries,) = struct.unpack_from(">H", data, 24)
    if entries > 64 or 26 + 12 * entries > len(data):
        return None
    end = 26 + 12 * entries
    for i in range(entries):
        _, offset, length = struct.unpack_from(">III", data, 26 + 12 * i)
        end = max(end, offset + length)
    return end if end <= len(data) else None


def _ds_store(data: bytes) -> int | None:
    if len(data) < 36:
        return None
    offset, size, offset2 = struct.unpack_from(">III", data, 8)
    if offset != offset2 or offset + size + 4 > len(data):
        return None
    return len(data)


def _emf(data: bytes) -> int | None:
    """EMF: header record (type 1) with " EMF" signature; nBytes is the file size."""
    if len(data) < 88 or data[40:44] != b" EMF":
        return None
    (size,) = struct.unpack_from("<I", data, 48)
    return size if size <= len(data) else None


def _wmf(data: bytes) -> int | None:
    """WMF (optionally placeable): the header's size field (in 16-bit words)."""
    base = 22 if data[:4] == b"\xd7\xcd\xc6\x9a" else 0
    if len(data) < base + 18:
        return None
    header_words, _version, size_words = struct.unpack_from("<HHI", data, base + 2)
    if header_words != 9:
        return None
    end = base + 2 * size_words
    return end if end <= len(data) else None


CHECKS: dict[str, Check] = {
    "emf": _emf,
    "wmf": _wmf,
    "empty": _empty,
    "zeros": _zeros,
    "png": _png,
    "jpeg": _jpeg,
    "gif": _gif,
    "bmp": _bmp,
    "tiff": _tiff,
    "webp": _webp,
    "ico": _ico,
    "ttf": _ttf,
    "ttc": _ttc,
    "woff": _woff,
    "woff2": _woff,
    "appledouble": _appledouble,
    "ds_store": _ds_store,
}


# --- the data file ------------------------------------------------------------------------


@lru_cache(maxsize=4)
def load_harmless(directory: str | None = None) -> tuple[HarmlessKind, ...]:
    """Kinds from ``harmless.toml`` in ``directory`` (default: DLP_PATTERNS_DIR or bundled)."""
    base = Path(directory or os.environ.get("DLP_PATTERNS_DIR") or DEFAULT_PATTERNS_DIR)
    file = base / "harmless.toml"
    if not file.is_file():
        file = DEFAULT_PATTERNS_DIR / "harmless.toml"
    with file.open("rb") as fh:
        doc = tomllib.load(fh)
    kinds = []
    for i, raw in enumerate(doc.get("harmless", [])):
        check = raw.get("check", "")
        if check not in CHECKS:
            raise PatternError(f"harmless.toml harmless[{i}]: unknown check {check!r}")
        magic = bytes.fromhex(str(raw.get("magic", "")).replace(" ", ""))
        kinds.append(HarmlessKind(str(raw["kind"]), magic, int(raw.get("offset", 0)), check))
    return tuple(kinds)


def _trailer_ok(kind: HarmlessKind, rest: bytes) -> bool:
    if not rest.strip(b"\x00"):
        return True
    # multi-picture JPEGs (MPF: depth maps, previews) are JPEGs one after another
    return kind.check == "jpeg" and rest.startswith(b"\xff\xd8\xff") and _whole(kind, rest, 1)


def _whole(kind: HarmlessKind, data: bytes, depth: int = 0) -> bool:
    try:
        end = CHECKS[kind.check](data)
    except (struct.error, IndexError, ValueError):
        return False
    if end is None or end > len(data):
        return False
    return depth < 8 and _trailer_ok(kind, data[end:]) if end < len(data) else True


def harmless_kind(data: bytes, directory: str | None = None) -> str | None:
    """The harmless kind ``data`` is, judged by magic and a full structure walk; else None."""
    for kind in load_harmless(directory):
        if data[kind.offset : kind.offset + len(kind.magic)] != kind.magic:
            continue
        if kind.check != "empty" and not data:
            continue
        if _whole(kind, data):
            return kind.kind
    return None
