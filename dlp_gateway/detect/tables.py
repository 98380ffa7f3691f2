"""Tables (sheets, csv, docx tables, delimited text blocks) -> findings.

A sheet may hold several blocks: side by side (split by empty columns when each side
has its own header) and one below another (a new header row starts a new block; a
header repeated on each printed page is skipped). ``layout.py`` reads each block's
shape (list, label/value form, transposed list); ``columns.py`` validates values.
Groups: one per list row (one per pair of rows when each person takes two), one per
form, one per column of a transposed list.

Per-row work is kept cheap, because a 680,000-row csv passes through here: a table
keeps its first ``EVIDENCE_PER_TABLE`` findings (read cell by cell, as evidence), and a
list's rows after them are counted a column at a time (``colscan.py``) into the exact
totals of ``FindingList.omitted``, without a Finding per cell.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import regex

from dlp_gateway.detect.birth import MASKED_DATE, cell_date
from dlp_gateway.detect.colscan import (
    BATCH_ROWS,
    ROW_TYPES,
    BatchCounts,
    ColumnJudge,
    has_keyword,
    under_header,
)
from dlp_gateway.detect.columns import (
    birth_value,
    fold_cell,
    insured_value,
    is_masked,
    joined_birth,
    lost_zero_insured,
    my_number_value,
    name_value,
)
from dlp_gateway.detect.dates import ERAS
from dlp_gateway.detect.findings import Finding, FindingList, Omitted, mask_name, mask_number
from dlp_gateway.detect.layout import (
    NAME_KINDS,
    WINDOW_ROWS,
    Analysis,
    Field,
    HeaderClassifier,
    Kind,
    LayoutReader,
    ListLayout,
    non_empty,
)
from dlp_gateway.detect.names import NameFinder
from dlp_gateway.detect.normalize import fold, label_key
from dlp_gateway.detect.numbers import Hit, cell_digits, is_grouped_444, is_valid_my_number
from dlp_gateway.detect.patterns import PatternSet
from dlp_gateway.extract.units import CellValue, Row, TableUnit

__all__ = ["HeaderClassifier", "Kind", "TableScanner"]

SAMPLE_ROWS = 50
# Findings kept per table as evidence; rows after them are counted exactly (column at a
# time, ``colscan.py``) without a Finding per cell, so memory does not grow with rows.
EVIDENCE_PER_TABLE = 200  # as many as the approval page shows per part
# A free-text cell is searched only when it holds at least this many digits: every
# number and date we look for has six or more.
MIN_DIGITS_FOR_TEXT = 6
_DIGITS = regex.compile(r"\d")
_HAS_DIGIT = regex.compile(r"\d")
# The stdlib's \d matches a subset of regex's (regex knows newer Unicode digits): asked
# first because it is faster, with regex deciding when it finds none.
_HAS_DIGIT_FAST = re.compile(r"\d")
_ERA_WORDS = {e.name for e in ERAS} | {e.letter for e in ERAS} | {e.kanji for e in ERAS}
_KANA_ONLY = regex.compile(r"^[\p{Hiragana}\p{Katakana}ー・ 　]+$")

TextHits = Callable[[str, str], list[Hit]]


class _Rows:
    """A row iterator with look-ahead and push-back."""

    def __init__(self, rows: Iterator[Row]):
        self._it = rows
        self._buffer: list[Row] = []

    def peek(self, n: int) -> list[Row]:
        while len(self._buffer) < n:
            row = next(self._it, None)
            if row is None:
                break
            self._buffer.append(row)
        return self._buffer[:n]

    def push(self, row: Row) -> None:
        self._buffer.insert(0, row)

    def __iter__(self) -> Iterator[Row]:
        """Rows in order; rows peeked or pushed back while iterating come first."""
        buffer, it = self._buffer, self._it
        while True:
            while buffer:
                yield buffer.pop(0)
            for row in it:
                yield row
                if buffer:
                    break
            else:
                return

    def __next__(self) -> Row:
        if self._buffer:
            return self._buffer.pop(0)
        return next(self._it)


@dataclass(slots=True)
class _Sink:
    """A table's findings: kept up to ``limit`` (None: all), then only counted."""

    table: TableUnit
    findings: FindingList
    limit: int | None = None

    @property
    def full(self) -> bool:
        return self.limit is not None and len(self.findings) >= self.limit

    @property
    def omitted(self) -> Omitted:
        if self.findings.omitted is None:
            self.findings.omitted = Omitted()
        return self.findings.omitted

    def count_rows(self, counts: BatchCounts, records: int) -> None:
        """Rows counted without findings: their totals by type and their records."""
        omitted = self.omitted
        any_found = False
        for type_, vector in counts.by_type.items():
            n = sum(vector)
            if n:
                omitted.add(type_, n)
                any_found = True
        self.count_records(records)
        if any_found and not self.table.in_body:
            omitted.parts.add(self.table.part)

    def count_records(self, records: int) -> None:
        omitted = self.omitted
        omitted.records += records
        if self.table.in_body:
            omitted.in_body_records += records

    def add(self, type_: str, location: str, masked: str, confidence: float, group: str) -> None:
        self.findings.append(
            Finding(type_, self.table.part, location, masked, confidence, group, self.table.in_body)  # type: ignore[arg-type]
        )


