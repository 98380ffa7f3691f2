"""What an approver needs to decide in a minute, every value masked.

- ``table_previews``: per table in the attachments, its file, sheet, header row
  and first rows, re-read from the spooled message when the page is shown (the
  stored scan result keeps masked findings only, no cell values);
- ``person_groups``: findings grouped into people (one table row or text line
  each), summarised as ``30人: 被保険者番号・氏名・生年月日``;
- ``mask_body``: the body excerpt with the names and birth dates the scan found
  masked the same way the findings are.

Masking: numbers keep at most their last four digits, text keeps its first
character (names), dates are masked completely.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dlp_gateway.detect.findings import mask_name

TYPE_ORDER = ("my_number", "insured_number", "name", "birth_date")
TYPE_LABELS = {
    "my_number": "マイナンバー",
    "insured_number": "被保険者番号",
    "name": "氏名",
    "birth_date": "生年月日",
}
PREVIEW_ROWS = 5
HEADER_SEARCH_ROWS = 10
MAX_TABLES = 10
MAX_COLUMNS = 12
PREVIEW_SECONDS = 5.0

_DATE = re.compile(
    r"(?:明治|大正|昭和|平成|令和|[MTSHRmtshr])?\s*[0-9０-９元]{1,4}\s*[年/／.．\-－]\s*"
    r"[0-9０-９]{1,2}\s*[月/／.．\-－]\s*[0-9０-９]{1,2}\s*日?"
)
_DIGIT_RUN = re.compile(r"[0-9０-９][0-9０-９\-－\s]*[0-9０-９]|[0-9０-９]")
_LONG_DIGITS = re.compile(r"[0-9０-９]")
MASK = "＊"


# -- masking one value ----------------------------------------------------------------


def mask_date_text(text: str) -> str:
    """Every character of a date becomes ＊ except its separators (年, 月, /)."""
    return re.sub(r"[^年月日/／.．\-－\s]", MASK, text)


def mask_cell(value: object) -> str:
    """Any cell value, masked (see module docstring)."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime | dt.date):
        return "＊＊＊＊/＊＊/＊＊"
    if isinstance(value, bool):
        return MASK
    if isinstance(value, int | float):
        digits = str(int(value)) if float(value).is_integer() else str(value)
        return _mask_digits_keep4(digits)
    text = str(value).strip()
    if not text:
        return ""
    if not _LONG_DIGITS.search(text):
        return mask_name(text)  # a name (or any word): its first character only
    text = _DATE.sub(lambda m: mask_date_text(m.group(0)), text)
    text = _DIGIT_RUN.sub(lambda m: _mask_digits_keep4(m.group(0)), text)
    return _mask_words(text)


def _mask_digits_keep4(run: str) -> str:
    digits = [c for c in run if c.isdigit()]
    keep = min(4, max(0, len(digits) - 4))
    out, seen = [], 0
    for ch in run:
        if ch.isdigit():
            seen += 1
            out.append(ch if seen > len(digits) - keep else MASK)
        else:
            out.append(ch)
    return "".join(out)


def _mask_words(text: str) -> str:
    """Letters of mixed cells (addresses, notes): keep the first character of each word."""
    return re.sub(r"[^\s0-9０-９\-－＊年月日/／]+", lambda m: mask_name(m.group(0)), text)


def header_label(value: object) -> str:
    """A header cell is a label, not personal data; long digit runs are still masked."""
    text = "" if value is None else str(value).strip()
    return _DIGIT_RUN.sub(
        lambda m: _mask_digits_keep4(m.group(0)) if len(m.group(0)) >= 5 else m.group(0), text
    )


# -- table previews ------------------------------------------------------------------


@dataclass(slots=True)
class TablePreview:
    part: str  # the attachment (path through archives)
    sheet: str  # sheet / table label inside the file ('' for csv)
    header: list[str]
    header_row: int | None
    rows: list[tuple[int, list[str]]] = field(default_factory=list)  # (row number, cells)


def _looks_like_header(cells: list[object]) -> bool:
    filled = [c for c in cells if c not in (None, "")]
    if len(filled) < 2:
        return False
    for cell in filled:
        if not isinstance(cell, str) or _DATE.search(cell):
            return False
        if len(_LONG_DIGITS.findall(cell)) >= 4:
            return False
    return True


def preview_table(part: str, location: str, rows: Iterable[Any]) -> TablePreview:
    """Header row (the first of the first ten rows that looks like labels; title rows
    above it are left out) and the next data rows, masked."""
    sheet = location[len(part) + 1:] if location.startswith(part + "!") else ""
    preview = TablePreview(part, sheet, [], None)
    head: list[tuple[int, list[object]]] = []
    iterator = iter(rows)
    for row in iterator:
        cells = list(row.cells)[:MAX_COLUMNS]
        if any(c not in (None, "") for c in cells):
            head.append((row.number, cells))
            if len(head) >= HEADER_SEARCH_ROWS:
                break
    at = next((i for i, (_, cells) in enumerate(head) if _looks_like_header(cells)), None)
    if at is not None:
        preview.header_row, header = head[at]
        preview.header = [header_label(c) for c in header]
        head = head[at + 1:]
    for number, cells in head:
        if len(preview.rows) >= PREVIEW_ROWS:
            return preview
        preview.rows.append((number, [mask_cell(c) for c in cells]))
    for row in iterator:
        if len(preview.rows) >= PREVIEW_ROWS:
            break
        cells = list(row.cells)[:MAX_COLUMNS]
        if any(c not in (None, "") for c in cells):
            preview.rows.append((row.number, [mask_cell(c) for c in cells]))
    return preview


