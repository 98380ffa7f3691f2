"""Table detection: header rows below titles, forms, headerless columns, records per row."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from dlp_gateway.detect.engine import DetectionEngine
from dlp_gateway.detect.patterns import load_patterns
from dlp_gateway.detect.records import count_records
from dlp_gateway.extract.units import Row, TableUnit


@pytest.fixture(scope="module")
def engine() -> DetectionEngine:
    return DetectionEngine(load_patterns(), today=dt.date(2026, 11, 24))


def table(rows: list[list], location: str = "名簿.xlsx!Sheet1") -> TableUnit:
    def read() -> Iterator[Row]:
        return (Row(i + 1, list(cells)) for i, cells in enumerate(rows))

    return TableUnit(part=location.split("!")[0], location=location, rows=read)


def counts(findings) -> dict[str, int]:  # type: ignore[no-untyped-def]
    out: dict[str, int] = {}
    for f in findings:
        out[f.type] = out.get(f.type, 0) + 1
    return out


def test_roster_with_title_rows_counts_every_row(engine: DetectionEngine) -> None:
    rows = [
        ["令和4年度 要介護認定者一覧"],
        [],
        ["被保険者番号", "氏名", "生年月日", "性別", "住所"],
    ]
    rows += [
        [f"{1000000000 + i}", "山田太郎", dt.datetime(1940, 1, 1 + i % 28), "男", "延岡市"]
        for i in range(25)
    ]
    findings = engine.scan_table(table(rows))
    assert counts(findings) == {"insured_number": 25, "name": 25, "birth_date": 25}
    assert count_records(findings).total == 25
    first = next(f for f in findings if f.type == "insured_number")
    assert first.location == "名簿.xlsx!Sheet1!A4"


def test_my_number_column_stored_as_numbers(engine: DetectionEngine) -> None:
    rows = [["氏名", "個人番号"], ["山田太郎", 123456789018], ["佐藤花子", 12345678903]]
    findings = engine.scan_table(table(rows))
    assert counts(findings)["my_number"] == 2
    assert {f.masked for f in findings if f.type == "my_number"} == {"********9018", "********8903"}


def test_birth_dates_as_strings_and_wareki(engine: DetectionEngine) -> None:
    rows = [["氏名", "生年月日", "受付日"]]
    rows += [["山田太郎", "昭和45年3月2日", "令和6年4月1日"], ["佐藤花子", "H2.1.10", "2024/04/01"]]
    rows += [["鈴木一郎", 19700302, 20240401], ["高橋次郎", "3450302", "R6.4.1"]]
    findings = engine.scan_table(table(rows))
    births = [f.location for f in findings if f.type == "birth_date"]
    assert births == [
        "名簿.xlsx!Sheet1!B2",
        "名簿.xlsx!Sheet1!B3",
        "名簿.xlsx!Sheet1!B4",
        "名簿.xlsx!Sheet1!B5",
    ]


def test_headerless_my_number_column_by_check_digits(engine: DetectionEngine) -> None:
    valid = ["123456789018", "621498320257", "465281266333", "012345678903", "100000000005"]
    valid = [v for v in valid if __import__("stdnum.jp.in_").jp.in_.is_valid(v)]
    rows = [[f"職員{i}", v] for i, v in enumerate(valid * 2)]
    findings = engine.scan_table(table(rows, "list.csv"))
    assert counts(findings).get("my_number") == len(rows)


def test_random_twelve_digit_column_is_not_my_numbers(engine: DetectionEngine) -> None:
    rows = [["伝票", "金額"]] + [[f"{100000000000 + i * 7919}", 1000] for i in range(50)]
    assert "my_number" not in counts(engine.scan_table(table(rows, "orders.csv")))


def test_form_layout_is_one_person(engine: DetectionEngine) -> None:
    rows = [
        ["申請書"],
        ["氏名", "山田太郎"],
        ["生年月日", "昭和45年3月2日"],
        ["住所", "宮崎県延岡市"],
        ["電話番号", "0982-11-2222"],
    ]
    findings = engine.scan_table(table(rows, "申請.docx!table1"))
    assert counts(findings) == {"name": 1, "birth_date": 1}
    assert count_records(findings).total == 1


def test_box_style_my_number(engine: DetectionEngine) -> None:
    rows = [["個人番号", *list("123456789018")], ["氏名", "山田太郎"]]
    findings = engine.scan_table(table(rows, "様式.xlsx!Sheet1"))
    assert counts(findings).get("my_number") == 1


def test_company_and_date_columns_are_not_personal(engine: DetectionEngine) -> None:
    rows = [["会社名", "作成日", "注文番号"]]
    rows += [["山田製作所", "2024/04/01", "123456789018"] for _ in range(5)]
    assert engine.scan_table(table(rows, "orders.xlsx!Sheet1")) == []


def test_kana_and_name_columns_give_one_name_per_row(engine: DetectionEngine) -> None:
    rows = [["氏名", "フリガナ", "生年月日"], ["山田太郎", "ヤマダタロウ", "1970/03/02"]]
    findings = engine.scan_table(table(rows))
    assert counts(findings) == {"name": 1, "birth_date": 1}


def test_note_cell_with_my_number_text(engine: DetectionEngine) -> None:
    rows = [["氏名", "備考"], ["山田太郎", "マイナンバー 1234 5678 9018 確認済み"]]
    assert counts(engine.scan_table(table(rows))).get("my_number") == 1