class TableScanner:
    """``text_hits(text, header)`` runs the free-text detectors on one long cell."""

    def __init__(
        self,
        patterns: PatternSet,
        names: NameFinder,
        classify: HeaderClassifier,
        text_hits: TextHits,
    ):
        # Findings kept per table (None: every finding, the per-cell path for every row).
        self.evidence_limit: int | None = EVIDENCE_PER_TABLE
        self.p = patterns
        self.names = names
        self.classify = classify
        self.layouts = LayoutReader(patterns, classify, self.fits)
        self.text_hits = text_hits
        self._plain_mn = {label_key(h) for h in patterns.my_number.column_plain_headers}

    def scan(
        self, table: TableUnit, today: dt.date, context: str = "", keep_all: bool = False
    ) -> list[Finding]:
        """``context``: text around the table (a title above a pasted roster).
        ``keep_all``: no evidence bound (every row read cell by cell)."""
        # Operator ID types are matched over the whole table afterwards, against every
        # finding's location: then every finding is kept.
        limit = None if self.p.id_types or keep_all else self.evidence_limit
        sink = _Sink(table, FindingList(), limit)
        head = list(itertools.islice(table.rows(), WINDOW_ROWS))
        bands = self._bands(head)
        for index, band in enumerate(bands):
            rows = table.rows()
            if len(bands) > 1:
                rows = _restricted(rows, band)
            suffix = f"b{index + 1}" if len(bands) > 1 else ""
            self._scan_band(_Rows(rows), sink, today, suffix, context)
        return sink.findings

    # -- blocks side by side ----------------------------------------------------------
    def _bands(self, head: list[Row]) -> list[tuple[int, int]]:
        """Column ranges of tables side by side, when each has its own header."""
        used: set[int] = set()
        for row in head:
            used.update(i for i, v in enumerate(row.cells) if v is not None and v != "")
        if not used:
            return [(0, 0)]
        runs: list[list[int]] = []
        for col in sorted(used):
            if runs and col == runs[-1][1]:
                runs[-1][1] = col + 1
            else:
                runs.append([col, col + 1])
        if len(runs) == 1:
            return [(0, runs[0][1])]
        described = []
        for lo, hi in runs:
            rows = list(_restricted(iter(head), (lo, hi)))
            header = next(
                (r for r in rows[:30] if self.layouts.label_row(r) and len(non_empty(r)) >= 2),
                None,
            )
            if header is None:
                return [(0, runs[-1][1])]
            kinds = set(self.layouts.kinds(header).values())
            described.append((header.number, kinds))
        same_row = len({n for n, _ in described}) == 1
        all_kinds = [k for _, kinds in described for k in kinds]
        repeated = len(all_kinds) != len(set(all_kinds))
        any_plain = any(not kinds for _, kinds in described)
        if same_row and not repeated and not any_plain:
            return [(0, runs[-1][1])]  # one table with an empty spacer column
        return [(lo, hi) for lo, hi in runs]

    # -- blocks one below another -----------------------------------------------------
    def _scan_band(
        self, rows: _Rows, sink: _Sink, today: dt.date, suffix: str, around: str
    ) -> None:
        previous: ListLayout | None = None
        forms = 0
        context = f"{sink.table.location} {around}".strip()
        while rows.peek(1):
            window = rows.peek(WINDOW_ROWS)
            analysis = self.layouts.analyse(window, context)
            if analysis.kind == "headerless" and previous is not None and previous.fields:
                analysis = Analysis("list", previous)
            if analysis.form_rows:
                forms += 1
                form_rows = [next(rows) for _ in range(analysis.form_rows)]
                _FormPass(self, sink, today, f"form{forms}{suffix}", context).run(form_rows)
            if analysis.kind == "list" and analysis.layout is not None:
                layout = analysis.layout
                self._complete(layout, window)
                _ListPass(self, sink, layout, today, suffix).run(rows)
                previous = layout
            elif analysis.kind == "headerless":
                layout = analysis.layout or ListLayout((), [])
                self._complete(layout, window)
                _ListPass(self, sink, layout, today, suffix).run(rows)
                previous = layout if layout.fields else previous
            elif analysis.kind == "transposed":
                block = [next(rows) for _ in range(analysis.block_rows)]
                _TransposedPass(self, sink, today, suffix, context).run(block)
            else:
                forms += 1
                block = [next(rows) for _ in range(max(1, analysis.block_rows))]
                _FormPass(self, sink, today, f"form{forms}{suffix}", context).run(block)

    def _complete(self, layout: ListLayout, window: list[Row]) -> None:
        """Judge columns with no recognised header by their first values."""
        last_header = layout.header_rows[-1] if layout.header_rows else 0
        body = [r for r in window if r.number > last_header][:SAMPLE_ROWS]
        taken = layout.columns
        width = max((len(r.cells) for r in body), default=0)
        has_name = any(f.kind is Kind.NAME for f in layout.fields)
        for i in range(width):
            if i in taken or (layout.headers.get(i) and self.classify(layout.headers[i])):
                continue
            values = [fold_cell(r.cells[i]) for r in body if i < len(r.cells)]
            values = [v for v in values if v not in (None, "")]
            if len(values) < 3:
                continue
            strings = [v for v in values if isinstance(v, str)]
            if len(strings) >= 3 and _share(strings, self.names.looks_like_name) >= 0.6:
                layout.fields.append(Field(Kind.NAME, (i,), 0.6, layout.headers.get(i, "")))
                taken.add(i)
                has_name = True
        for i in range(width):
            if i in taken or layout.headers.get(i):
                continue
            values = [r.cells[i] for r in body if i < len(r.cells)]
            values = [v for v in values if v not in (None, "")]
            if has_name and len(values) >= 3 and _looks_like_birth_dates(values):
                layout.fields.append(Field(Kind.BIRTH_DATE, (i,), 0.6))
        layout.fields.sort(key=lambda f: f.columns[0])
        for f in layout.fields:
            if f.kind is Kind.INSURED and len(f.columns) == 1 and not f.by_title:
                f.pad_to = self._lost_zero_width(f.columns[0], body)

    def _lost_zero_width(self, i: int, body: list[Row]) -> int:
        """The width short digit-only cells of an insured column are padded to: the longest
        of its values, when most of them are insured numbers (0: none padded). The sample
        ends at another table's header (statistics under the list)."""
        ins = self.p.insured_number
        values = []
        for r in body:
            if _may_be_header(r.cells) and any(self.classify.known_label(v) for v in r.cells):
                break
            if i < len(r.cells) and r.cells[i] not in (None, ""):
                values.append(r.cells[i])
        found = [d for d in (insured_value([v], ins) for v in values) if d]
        if len(found) < 3 or len(found) < ins.lost_zero_column_share * len(values):
            return 0
        return max(len(d) for d in found)

    def fits(self, kind: Kind, value: CellValue) -> bool:
        """A sample value looks like data of ``kind`` (for the list-or-form decision)."""
        value = fold_cell(value)
        if kind in NAME_KINDS:
            if not isinstance(value, str):
                return False
            text = value.strip()
            if _KANA_ONLY.match(text):
                return True
            name = name_value([text], self.p.name.max_cell_length)
            if name is None:
                return False
            parts = name.replace("\u3000", " ").split()
            if len(parts) == 2 and all(len(x) <= 6 for x in parts):
                return True  # 姓 名 with a space: the way rosters write names
            if kind is Kind.NAME_PART and len(parts) == 1 and len(name) <= 6:
                return True  # 宮城 under 姓, 久子 under 名: one part, whatever the dictionary
            return self.names.looks_like_name(name)
        if kind is Kind.BIRTH_DATE:
            if isinstance(value, str) and (value.strip() in _ERA_WORDS or value.strip().isdigit()):
                return True  # 元号 | 年 | 月 | 日 split over cells
            return cell_date(value) is not None or isinstance(value, int | float)
        digits = cell_digits(value)
        return digits is not None and len(digits) >= 2

    def plain_my_number_header(self, header: str) -> bool:
        return not header or label_key(header) in self._plain_mn

    def denies_my_number(self, header: str, title: str = "") -> bool:
        """A header naming another number (予約番号, Web会議ID): the nearest label, so even
        4-4-4 values under it are not My Numbers. A negative label split over the title
        line and the header (注文 / 番号) counts too."""
        labels = self.p.my_number.labels
        header = fold(header)
        if any(not labels.is_positive(m.group()) for m in labels.regex.finditer(header)):
            return True
        title = fold(title).rstrip()
        joined = title + header
        return any(
            m.start() < len(title) < m.end() and not labels.is_positive(m.group())
            for m in labels.regex.finditer(joined, max(0, len(title) - 20))
        )


