"""List rows past the evidence bound, judged a column at a time: counts, not findings.

A list pass keeps the findings of its first rows as evidence (``tables.py``); the rows
after them are read in batches and each column is judged once per distinct value
(rosters repeat names, dates and codes), with the same validators as the per-cell
path (``columns.py``), so the counts are the same. What comes out is, per row, how
many My Numbers, insured numbers, names and birth dates it holds, from which the
caller counts records without building a ``Finding`` per cell.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

import regex

from dlp_gateway.detect.columns import (
    MIN_PADDED_DIGITS,
    birth_value,
    fold_cell,
    insured_value,
    is_masked,
    joined_birth,
    lost_zero_insured,
    my_number_value,
    name_value,
)
from dlp_gateway.detect.layout import NAME_KINDS, Field, Kind
from dlp_gateway.detect.numbers import Hit, cell_digits, is_grouped_444
from dlp_gateway.detect.patterns import PatternSet
from dlp_gateway.extract.units import CellValue

BATCH_ROWS = 512
# A column's cache of judged values is emptied when it grows past this (a column of
# distinct values, such as addresses, must not grow memory with the rows).
CACHE_LIMIT = 1 << 16
# A batch whose distinct values are this share new to a cache already holding WARM_VALUES
# judges the next DIRECT_BATCHES batches directly (a column of nearly all distinct values).
DISTINCT_SHARE = 0.95
WARM_VALUES = 4096
DIRECT_BATCHES = 16
MIN_DIGITS_FOR_TEXT = 6  # as tables.MIN_DIGITS_FOR_TEXT
_DIGITS = regex.compile(r"\d")
# Outcomes of a cell in a column no header names (see tables._ListPass._other_cells).
TWELVE_VALID = "twelve-valid"  # 12 digits with a correct check digit (a My Number candidate)
TWELVE_OTHER = "twelve-other"  # 12 digits, check digit wrong (counts against the column)
TWELVE_GROUPED = "twelve-grouped"  # a valid candidate written 4-4-4 (context of its own)

Judge = Callable[[CellValue], Any]
TextHits = Callable[[str, str], list[Hit]]
ROW_TYPES = ("my_number", "insured_number", "name", "birth_date")


class ValueCache:
    """Results of one judge per distinct cell value.

    Values of one type (and None) are keyed by value, in one table per type; a column
    mixing types is keyed by (type, value), so that 1, 1.0 and True (equal in Python)
    are always judged apart.
    """

    __slots__ = ("by_type", "direct", "judge", "typed")

    def __init__(self, judge: Judge):
        self.judge = judge
        self.by_type: dict[type, dict[Any, Any]] = {}
        self.typed: dict[Any, Any] = {}
        # Batches left to judge value by value: a column of distinct values (My Numbers,
        # addresses) gains nothing from a cache; it is tried again after DIRECT_BATCHES.
        self.direct = 0

    def results(self, values: Sequence[CellValue]) -> list[Any]:
        judge = self.judge
        if self.direct:
            self.direct -= 1
            return list(map(judge, values))
        types = set(map(type, values))
        types.discard(_NONE)
        if len(types) <= 1:
            kind = types.pop() if types else str
            known = self.by_type.get(kind)
            if known is None or len(known) > CACHE_LIMIT:
                known = self.by_type[kind] = {}
            try:
                return list(map(known.__getitem__, values))
            except KeyError:  # values not judged yet
                distinct = set(values)
                new = distinct.difference(known)
                if len(known) >= WARM_VALUES and len(new) > DISTINCT_SHARE * len(distinct):
                    self.direct = DIRECT_BATCHES
                for value in new:
                    known[value] = judge(value)
                return list(map(known.__getitem__, values))
        if len(self.typed) > CACHE_LIMIT:
            self.typed.clear()
        keys = list(zip(map(type, values), values, strict=True))
        typed = self.typed
        for key in set(keys).difference(typed):
            typed[key] = judge(key[1])
        return list(map(typed.__getitem__, keys))


_NONE = type(None)


@dataclass(slots=True)
class BatchCounts:
    """Per-row counts of one batch, and the 12-digit cells of unnamed columns."""

    rows: int
    by_type: dict[str, list[int]] = field(default_factory=dict)
    twelve_valid: dict[int, list[int]] = field(default_factory=dict)  # column -> row indexes
    twelve_seen: dict[int, int] = field(default_factory=dict)  # column -> 12-digit cells
    twelve_grouped: dict[int, int] = field(default_factory=dict)  # column -> valid 4-4-4 cells

    def add(self, type_: str, vector: list[int]) -> None:
        old = self.by_type.get(type_)
        self.by_type[type_] = vector if old is None else list(map(operator.add, old, vector))

    def vector(self, type_: str) -> list[int]:
        return self.by_type.get(type_) or [0] * self.rows


class ColumnJudge:
    """Judges batches of list rows for one list layout (the fields of a ``_ListPass``)."""

    def __init__(
        self,
        patterns: PatternSet,
        fields: list[Field],
        headers: dict[int, str],
        stat_columns: dict[int, str],
        today: dt.date,
        text_hits: TextHits,
        denies: Callable[[str], bool] = lambda header: True,
    ):
        """``denies(header)``: the header names another number (TableScanner.denies_my_number)."""
        self.p = patterns
        self.denies = denies
        self.fields = fields
        self.taken = {c for f in fields for c in f.columns}
        self.headers = headers
        self.stat_columns = stat_columns
        self.today = today
        self.text_hits = text_hits
        self.field_caches = [ValueCache(self._field_judge(f)) for f in fields]
        # No birth-date column: a date joined to the name (山田太郎（S12.3.4生）) counts.
        joined = not any(f.kind is Kind.BIRTH_DATE for f in fields)
        self.joined_caches = {
            id(f): ValueCache(lambda v: int(joined_birth(v, today) is not None))
            for f in fields
            if joined and f.kind is Kind.NAME and len(f.columns) == 1
        }
        self.other_caches: dict[int, ValueCache] = {}

    # -- judges ------------------------------------------------------------------------
    def _field_judge(self, f: Field) -> Judge:
        """1 when the one cell of a one-column field holds a value of its kind, else 0."""
        p = self.p
        kind = f.kind
        check: Callable[[CellValue], object]
        if kind in NAME_KINDS:
            max_name = p.name.max_cell_length
            check = lambda v: name_value([v], max_name) is not None  # noqa: E731
        elif kind is Kind.MY_NUMBER:
            mask = p.my_number.mask_characters
            plain = not any(ch.isdigit() for ch in mask)

            def check(v: CellValue) -> object:
                if plain and type(v) is str and v.isdigit() and v.isascii():
                    # my_number_value of plain digits: 8-12 digits, zeros Excel dropped
                    # put back, then the check digit.
                    return MIN_PADDED_DIGITS <= len(v) <= 12 and valid_plain_my_number(v.zfill(12))
                return my_number_value([v], mask)
        elif kind is Kind.INSURED:
            ins, by_title, pad_to = p.insured_number, f.by_title, f.pad_to
            plain = not any(ch.isdigit() for ch in ins.mask_characters)
            lo, hi, title_lengths = ins.cell_min_digits, ins.cell_max_digits, ins.title_lengths

            def check(v: CellValue) -> object:
                if plain and type(v) is str and v.isdigit() and v.isascii():
                    # insured_value of plain digits: the digits themselves, by length.
                    if by_title:
                        return len(v) in title_lengths
                    return lo <= len(v) <= hi or (pad_to and lost_zero_insured(v, pad_to))
                return insured_value([v], ins, by_title) or (
                    pad_to and lost_zero_insured(v, pad_to)
                )
        elif kind is Kind.BIRTH_DATE:
            today = self.today
            check = lambda v: birth_value([v], today) is not None  # noqa: E731
        else:
            return lambda v: 0
        # An empty cell of a one-column field is skipped before any validator sees it.
        return lambda v: int(v is not None and v != "" and bool(check(v)))

    def _multi(self, f: Field, cells: list[CellValue]) -> int:
        """A field over several columns, judged per row as the per-cell path does."""
        n = len(cells)
        if f.columns[0] >= n:
            return 0
        values = [cells[c] for c in f.columns if c < n]
        p = self.p
        if f.kind in NAME_KINDS:
            return int(name_value(values, p.name.max_cell_length) is not None)
        if f.kind is Kind.MY_NUMBER:
            return int(bool(my_number_value(values, p.my_number.mask_characters)))
        if f.kind is Kind.INSURED:
            return int(bool(insured_value(values, p.insured_number, f.by_title)))
        if f.kind is Kind.BIRTH_DATE:
            return int(birth_value(values, self.today) is not None)
        return 0

    def _other_judge(self, i: int) -> Judge:
        """A cell of a column no field takes: a 12-digit candidate, free-text hits or None."""
        mask = self.p.my_number.mask_characters
        headed = i in self.headers and i not in self.stat_columns
        counted = not (headed and self.denies(self.headers[i]))
        header = self.headers.get(i, "")
        text_hits = self.text_hits
        keywords = self.p.my_number.labels.positive

        def twelve(digits: str, grouped: bool = False) -> str | None:
            """As tables._ListPass._twelve: under a header naming no other number, only
            4-4-4 values are candidates."""
            if not counted:
                return None
            if not digits.isascii():
                digits = "".join(str(int(d)) for d in digits)
            if not valid_plain_my_number(digits):
                return TWELVE_OTHER
            if grouped:
                return TWELVE_GROUPED
            return TWELVE_OTHER if headed else TWELVE_VALID

        def judge(value: CellValue) -> Any:
            if value is None:
                return None
            if isinstance(value, int) and not isinstance(value, bool):
                if 10_000_000_000 <= value < 1_000_000_000_000:
                    return twelve(str(value).zfill(12))
                return None
            if isinstance(value, str) and len(value) >= 8:
                digits = cell_digits(value)
                if digits is not None and len(digits) == 12 and not has_keyword(value, keywords):
                    if is_masked(value, mask):
                        return None
                    return twelve(digits, is_grouped_444(fold_cell(value)))  # type: ignore[arg-type]
                if len(value) >= 10:  # 個人番号 123456789018 in one cell: read by its label
                    if len(_DIGITS.findall(value)) < MIN_DIGITS_FOR_TEXT:
                        return None
                    hits = text_hits(under_header(value, header), header)
                    return tuple(h.type for h in hits) or None
            return None

        return judge

    # -- a batch -------------------------------------------------------------------------
    def judge(self, cells: list[list[CellValue]]) -> BatchCounts:
        """``cells``: the cells of each row of the batch."""
        if len(set(map(len, cells))) == 1:
            columns = list(zip(*cells, strict=True))
        else:
            columns = list(zip_longest(*cells))
        width = len(columns)
        out = BatchCounts(len(cells))
        names: list[int] | None = None
        for f, cache in zip(self.fields, self.field_caches, strict=True):
            if len(f.columns) == 1:
                c = f.columns[0]
                if c >= width:
                    continue
                vector = cache.results(columns[c])
            else:
                vector = [self._multi(f, row) for row in cells]
            if f.kind in NAME_KINDS:  # one name per row, whichever name field holds it
                if id(f) in self.joined_caches and names is None:
                    births = self.joined_caches[id(f)].results(columns[f.columns[0]])
                    out.add("birth_date", list(map(min, vector, births)))
                names = vector if names is None else list(map(max, names, vector))
            elif f.kind in _KIND_TYPES:
                out.add(_KIND_TYPES[f.kind], vector)
        if names is not None:
            out.add("name", names)
        for i in range(width):
            if i not in self.taken:
                self._other_column(i, columns[i], out)
        return out

    def _other_column(self, i: int, values: Sequence[CellValue], out: BatchCounts) -> None:
        cache = self.other_caches.get(i)
        if cache is None:
            cache = self.other_caches[i] = ValueCache(self._other_judge(i))
        results = cache.results(values)
        if not any(results):
            return
        hits: dict[str, list[int]] = {}
        for j, outcome in enumerate(results):
            if outcome is None:
                continue
            if outcome is TWELVE_VALID or outcome is TWELVE_OTHER or outcome is TWELVE_GROUPED:
                out.twelve_seen[i] = out.twelve_seen.get(i, 0) + 1
                if outcome is not TWELVE_OTHER:
                    out.twelve_valid.setdefault(i, []).append(j)
                if outcome is TWELVE_GROUPED:
                    out.twelve_grouped[i] = out.twelve_grouped.get(i, 0) + 1
                continue
            for type_ in outcome:
                vector = hits.get(type_)
                if vector is None:
                    vector = hits[type_] = [0] * out.rows
                vector[j] += 1
        for type_, vector in hits.items():
            out.add(type_, vector)


_KIND_TYPES = {
    Kind.MY_NUMBER: "my_number",
    Kind.INSURED: "insured_number",
    Kind.BIRTH_DATE: "birth_date",
}


_WEIGHTS = (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2)  # python-stdnum jp.in_ (My Number)


def under_header(value: str, header: str) -> str:
    """A cell's text read after its column header, its nearest label unless the cell holds
    its own (電話番号 over 0982-22-6701 / 5772-1980-2396: not a My Number by its grouping)."""
    return f"{header} {value}" if header else value


def has_keyword(value: str, keywords: Sequence[str]) -> bool:
    """A number cell carrying a My Number keyword of its own (it is read as text then)."""
    lowered = value.lower()
    return any(k.lower() in lowered for k in keywords)


def valid_plain_my_number(digits: str) -> bool:
    """``numbers.is_valid_my_number`` for 12 ASCII digits, without a call per digit: the
    bytes of the text are the digits plus 48 each (sum of weights 47)."""
    if digits == digits[0] * 12:
        return False
    raw = digits.encode()
    return (48 * 47 - sum(map(operator.mul, _WEIGHTS, raw))) % 11 % 10 == raw[11] - 48

