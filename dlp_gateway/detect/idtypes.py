"""Operator-defined ID types (patterns/id_types.toml), e.g. 基礎年金番号 ``1234-567890``.

No check digit is assumed: a match of the type's regex counts only with context —
one of its keywords within ``keyword_window`` characters before it (the nearest
label wins, so a negative label such as 事業所番号 keeps it out), or a governing
column/row header.
"""

from __future__ import annotations

from dlp_gateway.detect.findings import mask_number
from dlp_gateway.detect.normalize import LabelIndex, header_matches
from dlp_gateway.detect.numbers import Hit
from dlp_gateway.detect.patterns import IdType


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