class _ListPass:
    """One person per row (or per pair of rows) under a header, or with none."""

    def __init__(
        self, scanner: TableScanner, sink: _Sink, layout: ListLayout, today: dt.date, suffix: str
    ):
        self.s, self.sink, self.layout, self.today = scanner, sink, layout, today
        self.table = sink.table
        self.suffix = suffix
        p = scanner.p
        self.mn_mask = p.my_number.mask_characters
        self.max_name = p.name.max_cell_length
        # Columns that may become My Number columns by check digits alone: no header, or a
        # generic one (番号); any other header is the nearest label and wins.
        self.stat_columns = {
            i: h for i, h in layout.headers.items() if scanner.plain_my_number_header(h)
        }
        self.field_columns = layout.columns
        # column -> (location, group, masked, written 4-4-4) of valid 12-digit cells
        self.pending: dict[int, list[tuple[str, str, str, bool]]] = {}
        # No birth-date column: a date joined to the name (山田太郎（S12.3.4生）) is read.
        self.joined_births = not any(f.kind is Kind.BIRTH_DATE for f in layout.fields)
        self.signoff = scanner.p.name.signoff_labels
        self.twelve_digit: dict[int, int] = {}
        # Headed columns (備考, カード番号) whose header names no other number: only their
        # 4-4-4 values may be My Numbers, as in body text (None: not judged yet).
        self.denied: dict[int, bool] = {}
        # Rows past the evidence bound: judged in batches, counted without findings.
        self.batch: list[list[CellValue]] = []  # cells of rows to count
        self.judge: ColumnJudge | None = None
        self.counted_valid: dict[int, int] = {}  # column -> valid 12-digit cells counted
        self.counted_grouped: dict[int, int] = {}  # ... of them written 4-4-4
        # Counted rows with a valid 12-digit cell in an unnamed column, whose record
        # depends on whether that column turns out to be a My Number column:
        # (my numbers, insured numbers, name-and-date pairs, columns) -> rows (few
        # distinct keys, so memory does not grow with a long list of such rows).
        self.counted_twelve: dict[tuple[int, int, int, tuple[int, ...]], int] = {}

    def run(self, rows: _Rows) -> None:
        layout = self.layout
        header_rows = set(layout.header_rows)
        first_header = min(header_rows, default=0)
        last_header = max(header_rows, default=0)
        signature = layout.signature
        reader = self.s.layouts
        second = layout.second_fields
        ordinal = 0
        pair_group = ""
        blank = False
        first = True
        previous_number = 0
        sink = self.sink
        counting = sink.full and second is None  # past the evidence: rows only counted
        batch = self.batch
        for row in rows:
            number = row.number
            if number > previous_number + 1 and previous_number:
                blank = True  # readers skip empty rows: a gap in the numbers is a blank row
            previous_number = number
            if number <= last_header and (number in header_rows or number < first_header):
                continue  # title rows above the header, and the header itself
            cells = row.cells
            if not cells or (
                (cells[0] is None or cells[0] == "")
                and all(v is None or v == "" for v in cells)
            ):
                blank = True
                continue
            first_cell = cells[0]
            data_first = (first_cell is not None and type(first_cell) is not str) or (
                type(first_cell) is str and _HAS_DIGIT_FAST.search(first_cell)
            )  # a number or a digit in the first cell: data (as _may_be_header says)
            if row.number > last_header and (
                (not data_first and _may_be_header(cells))
                or (blank and not layout.fields and _one_text(cells))
            ):
                if signature and reader.signature(row) == signature:
                    continue  # the header repeated on a printed page
                if not first and self._new_block(row, blank, rows):
                    rows.push(row)
                    break
                if self._other_header(row, blank):
                    self._stop_padding()
            if not data_first and self._signoff_row(cells):
                continue
            blank = first = False
            if second is not None:
                if ordinal % 2 == 0:
                    pair_group = f"{self.table.location}!r{row.number}{self.suffix}"
                    self._row(row, pair_group, layout.fields)
                else:
                    self._row(row, pair_group, second)
                ordinal += 1
            elif counting:
                batch.append(cells)
                if len(batch) >= BATCH_ROWS:
                    self._count_batch()
            else:
                self._row(row, f"{self.table.location}!r{row.number}{self.suffix}", layout.fields)
                counting = sink.full
        self._count_batch()
        self._flush()

    def _signoff_row(self, cells: list[CellValue]) -> bool:
        """作成者 | 伊藤 博 or 作成日 | 2024/04/01 under a roster: who made the list and
        when, not one more person (the date under 生年月日 is no birth)."""
        for value in cells:
            if value is None or value == "":
                continue
            return type(value) is str and value.strip().lstrip("【[(（").startswith(self.signoff)
        return False

    def _count_batch(self) -> None:
        """Count the batched rows a column at a time (same validators, no findings)."""
        if not self.batch:
            return
        if self.judge is None:
            s = self.s
            self.judge = ColumnJudge(
                s.p, self.layout.fields, self.layout.headers, self.stat_columns, self.today,
                s.text_hits, lambda header: s.denies_my_number(header, self.layout.title),
            )
        counts = self.judge.judge(self.batch)
        self.batch.clear()
        mn, ins, names, births = (counts.vector(t) for t in ROW_TYPES)
        # records.records_in_group per row, with builtins: max(codes, min(name, date))
        pairs = map(min, names, births)
        codes = [t for t in ("my_number", "insured_number") if t in counts.by_type]
        if not codes:
            records = sum(pairs)
        elif len(codes) == 1:
            records = sum(map(max, counts.by_type[codes[0]], pairs))
        else:
            records = sum(map(max, mn, ins, pairs))
        self.sink.count_rows(counts, records)
        for i, n in counts.twelve_seen.items():
            self.twelve_digit[i] = self.twelve_digit.get(i, 0) + n
        columns_of: dict[int, list[int]] = {}
        for i, n in counts.twelve_grouped.items():
            self.counted_grouped[i] = self.counted_grouped.get(i, 0) + n
        for i, rows in counts.twelve_valid.items():
            self.counted_valid[i] = self.counted_valid.get(i, 0) + len(rows)
            for j in rows:
                columns_of.setdefault(j, []).append(i)
        for j, columns in columns_of.items():
            pairs = min(names[j], births[j])
            key = (mn[j], ins[j], pairs, tuple(columns))
            self.counted_twelve[key] = self.counted_twelve.get(key, 0) + 1

    def _other_header(self, row: Row, after_blank: bool) -> bool:
        """Labels read on as this list's rows (要介護度 | 人数 under a roster): the rows
        below are another table's."""
        classify = self.s.classify
        return after_blank or any(classify.known_label(v) for _, v in non_empty(row))

    def _stop_padding(self) -> None:
        """Small numbers below another table's header are counts, not insured numbers
        that lost their leading zeros: stop padding (rows batched so far keep it)."""
        if not any(f.pad_to for f in self.layout.fields):
            return
        self._count_batch()
        self.judge = None
        for f in self.layout.fields:
            f.pad_to = 0

    def _new_block(self, row: Row, after_blank: bool, rows: _Rows) -> bool:
        """A different header (or a title after a gap) starts the next block."""
        reader = self.s.layouts
        kinds = reader.kinds(row)
        labels = non_empty(row)
        if len(labels) == 1:
            if not isinstance(labels[0][1], str):
                return False
            ahead = rows.peek(4)
            if after_blank and reader.titled_column_ahead(
                [row, *rows.peek(8)], self.table.location
            ):
                return True  # 被保険者一覧 / 番号 over numbers, under statistics or a table
            if not after_blank:  # a title line right above a new header (表題 / 番号 | 氏名)
                return (
                    bool(ahead) and reader.label_row(ahead[0]) and len(reader.kinds(ahead[0])) >= 2
                )
            return any(
                reader.label_row(r) and (reader.kinds(r) or not self.layout.fields)
                for r in ahead
            )  # under statistics (no fields), a titled table of any header starts
        if not reader.label_row(row):
            return False
        if (
            len(kinds) >= 2
            or (after_blank and (kinds or not self.layout.fields))
            or (kinds and not self.layout.fields)  # a roster's header under statistics
        ):
            below = rows.peek(6)
            return bool(below) and not all(reader.kinds(r) for r in below[:3] if non_empty(r))
        return False

    def _row(self, row: Row, group: str, fields: list[Field]) -> None:
        cells = row.cells
        n = len(cells)
        named = False
        kana: tuple[int, float, str] | None = None
        for f in fields:
            first = f.columns[0]
            if first >= n:
                continue
            value = cells[first]
            if (value is None or value == "") and len(f.columns) == 1:
                continue
            kind = f.kind
            if kind in NAME_KINDS:
                if named or (kana is not None and kind is not Kind.NAME):
                    continue
                values = [cells[c] for c in f.columns if c < n]
                name = name_value(values, self.max_name)
                if name is None:
                    continue
                if kind is Kind.NAME:
                    if not named:
                        self.sink.add(
                            "name", self._loc(row, first), mask_name(name), f.confidence, group
                        )
                        named = True
                        if self.joined_births and joined_birth(value, self.today):
                            loc = self._loc(row, first)
                            self.sink.add("birth_date", loc, MASKED_DATE, 0.9, group)
                elif kana is None:
                    kana = (first, f.confidence, name)
                continue
            values = [cells[c] for c in f.columns if c < n]
            self._typed(f, values, row, group)
        if not named and kana is not None:
            i, confidence, name = kana
            self.sink.add("name", self._loc(row, i), mask_name(name), confidence * 0.9, group)
        self._other_cells(row, group)

    def _typed(self, f: Field, values: list[CellValue], row: Row, group: str) -> None:
        loc = self._loc(row, f.columns[0])
        if f.kind is Kind.MY_NUMBER:
            digits = my_number_value(values, self.mn_mask)
            if digits:
                self.sink.add("my_number", loc, mask_number(digits), f.confidence, group)
        elif f.kind is Kind.INSURED:
            digits = insured_value(values, self.s.p.insured_number, f.by_title)
            if not digits and f.pad_to:
                digits = lost_zero_insured(values[0], f.pad_to)
            if digits:
                self.sink.add("insured_number", loc, mask_number(digits), f.confidence, group)
        elif f.kind is Kind.BIRTH_DATE and birth_value(values, self.today):
            self.sink.add("birth_date", loc, MASKED_DATE, f.confidence, group)

    def _other_cells(self, row: Row, group: str) -> None:
        """Cells of unrecognised columns: check-digit statistics and free text."""
        taken = self.field_columns
        for i, value in enumerate(row.cells):
            if value is None or i in taken:
                continue
            if isinstance(value, int) and not isinstance(value, bool):
                if 10_000_000_000 <= value < 1_000_000_000_000:
                    self._twelve(i, str(value).zfill(12), row, group)
            elif isinstance(value, str) and len(value) >= 8:
                digits = cell_digits(value)
                if digits is not None and len(digits) == 12 and self._keyworded(value):
                    self._free_text(value, row, i, group)  # 個人番号 123456789018: its label
                elif digits is not None and len(digits) == 12:
                    if not is_masked(value, self.mn_mask):
                        grouped = is_grouped_444(fold_cell(value))  # type: ignore[arg-type]
                        self._twelve(i, digits, row, group, grouped)
                elif len(value) >= 10:
                    self._free_text(value, row, i, group)

    def _keyworded(self, value: str) -> bool:
        return has_keyword(value, self.s.p.my_number.labels.positive)

    def _twelve(self, i: int, digits: str, row: Row, group: str, grouped: bool = False) -> None:
        headers = self.layout.headers
        headed = i in headers and i not in self.stat_columns
        if headed and self._denied(i):
            return
        if grouped and i and self._labelled_other(row.cells[i - 1]):
            return  # 送り状番号 | 4652 8126 6333: the label beside the value is the nearest
        if not digits.isascii():
            digits = "".join(str(int(d)) for d in digits)
        self.twelve_digit[i] = self.twelve_digit.get(i, 0) + 1
        if is_valid_my_number(digits) and (grouped or not headed):
            location = self._loc(row, i)
            self.pending.setdefault(i, []).append((location, group, mask_number(digits), grouped))

    def _labelled_other(self, left: CellValue) -> bool:
        """A label cell (short text, no digits) naming another number. Only key/value
        rows have one beside a 4-4-4 value, and they are short: the column-at-a-time
        count past the evidence bound does not look at it."""
        s = self.s
        return isinstance(left, str) and s.classify.is_label(left) and s.denies_my_number(left)

    def _denied(self, i: int) -> bool:
        denied = self.denied.get(i)
        if denied is None:
            layout = self.layout
            denied = self.denied[i] = self.s.denies_my_number(layout.headers[i], layout.title)
        return denied

    def _flush(self) -> None:
        mn = self.s.p.my_number
        accepted = set()
        columns = [*self.pending, *(i for i in self.counted_valid if i not in self.pending)]
        for i in columns:
            items = self.pending.get(i, [])
            valid = len(items) + self.counted_valid.get(i, 0)
            grouped = sum(1 for item in items if item[3]) + self.counted_grouped.get(i, 0)
            share = mn.column_checksum_share * self.twelve_digit[i]
            # 4-4-4 grouping is context of its own (as in text): one such value is enough
            # when the column's 12-digit values are (nearly) all valid and grouped.
            enough = valid >= mn.column_min_values or (grouped >= 1 and grouped >= share)
            if enough and valid >= share:
                accepted.add(i)
                for location, group, masked, _ in items:
                    self.sink.add("my_number", location, masked, 0.8, group)
        if accepted and self.counted_twelve:
            self._count_twelve(accepted)

    def _count_twelve(self, accepted: set[int]) -> None:
        """Counted rows whose 12-digit cells sit in columns now known to be My Numbers."""
        found = added = 0
        for (mn, ins, pairs, columns), rows in self.counted_twelve.items():
            k = sum(1 for c in columns if c in accepted)
            if k:
                found += k * rows
                added += (max(mn + k, ins, pairs) - max(mn, ins, pairs)) * rows
        if found:
            self.sink.count_rows(BatchCounts(1, {"my_number": [found]}), added)

    def _free_text(self, value: str, row: Row, i: int, group: str) -> None:
        if len(_DIGITS.findall(value)) < MIN_DIGITS_FOR_TEXT:
            return  # addresses, notes without numbers or dates: nothing to find
        header = self.layout.headers.get(i, "")
        location = self._loc(row, i)
        for hit in self.s.text_hits(under_header(value, header), header):
            self.sink.add(hit.type, location, hit.masked, hit.confidence, group)

    def _loc(self, row: Row, i: int) -> str:
        return self.table.cell_location(row.number, i)


