"""A birth date split over adjacent columns with headers of their own (issue 8): 生年 | 月 |
日, 元号 | 生年 | 月 | 日, 生年月日(元号) | 年 | 月 | 日, 生年月日 over 年 | 月 | 日. Real xlsx
and csv files built here, scanned end to end; rosters longer than the evidence bound go
through the column-at-a-time path (detect/colscan.py) and must count the same."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from dlp_gateway.detect.tables import EVIDENCE_PER_TABLE
from dlp_gateway.scan import Scanner
from tests.test_detect_layouts import check, csv_bytes, people, xlsx


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def era(born: dt.date) -> tuple[str, int]:
    if born >= dt.date(1989, 1, 8):
        return "平成", born.year - 1988
    return "昭和", born.year - 1925


def western(born: dt.date) -> list[object]:
    return [born.year, born.month, born.day]


def eraed(born: dt.date) -> list[object]:
    name, year = era(born)
    return [name, year, born.month, born.day]


# header cells of the date columns -> the cells of one birth date
LAYOUTS = {
    "生年|月|日": (["生年", "月", "日"], western),
    "生年|生月|生日": (["生年", "生月", "生日"], western),
    "誕生年|月|日": (["誕生年", "月", "日"], western),
    "元号|生年|月|日": (["元号", "生年", "月", "日"], eraed),
    "和暦|年|月|日": (["和暦", "年", "月", "日"], eraed),
    "生年月日(元号)|年|月|日": (["生年月日(元号)", "年", "月", "日"], eraed),
    "年|月|日": (["年", "月", "日"], western),
}


def roster(layout: str, n: int, seed: int = 3) -> list[list[object]]:
    heads, cells = LAYOUTS[layout]
    rows: list[list[object]] = [["氏名", *heads, "住所"]]
    for p in people(n, seed):
        rows.append([p["name"], *cells(p["born"]), "宮崎県延岡市"])  # type: ignore[arg-type]
    return rows


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("kind", ["xlsx", "csv"])
def test_split_birth_date_columns_count_every_person(
    scanner: Scanner, layout: str, kind: str
) -> None:
    rows = roster(layout, 12)
    data = xlsx(rows) if kind == "xlsx" else csv_bytes(rows, "cp932")
    result = scanner.scan_file(f"名簿.{kind}", data)
    check(result, 12)
    assert result.counts["birth_date"] == 12
    assert result.verdict.action == "hold"


@pytest.mark.parametrize("layout", ["生年|月|日", "生年月日(元号)|年|月|日", "年|月|日"])
def test_few_rows_encrypt(scanner: Scanner, layout: str) -> None:
    result = scanner.scan_file("名簿.xlsx", xlsx(roster(layout, 4)))
    check(result, 4)
    assert result.verdict.action == "encrypt"


def test_merged_birth_date_header_over_year_month_day(scanner: Scanner) -> None:
    rows: list[list[object]] = [["氏名", "生年月日", None, None, "性別"], [None, "年", "月", "日"]]
    rows += [[p["name"], *western(p["born"]), "女"] for p in people(8)]  # type: ignore[arg-type]
    check(scanner.scan_file("名簿.xlsx", xlsx(rows, merges=["A1:A2", "B1:D1", "E1:E2"])), 8)


@pytest.mark.parametrize("layout", ["生年|月|日", "元号|生年|月|日", "和暦|年|月|日"])
def test_long_roster_column_path_counts_the_same(scanner: Scanner, layout: str) -> None:
    n = EVIDENCE_PER_TABLE * 2 + 37
    result = scanner.scan_file("名簿.csv", csv_bytes(roster(layout, n, seed=11)))
    check(result, n)
    assert result.counts["birth_date"] == n


def test_era_year_in_the_year_cell(scanner: Scanner) -> None:
    rows: list[list[object]] = [["氏名", "生年", "月", "日"]]
    for p in people(6):
        name, year = era(p["born"])  # type: ignore[arg-type]
        rows.append([p["name"], f"{name}{year}", p["born"].month, p["born"].day])  # type: ignore[attr-defined]
    check(scanner.scan_file("名簿.xlsx", xlsx(rows)), 6)


# -- what must stay innocent ---------------------------------------------------------------
def test_duty_log_with_year_month_day_columns_passes(scanner: Scanner) -> None:
    """年 | 月 | 日 of this year's duty dates beside staff names: not birth dates."""
    rng = random.Random(5)
    rows: list[list[object]] = [["氏名", "年", "月", "日", "業務"]]
    for p in people(20):
        day = dt.date(2026, 4, 1) + dt.timedelta(days=rng.randrange(200))
        rows.append([p["name"], day.year, day.month, day.day, "窓口当番"])
    result = scanner.scan_file("当番表.xlsx", xlsx(rows))
    assert result.counts["records"] == 0, result.counts
    assert result.verdict.action == "pass"


def test_year_month_day_that_are_no_date_do_not_count(scanner: Scanner) -> None:
    """生年 | 月 | 日 whose values cannot be a date (月 13, 日 40): no birth date."""
    rows: list[list[object]] = [["氏名", "生年", "月", "日"]]
    rows += [[p["name"], 1960 + i, 13 + i, 40] for i, p in enumerate(people(6))]
    result = scanner.scan_file("名簿.xlsx", xlsx(rows))
    assert result.counts["birth_date"] == 0
    assert result.counts["records"] == 0
