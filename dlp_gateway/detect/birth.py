"""Birth dates: a date is one only by its context (header, label before, suffix after).

Finding dates in their many written forms is ``dates.py``; this module decides
which of them are births, using ``patterns/birth_date.toml``.
"""

from __future__ import annotations

import datetime as dt

from dlp_gateway.detect.dates import (
    excel_serial_to_date,
    find_dates,
    is_plausible_birth_date,
    parse_date_number,
    parse_date_text,
)
from dlp_gateway.detect.normalize import LabelIndex, fold
from dlp_gateway.detect.numbers import Hit
from dlp_gateway.detect.patterns import BirthDatePatterns

_SUFFIX_BLOCKERS = set("産活成徒涯命協存物")  # 生産, 生活, 生成, 生徒 ... are not births
MASKED_DATE = "****年**月**日"


def find_birth_dates(
    text: str,
    labels: LabelIndex,
    patterns: BirthDatePatterns,
    today: dt.date,
    header_context: bool = False,
) -> list[Hit]:
    hits = []
    matches = list(find_dates(text))
    in_range = _range_members(text, matches, patterns.range_connectors)
    for index, match in enumerate(matches):
        if index in in_range or not is_plausible_birth_date(match.value, today):
            continue
        nearest = labels.nearest_before(match.start, patterns.label_window)
        if nearest is not None and not nearest.positive:
            continue
        if nearest is not None:
            confidence = 0.95
        elif _has_birth_suffix(text, match.end, patterns) or header_context:
            confidence = 0.9
        else:
            continue
        hits.append(Hit("birth_date", match.start, match.end, MASKED_DATE, confidence))
    return hits


def _range_members(text: str, matches: list, connectors: tuple[str, ...]) -> set[int]:
    """Indexes of dates joined to the next date by a range connector (A〜B, AからB)."""
    members: set[int] = set()
    for index in range(len(matches) - 1):
        between = text[matches[index].end : matches[index + 1].start].strip(" \u3000()（）")
        if between and between in connectors:
            members.update((index, index + 1))
    return members


def _has_birth_suffix(text: str, end: int, patterns: BirthDatePatterns) -> bool:
    rest = text[end : end + patterns.suffix_window + 4].lstrip(" )）")
    for suffix in patterns.suffixes:
        if rest.startswith(suffix):
            after = rest[len(suffix) : len(suffix) + 1]
            return len(suffix) > 1 or after not in _SUFFIX_BLOCKERS
    return False


def birth_date_in_cell(value: object, today: dt.date) -> dt.date | None:
    """The plausible date in a cell of a birth-date column or row, or None."""
    date = cell_date(value)
    return date if date is not None and is_plausible_birth_date(date, today) else None


def cell_date(value: object) -> dt.date | None:
    """A cell's value as a date: a real date cell, yyyymmdd / GYYMMDD or serial number, or text."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return _number_date(value)
    if isinstance(value, str):
        text = fold(value.strip())
        if not text:
            return None
        parsed = parse_date_text(text)
        if parsed is None and text.isdigit():
            parsed = _number_date(int(text))
        if parsed is None:
            found = find_dates(text)
            parsed = found[0].value if len(found) == 1 else None
        return parsed
    return None


def _number_date(value: float) -> dt.date | None:
    if isinstance(value, float) and not value.is_integer():
        return excel_serial_to_date(value)
    number = int(value)
    if number >= 1_000_000:
        return parse_date_number(number)
    return excel_serial_to_date(float(number)) if number > 0 else None