class _FormPass:
    """Label/value forms: a label governs the cell to its right, or the cell below it."""

    def __init__(
        self, scanner: TableScanner, sink: _Sink, today: dt.date, name: str, context: str = ""
    ):
        self.s, self.sink, self.today = scanner, sink, today
        self.table = sink.table
        self.group = self.base_group = f"{self.table.location}!{name}"
        self.people = 1
        self.mark = len(sink.findings)  # the current person's findings start here
        self.context = context
        self.by_title = False
        self.value_titled = False  # the value's label is insured by the title alone (番号)
        self.after_symbol = False

    def _label(self, value: CellValue) -> Kind | None:
        kind = self.s.classify(value)
        layouts = self.s.layouts
        if kind is None and self.after_symbol and layouts.is_symbol_part(value):
            return _SKIP  # type: ignore[no-any-return]  # 番号 / 枝番 after 記号: counted with it
        if kind is None and layouts.form_insured_label(value, self.by_title):
            return Kind.INSURED  # 記号, or 番号 in a form titled 被保険者一覧
        return kind

    def run(self, rows: list[Row]) -> None:
        titles = [c[0][1] for c in map(non_empty, rows) if len(c) == 1 and isinstance(c[0][1], str)]
        self.by_title = self.s.layouts.title_says_insured(" ".join([self.context, *titles]))
        above: dict[int, Kind] = {}
        neutral_above: dict[int, str] = {}  # labels of other data (予約番号) above a cell
        named = False
        is_label = self.s.classify.is_label
        own: set[int] = set()  # columns of labels above with a kind of their own (被保番号)
        for row in rows:
            labels_here: dict[int, Kind] = {}
            neutral_here: dict[int, str] = {}
            own_here: set[int] = set()
            pending: Kind | None = None
            pending_own = False
            neutral: str | None = None  # a label of other data left of the next value
            left = ""
            box_kind: Kind | None = None
            symbol_row = False
            for i, value in enumerate(row.cells):
                if value is None or value == "":
                    continue
                kind = self._label(value)
                if kind is Kind.NAME and named and self._has_data():
                    self._next_person()  # 氏名 again after a name and its data: the next person
                    named = False
                if kind is not None:
                    symbol_row = (
                        symbol_row
                        or (kind is Kind.INSURED and not self.s.classify(value))
                        or kind is _SKIP
                    )
                    labels_here[i] = kind
                    pending = box_kind = kind
                    pending_own = self.s.classify(value) is not None
                    if pending_own:
                        own_here.add(i)
                    neutral, left = None, ""
                    continue
                if self.s.classify.known_label(value):
                    neutral_here[i] = neutral = str(value).strip()
                    pending, left = None, ""
                    continue
                governing = None if neutral else pending or above.get(i)
                # the title's lengths hold only for a plain 番号: 被保番号 is its own label
                self.value_titled = self.by_title and not (pending_own if pending else i in own)
                if governing is not None:
                    if governing in NAME_KINDS:
                        if not named and self._cell(governing, fold_cell(value), row, i):
                            named = True
                    elif not self._cell(governing, fold_cell(value), row, i) and pending:
                        self._split(governing, row, i)
                    pending = None
                elif isinstance(value, str) and len(value) >= 10:
                    # the label beside or above is the nearest label (予約番号 | 4652 8126 6333)
                    self._free_text(value, row, i, neutral or left or neutral_above.get(i, ""))
                # a label of no kind we know (お問い合わせ番号) still names the value beside it
                left = value.strip() if isinstance(value, str) and is_label(value) else ""
                if left:
                    neutral_here.setdefault(i, left)
                neutral = None
            self._box_digits(row, box_kind or _single_kind(above))
            above, own, neutral_above = labels_here, own_here, neutral_here
            self.after_symbol = symbol_row

    def _has_data(self) -> bool:
        """The current person has data besides the name (a date, a number)."""
        group = self.group
        return any(f.group == group and f.type != "name" for f in self.sink.findings[self.mark :])

    def _next_person(self) -> None:
        self.people += 1
        self.group = f"{self.base_group}#p{self.people}"
        self.mark = len(self.sink.findings)

    def _cell(self, kind: Kind, value: CellValue, row: Row, i: int) -> bool:
        if kind is _SKIP:
            return True
        location = self.table.cell_location(row.number, i)
        p = self.s.p
        if kind in NAME_KINDS:
            name = name_value([value], p.name.max_cell_length)
            if name:
                self.sink.add("name", location, mask_name(name), 0.85, self.group)
                return True
        elif kind is Kind.MY_NUMBER:
            digits = my_number_value([value], p.my_number.mask_characters)
            if digits:
                self.sink.add("my_number", location, mask_number(digits), 0.95, self.group)
                return True
        elif kind is Kind.INSURED:
            digits = insured_value([value], p.insured_number, by_title=self.value_titled)
            if digits:
                self.sink.add("insured_number", location, mask_number(digits), 0.9, self.group)
                return True
        elif kind is Kind.BIRTH_DATE and birth_value([value], self.today):
            self.sink.add("birth_date", location, MASKED_DATE, 0.9, self.group)
            return True
        return False

    def _split(self, kind: Kind, row: Row, i: int) -> None:
        """A value spread over the cells right of its label (令和 | 5 | 年 | 9 | 月 | 6 | 日)."""
        cells: list[CellValue] = []
        for value in row.cells[i:]:
            if value is None or value == "":
                continue
            if self.s.classify(value) is not None:
                break
            cells.append(fold_cell(value))
        if len(cells) < 2:
            return
        location = self.table.cell_location(row.number, i)
        p = self.s.p
        if kind is Kind.BIRTH_DATE and birth_value(cells, self.today):
            self.sink.add("birth_date", location, MASKED_DATE, 0.9, self.group)
        elif kind is Kind.MY_NUMBER and not all(_single_digit(c) for c in cells):
            digits = my_number_value(cells, p.my_number.mask_characters)
            if digits:  # (one digit per cell is _box_digits' work)
                self.sink.add("my_number", location, mask_number(digits), 0.9, self.group)
        elif kind is Kind.INSURED:
            digits = insured_value(cells, p.insured_number, by_title=self.value_titled)
            if digits:
                self.sink.add("insured_number", location, mask_number(digits), 0.9, self.group)

    def _free_text(self, value: str, row: Row, i: int, label: str = "") -> None:
        """``label``: the form's label of this cell when it names other data (予約番号):
        read before the value, it is the nearest label (a check digit alone never wins)."""
        if len(_DIGITS.findall(value)) < MIN_DIGITS_FOR_TEXT:
            return
        location = self.table.cell_location(row.number, i)
        for hit in self.s.text_hits(f"{label} {value}" if label else value, ""):
            self.sink.add(hit.type, location, hit.masked, hit.confidence, self.group)

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
                    self.sink.add("my_number", location, mask_number(digits), 0.9, self.group)
            if value not in (None, ""):
                run = []


