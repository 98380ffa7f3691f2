"""Finding and validating date expressions (Japanese eras and Western forms).

Pure mechanism, no I/O. Whether a date is a *birth* date is decided by the caller
from context (labels, headers); this module only says "here is a real date".

Every era date is checked twice: it must exist in the Gregorian calendar and it
must fall inside its era (平成元年1月7日 and 令和元年4月30日 do not exist).

明治 is taken to start on 1868-01-25, the Gregorian equivalent of 明治元年1月1日
as commonly used by conversion tables (the era was proclaimed on 1868-10-23 and
applied retroactively to the start of the lunar year). Dates are converted with
Gregorian arithmetic throughout, so early-Meiji dates (before the 1873 calendar
reform) are approximate; they are far outside any plausible birth date anyway.
"""

from __future__ import annotations

import datetime
import math
import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "ERAS",
    "DateMatch",
    "Era",
    "excel_serial_to_date",
    "find_dates",
    "is_plausible_birth_date",
    "parse_date_number",
    "parse_date_text",
    "wareki_to_date",
]


@dataclass(frozen=True, slots=True)
class Era:
    """A Japanese era: names, numeric code (GYYMMDD) and its Gregorian range."""

    name: str  # 昭和
    kanji: str  # 昭
    letter: str  # S
    code: int  # 3 (明治=1 .. 令和=5)
    start: datetime.date
    end: datetime.date | None  # inclusive; None while the era is current

    def to_date(self, year: int, month: int, day: int) -> datetime.date | None:
        """The Gregorian date of 〈era〉year年month月day日, or None if it does not exist."""
        if year < 1:
            return None
        try:
            value = datetime.date(self.start.year + year - 1, month, day)
        except ValueError:
            return None
        if value < self.start or (self.end is not None and value > self.end):
            return None
        return value


ERAS: tuple[Era, ...] = (
    Era("明治", "明", "M", 1, datetime.date(1868, 1, 25), datetime.date(1912, 7, 29)),
    Era("大正", "大", "T", 2, datetime.date(1912, 7, 30), datetime.date(1926, 12, 24)),
    Era("昭和", "昭", "S", 3, datetime.date(1926, 12, 25), datetime.date(1989, 1, 7)),
    Era("平成", "平", "H", 4, datetime.date(1989, 1, 8), datetime.date(2019, 4, 30)),
    Era("令和", "令", "R", 5, datetime.date(2019, 5, 1), None),
)

_ERA_BY_KEY: dict[str, Era] = {}
for _era in ERAS:
    for _key in (_era.name, _era.kanji, _era.letter, _era.letter.lower(), str(_era.code)):
        _ERA_BY_KEY[_key] = _era

_MIN_YEAR = 1900
_MAX_YEAR = 2100


@dataclass(frozen=True, slots=True)
class DateMatch:
    """A date found in text; ``start``/``end`` index the text given to find_dates."""

    start: int
    end: int
    value: datetime.date
    form: str  # "wareki" | "wareki_abbrev" | "wareki_kanji" | "seireki" | "compact" | "english"


# --- patterns -----------------------------------------------------------------

