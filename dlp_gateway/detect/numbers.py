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
# 4-4-4 broken by the mail client's hard wrap: one separator is a line break (and the
# reply's quote marks): "個人番号は 1234 5678\n9018". A wrap breaks the number once;
# counted only with a keyword.
_WRAPPED_MY_NUMBER = regex.compile(
    r"(?<!\d)(?<!\d[-.])(?P<a>\d{4})(?:[-. ]?\r?\n[> \t]*|[-. ])(?P<b>\d{4})"
    r"(?:[-. ]?\r?\n[> \t]*|[-. ])(?P<c>\d{4})(?!\d)"
)
_LONG_DIGIT_RUN = regex.compile(r"(?<!\d)\d{12,40}(?!\d)")
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


_GROUPED_CELL = regex.compile(r"\s*\d{4}([-. ])\d{4}\1\d{4}\s*")


def is_grouped_444(folded: str) -> bool:
    """A folded cell written 4-4-4 (1234 5678 9018, 1234-5678-9018): the grouping that
    makes a valid number in body text a My Number makes it one in a cell too."""
    return _GROUPED_CELL.fullmatch(folded) is not None


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
    if "\n" in text:
        hits += _wrapped_my_numbers(text, labels, patterns, hits)
        hits += _fixed_width_my_numbers(text, labels, patterns, hits)
    return hits


def _fixed_width_my_numbers(
    text: str, labels: LabelIndex, patterns: MyNumberPatterns, found: list[Hit]
) -> list[Hit]:
    """A host system's fixed-width export (00001399653494980ﾔﾏﾀﾞ ﾀﾛｳ  19521214): a digit
    run at the same column of many lines whose same 12 digits pass the check digit on
    (nearly) every line is a My Number column, as a headerless table column is. Inside
    a longer run every line must pass, over at least five lines: a random run passes at
    one offset on five lines about once in 30,000."""
    columns: dict[tuple[int, int], list[tuple[int, str]]] = {}
    line_start = 0
    for line in text.split("\n"):
        for m in _LONG_DIGIT_RUN.finditer(line):
            key = (m.start(), len(m.group()))
            columns.setdefault(key, []).append((line_start + m.start(), m.group()))
        line_start += len(line) + 1
    hits: list[Hit] = []
    for (_column, length), runs in columns.items():
        exact = length == 12
        need = patterns.column_min_values if exact else max(5, patterns.column_min_values)
        if len(runs) < need:
            continue
        nearest = labels.nearest_before(runs[0][0], patterns.keyword_window)
        if nearest is not None and not nearest.positive:
            continue  # 注文番号一覧 over the list
        for offset in range(length - 11):
            valid = [(s, d[offset : offset + 12]) for s, d in runs
                     if is_valid_my_number(d[offset : offset + 12])]
            share = len(valid) / len(runs)
            if len(valid) < need or share < (patterns.column_checksum_share if exact else 1.0):
                continue
            for start, digits in valid:
                begin = start + offset
                if not any(h.start < begin + 12 and begin < h.end for h in found):
                    hits.append(Hit("my_number", begin, begin + 12, mask_number(digits), 0.8))
            break
    return hits


def _wrapped_my_numbers(
    text: str, labels: LabelIndex, patterns: MyNumberPatterns, found: list[Hit]
) -> list[Hit]:
    hits = []
    for m in _WRAPPED_MY_NUMBER.finditer(text):
        overlaps = any(h.start < m.end() and m.start() < h.end for h in found)
        if overlaps or m.group().count("\n") != 1:
            continue
        digits = m.group("a") + m.group("b") + m.group("c")
        if not is_valid_my_number(digits):
            continue
        nearest = labels.nearest_before(m.start(), patterns.label_window)
        if nearest is not None and not nearest.positive:
            continue
        if nearest is not None or labels.positive_within(m.start(), m.end(),
                                                         patterns.keyword_window):
            hits.append(Hit("my_number", m.start(), m.end(), mask_number(digits), 0.8))
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
    hits += _card_number_hits(text, patterns, hits)
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
        taken.append((m.start(), m.end()))
    if labels:
        hits += governed_list_hits(text, labels, patterns.text_lengths, taken)
    return hits