class _TransposedPass:
    """Labels down the first column, one person per column to the right."""

    def __init__(
        self, scanner: TableScanner, sink: _Sink, today: dt.date, suffix: str, context: str = ""
    ):
        self.s, self.sink, self.today, self.suffix = scanner, sink, today, suffix
        self.table = sink.table
        self.context = context

    def run(self, rows: list[Row]) -> None:
        p = self.s.p
        named: set[int] = set()
        titles = [c[0][1] for c in map(non_empty, rows) if len(c) == 1 and isinstance(c[0][1], str)]
        by_title = self.s.layouts.title_says_insured(" ".join([self.context, *titles]))
        for row in rows:
            cells = non_empty(row)
            if len(cells) < 2:
                continue
            label = cells[0][1]
            kind = self.s.classify(label)
            if kind is None and by_title and self.s.layouts.title_plain(label):
                kind = Kind.INSURED
            if kind is None:
                continue
            for i, raw in cells[1:]:
                value = fold_cell(raw)
                group = f"{self.table.location}!c{i + 1}{self.suffix}"
                location = self.table.cell_location(row.number, i)
                if kind in NAME_KINDS:
                    name = name_value([value], p.name.max_cell_length)
                    if name and i not in named:
                        named.add(i)
                        self.sink.add("name", location, mask_name(name), 0.85, group)
                elif kind is Kind.MY_NUMBER:
                    digits = my_number_value([value], p.my_number.mask_characters)
                    if digits:
                        self.sink.add("my_number", location, mask_number(digits), 0.9, group)
                elif kind is Kind.INSURED:
                    digits = insured_value(
                        [value], p.insured_number, by_title and not self.s.classify(label)
                    )
                    if digits:
                        self.sink.add("insured_number", location, mask_number(digits), 0.9, group)
                elif kind is Kind.BIRTH_DATE and birth_value([value], self.today):
                    self.sink.add("birth_date", location, MASKED_DATE, 0.9, group)