_K = "〇○零一二三四五六七八九十"  # kanji numerals (十 as tens, 〇/○/零 as zero)
_SEP = r"[./\-．／－]"
_SP = r"[ \t]*"
_LETTERS = "MTSHRmtshr"
# Each pattern starts with one character class so that the re engine can skip
# ahead to candidate characters (a 100 KB mail body is scanned in well under a
# millisecond when it holds no dates); lookbehinds therefore follow the first char.
#
# The same year in the other calendar in brackets: 昭和12年(1937年)3月4日, 1937年(昭和12年)3月4日.
_ALT_SEIREKI = rf"(?:{_SP}\({_SP}\d{{4}}{_SP}年?{_SP}\))?"
_ALT_WAREKI = (
    rf"(?:{_SP}\({_SP}(?:[明大昭平令][治正和成]?|[{_LETTERS}]\.?){_SP}(?:元|\d{{1,2}}){_SP}年?{_SP}\))?"
)
# Era-led: 昭和45年3月2日, 昭和四十五年三月二日, S45年3月2日, 昭和 45 年 3 月 2 日,
# S45.3.2, S.45.3.2, H元.4.1, 昭45.3.2, 昭和45/3/2. The era pair (明治, 昭和...) is
# checked in Python, see _ERA_PAIRS.
_ERA_LED = (
    rf"(?P<era>[明大昭平令{_LETTERS}])(?<![A-Za-z][{_LETTERS}])(?P<era2>[治正和成])?"
    rf"(?:(?<=[{_LETTERS}])\.[ \t]?)?{_SP}"
    rf"(?:(?P<jy>元|\d{{1,2}}|[{_K}]{{1,4}}){_SP}年{_ALT_SEIREKI}"
    rf"{_SP}(?P<jm>\d{{1,2}}|[{_K}]{{1,3}}){_SP}月"
    rf"{_SP}(?P<jd>\d{{1,2}}|[{_K}]{{1,3}}){_SP}日"
    rf"|(?P<sy>元|\d{{1,2}})(?P<ssep>{_SEP})(?P<sm>\d{{1,2}})(?P=ssep)(?P<sd>\d{{1,2}})"
    rf"(?!\d)(?!{_SEP}\d))"
)
# Digit-led, never inside a longer or grouped number:
# 1970/03/02, 1970-3-2, 1970.3.2, 1970年3月2日, and compact 19700302.
_GROUP_SEP = r"[./\-,．／－]"
_DIGIT_LED = (
    rf"(?P<d0>\d)(?<!\d\d)(?<!\d{_GROUP_SEP}\d)(?:"
    rf"(?P<wy>\d{{3}})(?:(?P<wsep>{_SEP})(?P<wm>\d{{1,2}})(?P=wsep)(?P<wd>\d{{1,2}})"
    rf"(?!\d)(?!{_SEP}\d)"
    rf"|{_SP}年{_ALT_WAREKI}{_SP}(?P<wm2>\d{{1,2}}){_SP}月{_SP}(?P<wd2>\d{{1,2}}){_SP}日)"
    rf"|(?P<c>\d{{7}})(?!\d)(?!{_GROUP_SEP}\d))"
)
# English: March 04, 1937 / Mar. 4, 1937 / 4 March 1937 / 4th Mar 1937.
_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_MONTH_NAME = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)(?![a-z])\.?"
)
_ORDINAL = r"(?:st|nd|rd|th)?"
_ENGLISH = (
    rf"(?<![a-z])(?P<em>{_MONTH_NAME})[ \t]*(?P<ed>\d{{1,2}}){_ORDINAL},?[ \t]*"
    rf"(?P<ey>\d{{4}})(?!\d)"
    rf"|(?<!\d)(?P<ed2>\d{{1,2}}){_ORDINAL}[ \t]*(?P<em2>{_MONTH_NAME}),?[ \t]*"
    rf"(?P<ey2>\d{{4}})(?!\d)"
)
_ERA_RE = re.compile(_ERA_LED)
_DIGIT_RE = re.compile(_DIGIT_LED)
_ENGLISH_RE = re.compile(_ENGLISH, re.IGNORECASE)
# A cell may carry a time of day (1970-03-02 00:00:00) or a 生/生まれ suffix.
_CELL_SUFFIX = rf"(?:[ T]{_SP}\d{{1,2}}:\d{{2}}(?::\d{{2}}(?:\.\d+)?)?)?(?:{_SP}生まれ|{_SP}生)?"
_CELL_ERA_RE = re.compile(_ERA_LED + _CELL_SUFFIX)
_CELL_DIGIT_RE = re.compile(_DIGIT_LED + _CELL_SUFFIX)
_ERA_PAIRS = {era.name for era in ERAS}
_ERA_KANJI = {era.kanji for era in ERAS}
_HAS_DIGIT = re.compile(r"\d")
_KANJI_DIGITS = {"〇": 0, "○": 0, "零": 0, "一": 1, "二": 2, "三": 3, "四": 4,
                 "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}  # fmt: skip


# --- number helpers -------------------------------------------------------------


def _kanji_int(text: str) -> int | None:
    """二十三 -> 23, 十 -> 10, 三十 -> 30, 四五 -> 45 (positional), 元 -> 1."""
    if text == "元":
        return 1
    if text.isdigit():
        return int(text)
    if "十" in text:
        tens, _, units = text.partition("十")
        if "十" in units or len(tens) > 1 or len(units) > 1:
            return None
        tens_value = _KANJI_DIGITS.get(tens) if tens else 1
        units_value = _KANJI_DIGITS.get(units) if units else 0
        if tens_value is None or units_value is None:
            return None
        return tens_value * 10 + units_value
    value = 0
    for ch in text:
        digit = _KANJI_DIGITS.get(ch)
        if digit is None:
            return None
        value = value * 10 + digit
    return value


def _has_kanji_numeral(*parts: str) -> bool:
    return any(part != "元" and not part.isdigit() for part in parts)


def _gregorian(year: int, month: int, day: int) -> datetime.date | None:
    try:
        return datetime.date(year, month, day)
    except ValueError:
        return None


def wareki_to_date(era: str | int, year: int, month: int, day: int) -> datetime.date | None:
    """Convert an era date; ``era`` is 昭和, 昭, S/s or the code 1..5. None if invalid."""
    found = _ERA_BY_KEY.get(str(era))
    return found.to_date(year, month, day) if found is not None else None


# --- matching ------------------------------------------------------------------


def _era_of(m: re.Match[str]) -> tuple[Era, bool] | None:
    """The era of an era-led match and whether it was written in full (昭和)."""
    first, second = m.group("era"), m.group("era2")
    if second is None:
        if first in _ERA_KANJI and _inside_word(m.string, m.start()):
            return None  # 最大3.4.5, 公平2.1.3: part of a word, not an era
        return _ERA_BY_KEY[first], False
    if first + second not in _ERA_PAIRS:
        return None  # 明和, S和 ...
    return _ERA_BY_KEY[first], True


def _inside_word(text: str, pos: int) -> bool:
    """True when a single-kanji era at ``pos`` follows another ideograph.

    The label characters of 生年月日 / 出生 are allowed (生年月日昭45.3.2).
    """
    if pos == 0:
        return False
    before = text[pos - 1]
    return ("\u4e00" <= before <= "\u9fff" or before == "々") and before not in "日年生"


def _convert(m: re.Match[str]) -> tuple[datetime.date, str] | None:
    """Turn one regex match into (date, form), or None when the date does not exist."""
    if m.re.groupindex.get("era") is not None:
        return _convert_wareki(m)
    if m.re.groupindex.get("em") is not None:
        return _convert_english(m)
    if m.group("wy") is not None:
        year = int(m.group("d0") + m.group("wy"))
        if not _MIN_YEAR <= year <= _MAX_YEAR:
            return None
        month = m.group("wm") or m.group("wm2")
        day = m.group("wd") or m.group("wd2")
        value = _gregorian(year, int(month), int(day))
        return (value, "seireki") if value is not None else None
    value = _yyyymmdd(m.group("d0") + m.group("c"))
    return (value, "compact") if value is not None else None


def _convert_english(m: re.Match[str]) -> tuple[datetime.date, str] | None:
    month = _MONTHS[(m.group("em") or m.group("em2"))[:3].lower()]
    year = int(m.group("ey") or m.group("ey2"))
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        return None
    value = _gregorian(year, month, int(m.group("ed") or m.group("ed2")))
    return (value, "english") if value is not None else None


def _convert_wareki(m: re.Match[str]) -> tuple[datetime.date, str] | None:
    era_full = _era_of(m)
    if era_full is None:
        return None
    era, full = era_full
    if m.group("sy") is not None:
        year = _kanji_int(m.group("sy"))
        assert year is not None
        value = era.to_date(year, int(m.group("sm")), int(m.group("sd")))
        return (value, "wareki_abbrev") if value is not None else None
    parts = (m.group("jy"), m.group("jm"), m.group("jd"))
    numbers = [_kanji_int(p) for p in parts]
    if numbers[0] is None or numbers[1] is None or numbers[2] is None:
        return None
    value = era.to_date(numbers[0], numbers[1], numbers[2])
    if value is None:
        return None
    if _has_kanji_numeral(*parts):
        return value, "wareki_kanji"
    return value, "wareki" if full else "wareki_abbrev"


def _yyyymmdd(digits: str) -> datetime.date | None:
    year = int(digits[:4])
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        return None
    return _gregorian(year, int(digits[4:6]), int(digits[6:8]))


def find_dates(text: str) -> list[DateMatch]:
    """Every valid date expression in ``text`` (expected NFKC-normalised), in order."""
    if "年" not in text and _HAS_DIGIT.search(text) is None:
        return []
    found: list[DateMatch] = []
    for pattern in (_ERA_RE, _DIGIT_RE, _ENGLISH_RE):
        for m in pattern.finditer(text):
            converted = _convert(m)
            if converted is not None:
                found.append(DateMatch(m.start(), m.end(), converted[0], converted[1]))
    if not found:
        return found
    found.sort(key=lambda d: (d.start, -d.end))
    kept = [found[0]]
    for match in found[1:]:
        if match.start >= kept[-1].end:
            kept.append(match)
    return kept


def parse_date_text(text: str) -> datetime.date | None:
    """The date when the whole (stripped) string is one date, e.g. a table cell.

    Accepts every form find_dates finds, an optional trailing time (``1970-03-02
    00:00:00``) or 生/生まれ, and a bare 7- or 8-digit string read as parse_date_number does
    (CSV exports store era-coded GYYMMDD birth dates as text).
    """
    s = unicodedata.normalize("NFKC", text).strip()
    if not s:
        return None
    if s.isascii() and s.isdigit():
        return parse_date_number(int(s)) if len(s) in (7, 8) else None
    m = _CELL_ERA_RE.fullmatch(s) or _CELL_DIGIT_RE.fullmatch(s)
    if m is None:
        return None
    converted = _convert(m)
    return converted[0] if converted is not None else None


def parse_date_number(value: int) -> datetime.date | None:
    """yyyymmdd (19000101..21001231) or era-coded GYYMMDD (1=明治..5=令和)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    if 19000101 <= value <= 21001231:
        return _yyyymmdd(str(value))
    if 1000000 <= value <= 9999999:
        era = _ERA_BY_KEY.get(str(value // 1000000))
        if era is None:
            return None
        rest = value % 1000000
        return era.to_date(rest // 10000, rest // 100 % 100, rest % 100)
    return None


def excel_serial_to_date(serial: float, date1904: bool = False) -> datetime.date | None:
    """Date of an Excel serial number (the fraction, a time of day, is dropped).

    1900 system: serial 1 is 1900-01-01 and serial 60 is Lotus's fictitious
    1900-02-29 (None); from 61 on, days count from 1899-12-30. 1904 system:
    serial 0 is 1904-01-01.
    """
    if isinstance(serial, bool) or not isinstance(serial, int | float):
        return None
    if not math.isfinite(serial) or serial < 0:
        return None
    days = int(serial)
    try:
        if date1904:
            return datetime.date(1904, 1, 1) + datetime.timedelta(days=days)
        if days == 0 or days == 60:
            return None
        epoch = datetime.date(1899, 12, 31) if days < 60 else datetime.date(1899, 12, 30)
        return epoch + datetime.timedelta(days=days)
    except OverflowError:
        return None


def is_plausible_birth_date(d: datetime.date, today: datetime.date) -> bool:
    """Not in the future and an age of 0..120 years on ``today``."""
    if d > today:
        return False
    age = today.year - d.year - ((today.month, today.day) < (d.month, d.day))
    return 0 <= age <= 120
