"""Table layout: which rows are headers, which columns carry which kind of data.

This module only looks at the *shape* of a table; it never validates a value (that
is ``columns.py``). It answers, for a window of rows:
- is there a list header (possibly two rows: 被保険者 / 番号, or a merged group header),
  with title rows and a label/value form above it?
- or is the block a label/value form (one person), or a transposed list (labels down
  the first column, one person per column)?
- which columns make up one field (a My Number in three 4-digit cells, a birth date in
  元号 / 年 / 月 / 日 cells), and does a title (被保険者一覧) give a plain 番号 column its
  meaning?

Headers are recognised as whole labels after ``label_key`` folding, never as a
substring of a data value, and the list-or-form decision looks at the rows below a
candidate header (labels keep appearing in a form; values repeat in a list), so one
cell cannot flip it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from dlp_gateway.detect.normalize import fold, label_key, label_key_core
from dlp_gateway.detect.numbers import cell_digits
from dlp_gateway.detect.patterns import PatternSet
from dlp_gateway.extract.units import CellValue, Row

HEADER_SEARCH_ROWS = 30
WINDOW_ROWS = 80
MAX_LABEL_LENGTH = 24
# Below a list header at most this share of rows may hold a label of their own;
# more and the block is a label/value form.
FORM_LABEL_SHARE = 0.5
SHAPE_ROWS = 10
# Containment (介護保険被保険者番号 holds 被保険者番号) only for words at least this long.
MIN_CONTAINED_WORD = 3
_CACHE_LIMIT = 50_000


class Kind(Enum):
    MY_NUMBER = "my_number"
    INSURED = "insured_number"
    BIRTH_DATE = "birth_date"
    NAME = "name"
    NAME_PART = "name_part"
    NAME_KANA = "name_kana"


NAME_KINDS = (Kind.NAME, Kind.NAME_PART, Kind.NAME_KANA)
# Kinds whose value may be spread over adjacent cells under one (merged) header.
SPLITTABLE = (Kind.MY_NUMBER, Kind.INSURED, Kind.BIRTH_DATE)


class HeaderClassifier:
    """Header or label text -> the kind of data it governs (whole-label, from patterns/)."""

    def __init__(self, patterns: PatternSet):
        p = patterns
        self.p = p
        self._exact: dict[str, Kind | None] = {}
        self._words: list[tuple[str, Kind | None]] = []
        n = p.name
        ordered: list[tuple[tuple[str, ...], Kind | None]] = [
            (p.my_number.headers, Kind.MY_NUMBER),
            (p.insured_number.headers, Kind.INSURED),
            (p.birth_date.headers, Kind.BIRTH_DATE),
            (n.negative_headers, None),
            (p.insured_number.negative_headers, None),
            (p.birth_date.negative_headers, None),
            (p.my_number.labels.negative, None),
            (n.kana_headers, Kind.NAME_KANA),
            (n.headers, Kind.NAME),
            (n.part_headers, Kind.NAME_PART),
        ]
        for words, kind in ordered:
            for word in words:
                key = label_key(word)
                if key and key not in self._exact:
                    self._exact[key] = kind
                if len(key) >= MIN_CONTAINED_WORD and not key.isascii():
                    self._words.append((key, kind))
        self._suffixes = tuple(label_key(s) for s in n.header_suffixes)
        self._other = {label_key(w) for w in n.other_headers}
        self._cache: dict[str, Kind | None] = {}
        self._keys: dict[str, str] = {}

    def key(self, text: str) -> str:
        key = self._keys.get(text)
        if key is None:
            if len(self._keys) > _CACHE_LIMIT:
                self._keys.clear()
            key = self._keys[text] = label_key(text)
        return key

    def is_label(self, value: CellValue) -> bool:
        """A cell that can be a header or label: short text without digits."""
        if not isinstance(value, str):
            return False
        text = value.strip()
        if not text or len(text) > MAX_LABEL_LENGTH:
            return False
        key = self.key(text)
        if not key:
            return False
        if not any(ch.isdigit() for ch in key):
            return True
        core = label_key_core(text)  # 個人番号（12桁）, 電話番号(1)
        return bool(core) and not any(ch.isdigit() for ch in core)

    def known_label(self, value: CellValue) -> bool:
        """A label of our vocabulary (a kind, a negative label, or a common other header)."""
        if not self.is_label(value):
            return False
        key = self.key(str(value).strip())
        return key in self._exact or key in self._other or self(value) is not None

    def whole_label(self, value: CellValue) -> bool:
        """A label of our vocabulary as a whole (not a word found inside a longer text)."""
        if not self.is_label(value):
            return False
        text = str(value).strip()
        return self.key(text) in self._exact or label_key_core(text) in self._exact

    def __call__(self, text: object) -> Kind | None:
        if not isinstance(text, str) or not self.is_label(text):
            return None
        key = self.key(text.strip())
        if key in self._cache:
            return self._cache[key]
        if len(self._cache) > _CACHE_LIMIT:
            self._cache.clear()
        kind = self._cache[key] = self.classify_key(key, text)
        return kind

    def classify_key(self, key: str, text: str = "") -> Kind | None:
        if key in self._exact:
            return self._exact[key]
        core = label_key_core(text) if text else ""
        if core and core in self._exact:
            return self._exact[core]
        return self._contained(key)

    def _contained(self, key: str) -> Kind | None:
        """The word ending last wins (the head noun of a compound); a longer word breaks ties."""
        best: tuple[int, int, int] | None = None
        kind: Kind | None = None
        for rank, (word, word_kind) in enumerate(self._words):
            at = key.rfind(word)
            while at > 0 and _is_kana(word[0]) and _is_kana(key[at - 1]):
                at = key.rfind(word, 0, at + len(word) - 1)  # inside a kana word: not it
            if at < 0:
                continue
            if word_kind is Kind.MY_NUMBER and at + len(word) != len(key):
                continue  # 個人番号カード交付枚数 counts cards: a My Number word must end it
            score = (at + len(word), len(word), -rank)
            if best is None or score > best:
                best, kind = score, word_kind
        for suffix in self._suffixes:
            if key.endswith(suffix) and len(key) > len(suffix):
                score = (len(key), len(suffix), -len(self._words))
                if best is None or score > best:
                    best, kind = score, Kind.NAME
        return kind


@dataclass(slots=True)
class Field:
    """One logical value per row: a kind over one or more adjacent columns."""

    kind: Kind
    columns: tuple[int, ...]
    confidence: float
    header: str = ""
    by_title: bool = False
    # An insured column of long numbers: short digit-only cells are padded to this many
    # digits (leading zeros lost in a numeric cell); 0: not padded.
    pad_to: int = 0


@dataclass(slots=True)
class ListLayout:
    header_rows: tuple[int, ...]  # row numbers of the header row(s)
    fields: list[Field]
    headers: dict[int, str] = field(default_factory=dict)  # column -> header text
    # Two rows per person: fields of the second row of each person.
    second_fields: list[Field] | None = None
    signature: frozenset[tuple[int, str]] = frozenset()  # repeated-header recognition
    title: str = ""

    @property
    def columns(self) -> set[int]:
        cols = {c for f in self.fields for c in f.columns}
        for f in self.second_fields or ():
            cols.update(f.columns)
        return cols


@dataclass(slots=True)
class Analysis:
    """What the first rows of a window are: ``skip`` rows before a block starts."""

    kind: str  # "list" | "form" | "transposed" | "headerless"
    layout: ListLayout | None = None
    form_rows: int = 0  # rows at the window's start that form a label/value form
    block_rows: int = 0  # for form / transposed: rows the block spans
    titles: tuple[str, ...] = ()


def non_empty(row: Row) -> list[tuple[int, CellValue]]:
    return [(i, v) for i, v in enumerate(row.cells) if v is not None and v != ""]


class LayoutReader:
    """Finds the layout of the block at the start of a window of rows."""

    def __init__(
        self,
        patterns: PatternSet,
        classify: HeaderClassifier,
        fits: Callable[[Kind, CellValue], bool] | None = None,
    ):
        """``fits(kind, value)``: does a value look like data of that kind (a validator
        supplied by the caller, so layout stays free of value checks)."""
        self.p = patterns
        self.classify = classify
        self.fits = fits
        ins = patterns.insured_number
        self._title_words = tuple(label_key(w) for w in ins.title_words)
        self._title_plain = {label_key(w) for w in ins.title_plain_headers}
        self._symbol_words = tuple(label_key(w) for w in ins.sub_headers)
        self._title_negative = tuple(label_key(w) for w in ins.title_negative_words)
        self._part_words = {
            label_key(w)
            for w in (
                *patterns.birth_date.part_headers,
                *ins.sub_headers,
                *patterns.my_number.sub_headers,
                *patterns.name.sub_headers,
            )
        }
        bd = patterns.birth_date
        self._date_parts = {
            part: {label_key(w) for w in words}
            for part, words in (
                ("era", bd.split_era_headers),
                ("birth_year", bd.split_year_headers),
                ("year", bd.split_plain_year_headers),
                ("month", bd.split_month_headers),
                ("day", bd.split_day_headers),
            )
        }

    # -- header rows ------------------------------------------------------------------
    def label_row(self, row: Row, minimum: int = 2) -> bool:
        """Every cell a label; a header may also carry a few short texts with digits
        (住所1, R6年度), never a number or a date."""
        cells = non_empty(row)
        if len(cells) < minimum:
            return False
        labels = 0
        for _, v in cells:
            if self.classify.is_label(v):
                labels += 1
            elif not _digit_label(v):
                return False
        return labels >= max(minimum, (len(cells) + 1) // 2)

    def kinds(self, row: Row) -> dict[int, Kind]:
        out = {}
        for i, v in enumerate(row.cells):
            if v is not None and v != "":
                kind = self.classify(v)
                if kind is not None:
                    out[i] = kind
        return out

    def analyse(self, window: Sequence[Row], context: str) -> Analysis:
        rows = [r for r in window if non_empty(r)]
        best = self._best_header(rows)
        if best is not None:
            index = best
            layout, first_header = self._list_layout(rows, index, context)
            if layout is not None:
                pre = [r for r in rows if r.number < first_header]
                form_rows = sum(1 for r in window if r.number < first_header)
                titles = tuple(self._titles(pre))
                if any(self.kinds(r) for r in pre):
                    return Analysis("list", layout, form_rows=form_rows, titles=titles)
                return Analysis("list", layout, titles=titles)
        transposed = self._transposed(window, context)
        if transposed:
            return Analysis("transposed", block_rows=transposed)
        plain = self._plain_layout(rows, context)
        if plain.header_rows:
            return Analysis("headerless", plain)
        titles = " ".join([context, *self._titles(rows[:HEADER_SEARCH_ROWS])])
        if self._is_form(rows[:HEADER_SEARCH_ROWS], self.title_says_insured(titles)):
            return Analysis("form", block_rows=self._form_extent(window))
        return Analysis("headerless", self._plain_layout(rows))

    def _is_form(self, rows: list[Row], titled: bool = False) -> bool:
        """Labels we know, in a block small enough or labelled enough to be one person's.
        記号 over 番号, or 番号 under a title such as 被保険者一覧, are insured labels."""
        kinds: set[Kind] = set()
        labelled = 0
        for row in rows:
            here = self.kinds(row)
            first = non_empty(row)[:1]
            if not here and first and self.form_insured_label(first[0][1], titled):
                here = {first[0][0]: Kind.INSURED}
            if here:
                labelled += 1
                kinds.update(here.values())
        if not labelled:
            return False
        return len(kinds) >= 2 or len(rows) <= 15 or labelled >= 0.3 * len(rows)

    def _form_extent(self, window: Sequence[Row]) -> int:
        """A form runs until a list header below it (with values under it) or the window end."""
        rows = list(window)
        for index in range(1, len(rows)):
            row = rows[index]
            if not self.label_row(row) or len(self.kinds(row)) < 2:
                continue
            below = [r for r in rows[index + 1 : index + 1 + SHAPE_ROWS] if non_empty(r)]
            if below and self._list_shape(row, below):
                return index
        return len(rows)

    def _best_header(self, rows: list[Row]) -> int | None:
        best: tuple[int, int] | None = None
        for index, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
            if not self.label_row(row):
                if self._single_column_header(row, rows[index + 1 : index + 4]) or (
                    self._stacked_single(row, rows[index + 1 : index + 5])
                ):
                    best = best or (1, index)
                continue
            kinds = self._header_kinds(row)
            score = len(kinds)
            if score == 0 and index + 1 < len(rows):
                score = self._group_score(row, rows[index + 1])
            if score == 0:
                continue
            below = rows[index + 1 : index + 1 + SHAPE_ROWS]
            lowered = len(below) > 1 and (
                self._sub_header(row, below[0])
                or self._is_lower(row, below[0], rows[index + 2 : index + 2 + SHAPE_ROWS])
            )
            if lowered:
                below = below[1:]  # a second header row (被保険者 / 番号, 性別 / 住所) is not data
            if not below:
                continue  # a lone 氏名 | 山田太郎 line is a form, not a header
            below = self._own_rows(row, below)
            if not self._list_shape(row, below):
                continue
            # two rows per person: the first header row's kinds are judged on first rows
            own = below[::2] if lowered and _alternating(below) else below
            if kinds and not self._values_fit(kinds, own, row):
                continue
            if best is None or score > best[0]:
                best = (score, index)
        return best[1] if best else None

    def _header_kinds(self, row: Row) -> dict[int, Kind]:
        """``kinds`` of a candidate header, where 記号 | 番号 (| 枝番) side by side count as
        one insured-number column (a 国保 roster whose other headers are 姓 | 名 only)."""
        kinds = self.kinds(row)
        labels = {i: str(v).strip() for i, v in non_empty(row) if isinstance(v, str)}
        for i in labels:
            if i not in kinds and self._symbol_run(labels, i) >= 2:
                kinds[i] = Kind.INSURED
        return kinds

    def _own_rows(self, header: Row, below: list[Row]) -> list[Row]:
        """The rows under a header up to the header of another table below it (要介護度 |
        人数 under a two-person roster): that table's rows say nothing of this header."""
        signature = self._signature(header)
        width = len(non_empty(header))
        for at in range(1, len(below)):
            row = below[at]
            if not self.label_row(row) or self._signature(row) == signature:
                continue
            if any(self.classify.known_label(v) for _, v in non_empty(row)) or (
                len(non_empty(row)) != width and self._heads_values(below[at + 1 : at + 3])
            ):
                return below[:at]
        return below

    def _heads_values(self, rows: list[Row]) -> bool:
        """Rows of values (not labels) follow: a label row of another width above them
        is the header of another table (地区 | 男 | 女 | 計 under a 5-column roster)."""
        rows = [r for r in rows if non_empty(r)]
        return bool(rows) and not any(self.label_row(r, 1) for r in rows)

    def _sub_header(self, header: Row, row: Row) -> bool:
        """A partial label row right under a header: its second header row."""
        cells = non_empty(row)
        return (
            row.number == header.number + 1
            and 0 < len(cells) < len(non_empty(header))
            and all(self.classify.is_label(v) for _, v in cells)
        )

    def realign_spanned(self, rows: list[Row]) -> list[Row]:
        """Text renderings of merged headers lose the empty cells (HTML colspan/rowspan,
        pasted text): rebuild the header to the width of the data rows below."""
        rows = self._widen_header(rows)
        if len(rows) < 3 or not self.label_row(rows[0], 1) or not self.label_row(rows[1], 1):
            return rows
        merged = self._uncompressed(rows[0], rows[1], rows[2:12])
        if merged is None:
            return rows
        return [Row(rows[0].number, merged), *rows[2:]]

    def _uncompressed(
        self, upper_row: Row, lower_row: Row, below: list[Row]
    ) -> list[CellValue] | None:
        """A two-row header whose empty cells were lost (HTML colspan/rowspan rendered as
        text): ``番号 | 生年月日`` over ``元号 | 年 | 月 | 日`` above six-cell rows. Returns the
        one-row header that fits the data width, or None."""
        if not self.label_row(upper_row, 1) or not self.label_row(lower_row, 1):
            return None
        if not lower_row.cells or lower_row.cells[0] in (None, ""):
            return None  # the second header row kept its positions
        cells = non_empty(lower_row)
        if cells[-1][0] + 1 != len(cells) or self._holds_dates(cells):
            return None  # an empty cell inside it (kept positions), or a person's values
        upper = [v for _, v in non_empty(upper_row)]
        lower = [v for _, v in non_empty(lower_row)]
        widths = [len(r.cells) for r in below if not self.label_row(r, 1)]
        if not widths or len(upper) < 2:
            return None  # one cell above a header is a title line
        if len(non_empty(upper_row)) != len(upper_row.cells):
            return self._under_groups(upper_row, lower, below)
        width = max(set(widths), key=lambda w: (widths.count(w), w))
        extra = width - (len(upper) - 1 + len(lower))
        if len(upper) >= width or extra < 0:
            return None
        data = [r for r in below if not self.label_row(r, 1)][:SHAPE_ROWS]
        best: tuple[float, list[CellValue]] | None = None
        for g in range(len(upper)):
            merged: list[CellValue] = [
                *upper[:g],
                *(f"{upper[g]}{x}" for x in lower),
                *upper[g + 1 :],
            ]
            if extra:  # a value split over cells (個人番号 over 12 one-digit cells) as well
                merged = self._widened(merged, extra)
            score = self._header_fit(merged, data)
            if best is None or score > best[0]:
                best = (score, merged)
        if best is None or best[0] <= self._header_fit(upper, data):
            return None
        return best[1]

    def _holds_dates(self, cells: list[tuple[int, CellValue]]) -> bool:
        """A date among cells (昭和二年三月二十四日 has no digit, yet is no label)."""
        return self.fits is not None and any(
            not self.classify.known_label(v) and self.fits(Kind.BIRTH_DATE, v) for _, v in cells
        )

    def _under_groups(
        self, upper_row: Row, lower: list[CellValue], below: list[Row]
    ) -> list[CellValue] | None:
        """Colspans kept, rowspans lost: the lower cells sit under the spanning upper cells
        (申請者 | (empty) over 個人番号 | 契約者名)."""
        cells = list(upper_row.cells)
        groups: list[tuple[int, int]] = []
        i = 0
        while i < len(cells):
            j = i + 1
            while j < len(cells) and cells[j] in (None, ""):
                j += 1
            if cells[i] not in (None, "") and j - i > 1:
                groups.append((i, j - i))
            i = j
        if not groups or sum(span for _, span in groups) != len(lower):
            return None
        merged = list(cells)
        taken = 0
        for start, span in groups:
            for k in range(span):
                merged[start + k] = f"{cells[start]}{lower[taken]}"
                taken += 1
        data = [r for r in below if not self.label_row(r, 1)][:SHAPE_ROWS]
        return merged if self._header_fit(merged, data) > self._header_fit(cells, data) else None

    def _header_fit(self, header: list[CellValue], data: list[Row]) -> float:
        """How well a header's kinds fit the values under them (kinds, weighted by fit)."""
        score = 0.0
        for col, value in enumerate(header):
            kind = self.classify(value)
            if kind is None:
                continue
            values = [r.cells[col] for r in data if col < len(r.cells)]
            values = [v for v in values if v not in (None, "")]
            if self.fits is None or not values:
                score += 0.5
                continue
            score += 0.5 + sum(1 for v in values if self.fits(kind, v)) / len(values)
        return score

    def _widen_header(self, rows: list[Row]) -> list[Row]:
        """One header narrower than its data: the cell whose value is split over cells
        (個人番号 over 12 one-digit cells) spans the missing columns."""
        if len(rows) < 2 or not self.label_row(rows[0], 1) or self.label_row(rows[1], 1):
            return rows
        header = list(rows[0].cells)
        while header and header[-1] in (None, ""):
            header.pop()
        widths = [len(r.cells) for r in rows[1:12] if not self.label_row(r, 1)]
        if not widths:
            return rows
        width = max(set(widths), key=lambda w: (widths.count(w), w))
        extra = width - len(header)
        if extra <= 0 or any(v in (None, "") for v in header):
            return rows
        widened = self._widened(header, extra)
        if widened == header:
            return rows
        data = [r for r in rows[1:12] if not self.label_row(r, 1)][:SHAPE_ROWS]
        if self._header_fit(widened, data) < self._header_fit(header, data):
            return rows  # the wider rows are another table beside this one, not split values
        return [Row(rows[0].number, widened), *rows[1:]]

    def _widened(self, header: list[CellValue], extra: int) -> list[CellValue]:
        """The header with ``extra`` empty cells after its first number cell (My Number,
        then insured number, then birth date): the cells a split value spreads over."""
        for kind in SPLITTABLE:
            at = next((i for i, v in enumerate(header) if self.classify(v) is kind), None)
            if at is not None:
                return [*header[: at + 1], *([None] * extra), *header[at + 1 :]]
        return header

    def _values_fit(
        self, kinds: dict[int, Kind], below: list[Row], header: Row | None = None
    ) -> bool:
        """Under a list header, some kind column holds values of its kind (names under
        氏名, dates under 生年月日); under a form's first label line it holds labels. A
        number header over empty header cells (ﾏｲﾅﾝﾊﾞｰ over twelve one-digit cells) may
        also be judged by the cells it spans, joined."""
        if self.fits is None:
            return True
        for col, kind in kinds.items():
            values = [r.cells[col] for r in below if col < len(r.cells)]
            if self._fitting(kind, values):
                return True
            width = _span_width(header, col) if header is not None else 1
            if width > 1 and kind in (Kind.MY_NUMBER, Kind.INSURED):
                joined = [
                    "".join(str(v) for v in r.cells[col : col + width] if v not in (None, ""))
                    for r in below
                ]
                if self._fitting(kind, joined):
                    return True
        return not any(
            r.cells[c] not in (None, "") for r in below for c in kinds if c < len(r.cells)
        )

    def _fitting(self, kind: Kind, values: list[CellValue]) -> bool:
        """Half or more of the values (empty ones aside) look like data of ``kind``."""
        assert self.fits is not None
        values = [v for v in values if v is not None and v != ""]
        if not values:
            return False
        fitting = sum(
            1 for v in values if not self.classify.known_label(v) and self.fits(kind, v)
        )
        return fitting >= 0.5 * len(values)

    def _stacked_single(self, row: Row, below: list[Row]) -> bool:
        """出生年月日 over フリガナ in one column, values alternating below: two rows per
        person in a one-column list."""
        if len(non_empty(row)) != 1 or len(below) < 3 or len(non_empty(below[0])) != 1:
            return False
        first, second = self.kinds(row), self.kinds(below[0])
        return bool(first) and bool(second) and first != second and _alternating(below[1:])

    def _single_column_header(self, row: Row, below: list[Row]) -> bool:
        """被保険者番号 over a column of numbers: a one-column list."""
        cells = non_empty(row)
        if len(cells) != 1 or len(below) < 2:
            return False
        col, value = cells[0]
        kind = self.classify(value)
        if kind not in SPLITTABLE:
            return False
        return all(
            col < len(r.cells)
            and r.cells[col] not in (None, "")
            and not self.classify.is_label(r.cells[col])
            for r in below
        )

    def _group_score(self, upper: Row, lower: Row) -> int:
        """A row of labels with no kinds scores as the upper row of a two-row header only
        when it sits right on the row below and adds kinds that row lacks on its own: an
        info row (作成者 | 山田 太郎, 所属 | 介護保険課) above a roster header never does."""
        if lower.number != upper.number + 1:
            return 0
        score = self._combined_score(upper, lower)
        return score if score > len(self._header_kinds(lower)) else 0

    def _combined_score(self, upper: Row, lower: Row) -> int:
        if not self.label_row(lower, minimum=1):
            return 0
        return sum(1 for k in self._combine(upper, lower)[0].values() if k is not None)

    def _list_shape(self, header: Row, below: list[Row]) -> bool:
        """Below a list header, rows hold values; a form keeps showing labels."""
        signature = self._signature(header)
        labelled = 0
        counted = 0
        for row in below:
            if self._signature(row) == signature:
                continue  # the header repeated (printed pages)
            cells = non_empty(row)
            if not cells:
                continue
            counted += 1
            if self.classify.known_label(cells[0][1]) or (
                len(cells) > 1 and self.classify.known_label(cells[1][1]) and len(cells) <= 4
            ):
                labelled += 1
        if counted == 0:
            return True
        share = labelled / counted
        return not (share >= FORM_LABEL_SHARE or (share >= 0.3 and labelled >= 2))

    def _signature(self, row: Row) -> frozenset[tuple[int, str]]:
        return frozenset((i, self.classify.key(v)) for i, v in non_empty(row) if isinstance(v, str))

    def signature(self, row: Row) -> frozenset[tuple[int, str]]:
        return self._signature(row)

    # -- list layouts ---------------------------------------------------------------
    def _list_layout(
        self, rows: list[Row], index: int, context: str
    ) -> tuple[ListLayout | None, int]:
        header = rows[index]
        upper = rows[index - 1] if index > 0 else None
        lower = rows[index + 1] if index + 1 < len(rows) else None
        labels: dict[int, str]
        header_rows: tuple[int, ...]
        second: dict[int, Kind] | None = None
        compressed = (
            self._uncompressed(header, lower, rows[index + 2 : index + 12])
            if lower is not None and lower.number == header.number + 1
            else None
        )
        if compressed is None and upper is not None and upper.number == header.number - 1:
            compressed = self._uncompressed(upper, header, rows[index + 1 : index + 11])
            if compressed is not None:
                header = Row(upper.number, compressed)
        if compressed is not None:
            header = Row(header.number, compressed)
            kinds = self.kinds(header)
            labels = {i: str(v).strip() for i, v in non_empty(header)}
            header_rows = (header.number, header.number + 1)
        elif (
            lower is not None
            and lower.number == header.number + 1
            and self._is_lower(header, lower, rows[index + 2 : index + 2 + SHAPE_ROWS])
        ):
            kinds, labels, second = self._combine(header, lower)
            header_rows = (header.number, lower.number)
        elif (
            upper is not None
            and upper.number == header.number - 1
            and self._is_upper(upper, header)
        ):
            kinds, labels, second = self._combine(upper, header)
            header_rows = (upper.number, header.number)
        else:
            kinds = self.kinds(header)
            labels = {i: str(v).strip() for i, v in non_empty(header)}
            header_rows = (header.number,)
        signature = self._signature(rows[index])
        body = [r for r in rows if r.number > header_rows[-1]]
        title = " ".join([context, *self._titles([r for r in rows if r.number < header_rows[0]])])
        fields = self._fields(kinds, labels, body, title)
        layout = ListLayout(header_rows, fields, labels, signature=signature, title=title)
        if second and _alternating(body[:8]):
            layout.second_fields = self._fields(second, labels, [], title)
        elif second:
            layout.fields = self._fields(
                {i: k for i, k in kinds.items() if i not in second}, labels, body, title
            )
            layout.fields += [
                Field(k, (i,), 0.9, labels.get(i, ""))
                for i, k in sorted(kinds.items())
                if i in second and k is not None
            ]
            layout.fields.sort(key=lambda f: f.columns[0])
        return layout, header_rows[0]

    def _is_upper(self, upper: Row, header: Row) -> bool:
        """A group header row above (被保険者 over 番号): merged cells, not a title."""
        cells = non_empty(upper)
        if not cells or not all(self.classify.is_label(v) for _, v in cells):
            return False
        first = min((i for i, _ in non_empty(header)), default=0)
        if len(cells) == 1 and cells[0][0] <= first:
            return False  # a title line
        combined = self._combine(upper, header)[0]
        if len(cells) == 2 and not any(self.classify(v) for _, v in cells):
            # 作成者 | 山田 太郎 right above the header: an info row unless it adds kinds
            return sum(1 for k in combined.values() if k) > len(self.kinds(header))
        return sum(1 for k in combined.values() if k) >= len(self.kinds(header))

    def _is_lower(self, header: Row, lower: Row, below: list[Row]) -> bool:
        """The row under a header is a second header row when it is labels, not data."""
        if not self.label_row(lower, minimum=1):
            return False
        if self._signature(lower) == self._signature(header):
            return False
        if below and not any(not self.label_row(r, 1) for r in below):
            return False  # everything below is text too: the lower row may be data
        if all(self.classify.known_label(v) for _, v in non_empty(lower)):
            return True  # 性別 | 住所 under 氏名 | 生年月日: two rows per person
        combined = self._combine(header, lower)[0]
        if sum(1 for k in combined.values() if k) > len(self.kinds(header)):
            return True
        lower_kinds = self.kinds(lower)
        return (
            bool(lower_kinds)
            and len(non_empty(lower)) <= len(non_empty(header))
            and all(
                not self.classify.is_label(v)
                or self.classify.known_label(v)
                or self.classify.key(v) in self._part_words
                for _, v in non_empty(lower)
            )
        )

    def _combine(
        self, upper: Row, lower: Row
    ) -> tuple[dict[int, Kind | None], dict[int, str], dict[int, Kind] | None]:
        """Per column kind of a two-row header; also the second-row kinds when both rows
        carry their own distinct kinds in one column (two rows per person)."""
        width = max(len(upper.cells), len(lower.cells))
        ups = _forward_filled(upper.cells, width)
        kinds: dict[int, Kind | None] = {}
        labels: dict[int, str] = {}
        second: dict[int, Kind] = {}
        stacked = 0
        for i in range(width):
            up, direct = ups[i]
            low = lower.cells[i] if i < len(lower.cells) else None
            low = low.strip() if isinstance(low, str) and low.strip() else None
            if up and not direct and low and self.classify.key(low) not in self._part_words:
                up = ""  # a merged group header spans only its sub-headers (年/月/日, 記号/番号)
            up_kind = self.classify(up) if up else None
            low_kind = self.classify(low) if low else None
            joined = self.classify(f"{up}{low}") if up and low else None
            if up_kind and low_kind and direct and up_kind != low_kind:
                stacked += 1
                kinds[i], second[i] = up_kind, low_kind
                labels[i] = f"{up}/{low}"
                continue
            kind = joined or low_kind or (up_kind if up else None)
            if not direct and low_kind is not None and joined not in (None, low_kind):
                kind = low_kind  # a group label spread from the left (対象者) over 生年
            if (
                kind is None
                and up_kind is not None
                and low
                and self.classify.key(low) in self._part_words
            ):
                kind = up_kind
            kinds[i] = kind
            # under a merged group header with nothing of its own: the merge's continuation
            labels[i] = "".join(x for x in (up if direct or low else "", low) if x)
        return kinds, labels, (second if stacked else None)

    def _fields(
        self, kinds: dict[int, Kind | None], labels: dict[int, str], body: list[Row], title: str
    ) -> list[Field]:
        """Adjacent columns of one splittable kind under one label make one field."""
        fields: list[Field] = []
        by_title = self.title_says_insured(title)
        width = max(
            [*(i + 1 for i in labels), *(len(r.cells) for r in body[:SHAPE_ROWS])], default=0
        )
        i = 0
        while i < width:
            kind = kinds.get(i)
            label = labels.get(i, "")
            is_title = False
            date_run = self._split_date_run(kinds, labels, body, i)
            if date_run > 1:
                columns = tuple(range(i, i + date_run))
                header = "".join(labels.get(c, "") for c in columns)
                fields.append(Field(Kind.BIRTH_DATE, columns, 0.9, header))
                i += date_run
                continue
            symbol_run = self._symbol_run(labels, i)
            if kind is None and symbol_run > 1:
                fields.append(Field(Kind.INSURED, tuple(range(i, i + symbol_run)), 0.9, label))
                i += symbol_run
                continue
            if (
                kind is None
                and by_title
                and self.classify.key(label) in self._title_plain
                and self._title_lengths_fit(body, i)
            ):
                kind, is_title = Kind.INSURED, True
            if kind is None:
                i += 1
                continue
            j = i + 1
            if kind in SPLITTABLE:
                while j < width and (
                    (kinds.get(j) == kind and _same_group(labels, i, j, self.classify))
                    or (not labels.get(j) and kinds.get(j) is None)
                ):
                    j += 1
            elif kind is Kind.NAME_PART:
                while j < width and kinds.get(j) is Kind.NAME_PART:
                    j += 1
            confidence = 0.8 if is_title else 0.95
            fields.append(Field(kind, tuple(range(i, j)), confidence, label, is_title))
            i = j
        return fields

    def _date_part(self, label: str) -> str | None:
        """Which part of a split date a header names (era, birth_year, year, month, day)."""
        if not label:
            return None
        keys = {self.classify.key(label), label_key_core(label)}
        return next((part for part, words in self._date_parts.items() if keys & words), None)

    def _split_date_run(
        self, kinds: dict[int, Kind | None], labels: dict[int, str], body: list[Row], i: int
    ) -> int:
        """Columns from ``i`` that hold one birth date split over cells with headers of
        their own: [元号] | 生年 | 月 | 日, or 生年月日(元号) | 年 | 月 | 日. Returns the run's
        width (0: none). A plain 年 | 月 | 日 run is a birth date only when its years vary
        the way birth years do (a duty log's dates share one or two years)."""
        at = i
        birth = False
        first = self._date_part(labels.get(i, ""))
        if first == "era" or (
            kinds.get(i) is Kind.BIRTH_DATE
            and self._date_part(labels.get(i + 1, "")) in ("birth_year", "year")
        ):
            birth = kinds.get(i) is Kind.BIRTH_DATE
            at = i + 1
        year = self._date_part(labels.get(at, ""))
        if year not in ("birth_year", "year"):
            return 0
        if (
            self._date_part(labels.get(at + 1, "")) != "month"
            or self._date_part(labels.get(at + 2, "")) != "day"
        ):
            return 0
        columns = list(range(i, at + 3))
        birth = birth or year == "birth_year"
        rows = [r for r in body[:SHAPE_ROWS] if any(c < len(r.cells) for c in columns)]
        dates = [_joined_date_text([r.cells[c] if c < len(r.cells) else None for c in columns])
                 for r in rows]
        filled = [d for d in dates if d is not None]
        if not filled or self.fits is None:
            return 0
        fitting = sum(1 for d in filled if self.fits(Kind.BIRTH_DATE, d))
        if 2 * fitting < len(filled):
            return 0
        if not birth:
            years = {r.cells[at] for r in rows if at < len(r.cells)} - {None, ""}
            if len(years) < min(3, len(filled)):
                return 0
        return len(columns)

    def _title_lengths_fit(self, body: list[Row], i: int) -> bool:
        """The title gives 番号 the insured meaning only when its values have an insured
        number's length (a 12-digit 1234-5678-9018 column under 介護保険課 is not one)."""
        lengths = self.p.insured_number.title_lengths
        seen = fit = 0
        for row in body[:SHAPE_ROWS]:
            value = row.cells[i] if i < len(row.cells) else None
            digits = cell_digits(fold(value) if isinstance(value, str) else value)
            if not digits or len(digits) < min(lengths, default=1):
                continue  # empty, or text of a block below (要介護度 | 要支援1)
            seen += 1
            if isinstance(value, int | float):  # a number cell may have lost leading zeros
                fit += len(digits) <= max(lengths)
            else:
                fit += len(digits) in lengths
        return not seen or 2 * fit >= seen

    def title_says_insured(self, title: str) -> bool:
        key = label_key(title) if title else ""
        if not key or any(w in key for w in self._title_negative):
            return False
        return any(w in key for w in self._title_words)

    def form_insured_label(self, value: CellValue, titled: bool) -> bool:
        """記号 (the first of 記号 / 番号 / 枝番), or 番号 in a form titled 被保険者一覧."""
        if not isinstance(value, str):
            return False
        key = self.classify.key(value.strip())
        return (
            (bool(self._symbol_words)
            and key == self._symbol_words[0])
            or (titled and key in self._title_plain)
        )

    def is_symbol_part(self, value: CellValue) -> bool:
        """番号 or 枝番: the rest of a health-insurance number after 記号."""
        return isinstance(value, str) and self.classify.key(value.strip()) in self._symbol_words[1:]

    def title_plain(self, value: CellValue) -> bool:
        return isinstance(value, str) and self.classify.key(value.strip()) in self._title_plain

    def _titled_number_column(self, rows: list[Row], index: int, context: str) -> bool:
        """番号 alone over a column of numbers, in a table titled 被保険者一覧."""
        value = non_empty(rows[index])[0][1]
        if not self.title_plain(value):
            return False
        title = " ".join([context, *self._titles(rows[:index])])
        below = [r for r in rows[index + 1 : index + 4] if non_empty(r)]
        values = [v for r in below for _, v in non_empty(r)]
        # one value below and nothing after it: a list of one person, if the value fits
        alone = len(below) == 1 and (self.fits is None or self._fitting(Kind.INSURED, values))
        return (
            self.title_says_insured(title)
            and (len(below) >= 2 or alone)
            and not any(self.classify.is_label(v) for v in values)
        )

    def titled_column_ahead(self, rows: list[Row], context: str) -> bool:
        """Title lines, then 番号 over a column of numbers in a table titled 被保険者一覧:
        a new block starts (below statistics or another table)."""
        rows = [r for r in rows if non_empty(r)]
        for index, row in enumerate(rows[:4]):
            cells = non_empty(row)
            if len(cells) != 1 or not isinstance(cells[0][1], str):
                return False
            if self._titled_number_column(rows, index, context):
                return True
        return False

    def _symbol_run(self, labels: dict[int, str], i: int) -> int:
        """記号 | 番号 | 枝番 side by side: one health-insurance number over the run."""
        subs = self._symbol_words
        if not subs or self.classify.key(labels.get(i, "")) != subs[0]:
            return 0
        j = i + 1
        while labels.get(j) and self.classify.key(labels[j]) in subs[1:]:
            j += 1
        return j - i

    def _titles(self, rows: list[Row]) -> list[str]:
        out = []
        for row in rows:
            cells = non_empty(row)
            if len(cells) == 1 and isinstance(cells[0][1], str):
                out.append(cells[0][1].strip())
        return out

    # -- other shapes -----------------------------------------------------------------
    def _transposed(self, window: Sequence[Row], context: str = "") -> int:
        """Labels down the first column, three or more people to the right: the rows the
        block spans (with the title lines above it). Under a title such as 被保険者一覧, a
        plain 番号 label is an insured-number label."""
        rows = list(window)
        lead = 0
        while lead < min(len(rows), 6) and len(non_empty(rows[lead])) <= 1:
            lead += 1  # title lines and blank rows above the block
        titled = self.title_says_insured(" ".join([context, *self._titles(rows[:lead])]))
        label_rows = plain_rows = span = 0
        narrow = False
        first_col: int | None = None
        previous = rows[lead].number - 1 if lead < len(rows) else 0
        for row in rows[lead:]:
            cells = non_empty(row)
            if not cells or row.number != previous + 1:
                break
            previous = row.number
            col, value = cells[0]
            first_col = col if first_col is None else first_col
            if col != first_col:
                break
            values = cells[1:]
            kind = self.classify(value)
            if kind is None and titled and self.title_plain(value):
                kind = Kind.INSURED
            if kind is not None:
                if len(values) < 2 or any(self._label_value(kind, v) for _, v in values):
                    return 0
                label_rows += 1
                fitting = self.fits is None or all(self.fits(kind, v) for _, v in values)
                narrow = narrow or (len(values) < 3 and not fitting)
            elif not self.classify.is_label(value) or len(values) < 2:
                return 0  # not a label + values row: not a transposed block
            else:
                plain_rows += 1
            span += 1
        if narrow and label_rows < 2:
            return 0  # two people side by side need two labels we know
        if label_rows >= 2 or (label_rows == 1 and plain_rows >= 1):
            return lead + span
        return 0

    def _label_value(self, kind: Kind, value: CellValue) -> bool:
        """A label among a row's values (a list header, not a transposed row); a value of
        the row's kind that merely holds a label word (タカハシ メイ: シメイ) is data."""
        if self.classify(value) is None:
            return False
        return self.classify.whole_label(value) or self.fits is None or not self.fits(kind, value)

    def _plain_layout(self, rows: list[Row], context: str = "") -> ListLayout:
        """A row of labels none of which we know (会社名 | 作成日 | 注文番号) over values
        (below title rows), or none."""
        for index, row in enumerate(rows[:5]):
            if index + 1 >= len(rows):
                break
            if not self.label_row(row):
                cells = non_empty(row)
                if len(cells) == 1 and self._titled_number_column(rows, index, context):
                    labels = {cells[0][0]: str(cells[0][1]).strip()}
                    title = " ".join([context, *self._titles(rows[:index])])
                    below = rows[index + 1 : index + 1 + SHAPE_ROWS]
                    fields = self._fields({}, labels, below, title)
                    return ListLayout(
                        (row.number,), fields, labels, signature=self._signature(row), title=title
                    )
                if len(cells) == 1:
                    continue  # a title line
                break
            below = rows[index + 1 : index + 1 + SHAPE_ROWS]
            if self.kinds(row) or self.label_row(below[0]) or not self._list_shape(row, below):
                break
            labels = {i: str(v).strip() for i, v in non_empty(row)}
            title = " ".join([context, *self._titles(rows[:index])])
            fields = self._fields({}, labels, below, title)
            return ListLayout(
                (row.number,), fields, labels, signature=self._signature(row), title=title
            )
        return ListLayout((), [])


