"""Runs every detector over text and table units and returns findings.

Free text: fold once, find each detector's labels once, then run the number, date
and name detectors over the whole text (keyword windows cross line ends). A
finding's location names its line (``body!L12``, ``通知.docx!body!p3``); its group
is its paragraph (blank-line separated), the unit in which records are counted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from bisect import bisect_right
from collections.abc import Iterator
from itertools import pairwise
from typing import Literal

import regex

from dlp_gateway.detect.allow import ValueFilter
from dlp_gateway.detect.birth import find_birth_dates
from dlp_gateway.detect.correspondents import CorrespondentSpans, compact_name, in_spans
from dlp_gateway.detect.findings import (
    ID_CODE_TYPES,
    Finding,
    FindingList,
    joined,
    omitted_of,
)
from dlp_gateway.detect.idtypes import find_id_type, find_id_types_in_table
from dlp_gateway.detect.layout import WINDOW_ROWS, LayoutReader, non_empty
from dlp_gateway.detect.names import NameFinder
from dlp_gateway.detect.normalize import LabelIndex, fold
from dlp_gateway.detect.numbers import Hit, find_insured_numbers, find_my_numbers
from dlp_gateway.detect.patterns import LabelSet, PatternSet
from dlp_gateway.detect.records import count_records
from dlp_gateway.detect.tables import HeaderClassifier, Kind, TableScanner
from dlp_gateway.detect.textblocks import (
    TextTable,
    find_number_columns,
    find_stacked_columns,
    find_text_tables,
)
from dlp_gateway.extract.units import Row, TableUnit, TextUnit

_PARAGRAPH_BREAK = regex.compile(r"\n[ \t\u3000]*\n")
# Beyond this much free text in one unit, names are only looked for in paragraphs
# that already hold a birth date (names matter only as part of a record).
NAME_SCAN_BUDGET = 2_000_000
# How free text is given to the name analyser: every paragraph ("all"), only paragraphs
# with an anchor (a birth date, an ID number, their labels, a name label: "anchored"),
# only paragraphs with a birth date ("births"), or only when the text holds a birth date
# (table cells: "cell").
NameScope = Literal["all", "anchored", "births", "cell"]


class DetectionEngine:
    def __init__(self, patterns: PatternSet, today: dt.date | None = None):
        self.p = patterns
        self._today = today
        self.names = NameFinder(patterns.name)
        self.classify = HeaderClassifier(patterns)
        self.tables = TableScanner(patterns, self.names, self.classify, self.text_hits)
        self.correspondent_spans = CorrespondentSpans(patterns.name)
        self.allow = ValueFilter(patterns.allow.salt, patterns.allow.hashes)
        # A policy that counts names needs every name; otherwise names matter only where
        # a person record can form (patterns/name.toml anchor_words).
        self.names_everywhere = any(r.metric == "name" for r in patterns.policy.rules)
        self._name_anchors = _word_set(patterns.name.anchor_words)

    @property
    def today(self) -> dt.date:
        return self._today or dt.date.today()

    # -- free text -----------------------------------------------------------
    def scan_text(
        self, unit: TextUnit, correspondents: frozenset[str] = frozenset()
    ) -> list[Finding]:
        """Free text; tables inside it (tab-separated, HTML) are read as tables.

        ``correspondents`` are the mail's From/To/Cc display names (``compact_name``).
        """
        text = fold(unit.text)
        header_kind = self.classify(unit.header) if unit.header else None
        hits = self._hits(text, header_kind, self.free_text_scope(text), header=unit.header)
        if hits and (unit.in_body or unit.location.startswith("header:")):
            hits = self._without_correspondents(text, hits, correspondents)
        findings = self._text_findings(unit, text, hits)
        tables = find_text_tables(text) + find_number_columns(text)
        tables += _outside(find_stacked_columns(text), tables)
        if tables:
            findings = self._with_tables(unit, findings, tables)
        return findings

    def free_text_scope(self, text: str) -> NameScope:
        """Where names are looked for in a unit of free text (see ``NameScope``)."""
        if len(text) > NAME_SCAN_BUDGET:
            return "births"
        return "all" if self.names_everywhere else "anchored"

    def _without_correspondents(
        self, text: str, hits: list[Hit], correspondents: frozenset[str]
    ) -> list[Hit]:
        """Drop names in the salutation, the signature and the display names, unless the
        name stands on a line with a birth date (then it is data about that person), and
        never a signature-like block that carries numbers or dates of people."""
        data = [h for h in hits if h.type != "name"]
        reach = self.correspondent_spans.salutation_reach
        spans = [
            (start, end)
            for start, end in self.correspondent_spans.spans(text)
            if not any(start <= h.start < reach(text, (start, end)) for h in data)
        ]
        dated_lines = {_line_span(text, h.start) for h in data if h.type == "birth_date"}
        kept = []
        for hit in hits:
            if hit.type == "name" and _line_span(text, hit.start) not in dated_lines:
                if in_spans(hit.start, spans):
                    continue
                name = compact_name(text[hit.start : hit.end])
                if any(name in c or (len(c) >= 3 and c in name) for c in correspondents):
                    continue
            kept.append(hit)
        return kept

    def _with_tables(
        self, unit: TextUnit, findings: list[Finding], tables: list[TextTable]
    ) -> list[Finding]:
        """Each table block read as a table. A block under a header row is read only as a
        table (the column header is the nearest label); a headerless block as a table
        only when that finds at least as many records as the paragraph reading."""
        for index, block in enumerate(tables, 1):
            first, last = block.first_line, block.rows[-1].number
            inside = [f for f in findings if first <= _line_of(f, unit) <= last]
            found = self._read_text_table(unit, block, index)
            layouts = self.tables.layouts
            headed = (
                any(layouts.label_row(r) for r in block.rows[:2])
                or (bool(block.joined_rows) and layouts.label_row(block.joined_rows[0]))
                or _labelled_rows(layouts, block.rows)
            )
            if headed or (
                count_records(found).total >= count_records(inside).total
                and _id_codes(found) >= _id_codes(inside)
            ):
                ids = {id(f) for f in inside}
                kept = [f for f in findings if id(f) not in ids]
                findings = joined(kept, found) if omitted_of(findings) is None else joined(
                    kept, _tally_only(findings), found)
        return findings

    def _read_text_table(self, unit: TextUnit, block: TextTable, index: int) -> list[Finding]:
        """A header split over lines is either a merged two-row header or cells with line
        breaks inside: read both ways and keep the reading whose header names more of its
        columns with labels we know (then the one that finds more records)."""
        layouts = self.tables.layouts
        readings = [layouts.realign_spanned(list(block.rows))]
        if block.joined_rows and len(block.joined_rows) != len(block.rows):
            readings.append(layouts.realign_spanned(list(block.joined_rows)))
        best: list[Finding] = []
        best_key = (-1, -1, -1)
        for rows in readings:
            table = TableUnit(
                part=unit.part,
                location=f"{unit.location}!table{index}",
                rows=lambda r=rows: iter(r),
                in_body=unit.in_body,
            )
            found = self.scan_table(table, context=block.title)
            quality = _header_quality(layouts, rows, block.title) if len(readings) > 1 else 0
            key = (quality, count_records(found).total, _id_codes(found))
            if key > best_key:
                best, best_key = found, key
        return best

    def _text_findings(self, unit: TextUnit, text: str, hits: list[Hit]) -> list[Finding]:
        if not hits:
            return []
        lines = _line_starts(text)
        paragraphs = [0, *(m.end() for m in _PARAGRAPH_BREAK.finditer(text))]
        findings = []
        for hit in hits:
            line = bisect_right(lines, hit.start)
            paragraph = bisect_right(paragraphs, hit.start)
            findings.append(
                Finding(
                    hit.type,  # type: ignore[arg-type]
                    unit.part,
                    f"{unit.location}!{unit.line_label}{line}",
                    hit.masked,
                    hit.confidence,
                    f"{unit.location}#para{paragraph}",
                    unit.in_body,
                )
            )
        return findings

    def text_hits(self, text: str, header: str = "") -> list[Hit]:
        """Hits in one table cell's text; names only beside a birth date (cells are many)."""
        folded = fold(text)
        return self._hits(
            folded, self.classify(header) if header else None, "cell", header=header
        )

    def _hits(
        self, text: str, header_kind: Kind | None, names: NameScope, header: str | None = None
    ) -> list[Hit]:
        p = self.p
        if not _worth_scanning(text):
            return []
        my_labels = LabelIndex(p.my_number.labels, text)
        hits = find_my_numbers(
            text, my_labels, p.my_number, header_context=header_kind is Kind.MY_NUMBER
        )
        insured_labels = LabelIndex(p.insured_number.labels, text)
        insured = find_insured_numbers(
            text, insured_labels, p.insured_number, header_context=header_kind is Kind.INSURED
        )
        birth_labels = LabelIndex(p.birth_date.labels, text)
        births = find_birth_dates(
            text,
            birth_labels,
            p.birth_date,
            self.today,
            header_context=header_kind is Kind.BIRTH_DATE,
        )
        if births and insured:
            window = p.insured_number.keyword_window
            insured = [
                h for h in insured
                if not _date_by_nearer_label(h, births, insured_labels, birth_labels, window)
            ]
        hits += _without_overlaps(insured, hits)
        hits += births
        by_id_type = [find_id_type(text, id_type, header) for id_type in p.id_types]
        if names == "all" or (names == "cell" and births):
            hits += _without_overlaps(self._find_names(text), hits)
        elif names != "cell":
            anchors = [h.start for h in births] if names == "births" else self._anchors(
                text, hits, by_id_type, (my_labels, insured_labels, birth_labels))
            hits += _without_overlaps(self._names_near(text, anchors), hits)
        for found in by_id_type:
            hits += _without_overlaps(found, hits)
        if self.allow:
            hits = [h for h in hits if not self.allow.allowed(text[h.start : h.end])]
        return hits

    def _anchors(self, text: str, hits: list[Hit], by_id_type: list[list[Hit]],
                 labels: tuple[LabelIndex, ...]) -> list[int]:
        """Where a person record can form: the numbers and birth dates found, the ID-type
        hits, the keywords and labels of those detectors, the name labels."""
        starts = [h.start for h in hits]
        starts += [h.start for found in by_id_type for h in found]
        starts += [label.start for index in labels for label in index.labels if label.positive]
        if self._name_anchors is not None:
            starts += [start for start, _end in self._name_anchors.spans(text)]
        return starts

    def _names_near(self, text: str, anchors: list[int]) -> list[Hit]:
        """Names in the paragraphs (the record groups) that hold an anchor position; the
        analyser never sees the rest."""
        if not anchors:
            return []
        breaks = [m.end() for m in _PARAGRAPH_BREAK.finditer(text)]
        starts = [0, *breaks]
        spans: list[list[int]] = []
        for index in sorted({bisect_right(starts, a) - 1 for a in anchors}):
            start = starts[index]
            end = starts[index + 1] if index + 1 < len(starts) else len(text)
            if spans and spans[-1][1] == start:
                spans[-1][1] = end  # neighbouring paragraphs: one piece of text
            else:
                spans.append([start, end])
        hits = []
        for start, end in spans:
            hits += [dataclasses.replace(h, start=h.start + start, end=h.end + start)
                     for h in self._find_names(text[start:end])]
        return hits

    def _find_names(self, text: str) -> list[Hit]:
        """Names by label and position first (氏名：椎葉　キヨ), then by the analyser; a
        reading in brackets after a name is the same name."""
        labelled = self.names.find_labelled(text)
        found = labelled + _without_overlaps(self.names.find(text), labelled)
        return _without_bracketed_readings(text, found)

    # -- tables --------------------------------------------------------------
    def scan_table(self, unit: TableUnit, context: str = "", keep_all: bool = False
                   ) -> list[Finding]:
        """``keep_all``: every finding, no evidence bound (``--explain`` looks at each)."""
        if self.allow:
            unit = _without_allowed_cells(unit, self.allow)
        findings = self.tables.scan(unit, self.today, context=context, keep_all=keep_all)
        if self.p.id_types:
            seen = {f.location for f in findings}
            findings += find_id_types_in_table(unit, self.p.id_types, seen)
        return findings