def table_previews(raw: bytes) -> list[TablePreview]:
    """Previews of the tables in a message's attachments (never raises)."""
    from dlp_gateway.extract.mime import extract_message
    from dlp_gateway.extract.units import Limits, TableUnit

    previews: list[TablePreview] = []
    try:
        for unit in extract_message(raw, Limits(timeout_seconds=PREVIEW_SECONDS)):
            if isinstance(unit, TableUnit) and not unit.in_body:
                previews.append(preview_table(unit.part, unit.location, unit.rows()))
                if len(previews) >= MAX_TABLES:
                    break
    except Exception:  # a preview is a convenience: the findings are still shown
        pass
    return previews


# -- people ---------------------------------------------------------------------------

_CELL_A1 = re.compile(r"^(?P<base>.*)!(?P<col>[A-Z]{1,3})(?P<row>\d+)$")
_CELL_RC = re.compile(r"^(?P<base>.*)!r(?P<row>\d+)c\d+$")


def row_key(location: str) -> str:
    """The person a finding belongs to: its table row, or its text line."""
    for pattern in (_CELL_A1, _CELL_RC):
        m = pattern.match(location)
        if m:
            return f"{m.group('base')}!row{m.group('row')}"
    return location


def is_record(types: Iterable[str]) -> bool:
    kinds = set(types)
    return bool(kinds & {"my_number", "insured_number"}) or {"name", "birth_date"} <= kinds


@dataclass(slots=True)
class PersonGroup:
    """People in one part sharing the same kinds of data: '30人: 被保険者番号・氏名・生年月日'."""

    types: tuple[str, ...]
    people: int
    record: bool
    findings: list[Mapping[str, Any]]

    @property
    def label(self) -> str:
        kinds = "・".join(TYPE_LABELS.get(t, t) for t in self.types)
        if self.record:
            return f"{self.people:,}人: {kinds}"
        return f"{self.people:,}件: {kinds}のみ（個人を特定する組み合わせではありません）"


def person_groups(findings: Iterable[Mapping[str, Any]]) -> list[PersonGroup]:
    """One part's findings -> groups of people with the same kinds of data, largest first."""
    by_row: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for f in findings:
        by_row[row_key(str(f.get("location", "")))].append(f)
    groups: dict[tuple[str, ...], PersonGroup] = {}
    for items in by_row.values():
        kinds = Counter(str(f.get("type")) for f in items)
        types = tuple(t for t in TYPE_ORDER if t in kinds)
        record = is_record(types)
        people = max(kinds["my_number"], kinds["insured_number"],
                     min(kinds["name"], kinds["birth_date"]), 1) if record else 1
        group = groups.setdefault(types, PersonGroup(types, 0, record, []))
        group.people += people
        group.findings.extend(items)
    return sorted(groups.values(), key=lambda g: (not g.record, -g.people))


def people_total(findings: Iterable[Mapping[str, Any]]) -> int:
    return sum(g.people for g in person_groups(findings) if g.record)


# -- body ---------------------------------------------------------------------------

_LINE = re.compile(r"!L(\d+)$")


def mask_body(text: str, findings: Iterable[Mapping[str, Any]]) -> str:
    """Mask, in the body excerpt, the names and birth dates the scan found there."""
    lines = text.split("\n")
    dates_everywhere = False
    for f in findings:
        kind = f.get("type")
        if kind not in ("name", "birth_date"):
            continue
        m = _LINE.search(str(f.get("location", "")))
        index = int(m.group(1)) - 1 if m else -1
        if kind == "birth_date":
            if 0 <= index < len(lines) and _DATE.search(lines[index]):
                lines[index] = _DATE.sub(lambda d: mask_date_text(d.group(0)), lines[index])
            else:
                dates_everywhere = True
        else:
            _mask_name_in(lines, index, str(f.get("masked", "")))
    out = "\n".join(lines)
    if dates_everywhere:
        out = _DATE.sub(lambda d: mask_date_text(d.group(0)), out)
    return out


def _mask_name_in(lines: list[str], index: int, masked: str) -> None:
    """Replace the name whose masked form is ``masked`` (first char + ＊…)."""
    if not masked:
        return
    first, length = masked[0], len(masked)
    pattern = re.compile(re.escape(first) + r"[^\s、。,.:：()（）]" + f"{{{length - 1}}}"
                         if length > 1 else re.escape(first))
    candidates = [index] if 0 <= index < len(lines) else []
    candidates += [i for i in range(len(lines)) if i != index]
    for i in candidates:
        if pattern.search(lines[i]):
            lines[i] = pattern.sub(lambda m: mask_name(m.group(0)), lines[i], count=1)
            return
    # not found verbatim (e.g. a space inside the name): mask from its first char
    loose = re.compile(re.escape(first) + r"[^\n]" + f"{{{max(0, length - 1)}}}")
    for i in candidates:
        if loose.search(lines[i]):
            lines[i] = loose.sub(lambda m: mask_name(m.group(0)), lines[i], count=1)
            return
