"""Free-text detection: numbers, dates and names in bodies and paragraphs."""

from __future__ import annotations

import datetime as dt

import pytest

from dlp_gateway.detect.engine import DetectionEngine
from dlp_gateway.detect.numbers import is_valid_my_number, my_number_in_cell
from dlp_gateway.detect.patterns import load_patterns
from dlp_gateway.detect.records import count_records
from dlp_gateway.extract.units import TextUnit


@pytest.fixture(scope="module")
def engine() -> DetectionEngine:
    return DetectionEngine(load_patterns(), today=dt.date(2026, 11, 24))


def types(engine: DetectionEngine, text: str) -> list[str]:
    return sorted(f.type for f in engine.scan_text(TextUnit(text, "body", "body", True)))


@pytest.mark.parametrize("number", ["123456789018", "621498320257", "465281266333"])
def test_check_digit_accepts_domain_examples(number: str) -> None:
    assert is_valid_my_number(number)


@pytest.mark.parametrize("number", ["123456789012", "111111111111", "000000000000", "12345678901"])
def test_check_digit_rejects(number: str) -> None:
    assert not is_valid_my_number(number)


def test_numeric_cell_lost_leading_zero_is_padded() -> None:
    # 012345678903 is valid; Excel stores it as the integer 12345678903.
    assert is_valid_my_number("012345678903")
    assert my_number_in_cell(12345678903) == "012345678903"


@pytest.mark.parametrize(
    "text",
    [
        "個人番号123456789018です",
        "マイナンバー：１２３４５６７８９０１８",
        "個人番号　１２３４　５６７８　９０１８",
        "番号は 4652ー8126ー6333 (マイナンバー)",
        "My Number: 4652‐8126‐6333",
        "共通番号 4652–8126–6333",
        "通知カード記載の番号 4652—8126—6333",
        "マイナンバー 4652―8126―6333",
    ],
)
def test_my_number_forms(engine: DetectionEngine, text: str) -> None:
    assert types(engine, text) == ["my_number"]


@pytest.mark.parametrize(
    "text",
    [
        "伝票番号：123456789018",
        "お客様番号 123456789018 / マイナンバーの提出は不要です",
        "法人番号 7000012050002 の事業者です",
        "ご注文 123456789018 番",
        "電話 0312345678 まで",
        "個人番号 1234567890180",
    ],
)
def test_my_number_traps(engine: DetectionEngine, text: str) -> None:
    assert "my_number" not in types(engine, text)


def test_keyword_window_reaches_300_chars(engine: DetectionEngine) -> None:
    near = "個人番号の提出をお願いします。" + "あ" * 200 + " 123456789018"
    far = "個人番号の提出をお願いします。" + "あ" * 400 + " 123456789018"
    assert types(engine, near) == ["my_number"]
    assert types(engine, far) == []


def test_insured_not_confused_with_facility_or_insurer(engine: DetectionEngine) -> None:
    text = "事業所番号 4512345678\n保険者番号 39342027\n被保険者番号 0012345678"
    assert types(engine, text) == ["insured_number"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("生年月日：昭和四十五年三月二日", 1),
        ("生年月日 S.45.3.2", 1),
        ("生年月日 H元.4.1", 1),
        ("生年月日：1970-03-02", 1),
        ("生年月日：19700302", 1),
        ("交付年月日 平成30年4月1日", 0),
        ("作成日：令和6年11月1日", 0),
        ("受付日 2024/04/01、生年月日は別紙", 0),
        ("2024年4月1日生産開始", 0),
        ("生年月日 平成31年5月1日", 0),
    ],
)
def test_birth_date_by_label(engine: DetectionEngine, text: str, expected: int) -> None:
    assert types(engine, text).count("birth_date") == expected


def test_records_in_body_paragraph(engine: DetectionEngine) -> None:
    text = (
        "下記の方の確認をお願いします。\n"
        "山田太郎 昭和45年3月2日生\n"
        "佐藤花子 平成2年1月10日生\n\n"
        "よろしくお願いします。\n総務課 鈴木一郎"
    )
    findings = engine.scan_text(TextUnit(text, "body", "body", True))
    records = count_records(findings)
    assert records.total == 2 and records.in_body == 2


def test_names_alone_are_not_records(engine: DetectionEngine) -> None:
    # 氏名 is a name label: that paragraph is analysed (names only where a record can form)
    text = "山田太郎様\n\nいつもお世話になっております。佐藤花子さんにもよろしく。\n\n氏名 鈴木一郎"
    findings = engine.scan_text(TextUnit(text, "body", "body", True))
    assert any(f.type == "name" for f in findings)
    assert count_records(findings).total == 0


def test_twenty_insured_numbers_without_names_are_twenty_records(engine: DetectionEngine) -> None:
    lines = "\n".join(f"被保険者番号 {1000000000 + i}" for i in range(20))
    findings = engine.scan_text(TextUnit(lines, "memo.txt", "memo.txt"))
    assert count_records(findings).total == 20


def test_masked_values_never_hold_the_full_number(engine: DetectionEngine) -> None:
    findings = engine.scan_text(TextUnit("個人番号 123456789018", "body", "body", True))
    assert findings[0].masked == "********9018"
    assert findings[0].location == "body!L1"
