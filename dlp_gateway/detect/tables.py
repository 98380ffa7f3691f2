"""Tables (sheets, csv, docx tables) -> findings, one record group per row.

Three layouts are told apart by looking at the first rows:
- a *list* with a header row (possibly below title rows): the header names each
  column's kind, and every row is one person;
- a *form* of label/value pairs (氏名 | 山田太郎, 生年月日 | S45.3.2): a label governs
  the cell to its right or below it, and the whole table is one person;
- a headerless list: columns are judged by their values (check digits for My
  Numbers, SudachiPy for names).

Per-cell work is kept cheap, because a 680,000-row csv passes through here.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum

import regex

from dlp_gateway.detect.birth import MASKED_DATE, birth_date_in_cell, cell_date
from dlp_gateway.detect.findings import Finding, mask_name, mask_number
from dlp_gateway.detect.names import NameFinder, is_name_cell
from dlp_gateway.detect.normalize import header_matches
from dlp_gateway.detect.numbers import (
    Hit,
    cell_digits,
    insured_number_in_cell,
    is_valid_my_number,
    my_number_in_cell,
)
from dlp_gateway.detect.patterns import PatternSet
from dlp_gateway.extract.units import CellValue, Row, TableUnit

HEADER_SEARCH_ROWS = 30
SAMPLE_ROWS = 50
MAX_LABEL_LENGTH = 24
# A free-text cell is searched only when it holds at least this many digits: every
# number and date we look for has six or more.
MIN_DIGITS_FOR_TEXT = 6
_DIGITS = regex.compile(r"\d")


class Kind(Enum):
    MY_NUMBER = "my_number"
    INSURED = "insured_number"
    BIRTH_DATE = "birth_date"
    NAME = "name"
    NAME_PART = "name_part"
    NAME_KANA = "name_kana"


@dataclass(slots=True)
class Column:
    kind: Kind
    confidence: float


@dataclass(slots=True)
class Layout:
    header_row: int | None  # row number of the header, None when there is none
    headers: dict[int, str] = field(default_factory=dict)
    columns: dict[int, Column] = field(default_factory=dict)
    form: bool = False


class HeaderClassifier:
    """Header or label text -> the kind of data it governs (from patterns/)."""

    def __init__(self, patterns: PatternSet):
        self.p = patterns
        self._cache: dict[str, Kind | None] = {}

    def __call__(self, text: object) -> Kind | None:
        if not isinstance(text, str):
            return None
        text = text.strip()
        if not text or len(text) > MAX_LABEL_LENGTH:
            return None
        if text not in self._cache:
            self._cache[text] = self._classify(text)
        return self._cache[text]

    def _classify(self, text: str) -> Kind | None:
        p = self.p
        compact = text.replace(" ", "").replace("\u3000", "").rstrip(":：")
        if header_matches(compact, p.my_number.headers):
            return Kind.MY_NUMBER
        if header_matches(compact, p.insured_number.headers):
            return Kind.INSURED
        if header_matches(compact, p.birth_date.headers):
            return Kind.BIRTH_DATE
        n = p.name
        if compact in n.negative_headers or header_matches(compact, n.negative_headers):
            return None
        if header_matches(compact, n.kana_headers):
            return Kind.NAME_KANA
        lowered = compact.casefold()
        if lowered in {h.casefold() for h in n.headers} or compact.endswith(n.header_suffixes):
            return Kind.NAME
        if header_matches(compact, n.headers):
            return Kind.NAME
        if lowered in {h.casefold() for h in n.part_headers}:
            return Kind.NAME_PART
        return None


TextHits = Callable[[str, str], list[Hit]]


class TableScanner:
    """``text_hits(text, header)`` runs the free-text detectors on one long cell."""

    def __init__(
        self,
        patterns: PatternSet,
        names: NameFinder,
        classify: HeaderClassifier,
        text_hits: TextHits,
    ):
        self.p = patterns
        self.names = names
        self.classify = classify
        self.text_hits = text_hits

    def scan(self, table: TableUnit, today: dt.date) -> list[Finding]:
        rows = table.rows()
        head = list(itertools.islice(rows, HEADER_SEARCH_ROWS + SAMPLE_ROWS))
        layout = self._layout(head)
        all_rows = itertools.chain(head, rows)
        if layout.form:
            return _FormPass(self, table, today).run(all_rows)
        return _ListPass(self, table, layout, today).run(all_rows)

    # -- layout -----------------------------------------------------------------
    def _layout(self, head: list[Row]) -> Layout:
        header = self._find_header(head)
        if header is not None:
            layout = Layout(header.number)
            for i, value in enumerate(header.cells):
                if isinstance(value, str) and value.strip():
                    layout.headers[i] = value.strip()
                    kind = self.classify(value)
                    if kind is not None:
                        layout.columns[i] = Column(kind, 0.95)
            body = [r for r in head if r.number > header.number]
            self._sample_columns(layout, body)
            return layout
        if any(self.classify(v) is not None for r in head for v in r.cells):
            return Layout(None, form=True)
        plain = _plain_header(head)
        layout = Layout(plain.number if plain else None)
        if plain is not None:
            layout.headers = {
                i: v.strip() for i, v in enumerate(plain.cells) if isinstance(v, str) and v.strip()
            }
        self._sample_columns(layout, [r for r in head if r.number > (layout.header_row or 0)])
        return layout

    def _find_header(self, head: list[Row]) -> Row | None:
        best: tuple[int, Row] | None = None
        for index, row in enumerate(head[:HEADER_SEARCH_ROWS]):
            labels = [v for v in row.cells if v is not None and v != ""]
            kinds = {i: self.classify(v) for i, v in enumerate(row.cells)}
            score = sum(1 for k in kinds.values() if k is not None)
            if score == 0 or len(labels) < 2 or not all(_is_label_text(v) for v in labels):
                continue
            if score == 1 and index + 1 >= len(head):
                continue  # a lone 氏名 | 山田太郎 is a form line, not a header
            if self._values_below_are_labels(head[index + 1 : index + 11], kinds):
                continue
            if best is None or score > best[0]:
                best = (score, row)
        return best[1] if best else None

    def _values_below_are_labels(self, below: list[Row], kinds: dict[int, Kind | None]) -> bool:
        """A form repeats labels down its label column; a list's data rows hold values."""
        for row in below:
            for i, kind in kinds.items():
                if kind is not None and i < len(row.cells) and self.classify(row.cells[i]):
                    return True
        return False

    def _sample_columns(self, layout: Layout, body: list[Row]) -> None:
        """Judge columns with no recognised header by their first values."""
        width = max((len(r.cells) for r in body), default=0)
        has_name = any(c.kind is Kind.NAME for c in layout.columns.values())
        for i in range(width):
            if i in layout.columns:
                continue
            values = [r.cells[i] for r in body if i < len(r.cells) and r.cells[i] not in (None, "")]
            if len(values) < 3:
                continue
            strings = [v for v in values if isinstance(v, str)]
            if len(strings) >= 3 and _share(strings, self.names.looks_like_name) >= 0.6:
                layout.columns[i] = Column(Kind.NAME, 0.6)
                has_name = True
        for i in range(width):
            if i in layout.columns or layout.headers.get(i):
                continue
            values = [r.cells[i] for r in body if i < len(r.cells) and r.cells[i] not in (None, "")]
            if has_name and len(values) >= 3 and _looks_like_birth_dates(values):
                layout.columns[i] = Column(Kind.BIRTH_DATE, 0.6)


