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

import regex

from dlp_gateway.detect.allow import ValueFilter
from dlp_gateway.detect.birth import find_birth_dates
from dlp_gateway.detect.findings import Finding
from dlp_gateway.detect.idtypes import find_id_type, find_id_types_in_table
from dlp_gateway.detect.names import NameFinder
from dlp_gateway.detect.normalize import LabelIndex, fold
from dlp_gateway.detect.numbers import Hit, find_insured_numbers, find_my_numbers
from dlp_gateway.detect.patterns import PatternSet
from dlp_gateway.detect.tables import HeaderClassifier, Kind, TableScanner
from dlp_gateway.extract.units import Row, TableUnit, TextUnit

_PARAGRAPH_BREAK = regex.compile(r"\n[ \t\u3000]*\n")
# Beyond this much free text in one unit, names are only looked for in paragraphs
# that already hold a birth date (names matter only as part of a record).
NAME_SCAN_BUDGET = 2_000_000


class DetectionEngine:
    def __init__(self, patterns: PatternSet, today: dt.date | None = None):
        self.p = patterns
        self._today = today
        self.names = NameFinder(patterns.name)
        self.classify = HeaderClassifier(patterns)
        self.tables = TableScanner(patterns, self.names, self.classify, self.text_hits)
        self.allow = ValueFilter(patterns.allow.salt, patterns.allow.hashes)

    @property
    def today(self) -> dt.date:
        return self._today or dt.date.today()

    # -- free text -----------------------------------------------------------
    def scan_text(self, unit: TextUnit) -> list[Finding]:
        text = fold(unit.text)
        header_kind = self.classify(unit.header) if unit.header else None
        hits = self._hits(
            text, header_kind, with_names=len(text) <= NAME_SCAN_BUDGET, header=unit.header
        )
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
            folded, self.classify(header) if header else None, with_names=False, header=header
        )

    def _hits(
        self, text: str, header_kind: Kind | None, with_names: bool, header: str | None = None
    ) -> list[Hit]:
        p = self.p
        if not _worth_scanning(text):
            return []
        hits = find_my_numbers(
            text,
            LabelIndex(p.my_number.labels, text),
            p.my_number,
            header_context=header_kind is Kind.MY_NUMBER,
        )
        insured = find_insured_numbers(
            text,
            LabelIndex(p.insured_number.labels, text),
            p.insured_number,
            header_context=header_kind is Kind.INSURED,
        )
        hits += _without_overlaps(insured, hits)
        births = find_birth_dates(
            text,
            LabelIndex(p.birth_date.labels, text),
            p.birth_date,
            self.today,
            header_context=header_kind is Kind.BIRTH_DATE,
        )
        hits += births
        if with_names or births:
            hits += _without_overlaps(self.names.find(text), hits)
        for id_type in p.id_types:
            hits += _without_overlaps(find_id_type(text, id_type, header), hits)
        if self.allow:
            hits = [h for h in hits if not self.allow.allowed(text[h.start : h.end])]
        return hits

    # -- tables --------------------------------------------------------------
    def scan_table(self, unit: TableUnit) -> list[Finding]:
        if self.allow:
            unit = _without_allowed_cells(unit, self.allow)
        findings = self.tables.scan(unit, self.today)
        if self.p.id_types:
            seen = {f.location for f in findings}
            findings += find_id_types_in_table(unit, self.p.id_types, seen)
        return findings


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


def _without_overlaps(new: list[Hit], existing: list[Hit]) -> list[Hit]:
    if not existing:
        return new
    return [h for h in new if not any(h.start < e.end and e.start < h.end for e in existing)]
