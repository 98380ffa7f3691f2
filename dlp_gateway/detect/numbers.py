"""My Number and insured-person numbers: candidates, check digits, context.

Mechanisms only; the words that make context (keywords, headers, labels, windows)
come from ``patterns/my_number.toml`` and ``patterns/insured_number.toml``.
"""

from __future__ import annotations

from dataclasses import dataclass

import regex
from stdnum.jp import in_ as my_number_check

from dlp_gateway.detect.findings import mask_number
from dlp_gateway.detect.normalize import LabelIndex
from dlp_gateway.detect.patterns import InsuredPatterns, MyNumberPatterns

# 12 digits, contiguous or 4-4-4 with one consistent separator; digit lookarounds,
# never \b (it does not fire between a kanji and a digit).
_MY_NUMBER_TEXT = regex.compile(
    r"(?<!\d)(?<!\d[-.])"
    r"(?:(?P<plain>\d{12})|(?P<a>\d{4})(?P<sep>[-. ])(?P<b>\d{4})(?P=sep)(?P<c>\d{4}))"
    r"(?!\d)(?!(?P=sep)\d)"
)
_DIGIT_RUN = regex.compile(r"(?<![\d-])\d(?:[\d-]*\d)?(?![\d-]*\d)")
_NON_DIGIT = regex.compile(r"\D+")
_DATE_SHAPE = regex.compile(r"(?:19|20)\d{2}-\d{1,2}-\d{1,2}")


@dataclass(frozen=True, slots=True)
class Hit:
    """A detection in free text: a span of the folded text."""

    type: str
    start: int
    end: int
    masked: str
    confidence: float


def is_valid_my_number(digits: str) -> bool:
    """12 digits, correct check digit, not all one digit."""
    if len(digits) != 12 or not digits.isdigit() or digits == digits[0] * 12:
        return False
    return my_number_check.calc_check_digit(digits[:11]) == digits[11]


def cell_digits(value: object, pad_to: int | None = None) -> str | None:
    """The digits of a cell holding one number (separators allowed), else None.

    Excel stores a My Number typed as a number without its leading zero, so an
    integer cell is padded to ``pad_to`` digits when given.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        digits = str(value)
        if pad_to and len(digits) < pad_to:
            digits = digits.zfill(pad_to)
        return digits
    if isinstance(value, float):
        return cell_digits(int(value), pad_to) if value.is_integer() and value >= 0 else None
    if isinstance(value, str):
        stripped = _NON_DIGIT.sub("", value)
        # Only a cell that is essentially a number: digits plus separators/spaces.
        if stripped and len(value.strip()) <= len(stripped) + 6:
            return stripped
    return None


def my_number_in_cell(value: object) -> str | None:
    """The My Number in a cell of a My Number column or row, or None."""
    digits = cell_digits(value, pad_to=12 if isinstance(value, int | float) else None)
    return digits if digits and is_valid_my_number(digits) else None


def find_my_numbers(
    text: str, labels: LabelIndex, patterns: MyNumberPatterns, header_context: bool = False
) -> list[Hit]:
    """My Numbers in folded free text.

    A valid number counts when no negative label (注文番号, 口座番号...) stands right
    before it, and it has a keyword within the window, a governing header, or the
    4-4-4 grouping.
    """
    hits = []
    heads: dict[int, bool] = {}
    for m in _MY_NUMBER_TEXT.finditer(text):
        digits = m.group("plain") or (m.group("a") + m.group("b") + m.group("c"))
        if not is_valid_my_number(digits):
            continue
        nearest = labels.nearest_before(m.start(), patterns.label_window)
        if nearest is not None and not nearest.positive:
            continue
        if nearest is None and _negative_on_line(text, labels, m.start(), patterns.keyword_window):
            continue
        if nearest is None and _negative_column_head(text, labels, m.start(), heads):
            continue
        if nearest is not None or header_context:
            confidence = 0.99
        elif labels.positive_within(m.start(), m.end(), patterns.keyword_window):
            confidence = 0.9
        elif m.group("sep"):
            confidence = 0.7
        else:
            continue
        hits.append(Hit("my_number", m.start(), m.end(), mask_number(digits), confidence))
    return hits


def _negative_column_head(
    text: str, labels: LabelIndex, start: int, heads: dict[int, bool]
) -> bool:
    """A number first on its line, under lines that each start with a number, under a line
    that starts with a negative label (予約番号 over a column of 4-4-4 numbers in text a
    PDF or a mail lays out with spaces): that column head is the number's nearest label.
    ``heads`` remembers the answer per line start (a long column is walked once)."""
    line = text.rfind("\n", 0, start) + 1
    if text[line:start].strip():
        return False
    walked = []
    answer = False
    while line > 0:
        if line in heads:
            answer = heads[line]
            break
        walked.append(line)
        above = text.rfind("\n", 0, line - 1) + 1
        first = len(text[above : line - 1]) - len(text[above : line - 1].lstrip())
        head = above + first
        if head >= line - 1:
            break  # a blank line: no column head
        if text[head].isdigit():
            line = above  # another row of the column
            continue
        label = next((x for x in labels.labels if x.start == head), None)
        answer = label is not None and not label.positive
        break
    for at in walked:
        heads[at] = answer
    return answer


def _negative_on_line(text: str, labels: LabelIndex, start: int, window: int) -> bool:
    """The nearest label earlier on the same line is a negative one (Web会議のID ... 4652-...)."""
    label = labels.nearest_before(start, window)
    return label is not None and not label.positive and "\n" not in text[label.end : start]


def find_insured_numbers(
    text: str, labels: LabelIndex, patterns: InsuredPatterns, header_context: bool = False
) -> list[Hit]:
    """Insured-person numbers in folded free text: by keyword only (no check digit)."""
    hits = [_symbol_number_hit(m) for m in patterns.symbol_number.finditer(text)]
    taken = [(h.start, h.end) for h in hits]
    if not labels and not header_context:
        return hits
    for m in _DIGIT_RUN.finditer(text):
        if any(s <= m.start() < e for s, e in taken):
            continue
        digits = m.group().replace("-", "")
        if len(digits) not in patterns.text_lengths or _DATE_SHAPE.fullmatch(m.group()):
            continue  # 1949-07-27 is a date, not an 8-digit insured number
        nearest = labels.nearest_before(m.start(), patterns.keyword_window)
        if nearest is None and not header_context:
            continue
        if nearest is not None and not nearest.positive:
            continue
        hits.append(Hit("insured_number", m.start(), m.end(), mask_number(digits), 0.9))
    return hits


def _symbol_number_hit(m: regex.Match) -> Hit:
    digits = (m.group("symbol") or "") + m.group("number") + (m.group("branch") or "")
    return Hit("insured_number", m.start(), m.end(), mask_number(digits), 0.85)


def insured_number_in_cell(value: object, patterns: InsuredPatterns) -> str | None:
    """The insured number in a cell of an insured-number column, or None."""
    digits = cell_digits(value)
    if digits and patterns.cell_min_digits <= len(digits) <= patterns.cell_max_digits:
        return digits
    return None
