"""Column validators: the cells of one field in one row -> the value found, or None.

Layout (``layout.py``) says which columns make up a field and what kind it is; these
functions only judge values. Every value goes through the fold body text gets
(``fold_cell``: NFKC and dashes) before it is judged, so full-width digits and dashes
read as ASCII here, as they do in body text; validators fold on a cache miss, so a
roster's repeated values are folded once.
The column-at-a-time path (``colscan.py``) calls them once per distinct value of a
column (and repeats their rules for plain digits, tested to agree).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import regex

from dlp_gateway.detect.birth import birth_date_in_cell, cell_date
from dlp_gateway.detect.dates import ERAS, is_plausible_birth_date, parse_date_text
from dlp_gateway.detect.names import is_name_cell
from dlp_gateway.detect.normalize import fold
from dlp_gateway.detect.numbers import cell_digits, is_valid_my_number
from dlp_gateway.detect.patterns import InsuredPatterns
from dlp_gateway.extract.units import CellValue

_ERA_NAMES = {e.name for e in ERAS} | {e.letter for e in ERAS} | {e.letter.lower() for e in ERAS}
_ERA_NAMES |= {e.kanji for e in ERAS}
_DIGITS_ONLY = regex.compile(r"^\d+$")
_KANJI_SYMBOL = regex.compile(r"^\s*\p{Han}{1,6}\s*$")
# Excel drops a My Number's leading zeros when it is typed as a number: a value this long
# or longer is padded back to 12 digits (shorter ones are counts, not lost zeros).
MIN_PADDED_DIGITS = 8
# A reading joined to a name: 山田太郎（ヤマダタロウ）, 山田太郎 / ヤマダタロウ, or a second line.
_JOINED_READING = regex.compile(r"\s*(?:[(（\[［【].*|[/／\n].*)$", regex.DOTALL)


def fold_cell(value: CellValue) -> CellValue:
    """The one folding shared with body text (NFKC, dashes), applied to text cells."""
    if type(value) is str and not value.isascii():
        return fold(value)
    return value


def is_masked(value: CellValue, mask: str) -> bool:
    return isinstance(value, str) and any(ch in mask for ch in value)


def my_number_value(cells: Sequence[CellValue], mask: str) -> str | None:
    """A My Number in one cell, or spread over adjacent cells (4-4-4 or one digit each)."""
    cells = [fold_cell(c) for c in cells]
    first = cells[0]
    if first is None or first == "" or is_masked(first, mask):
        return None
    digits = cell_digits(first)
    if digits is None:
        return None
    lost_zero = MIN_PADDED_DIGITS <= len(digits) < 12 and (len(cells) == 1 or len(digits) >= 10)
    plain_text = isinstance(first, str) and first.strip().isdigit()
    if len(digits) == 11 or (lost_zero and (plain_text or isinstance(first, int | float))):
        digits = digits.zfill(12)  # Excel dropped the leading zero (also in its csv exports)
    if len(digits) == 12:
        return digits if is_valid_my_number(digits) else None
    if len(cells) == 1:
        return None
    joined = _joined_digits(cells, 12)
    return joined if joined and is_valid_my_number(joined) else None


def _joined_digits(cells: Sequence[CellValue], total: int) -> str | None:
    parts = [c for c in cells if c is not None and c != ""]
    if not parts:
        return None
    width = total // len(parts) if total % len(parts) == 0 else None
    out = []
    for value in parts:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            if isinstance(value, float) and not value.is_integer():
                return None
            text = str(int(value))
            if width and len(text) < width:
                text = text.zfill(width)
        elif isinstance(value, str) and _DIGITS_ONLY.match(_unspaced(value)):
            text = _unspaced(value)  # a PDF may join two of the cells: 5305 0380 | 8276
        else:
            return None
        out.append(text)
        if sum(len(t) for t in out) >= total:
            break
    joined = "".join(out)
    return joined if len(joined) == total else None


def _unspaced(value: str) -> str:
    return value.strip().replace("-", "").replace(" ", "")


def insured_value(
    cells: Sequence[CellValue], patterns: InsuredPatterns, by_title: bool = False
) -> str | None:
    """An insured number (記号・番号 joined or spread over 記号 | 番号 | 枝番 cells)."""
    mask = patterns.mask_characters
    parts = []
    symbol = False
    for value in map(fold_cell, cells):
        if value is None or value == "":
            continue
        if is_masked(value, mask):
            return None
        digits = cell_digits(value)
        if digits is None:
            if parts:
                break
            if not symbol and len(cells) > 1 and _KANJI_SYMBOL.match(str(value)):
                symbol = True  # 宮延 | 12345 | 00: a 記号 of kanji, the digits follow
                continue
            return None
        parts.append(digits)
    digits = "".join(parts)
    if by_title:
        return digits if len(digits) in patterns.title_lengths else None
    longest = patterns.cell_max_digits + (4 * (len(parts) - 1))  # 記号 | 番号 | 枝番
    if patterns.cell_min_digits <= len(digits) <= longest:
        return digits
    return None


def lost_zero_insured(value: CellValue, pad_to: int) -> str | None:
    """A digit-only value shorter than ``pad_to`` in an insured column of long numbers:
    the number Excel stored without its leading zeros (546 for 00000546), padded back."""
    value = fold_cell(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        text = str(value) if value > 0 else ""
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        text = value.strip()
    else:
        return None
    if not text or len(text) >= pad_to or not text.strip("0"):
        return None
    return text.zfill(pad_to)


_CACHE_LIMIT = 200_000
_DATES: dict[str, dt.date | None] = {}
_NAMES: dict[str, str | None] = {}


def _text_date(text: str) -> dt.date | None:
    """``cell_date`` of a text cell, remembered: a roster has few distinct dates."""
    try:
        return _DATES[text]
    except KeyError:
        if len(_DATES) > _CACHE_LIMIT:
            _DATES.clear()
        value = _DATES[text] = cell_date(text)
        return value


def birth_value(cells: Sequence[CellValue], today: dt.date) -> dt.date | None:
    """A birth date in one cell, or split over 元号 | 年 | 月 | 日 (or 年 | 月 | 日) cells."""
    first = cells[0]
    if len(cells) > 1 and type(first) is int and 1000 <= first <= 9999:
        first = None  # a year cell of 生年 | 月 | 日: an Excel serial it is not
    if first is None:
        found = None
    elif type(first) is str:
        date = _text_date(first)
        found = date if date is not None and is_plausible_birth_date(date, today) else None
    else:
        found = birth_date_in_cell(first, today)
    if found is not None or len(cells) == 1:
        return found
    text = _joined_date(cells)
    return birth_date_in_cell(text, today) if text else None


def _joined_date(cells: Sequence[CellValue]) -> str | None:
    parts = [str(c).strip() for c in cells if c is not None and c != ""]
    parts = [p for p in parts if p not in ("年", "月", "日")]  # unit cells: 令和 | 5 | 年 | 9 | 月
    parts = [p[:-1] if p[-1:] in "年月日" and len(p) > 1 else p for p in parts]
    if len(parts) >= 4 and parts[0] in _ERA_NAMES:
        era = parts[0]
        if len(era) == 1:  # S / 昭 -> 昭和
            era = next((e.name for e in ERAS if era in (e.letter, e.letter.lower(), e.kanji)), era)
        return f"{era}{parts[1]}年{parts[2]}月{parts[3]}日"
    if len(parts) >= 3 and all(p.isdigit() for p in parts[:3]):
        return f"{parts[0]}年{parts[1]}月{parts[2]}日"
    if len(parts) >= 3 and parts[1].isdigit() and parts[2].isdigit():  # 昭和45 | 3 | 2
        return f"{parts[0]}年{parts[1]}月{parts[2]}日"
    if len(parts) >= 2 and parts[0] in _ERA_NAMES:  # 昭和 | 45.3.2
        return f"{parts[0]}{parts[1]}"
    return None


def name_value(cells: Sequence[CellValue], max_length: int) -> str | None:
    """A name in a name field: 姓 | 名 joined, a reading after it stripped."""
    if len(cells) == 1:
        value = cells[0]
        if type(value) is not str:
            return None
        try:
            return _NAMES[value]
        except KeyError:
            if len(_NAMES) > _CACHE_LIMIT:
                _NAMES.clear()
            found = _NAMES[value] = _name_parts([fold_cell(value)], max_length)
            return found
    return _name_parts([fold_cell(c) for c in cells], max_length)


# from the first bracket to a closing one at the end: （S12.3.4生）, （1937年（昭和12年）3月4日生）
_BRACKETED_TAIL = regex.compile(r"[(（]\s*(.{4,30}?)\s*[)）]\s*$")


def joined_birth(value: CellValue, today: dt.date) -> dt.date | None:
    """A birth date in brackets after a name in one cell: 山田太郎（S12.3.4生）."""
    if type(value) is not str or ("(" not in value and "（" not in value):
        return None
    found = _BRACKETED_TAIL.search(value)
    if found is None:
        return None
    date = parse_date_text(fold(found.group(1)))
    return date if date is not None and is_plausible_birth_date(date, today) else None


def _name_parts(cells: Sequence[CellValue], max_length: int) -> str | None:
    parts = []
    for value in cells:
        if not isinstance(value, str) or not value.strip():
            continue
        text = _JOINED_READING.sub("", value.strip()) or value.strip()
        if not is_name_cell(text, max_length):
            return None
        parts.append(text)
    return " ".join(parts) if parts else None