# A label whose value is already counted (番号 and 枝番 right after 記号 in a form).
_SKIP: Any = object()


def _restricted(rows: Iterator[Row], band: tuple[int, int]) -> Iterator[Row]:
    lo, hi = band
    for row in rows:
        cells = row.cells[lo:hi]
        if any(v is not None and v != "" for v in cells):
            yield Row(row.number, [None] * lo + cells)
        else:
            yield Row(row.number, [])


def _one_text(cells: list[CellValue]) -> bool:
    """One text cell (a title such as 令和8年度 介護保険被保険者一覧)."""
    values = [v for v in cells if v is not None and v != ""]
    return len(values) == 1 and isinstance(values[0], str)


def _may_be_header(cells: list[CellValue]) -> bool:
    """Cheap pre-check: only text cells, no digits (most data rows fail at once)."""
    count = 0
    for v in cells:
        if v is None or v == "":
            continue
        if type(v) is not str or _HAS_DIGIT_FAST.search(v) or _HAS_DIGIT.search(v):
            return False
        count += 1
    return count >= 1


def _single_kind(above: dict[int, Kind]) -> Kind | None:
    kinds = set(above.values())
    return kinds.pop() if len(kinds) == 1 else None


def _single_digit(value: CellValue) -> str | None:
    value = fold_cell(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 9:
        return str(value)
    if isinstance(value, str) and len(value.strip()) == 1 and value.strip().isdigit():
        return str(int(value.strip()))
    return None


def _share(values: list, predicate) -> float:  # type: ignore[no-untyped-def]
    return sum(1 for v in values if predicate(v)) / len(values) if values else 0.0


def _looks_like_birth_dates(values: list) -> bool:  # type: ignore[no-untyped-def]
    dates = [d for d in (cell_date(v) for v in values) if d is not None]
    if len(dates) < 0.8 * len(values):
        return False
    return len({d.year for d in dates}) >= 5
