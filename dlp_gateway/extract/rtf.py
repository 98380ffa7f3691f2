"""RTF documents and Outlook's compressed RTF bodies (MS-OXRTFCP) -> plain text.

Japanese RTF keeps its text in escapes (``\\'93\\'fa`` in the ``\\ansicpg932`` code
page, or ``\\u26085?``), so scanning the raw file would see no Japanese at all:
it is decoded here. Destinations that hold no document text (font and colour
tables, pictures, ``{\\*\\...}`` groups) are skipped.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator

from dlp_gateway.extract.units import NOT_THIS_FORMAT, Unit, Unscannable

_INIT_DICT = (
    b"{\\rtf1\\ansi\\mac\\deff0\\deftab720{\\fonttbl;}{\\f0\\fnil \\froman \\fswiss \\fmodern "
    b"\\fscript \\fdecor MS Sans SerifSymbolArialTimes New RomanCourier{\\colortbl\\red0\\green0"
    b"\\blue0\r\n\\par \\pard\\plain\\f0\\fs20\\b\\i\\u\\tab\\tx"
)
_TOKEN = re.compile(
    rb"\\([a-zA-Z]+)(-?\d+)? ?|\\'([0-9a-fA-F]{2})|\\(.)|([{}])|([^\\{}\r\n]+)|[\r\n]+",
    re.DOTALL,
)
_SKIP_DESTINATIONS = {b"fonttbl", b"colortbl", b"stylesheet", b"info", b"pict", b"object",
                      b"header", b"footer", b"listtable", b"listoverridetable", b"rsidtbl",
                      b"generator", b"themedata", b"colorschememapping", b"datastore",
                      b"latentstyles", b"xmlnstbl", b"fldinst"}
_BREAKS = {b"par": "\n", b"line": "\n", b"row": "\n", b"cell": "\t", b"tab": "\t", b"sect": "\n",
           b"page": "\n"}


def decompress_rtf(data: bytes, max_size: int = 64 << 20) -> bytes:
    """Outlook's PR_RTF_COMPRESSED: LZFu (or MELA, stored) -> RTF bytes."""
    comp_size, raw_size, kind, _crc = struct.unpack_from("<IIII", data, 0)
    body = data[16 : 4 + comp_size]
    if kind == 0x414C454D:  # "MELA": not compressed
        return body[:raw_size]
    if kind != 0x75465A4C:  # "LZFu"
        raise ValueError("not a compressed RTF stream")
    window = bytearray(4096)
    window[: len(_INIT_DICT)] = _INIT_DICT
    write = len(_INIT_DICT)
    out = bytearray()
    pos = 0
    while pos < len(body):
        control = body[pos]
        pos += 1
        for bit in range(8):
            if pos >= len(body):
                break
            if control & (1 << bit):
                (token,) = struct.unpack_from(">H", body, pos)
                pos += 2
                offset, length = token >> 4, (token & 0xF) + 2
                if offset == write:
                    return bytes(out)
                for i in range(length):
                    byte = window[(offset + i) % 4096]
                    out.append(byte)
                    window[write] = byte
                    write = (write + 1) % 4096
            else:
                byte = body[pos]
                pos += 1
                out.append(byte)
                window[write] = byte
                write = (write + 1) % 4096
            if len(out) > max_size:
                raise ValueError("compressed RTF larger than the limit")
    return bytes(out)


def rtf_to_text(data: bytes, damage: list[str] | None = None) -> str:
    """Visible text of an RTF document (code page from \\ansicpg, default cp932).

    Braces that do not balance go to ``damage``: a lost ``}`` leaves the rest of the
    document inside a skipped destination (``{\\*\\generator x;|`` hides every row).
    """
    codepage = "cp932"
    match = re.search(rb"\\ansicpg(\d+)", data[:2048])
    if match:
        codepage = f"cp{match.group(1).decode()}"
    out: list[str] = []
    pending = bytearray()  # \'xx bytes, decoded together (a cp932 character is two)
    stack: list[tuple[bool, int]] = []
    skipping, uc, skip_chars = False, 1, 0

    def flush() -> None:
        if pending:
            try:
                out.append(pending.decode(codepage, errors="replace"))
            except LookupError:
                out.append(pending.decode("cp932", errors="replace"))
            pending.clear()

    for m in _TOKEN.finditer(data):
        word, arg, hexbyte, symbol, brace, plain = m.groups()
        if hexbyte is not None:
            if skip_chars:
                skip_chars -= 1
            elif not skipping:
                pending.append(int(hexbyte, 16))
            continue
        if plain is not None:
            if not skipping:
                cut = min(skip_chars, len(plain))
                skip_chars -= cut
                pending.extend(plain[cut:])
            continue
        flush()
        if brace == b"{":
            stack.append((skipping, uc))
        elif brace == b"}":
            if not stack and damage is not None:
                damage.append("a } closes no group")
            skipping, uc = stack.pop() if stack else (False, 1)
        elif word is not None:
            skip_chars = 0
            if word in _SKIP_DESTINATIONS:
                skipping = True
            elif word == b"uc" and arg:
                uc = int(arg)
            elif word == b"u" and arg and not skipping:
                out.append(chr(int(arg) % 65536))
                skip_chars = uc
            elif word in _BREAKS and not skipping:
                out.append(_BREAKS[word])
        elif symbol is not None:
            if symbol == b"*":
                skipping = True
            elif symbol in (b"\\", b"{", b"}") and not skipping:
                out.append(symbol.decode())
            elif symbol == b"~" and not skipping:
                out.append(" ")
    flush()
    if stack and damage is not None:
        damage.append(f"{len(stack)} group(s) never closed")
    return "".join(out)


def extract_rtf(path: str, data: bytes) -> Iterator[Unit]:
    if data.lstrip()[:5] != b"{\\rtf":
        yield Unscannable(path, "corrupt", f"{NOT_THIS_FORMAT}RTF without {{\\rtf")
        return
    from dlp_gateway.extract.text import text_units

    damage: list[str] = []
    text = rtf_to_text(data, damage)
    if damage:  # what was read is scanned; text inside a group left open may be missing
        yield Unscannable(path, "corrupt", f"RTF groups do not balance: {damage[0]}")
    unit, _ = text_units(path, text.encode("utf-8"), ".txt", "utf-8")  # a Word table: rows
    yield unit
