"""Word 97-2003 (.doc) and PowerPoint 97-2003 (.ppt) text, read from the OLE streams.

.doc: the document text is the piece table (``Clx`` in the 0Table/1Table stream,
located by the FIB): each piece is cp1252 bytes ("compressed") or UTF-16LE. Table
cells end with U+0007; consecutive lines holding cells become table rows (one
person per row), the rest is text. Field codes (between U+0013 and U+0014) are
dropped, field results kept.

.ppt: every TextCharsAtom (UTF-16LE) and TextBytesAtom (cp1252) record of the
"PowerPoint Document" stream, walking the record tree.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator

import olefile

from dlp_gateway.extract.units import CellValue, Row, TableUnit, TextUnit, Unit, Unscannable

_FIELD_CODE = re.compile("\x13[^\x13\x14\x15]*\x14")
_DROP = dict.fromkeys(map(ord, "\x13\x14\x15\x01\x08\x0c\x02\x05"), None)
MAX_PIECES = 100_000


def _clx_offset(fib: bytes) -> tuple[int, int]:
    """(fcClx, lcbClx) from the FIB, wherever its variable-size parts put them."""
    pos = 32
    (csw,) = struct.unpack_from("<H", fib, pos)
    pos += 2 + csw * 2
    (cslw,) = struct.unpack_from("<H", fib, pos)
    pos += 2 + cslw * 4
    (pairs,) = struct.unpack_from("<H", fib, pos)
    if pairs <= 33:
        raise ValueError("FIB has no Clx entry")
    return struct.unpack_from("<II", fib, pos + 2 + 66 * 4)


def _pieces(table: bytes, fc: int, lcb: int) -> tuple[list[int], list[int]]:
    clx = table[fc : fc + lcb]
    pos = 0
    while pos < len(clx) and clx[pos] == 0x01:  # Prc: property modifiers, skipped
        (size,) = struct.unpack_from("<H", clx, pos + 1)
        pos += 3 + size
    if pos >= len(clx) or clx[pos] != 0x02:
        raise ValueError("no piece table in Clx")
    (size,) = struct.unpack_from("<I", clx, pos + 1)
    plc = clx[pos + 5 : pos + 5 + size]
    count = min((len(plc) - 4) // 12, MAX_PIECES)
    cps = list(struct.unpack_from(f"<{count + 1}I", plc, 0))
    fcs = [struct.unpack_from("<I", plc, 4 * (count + 1) + 8 * i + 2)[0] for i in range(count)]
    return cps, fcs


def doc_text(data: bytes, damage: list[str] | None = None) -> str:
    """The document text; olefile's structure complaints go to ``damage``."""
    with olefile.OleFileIO(data) as ole:
        fib = ole.openstream("WordDocument").read()
        table_name = "1Table" if struct.unpack_from("<H", fib, 0x0A)[0] & 0x0200 else "0Table"
        table = ole.openstream(table_name).read()
        if damage is not None:
            damage.extend(message for _, message in ole.parsing_issues)
    fc, lcb = _clx_offset(fib)
    cps, fcs = _pieces(table, fc, lcb)
    parts: list[str] = []
    for i, raw_fc in enumerate(fcs):
        chars = max(cps[i + 1] - cps[i], 0)
        if raw_fc & 0x40000000:
            start = (raw_fc & ~0x40000000) // 2
            parts.append(fib[start : start + chars].decode("cp1252", errors="replace"))
        else:
            parts.append(fib[raw_fc : raw_fc + 2 * chars].decode("utf-16-le", errors="replace"))
    return "".join(parts)


def _split_doc(text: str) -> tuple[list[str], list[list[CellValue]]]:
    text = _FIELD_CODE.sub("", text).translate(_DROP)
    lines: list[str] = []
    rows: list[list[CellValue]] = []
    # a table row is cells ending in \x07 followed by the row-end mark \x07
    for paragraph in text.replace("\x07\x07", "\x07\r").split("\r"):
        if "\x07" in paragraph:
            cells = [c.strip() or None for c in paragraph.split("\x07")]
            while cells and cells[-1] is None:
                cells.pop()
            if cells:
                rows.append(cells)
        else:
            lines.append(paragraph.replace("\x0b", "\n"))
    return lines, rows


def _damaged(path: str, damage: list[str]) -> Iterator[Unit]:
    if damage:  # see msg.ole_damage
        yield Unscannable(path, "corrupt", "damaged OLE structure: "
                          + "; ".join(sorted(set(damage))[:3]))


def extract_doc(path: str, data: bytes) -> Iterator[Unit]:
    damage: list[str] = []
    text = doc_text(data, damage)
    if text.count("\x00") > len(text) // 10:  # Word text holds no NULs: the pieces or the
        damage.append("text pieces hold NUL bytes")  # sector chains point at the wrong bytes
    lines, rows = _split_doc(text)
    yield from _damaged(path, damage)
    yield TextUnit("\n".join(lines), part=path, location=f"{path}!body", line_label="p")
    if rows:
        table = [Row(i, cells) for i, cells in enumerate(rows, 1)]
        yield TableUnit(part=path, location=f"{path}!table", rows=lambda: iter(table),
                        cell_style="rc")


# --- PowerPoint ----------------------------------------------------------------------------

_TEXT_CHARS, _TEXT_BYTES, _CSTRING = 0x0FA0, 0x0FA8, 0x0FBA


def _ppt_records(stream: bytes, start: int, end: int, damage: list[str], depth: int = 0
                 ) -> Iterator[str]:
    pos = start
    while pos + 8 <= end:
        ver_inst, kind, size = struct.unpack_from("<HHI", stream, pos)
        body = pos + 8
        if body + size > end:  # a record past its container: read what is there, held
            damage.append(f"record at {pos} runs past its container")
            size = end - body
        if ver_inst & 0x000F == 0x000F and depth < 32:
            yield from _ppt_records(stream, body, body + size, damage, depth + 1)
        elif kind in (_TEXT_CHARS, _CSTRING):
            yield stream[body : body + size].decode("utf-16-le", errors="replace")
        elif kind == _TEXT_BYTES:
            yield stream[body : body + size].decode("cp1252", errors="replace")
        elif size >= 8 and (text := _utf16_text(stream[body : body + size])):
            yield text  # an atom of another (or a damaged) type that holds plain text
        pos = body + size


def _utf16_text(body: bytes) -> str | None:
    """``body`` as UTF-16LE if nearly all of it is printable text (binary atoms - sizes,
    flags, NUL-padded font names - are not)."""
    if len(body) % 2:
        return None
    text = body.decode("utf-16-le", errors="replace")
    printable = sum(1 for c in text if c.isprintable() or c in "\r\n\t\x0b")
    return text if printable >= len(text) * 0.9 else None


def extract_ppt(path: str, data: bytes) -> Iterator[Unit]:
    with olefile.OleFileIO(data) as ole:
        stream = ole.openstream("PowerPoint Document").read()
        damage = [message for _, message in ole.parsing_issues]
    texts = [t.replace("\r", "\n").replace("\x0b", "\n")
             for t in _ppt_records(stream, 0, len(stream), damage)]
    yield from _damaged(path, damage)
    yield TextUnit("\n".join(texts), part=path, location=f"{path}!text")