class _ListPass:
    """One person per row under a header (or none)."""

    def __init__(self, scanner: TableScanner, table: TableUnit, layout: Layout, today: dt.date):
        self.s, self.table, self.layout, self.today = scanner, table, layout, today
        self.findings: list[Finding] = []
        # Headerless columns become My Number columns when nearly all their 12-digit
        # values pass the check digit; pending holds (location, group, masked) until then.
        self.pending: dict[int, list[tuple[str, str, str]]] = {}
        self.twelve_digit: dict[int, int] = {}
        negative = scanner.p.my_number.labels.negative
        self.not_my_number = {i for i, h in layout.headers.items() if header_matches(h, negative)}

    def run(self, rows: Iterator[Row]) -> list[Finding]:
        header_row = self.layout.header_row or 0
        columns = sorted(self.layout.columns.items())
        mn = self.s.p.my_number
        for row in rows:
            if row.number <= header_row:
                continue
            group = f"{self.table.location}!r{row.number}"
            self._row(row, group, columns)
        for i, items in self.pending.items():
            valid = len(items)
            if (
                valid >= mn.column_min_values
                and valid >= mn.column_checksum_share * self.twelve_digit[i]
            ):
                for location, group, masked in items:
                    self._add("my_number", location, masked, 0.8, group)
        return self.findings

    def _row(self, row: Row, group: str, columns: list[tuple[int, Column]]) -> None:
        cells = row.cells
        named = False
        kana_or_part: tuple[int, float] | None = None
        for i, column in columns:
            if i >= len(cells) or cells[i] is None or cells[i] == "":
                continue
            kind, value = column.kind, cells[i]
            if kind is Kind.NAME:
                if is_name_cell(value, self.s.p.name.max_cell_length):
                    self._add("name", self._loc(row, i), mask_name(value), column.confidence, group)
                    named = True
            elif kind in (Kind.NAME_PART, Kind.NAME_KANA):
                if kana_or_part is None and is_name_cell(value, self.s.p.name.max_cell_length):
                    kana_or_part = (i, column.confidence)
            else:
                self._typed_cell(kind, value, row, i, group, column.confidence)
        if not named and kana_or_part is not None:
            i, confidence = kana_or_part
            self._add("name", self._loc(row, i), mask_name(cells[i]), confidence * 0.9, group)
        self._other_cells(row, group)

    def _typed_cell(
        self, kind: Kind, value: CellValue, row: Row, i: int, group: str, confidence: float
    ) -> None:
        if kind is Kind.MY_NUMBER:
            digits = my_number_in_cell(value)
            if digits:
                self._add("my_number", self._loc(row, i), mask_number(digits), confidence, group)
        elif kind is Kind.INSURED:
            digits = insured_number_in_cell(value, self.s.p.insured_number)
            if digits:
                self._add(
                    "insured_number", self._loc(row, i), mask_number(digits), confidence, group
                )
        elif kind is Kind.BIRTH_DATE and birth_date_in_cell(value, self.today):
            self._add("birth_date", self._loc(row, i), MASKED_DATE, confidence, group)

    def _other_cells(self, row: Row, group: str) -> None:
        """Cells of unrecognised columns: check-digit statistics and free text."""
        columns = self.layout.columns
        for i, value in enumerate(row.cells):
            if value is None or i in columns:
                continue
            if isinstance(value, int) and not isinstance(value, bool):
                if 10_000_000_000 <= value < 1_000_000_000_000:
                    self._twelve(i, str(value).zfill(12), row, group)
            elif isinstance(value, str) and len(value) >= 8:
                digits = cell_digits(value)
                if digits is not None and len(digits) == 12:
                    self._twelve(i, digits, row, group)
                elif len(value) >= 10:
                    self._free_text(value, row, i, group)

    def _twelve(self, i: int, digits: str, row: Row, group: str) -> None:
        if i in self.not_my_number:
            return
        self.twelve_digit[i] = self.twelve_digit.get(i, 0) + 1
        if is_valid_my_number(digits):
            self.pending.setdefault(i, []).append((self._loc(row, i), group, mask_number(digits)))

    def _free_text(self, value: str, row: Row, i: int, group: str) -> None:
        if len(_DIGITS.findall(value)) < MIN_DIGITS_FOR_TEXT:
            return  # addresses, notes without numbers or dates: nothing to find
        header = self.layout.headers.get(i, "")
        location = self._loc(row, i)
        for hit in self.s.text_hits(value, header):
            self._add(hit.type, location, hit.masked, hit.confidence, group)

    def _loc(self, row: Row, i: int) -> str:
        return self.table.cell_location(row.number, i)

    def _add(self, type_: str, location: str, masked: str, confidence: float, group: str) -> None:
        self.findings.append(
            Finding(type_, self.table.part, location, masked, confidence, group, self.table.in_body)  # type: ignore[arg-type]
        )