def _is_kana(ch: str) -> bool:
    """A kana header word inside a longer kana run is part of another word (シメイ in
    コバヤシ メイ, a reading whose space the label folding removed), not that header."""
    return "\u3041" <= ch <= "\u30ff"


def _span_width(header: Row, col: int) -> int:
    """How many columns a header cell spans: itself and the empty cells after it, up to
    the next label (none past the end of the header)."""
    cells = header.cells
    end = col + 1
    while end < len(cells) and cells[end] in (None, ""):
        end += 1
    return end - col if end < len(cells) else 1


def _digit_label(value: CellValue) -> bool:
    """Short text with a few digits (住所1, 要介護度(R6)), not a number or date."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    digits = sum(ch.isdigit() for ch in text)
    return 0 < len(text) <= MAX_LABEL_LENGTH and digits <= 2 and digits <= len(text) / 2


def _cell_type(value: CellValue) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        return "d" if any(ch.isdigit() for ch in value) else "t"
    return type(value).__name__[:1]


def _joined_date_text(cells: list[CellValue]) -> str | None:
    """[era] | year | month | day cells as one date text (昭和45年3月2日), or None."""
    parts = []
    for value in cells:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = fold(str(value)).strip() if value is not None else ""
        if not text:
            return None
        parts.append(text.rstrip("年月日") or text)
    *era, year, month, day = parts
    if not (month.isdigit() and day.isdigit()):
        return None
    return f"{''.join(era)}{year}年{month}月{day}日"


def _alternating(body: list[Row]) -> bool:
    """Rows alternate in shape (two rows per person): row i is like row i+2, not like i+1."""
    shapes = [tuple(_cell_type(v) for v in r.cells) for r in body if non_empty(r)]
    if len(shapes) < 4:
        return len(shapes) >= 2 and shapes[0] != shapes[1]
    same_two = sum(shapes[i] == shapes[i + 2] for i in range(len(shapes) - 2))
    same_one = sum(shapes[i] == shapes[i + 1] for i in range(len(shapes) - 1))
    return same_two > same_one


def _forward_filled(upper: list[CellValue], width: int) -> list[tuple[str, bool]]:
    """A merged group header spreads right over the empty cells of the row above:
    (text, whether the cell itself holds it)."""
    out: list[tuple[str, bool]] = []
    current = ""
    for i in range(width):
        value = upper[i] if i < len(upper) else None
        if isinstance(value, str) and value.strip():
            current = value.strip()
            out.append((current, True))
            continue
        if value not in (None, ""):
            current = ""
        out.append((current, False))
    return out


def _same_group(labels: dict[int, str], i: int, j: int, classify: HeaderClassifier) -> bool:
    """Columns i and j share one merged label (same text, or 年/月/日 parts under it)."""
    a, b = labels.get(i, ""), labels.get(j, "")
    if not b:
        return True
    return (
        classify.key(a) == classify.key(b)
        or a.split("/")[0] == b.split("/")[0]
        or (len(a) > 1 and len(b) > 1 and a[:2] == b[:2])
    )
