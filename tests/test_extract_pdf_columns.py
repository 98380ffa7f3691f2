"""PDF rosters whose headers are wider than their columns (issue 8, seed 60085): each
header cell stays over its own column, so the list is read by its header."""

from __future__ import annotations

import io
import random

import pytest

from dlp_gateway.extract.pdf import extract_pdf
from dlp_gateway.extract.units import TableUnit
from dlp_gateway.scan import Scanner

HEADERS = ["①連番", "②被保番号", "③性別", "④住所"]
XS = [40, 80, 180, 220]  # one-digit 連番 and one-kanji 性別 under headers three times wider


def roster_pdf(n: int, seed: int) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("HeiseiKakuGo-W5"))
    rng = random.Random(seed)
    rows = [HEADERS]
    for i in range(n):
        insured = f"{rng.randrange(10**9, 10**10):010d}"
        rows.append(
            [str(i + 1), insured, rng.choice("男女"), f"本町{i + 1}丁目{rng.randint(1, 30)}番"]
        )
    out = io.BytesIO()
    page = canvas.Canvas(out, pagesize=A4)
    page.setFont("HeiseiKakuGo-W5", 9)
    y = 800.0
    for row in rows:
        for x, value in zip(XS, row, strict=True):
            page.drawString(x, y, value)
        y -= 14
    page.save()
    return out.getvalue()


def test_wide_headers_stay_over_their_columns() -> None:
    """24 rows: the header line alone is under COLUMN_GAP_SHARE, so it does not widen the
    columns; the header runs must still land in the columns they start in."""
    units = list(extract_pdf("名簿.pdf", roster_pdf(24, seed=3)))
    [table] = [u for u in units if isinstance(u, TableUnit)]
    header, first, *_ = table.rows()
    assert header.cells == HEADERS
    assert first.cells[0] == "1" and first.cells[2] in ("男", "女")


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


@pytest.mark.parametrize(("n", "seed"), [(5, 1), (21, 2), (34, 3)])
def test_roster_with_wide_circled_headers_is_held(scanner: Scanner, n: int, seed: int) -> None:
    result = scanner.scan_file("更新対象者.pdf", roster_pdf(n, seed))
    assert (result.counts["insured_number"], result.counts["records"]) == (n, n), result.counts
    assert result.verdict.action != "pass"