class _FormPass:
    """Label/value forms: a label governs the cell to its right, or the cell below it."""

    def __init__(self, scanner: TableScanner, table: TableUnit, today: dt.date):
        self.s, self.table, self.today = scanner, table, today
        self.group = f"{table.location}!form"
        self.findings: list[Finding] = []

    def run(self, rows: Iterator[Row]) -> list[Finding]:
        above: dict[int, Kind] = {}
        for row in rows:
            labels_here: dict[int, Kind] = {}
            pending: Kind | None = None
            box_kind: Kind | None = None
            for i, value in enumerate(row.cells):
                if value is None or value == "":
                    continue
                kind = self.s.classify(value)
                if kind is not None:
                    labels_here[i] = kind
                    pending = box_kind = kind
                    continue
                governing = pending or above.get(i)
                if governing is not None:
                    self._cell(governing, value, row, i)
                    pending = None
            self._box_digits(row, box_kind or _single_kind(above))
            above = labels_here
        return self.findings

    def _cell(self, kind: Kind, value: CellValue, row: Row, i: int) -> None:
        location = self.table.cell_location(row.number, i)
        p = self.s.p
        if kind in (Kind.NAME, Kind.NAME_PART, Kind.NAME_KANA):
            if is_name_cell(value, p.name.max_cell_length):
                self._add("name", location, mask_name(value), 0.85)
        elif kind is Kind.MY_NUMBER:
            digits = my_number_in_cell(value)
            if digits:
                self._add("my_number", location, mask_number(digits), 0.95)
        elif kind is Kind.INSURED:
            digits = insured_number_in_cell(value, p.insured_number)
            if digits:
                self._add("insured_number", location, mask_number(digits), 0.9)
        elif kind is Kind.BIRTH_DATE and birth_date_in_cell(value, self.today):
            self._add("birth_date", location, MASKED_DATE, 0.9)

    def _box_digits(self, row: Row, kind: Kind | None) -> None:
        """Box-style forms put one digit per cell: join runs of 12 single digits."""
        if kind is not Kind.MY_NUMBER:
            return
        run: list[tuple[int, str]] = []
        for i, value in enumerate([*row.cells, None]):
            digit = _single_digit(value)
            if digit is not None:
                run.append((i, digit))
                continue
            if len(run) == 12:
                digits = "".join(d for _, d in run)
                if is_valid_my_number(digits):
                    location = self.table.cell_location(row.number, run[0][0])
                    self._add("my_number", location, mask_number(digits), 0.9)
            if value not in (None, ""):
                run = []

    def _add(self, type_: str, location: str, masked: str, confidence: float) -> None:
        self.findings.append(
            Finding(
                type_, self.table.part, location, masked, confidence, self.group, self.table.in_body
            )  # type: ignore[arg-type]
        )


