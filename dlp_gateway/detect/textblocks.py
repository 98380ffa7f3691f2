"""Tables inside free text: a roster pasted into a mail body (tab-separated, as Excel
copies it), an HTML table (``extract/html.py`` renders cells with tabs, rows with line
ends), or lines split consistently by ``|`` or ``,``. Each block is read as a table,
one person per row, instead of as one paragraph.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import regex

from dlp_gateway.extract.units import Row

# Delimiters tried in order; a block needs this many lines ...
MIN_LINES = 2
# Lines above a block searched for its title (被保険者一覧).
TITLE_LINES = 4
# ... and, for delimiters that also appear in prose, more lines and fields.
_PROSE_DELIMITERS = {",": (3, 3), "|": (2, 2), "｜": (2, 2)}


@dataclass(frozen=True, slots=True)
class TextTable:
    start: int  # character offsets of the block in the text
    end: int
    first_line: int  # 1-based line number of the block's first line
    rows: tuple[Row, ...]  # one row per line
    title: str  # the non-empty lines just above the block (context: 被保険者一覧)
    joined_rows: tuple[Row, ...] = ()  # rows with line breaks inside cells joined


def _lines_with_offsets(text: str) -> tuple[list[str], list[int]]:
    """The lines of ``text`` and the offset at which each starts."""
    lines = text.split("\n")
    offsets = []
    position = 0
    for line in lines:
        offsets.append(position)
        position += len(line) + 1
    return lines, offsets


def find_text_tables(text: str) -> list[TextTable]:
    if "\t" not in text and "|" not in text and "｜" not in text and "," not in text:
        return []
    lines, offsets = _lines_with_offsets(text)
    tables: list[TextTable] = []
    i = 0
    while i < len(lines):
        delimiter = _delimiter(lines[i])
        if delimiter is None:
            i += 1
            continue
        j = i
        while j < len(lines) and (
            _fits(lines[j], delimiter)
            # a line without the delimiter between two that have it: a cell's line break,
            # or one blank line between rows (a second row per person left empty)
            or (
                j + 1 < len(lines)
                and _fits(lines[j + 1], delimiter)
                and delimiter == "\t"
                and j > i
            )
        ):
            j += 1
        min_lines, min_fields = _PROSE_DELIMITERS.get(delimiter, (MIN_LINES, 2))
        widths = [lines[k].count(delimiter) + 1 for k in range(i, j) if delimiter in lines[k]]
        tabbed = delimiter == "\t" and max(widths, default=0) >= 2
        before = lines[i - 1].strip() if i > 0 else ""
        if (
            tabbed
            and before
            and delimiter not in before
            and len(before) <= 6  # a word cut by a line break, not a title line
            and not any(ch.isdigit() or ch.isspace() for ch in before)
        ):
            i -= 1  # the header's first cell broke before its first tab (保険 / 証番号)
        if j - i >= min_lines and (tabbed or _consistent(widths, min_fields)):
            rows = tuple(
                Row(k + 1, [_cell(c) for c in _split(lines[k], delimiter)]) for k in range(i, j)
            )
            joined = tuple(_logical_rows(lines, i, j, delimiter, widths))
            title = " ".join(x.strip() for x in lines[max(0, i - TITLE_LINES) : i] if x.strip())
            end = offsets[j - 1] + len(lines[j - 1])
            tables.append(TextTable(offsets[i], end, i + 1, rows, title, joined))
            i = j
        else:
            i += 1
    return tables


# a number alone on its line; 記号・番号 joined by a middle dot too
_NUMBER_LINE = regex.compile(r"^[ \t\u3000]*[0-9０-９][0-9０-９\-－ ・･]{5,22}[ \t\u3000]*$")
# What every _NUMBER_LINE holds (searched once in the whole text: most mail has none).
_NUMBER_START = re.compile("[0-9０-９][0-9０-９\\-－ ・･]{5}")
_LABEL_LINE = regex.compile(r"^[ \u3000]*[^\d\s、。]{1,12}[ \u3000]*$")


def _is_label_line(line: str) -> bool:
    """``_LABEL_LINE``, with the length it implies checked first (a regex call per line of
    prose was most of the time these readers took on an ordinary mail)."""
    return len(line.strip(" \u3000")) <= 12 and bool(_LABEL_LINE.match(line))


def find_number_columns(text: str) -> list[TextTable]:
    """A one-column list pasted as lines: a label line (番号) over two or more lines that
    each hold one number (blank lines between allowed)."""
    if "\n" not in text or not _NUMBER_START.search(text):
        return []
    lines, offsets = _lines_with_offsets(text)
    tables: list[TextTable] = []
    i = 0
    while i < len(lines):
        if not _is_label_line(lines[i]) or "\t" in lines[i]:
            i += 1
            continue
        j, values = i + 1, []
        while j < len(lines) and (not lines[j].strip() or _NUMBER_LINE.match(lines[j])):
            if lines[j].strip():
                values.append(j)
            j += 1
        if len(values) >= 2:
            rows = (
                Row(i + 1, [lines[i].strip()]),
                *(Row(k + 1, [lines[k].strip()]) for k in values),
            )
            title = " ".join(x.strip() for x in lines[max(0, i - TITLE_LINES) : i] if x.strip())
            end = offsets[values[-1]] + len(lines[values[-1]])
            tables.append(TextTable(offsets[i], end, i + 1, rows, title))
            i = j
        else:
            i += 1
    return tables


_VALUE_LINE = regex.compile(r"^[ \t\u3000]*[^\t]{1,40}$")


def find_stacked_columns(text: str) -> list[TextTable]:
    """A one-column list with two rows per person pasted as lines (a PDF or HTML table of
    one column): two label lines (出生年月日 / カナ氏名), then values alternating in the
    same two shapes (a line with digits, a line without), four lines or more (two when
    they end the paragraph: a list of one person)."""
    if "\n" not in text:
        return []
    lines, offsets = _lines_with_offsets(text)
    tables: list[TextTable] = []
    i = 0
    while i + 3 < len(lines):
        if not (_is_label_line(lines[i]) and _is_label_line(lines[i + 1])):
            i += 1
            continue
        values = _alternating_pairs(lines, i + 2)
        alone = values == 2 and (i + 4 >= len(lines) or not lines[i + 4].strip())
        if values >= 4 or alone:  # one person: the pair ends the paragraph
            end_line = i + 1 + values
            rows = tuple(Row(k + 1, [lines[k].strip()]) for k in range(i, end_line + 1))
            title = " ".join(x.strip() for x in lines[max(0, i - TITLE_LINES) : i] if x.strip())
            end = offsets[end_line] + len(lines[end_line])
            tables.append(TextTable(offsets[i], end, i + 1, rows, title))
            i = end_line + 1
        else:
            i += 1
    return tables


def _alternating_pairs(lines: list[str], start: int) -> int:
    """How many lines from ``start`` go in pairs of one shape: a line with digits and a
    line without (or the other way round), as the first pair has them."""

    def shape(k: int) -> bool | None:
        if k >= len(lines) or not lines[k].strip() or not _VALUE_LINE.match(lines[k]):
            return None
        return any(ch.isdigit() for ch in lines[k])

    first, second = shape(start), shape(start + 1)
    if first is None or second is None or first == second:
        return 0
    k = start
    while shape(k) == first and shape(k + 1) == second:
        k += 2
    return k - start


def _logical_rows(lines: list[str], i: int, j: int, delimiter: str, widths: list[int]) -> list[Row]:
    """Lines -> rows; a cell with a line break inside (氏名(ふ / りがな)) spans lines."""
    data = [
        lines[k].count(delimiter) + 1
        for k in range(i, j)
        if delimiter in lines[k] and any(ch.isdigit() for ch in lines[k])
    ]
    widths = data or widths  # data rows (with digits) give the width, not header fragments
    width = max(set(widths), key=lambda w: (widths.count(w), w))  # ties: the widest
    apart = _narrow_tables(lines, i, j, delimiter, width)
    rows: list[Row] = []
    k = i
    while k < j:
        start = k
        text = lines[k]
        k += 1
        while (
            k < j
            and start not in apart
            and k not in apart
            and text.count(delimiter) + 1 < width
            and (text.count(delimiter) + lines[k].count(delimiter) + 1 <= width)
        ):
            text += "\n" + lines[k]
            k += 1
        while k + 1 < j and delimiter not in lines[k] and delimiter in lines[k + 1]:
            text += "\n" + lines[k]  # the tail of the last cell
            k += 1
        rows.append(Row(start + 1, [_cell(c) for c in _split(text, delimiter)]))
    return rows


def _narrow_tables(lines: list[str], i: int, j: int, delimiter: str, width: int) -> set[int]:
    """Lines of a narrower table below or above the block's (要介護度 | 人数 under a
    7-column roster): a label line, then lines of values, all with the same number of
    cells (three lines or more). Their cells never join into the wider rows."""
    out: set[int] = set()
    k = i
    while k < j:
        count = lines[k].count(delimiter)
        end = k + 1
        while end < j and lines[end].count(delimiter) == count:
            end += 1
        if (
            1 <= count < width - 1
            and end - k >= 3
            and not any(ch.isdigit() for ch in lines[k])
            and any(ch.isdigit() for ch in lines[k + 1])
        ):
            out.update(range(k, end))
        k = end
    return out


def _delimiter(line: str) -> str | None:
    for delimiter in ("\t", "|", "｜", ","):
        if delimiter in line:
            return delimiter
    return None


def _fits(line: str, delimiter: str) -> bool:
    return delimiter in line


def _consistent(widths: list[int], min_fields: int) -> bool:
    if not widths or min(widths) < min_fields:
        return False
    most = max(set(widths), key=widths.count)
    return widths.count(most) >= 0.7 * len(widths)


def _split(line: str, delimiter: str) -> list[str]:
    parts = line.split(delimiter)
    if delimiter in ("|", "｜") and parts and not parts[0].strip():
        parts = parts[1:]
    if delimiter in ("|", "｜") and parts and not parts[-1].strip():
        parts = parts[:-1]
    return parts


def _cell(value: str) -> str | None:
    value = value.strip()
    return value or None
