"""vCard (.vcf) address books: one table row per card, so FN + BDAY counts as a person.

Phones and Outlook export vCard 2.1 with ``CHARSET=SHIFT_JIS;ENCODING=QUOTED-PRINTABLE``
values; those are decoded. Columns get Japanese headers the table engine knows
(氏名, フリガナ, 生年月日, 住所, 電話番号, 備考).
"""

from __future__ import annotations

import datetime as dt
import quopri
import re
from collections.abc import Iterator

from dlp_gateway.extract.units import (
    NOT_THIS_FORMAT,
    CellValue,
    Row,
    TableUnit,
    TextUnit,
    Unit,
    Unscannable,
)

COLUMNS = (("FN", "氏名"), ("X-PHONETIC", "フリガナ"), ("BDAY", "生年月日"), ("ADR", "住所"),
           ("TEL", "電話番号"), ("EMAIL", "メール"), ("NOTE", "備考"))
# Any other property's text goes to one more column (a damaged NOTD: is still read);
# these carry no text a person wrote.
OTHER = "その他"
_NO_PROPERTY = " "  # a line without "name:" inside a card
_NOT_TEXT = {"VERSION", "PHOTO", "LOGO", "SOUND", "KEY", "BEGIN", "END"}
_BDAY = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")


def _unfold(text: str) -> list[str]:
    lines: list[str] = []
    for raw in re.split(r"\r\n|\r|\n", text):  # not splitlines(): a form feed is no break
        if lines and raw[:1] in (" ", "\t"):
            lines[-1] += raw[1:]
        elif lines and lines[-1].endswith("=") and "QUOTED-PRINTABLE" in lines[-1].upper():
            lines[-1] = lines[-1][:-1] + raw
        else:
            lines.append(raw)
    return lines


def _property(line: str) -> tuple[str, str] | None:
    if ":" not in line:
        return None
    head, value = line.split(":", 1)
    name, *params = head.split(";")
    name = name.rsplit(".", 1)[-1].upper()  # item1.TEL -> TEL
    upper = [p.upper() for p in params]
    if "ENCODING=QUOTED-PRINTABLE" in upper or "QUOTED-PRINTABLE" in upper:
        charset = next((p.split("=", 1)[1] for p in params if p.upper().startswith("CHARSET=")),
                       "utf-8")
        raw = quopri.decodestring(value.encode("ascii", "replace"))
        try:
            value = raw.decode(charset, errors="replace")
        except LookupError:
            value = raw.decode("utf-8", errors="replace")
    if name == "N" and value:
        return "N", " ".join(p for p in value.split(";")[:2] if p)
    if name.startswith("X-PHONETIC") or name == "SORT-STRING":
        return "X-PHONETIC", value.replace(";", " ").strip()
    return name, value.replace(";", " ").replace("\\n", " ").replace("\\,", ",").strip()


def _bday(value: str) -> CellValue:
    match = _BDAY.search(value)
    if match:
        try:
            return dt.date(*(int(g) for g in match.groups()))
        except ValueError:
            pass
    return value or None


def _cards(lines: list[str], stray: list[str]) -> Iterator[dict[str, str]]:
    """The cards; lines outside any card go to ``stray`` and a line inside one that is no
    property goes to the card's other text (a damaged file loses no text). A card cut
    off by the end of the file is still a card."""
    card: dict[str, str] | None = None
    for line in lines:
        marker = line.strip().upper()
        if marker == "BEGIN:VCARD":
            if card:
                yield card
            card = {}
        elif marker == "END:VCARD" and card is not None:
            yield card
            card = None
        elif card is not None and (prop := _property(line)):
            name, value = prop
            card[name] = f"{card[name]} {value}" if name in card else value
        elif card is not None and line.strip():
            card[_NO_PROPERTY] = f"{card.get(_NO_PROPERTY, '')} {line.strip()}".strip()
        elif line.strip() and marker != "END:VCARD":
            stray.append(line)
    if card:
        yield card


def extract_vcard(path: str, data: bytes) -> Iterator[Unit]:
    from dlp_gateway.extract.text import decode_bytes

    stray: list[str] = []
    cards = list(_cards(_unfold(decode_bytes(data)), stray))
    if not cards:
        yield Unscannable(path, "corrupt", f"{NOT_THIS_FORMAT}vCard without BEGIN/END:VCARD")
        return
    known = {key for key, _ in COLUMNS} | {"N"} | _NOT_TEXT
    others = [" ".join(v for k, v in card.items() if k not in known and v) for card in cards]
    extra = [OTHER] if any(others) else []
    rows = [Row(1, [label for _, label in COLUMNS] + extra)]
    for number, (card, other) in enumerate(zip(cards, others, strict=True), 2):
        card.setdefault("FN", card.get("N", ""))
        cells: list[CellValue] = [card.get(key) or None for key, _ in COLUMNS]
        cells[2] = _bday(card.get("BDAY", ""))
        rows.append(Row(number, cells + ([other or None] if extra else [])))
    yield TableUnit(part=path, location=path, rows=lambda: iter(rows))
    if stray:
        yield TextUnit("\n".join(stray), part=path, location=f"{path}!text")