def _plain_header(head: list[Row]) -> Row | None:
    """A first row of labels none of which we know (会社名 | 作成日 | 注文番号)."""
    rows = [r for r in head[:5] if any(v not in (None, "") for v in r.cells)]
    if len(rows) < 2:
        return None
    labels = [v for v in rows[0].cells if v not in (None, "")]
    below = [v for v in rows[1].cells if v not in (None, "")]
    all_labels = len(labels) >= 2 and all(_is_label_text(v) for v in labels)
    return rows[0] if all_labels and not all(_is_label_text(v) for v in below) else None


def _single_kind(above: dict[int, Kind]) -> Kind | None:
    kinds = set(above.values())
    return kinds.pop() if len(kinds) == 1 else None


def _single_digit(value: CellValue) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9:
        return str(value)
    if isinstance(value, str) and len(value.strip()) == 1 and value.strip().isdigit():
        return str(int(value.strip()))
    return None


def _is_label_text(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value.strip()) <= MAX_LABEL_LENGTH
        and not any(ch.isdigit() for ch in value)
    )


def _share(values: list, predicate) -> float:  # type: ignore[no-untyped-def]
    return sum(1 for v in values if predicate(v)) / len(values) if values else 0.0


def _looks_like_birth_dates(values: list) -> bool:  # type: ignore[no-untyped-def]
    dates = [d for d in (cell_date(v) for v in values) if d is not None]
    if len(dates) < 0.8 * len(values):
        return False
    return len({d.year for d in dates}) >= 5