# -- a heading governs the list under it ----------------------------------------------
# A list line: a short bullet or numbering (・, 1., (2)), then the number, then anything.
_LIST_NUMBER = regex.compile(
    r"^(?P<prefix>[^\d\n]{0,3}|\(?\d{1,3}[.)、:]?\s?)(?P<number>\d+)(?![\d\-/.])"
)
_NUMBERING_DIGITS = regex.compile(r"\d+")
# The quote marks of a reply (> , > > , ＞): stripped before a line's shape is judged.
_QUOTE_PREFIX = regex.compile(r"^(?:[ \t]*[>＞])+[ \t]?")
MAX_BLANK_LINES = 1  # blank lines allowed between a heading (or trailing label) and its list


def governed_list_hits(
    text: str, labels: LabelIndex, lengths: tuple[int, ...], taken: list[tuple[int, int]]
) -> list[Hit]:
    """Numbers in a list governed by a heading line (or a label line right after it).

    A list is two or more consecutive lines of the same shape (same bullet, a number of
    the same length first); it ends at a blank line or a line of another shape. The
    label line next to it plays the part of a column header: it governs every line,
    however long the list, when it holds one of the detector's keywords and no negative
    label (保険者番号 over a list is the insurer's).
    """
    lines = text.split("\n")
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    shapes = [_list_shape(line, lengths) for line in lines]
    hits: list[Hit] = []
    i = 0
    while i < len(lines):
        shape = shapes[i]
        j = i
        while j + 1 < len(lines) and shape is not None and shapes[j + 1] is not None and (
            shapes[j + 1][0] == shape[0]
        ):
            j += 1
        if shape is not None and j > i and (
            _governs(text, labels, lines, starts, shapes, i, -1)
            or _governs(text, labels, lines, starts, shapes, j, 1)
        ):
            for k in range(i, j + 1):
                start = starts[k] + shapes[k][1]  # type: ignore[index]
                end = start + shape[0][1]
                if not any(s < end and start < e for s, e in taken):
                    digits = text[start:end]
                    hits.append(Hit("insured_number", start, end, mask_number(digits), 0.85))
        i = j + 1
    return hits


def _list_shape(line: str, lengths: tuple[int, ...]) -> tuple[tuple[str, int], int] | None:
    """((bullet shape, number length), offset of the number) of a list line, or None.
    A reply's quote marks (> 8567270784　加藤　結衣) are not part of the shape."""
    quote = _QUOTE_PREFIX.match(line)
    skip = quote.end() if quote else 0
    rest = line[skip:]
    m = _LIST_NUMBER.match(rest.strip(" \t"))
    if m is None or len(m.group("number")) not in lengths:
        return None
    lead = skip + len(rest) - len(rest.lstrip(" \t"))
    prefix = _NUMBERING_DIGITS.sub("9", m.group("prefix").strip())
    return (prefix, len(m.group("number"))), lead + m.start("number")


def _unquoted(line: str) -> str:
    """A line without a reply's quote marks (a lone ``>`` is a blank quoted line)."""
    quote = _QUOTE_PREFIX.match(line)
    return line[quote.end() :] if quote else line


def _governs(
    text: str, labels: LabelIndex, lines: list[str], starts: list[int],
    shapes: list, at: int, step: int,
) -> bool:
    """Is the nearest non-blank line before (step -1) or after (step 1) the list a label
    line that governs it?"""
    k = at + step
    blanks = 0
    while 0 <= k < len(lines) and not _unquoted(lines[k]).strip():
        blanks += 1
        k += step
    if blanks > MAX_BLANK_LINES or not 0 <= k < len(lines) or shapes[k] is not None:
        return False
    start, end = starts[k], starts[k] + len(lines[k])
    here = [label for label in labels.labels if start <= label.start < end]
    return any(label.positive for label in here) and all(label.positive for label in here)


def _card_number_hits(text: str, patterns: InsuredPatterns, found: list[Hit]) -> list[Hit]:
    """保険証番号 宮延23-456, 記号番号は 12・345: the card's own forms after its label."""
    if patterns.card_number is None:
        return []
    hits = []
    for m in patterns.card_number.finditer(text):
        start, end = m.span("value")
        if any(h.start < end and start < h.end for h in found):
            continue
        digits = _NON_DIGIT.sub("", m.group("value"))
        if patterns.cell_min_digits <= len(digits) <= patterns.cell_max_digits:
            hits.append(Hit("insured_number", start, end, mask_number(digits), 0.85))
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