def _outside(new: list[TextTable], tables: list[TextTable]) -> list[TextTable]:
    """Blocks of ``new`` that overlap none of ``tables``."""
    return [t for t in new if not any(t.start < o.end and o.start < t.end for o in tables)]


def _without_allowed_cells(unit: TableUnit, allow: ValueFilter) -> TableUnit:
    """The same table with allow-listed cell values blanked (they are never findings)."""
    rows = unit.rows

    def filtered() -> Iterator[Row]:
        for row in rows():
            if any(allow.allowed(v) for v in row.cells if isinstance(v, str | int | float)):
                cells = [None if isinstance(v, str | int | float) and allow.allowed(v) else v
                         for v in row.cells]
                row = Row(row.number, cells)
            yield row

    return dataclasses.replace(unit, rows=filtered)


def _header_quality(layouts: LayoutReader, rows: list[Row], title: str) -> int:
    """How many header cells of a reading are labels we know (0 when it has no header)."""
    analysis = layouts.analyse(rows[:WINDOW_ROWS], title)
    layout = analysis.layout
    if analysis.kind not in ("list", "headerless") or layout is None or not layout.header_rows:
        return 0
    return sum(1 for h in layout.headers.values() if layouts.classify.known_label(h))


def _line_span(text: str, position: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    return start, len(text) if end < 0 else end


def _line_of(finding: Finding, unit: TextUnit) -> int:
    """The line number a text finding's location names (``body!L12`` -> 12)."""
    tail = finding.location.rsplit("!", 1)[-1]
    digits = tail[len(unit.line_label) :]
    return int(digits) if digits.isdigit() else 0


def _id_codes(findings: list[Finding]) -> int:
    omitted = omitted_of(findings)
    extra = sum(omitted.by_type.get(t, 0) for t in ID_CODE_TYPES) if omitted else 0
    return extra + sum(1 for f in findings if f.type in ID_CODE_TYPES)


def _tally_only(findings: list[Finding]) -> list[Finding]:
    """No findings, only the omitted tally of ``findings`` (kept when splicing lists)."""
    return FindingList(omitted=omitted_of(findings))


def _word_set(words: tuple[str, ...]) -> LabelSet | None:
    """``words`` (folded) as one case-insensitive search; None when there are none."""
    return LabelSet.build(sorted({fold(w) for w in words}), []) if words else None


def _worth_scanning(text: str) -> bool:
    return bool(text) and not text.isspace()


def _line_starts(text: str) -> list[int]:
    starts = [0]
    find = text.find
    i = find("\n")
    while i != -1:
        starts.append(i + 1)
        i = find("\n", i + 1)
    return starts


_READING_GAP = regex.compile(r"[ \t]*[(（][ \t]*")


def _without_bracketed_readings(text: str, hits: list[Hit]) -> list[Hit]:
    """山田 太郎（ヤマダ タロウ）, イシカワ シゲノブ (石川 重信): a name in brackets right
    after a name is the same person written again, not a second name."""
    names = sorted((h for h in hits if h.type == "name"), key=lambda h: h.start)
    again = {
        id(b)
        for a, b in pairwise(names)
        if _READING_GAP.fullmatch(text, a.end, b.start)
    }
    return [h for h in hits if id(h) not in again] if again else hits


def _without_overlaps(new: list[Hit], existing: list[Hit]) -> list[Hit]:
    if not existing:
        return new
    return [h for h in new if not any(h.start < e.end and e.start < h.end for e in existing)]


def _labelled_rows(layouts: LayoutReader, rows: tuple[Row, ...]) -> bool:
    """Label | value rows (a form, or a transposed list) whose labels we know: each value's
    label is the cell left of it, the nearest label (生年月日 | 19490713 under a line
    holding 被保険者番号 is a date), so the table reading is the one to keep."""
    pairs = [cells for cells in (non_empty(r) for r in rows) if len(cells) >= 2]
    known = sum(1 for cells in pairs if layouts.classify.known_label(cells[0][1]))
    return known >= 2 and known >= 0.6 * len(pairs)


def _date_by_nearer_label(
    hit: Hit, births: list[Hit], insured: LabelIndex, birth: LabelIndex, window: int
) -> bool:
    """An insured-number candidate that is a birth date under a nearer birth label
    (被保険者番号 01287682 / 生年月日 19490713: the second number is the date)."""
    if not any(b.start < hit.end and hit.start < b.end for b in births):
        return False
    date_label = birth.nearest_before(hit.start, window)
    if date_label is None or not date_label.positive:
        return False
    number_label = insured.nearest_before(hit.start, window)
    return number_label is None or number_label.end <= date_label.start
