"""Operator-defined ID types (patterns/id_types.toml), e.g. 基礎年金番号 ``1234-567890``.

No check digit is assumed: a match of the type's regex counts only with context —
one of its keywords within ``keyword_window`` characters before it (the nearest
label wins, so a negative label such as 事業所番号 keeps it out), or a governing
column/row header.
"""

from __future__ import annotations

from dlp_gateway.detect.findings import Finding, mask_number
from dlp_gateway.detect.normalize import LabelIndex, fold, header_matches
from dlp_gateway.detect.numbers import Hit
from dlp_gateway.detect.patterns import IdType
from dlp_gateway.extract.units import TableUnit


def find_id_type(text: str, id_type: IdType, header: str | None = None) -> list[Hit]:
    """Hits of one ID type in folded text; ``header`` is the governing column/row header."""
    under_header = bool(header) and header_matches(header or "", id_type.headers)
    labels = LabelIndex(id_type.labels, text)
    if not labels and not under_header:
        return []
    hits = []
    for m in id_type.regex.finditer(text):
        nearest = labels.nearest_before(m.start(), id_type.keyword_window)
        if nearest is not None and not nearest.positive:
            continue
        if nearest is None and not under_header:
            continue
        hits.append(Hit(id_type.id, m.start(), m.end(), mask_number(m.group()),
                        id_type.confidence))
    return hits



HEADER_SEARCH_ROWS = 30


def find_id_types_in_table(
    table: TableUnit, id_types: tuple[IdType, ...], seen: set[str]
) -> list[Finding]:
    """Cells under an ID type's column header whose value matches its regex.

    Covers what the free-text pass cannot: numbers stored as numbers (an Excel
    integer cell) and short cells. ``seen`` holds locations already reported.
    """
    columns: dict[int, IdType] = {}
    findings: list[Finding] = []
    for row in table.rows():
        if not columns:
            if row.number > HEADER_SEARCH_ROWS:
                return findings
            for i, value in enumerate(row.cells):
                if isinstance(value, str) and len(value) <= 40:
                    match = next((t for t in id_types if header_matches(value, t.headers)), None)
                    if match is not None:
                        columns[i] = match
            continue
        for i, id_type in columns.items():
            value = row.cells[i] if i < len(row.cells) else None
            text = _cell_text(value)
            if text is None:
                continue
            if isinstance(value, int | float):
                text = _restore_lost_zeros(text, id_type)
            m = id_type.regex.fullmatch(text)
            location = table.cell_location(row.number, i)
            if m is None or location in seen:
                continue
            findings.append(Finding(
                id_type.id, table.part, location, mask_number(text),  # type: ignore[arg-type]
                id_type.confidence, f"{table.location}!r{row.number}", table.in_body,
            ))
    return findings


MAX_LOST_ZEROS = 3


def _restore_lost_zeros(digits: str, id_type: IdType) -> str:
    """A number cell (Excel drops leading zeros) padded to the width the type's regex takes."""
    for width in range(len(digits), len(digits) + MAX_LOST_ZEROS + 1):
        padded = digits.zfill(width)
        if id_type.regex.fullmatch(padded):
            return padded
    return digits


def _cell_text(value: object) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return str(int(value))
    if isinstance(value, str):
        return fold(value).strip() or None
    return None
