"""Date expressions: Japanese eras, Western forms, cell values, Excel serials."""

from __future__ import annotations

import itertools
import unicodedata
from datetime import date

import pytest

from dlp_gateway.detect.dates import (
    ERAS,
    DateMatch,
    excel_serial_to_date,
    find_dates,
    is_plausible_birth_date,
    parse_date_number,
    parse_date_text,
    wareki_to_date,
)

D1970 = date(1970, 3, 2)


def only(text: str) -> DateMatch:
    found = find_dates(text)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize(
    ("text", "value", "form"),
    [
        ("昭和45年3月2日", D1970, "wareki"),
        ("昭和 45 年 3 月 2 日", D1970, "wareki"),
        ("昭和45年03月02日", D1970, "wareki"),
        ("昭和元年12月25日", date(1926, 12, 25), "wareki"),
        ("平成元年1月8日", date(1989, 1, 8), "wareki"),
        ("大正15年12月24日", date(1926, 12, 24), "wareki"),
        ("昭和64年1月7日", date(1989, 1, 7), "wareki"),
        ("平成31年4月30日", date(2019, 4, 30), "wareki"),
        ("令和元年5月1日", date(2019, 5, 1), "wareki"),
        ("明治45年7月29日", date(1912, 7, 29), "wareki"),
        ("S45.3.2", D1970, "wareki_abbrev"),
        ("S.45.3.2", D1970, "wareki_abbrev"),
        ("S45/3/2", D1970, "wareki_abbrev"),
        ("S45-3-2", D1970, "wareki_abbrev"),
        ("s45.3.2", D1970, "wareki_abbrev"),
        ("S 45.3.2", D1970, "wareki_abbrev"),
        ("S45年3月2日", D1970, "wareki_abbrev"),
        ("H元.4.1", date(1989, 4, 1), "wareki_abbrev"),
        ("R1.5.1", date(2019, 5, 1), "wareki_abbrev"),
        ("M45.7.29", date(1912, 7, 29), "wareki_abbrev"),
        ("T1.7.30", date(1912, 7, 30), "wareki_abbrev"),
        ("H31.4.30", date(2019, 4, 30), "wareki_abbrev"),
        ("昭45.3.2", D1970, "wareki_abbrev"),
        ("平31.4.30", date(2019, 4, 30), "wareki_abbrev"),
        ("明45.7.29", date(1912, 7, 29), "wareki_abbrev"),
        ("大15.12.24", date(1926, 12, 24), "wareki_abbrev"),
        ("令2.1.3", date(2020, 1, 3), "wareki_abbrev"),
        ("昭和45.3.2", D1970, "wareki_abbrev"),
        ("昭和四十五年三月二日", D1970, "wareki_kanji"),
        ("平成三十一年四月三十日", date(2019, 4, 30), "wareki_kanji"),
        ("令和元年五月一日", date(2019, 5, 1), "wareki_kanji"),
        ("昭和五十年十月十日", date(1975, 10, 10), "wareki_kanji"),
        ("昭和二十年十二月三十一日", date(1945, 12, 31), "wareki_kanji"),
        ("昭和四五年三月二日", D1970, "wareki_kanji"),
        ("平成一〇年一月一日", date(1998, 1, 1), "wareki_kanji"),
        ("平成一○年一月一日", date(1998, 1, 1), "wareki_kanji"),
        ("1970/03/02", D1970, "seireki"),
        ("1970/3/2", D1970, "seireki"),
        ("1970-03-02", D1970, "seireki"),
        ("1970.3.2", D1970, "seireki"),
        ("1970年3月2日", D1970, "seireki"),
        ("1970 年 3 月 2 日", D1970, "seireki"),
        ("2000-02-29", date(2000, 2, 29), "seireki"),
        ("19700302", D1970, "compact"),
        ("21001231", date(2100, 12, 31), "compact"),
    ],
)
def test_forms_found_with_exact_span(text: str, value: date, form: str) -> None:
    prefix, suffix = "生年月日：", "（男）"
    found = only(prefix + text + suffix)
    assert found.value == value
    assert found.form == form
    assert (found.start, found.end) == (len(prefix), len(prefix) + len(text))


@pytest.mark.parametrize(
    "text",
    [
        "平成元年1月7日",  # before 平成 began
        "昭和64年1月8日",  # after 昭和 ended
        "令和元年4月30日",  # before 令和 began
        "令和0年5月1日",
        "大正元年7月29日",
        "明治45年7月30日",
        "大正15年12月25日",
        "昭和元年12月24日",
        "平成31年5月1日",
        "H元.1.7",
        "S64.1.8",
        "R1.4.30",
        "T1.7.29",
        "M46.1.1",
        "平成元年4月31日",  # no such calendar day
        "平成3年2月29日",
        "S45.13.2",
        "S45.2.30",
        "1970/02/30",
        "1970/13/01",
        "1900-02-29",
        "19700230",
        "19701301",
        "18991231",  # compact outside 1900..2100
        "21010101",
        "1899/12/31",
        "明和5年3月2日",  # not a modern era
    ],
)
def test_invalid_dates_rejected(text: str) -> None:
    assert find_dates(text) == []
    assert parse_date_text(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "令和6年度の予算",
        "令和6年4月から",
        "2024年4月",
        "会議は12:30から",
        "バージョン 1.2.3 を配布",
        "v1.10.2",
        "電話 03-1234-5678",
        "TEL 0120-123-456",
        "注文番号 119700302",
        "番号 197003021",
        "口座 1234567819700302",
        "1970-03-02-5",
        "9.1970.3.2",
        "1970.3.2.1",
        "IP 192.168.10.1",
        "XS45.3.2",
        "VER1.5.1",
        "S45.3.2.1",
        "1-19700302",
        "19700302-1",
        "3,19700302",
        "1970/3-2",
        "最大3.4.5",
        "公平2.1.3",
        "説明3年4月5日",
        "",
        "お世話になっております。",
    ],
)
def test_non_dates_not_found(text: str) -> None:
    assert find_dates(text) == []


def test_several_dates_in_order_with_spans() -> None:
    text = "受付日 令和6年4月1日、生年月日 S45.3.2、更新 2024-04-01 / 19700302。"
    found = find_dates(text)
    assert [text[d.start : d.end] for d in found] == [
        "令和6年4月1日",
        "S45.3.2",
        "2024-04-01",
        "19700302",
    ]
    assert [d.form for d in found] == ["wareki", "wareki_abbrev", "seireki", "compact"]
    assert found[0].value == date(2024, 4, 1)


@pytest.mark.parametrize("label", ["生年月日", "生年", "出生", "生年月日 ", "（"])
def test_single_kanji_era_after_label(label: str) -> None:
    found = only(label + "昭45.3.2")
    assert (found.start, found.value) == (len(label), D1970)


def test_kanji_before_digits_needs_no_word_boundary() -> None:
    found = only("生年月日19700302男")
    assert found.value == D1970
    assert (found.start, found.end) == (4, 12)


def test_nfkc_input_forms() -> None:
    # The caller normalises; make sure what NFKC produces is understood.
    for raw in ("Ｈ３１．４．３０", "㍼45年3月2日", "１９７０／３／２", "昭和４５年　３月２日"):
        text = unicodedata.normalize("NFKC", raw)
        assert len(find_dates(text)) == 1, raw


def test_full_width_digits_tolerated_without_normalisation() -> None:
    found = only("昭和４５年３月２日")
    assert found.value == D1970


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("昭和45年3月2日", D1970),
        ("  S45.3.2 ", D1970),
        ("Ｈ３１．４．３０", date(2019, 4, 30)),
        ("1970-03-02 00:00:00", D1970),
        ("1970-03-02T00:00:00", D1970),
        ("1970/3/2 0:00", D1970),
        ("19700302", D1970),
        ("3450302", D1970),  # GYYMMDD as text (CSV exports)
        ("4310430", date(2019, 4, 30)),
        ("昭和45年3月2日生", D1970),
        ("S45.3.2 生まれ", D1970),
        ("令和元年五月一日", date(2019, 5, 1)),
    ],
)
def test_parse_date_text(text: str, value: date) -> None:
    assert parse_date_text(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "昭和45年3月2日 受付",
        "生年月日 昭和45年3月2日",
        "1970/03/02, 1971/01/01",
        "3640108",  # 昭和64年1月8日 does not exist
        "1000001",  # a postal code: 明治0年
        "123456",
        "123456789",
        "令和6年度",
        "12:30",
    ],
)
def test_parse_date_text_rejects(text: str) -> None:
    assert parse_date_text(text) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (19700302, D1970),
        (19000101, date(1900, 1, 1)),
        (21001231, date(2100, 12, 31)),
        (3450302, D1970),
        (4010108, date(1989, 1, 8)),
        (5010501, date(2019, 5, 1)),
        (1450729, date(1912, 7, 29)),
        (2010730, date(1912, 7, 30)),
        (4310430, date(2019, 4, 30)),
        (19700230, None),
        (18991231, None),
        (21010101, None),
        (4010107, None),  # 平成元年1月7日
        (3640108, None),  # 昭和64年1月8日
        (5010430, None),  # 令和元年4月30日
        (3000302, None),  # 昭和0年
        (6450302, None),  # no era 6
        (3451302, None),
        (345032, None),
        (123456789, None),
        (0, None),
        (-19700302, None),
    ],
)
def test_parse_date_number(value: int, expected: date | None) -> None:
    assert parse_date_number(value) == expected


def test_parse_date_number_rejects_bool() -> None:
    assert parse_date_number(True) is None


@pytest.mark.parametrize(
    ("serial", "date1904", "expected"),
    [
        (1, False, date(1900, 1, 1)),
        (59, False, date(1900, 2, 28)),
        (60, False, None),  # Lotus 1-2-3's 1900-02-29
        (61, False, date(1900, 3, 1)),
        (25629, False, D1970),
        (25629.75, False, D1970),  # time of day dropped
        (43586, False, date(2019, 5, 1)),
        (0, False, None),
        (-1, False, None),
        (float("nan"), False, None),
        (float("inf"), False, None),
        (1e12, False, None),
        (0, True, date(1904, 1, 1)),
        (24167, True, D1970),
    ],
)
def test_excel_serial_to_date(serial: float, date1904: bool, expected: date | None) -> None:
    assert excel_serial_to_date(serial, date1904) == expected


@pytest.mark.parametrize(
    ("born", "plausible"),
    [
        (date(1970, 3, 2), True),
        (date(2024, 6, 1), True),  # today: age 0
        (date(2024, 6, 2), False),  # future
        (date(1904, 6, 1), True),  # 120th birthday today
        (date(1903, 6, 2), True),  # still 120
        (date(1903, 6, 1), False),  # 121st birthday today
        (date(1850, 1, 1), False),
    ],
)
def test_is_plausible_birth_date(born: date, plausible: bool) -> None:
    assert is_plausible_birth_date(born, date(2024, 6, 1)) is plausible


def test_eras_are_contiguous_and_ordered() -> None:
    assert [e.name for e in ERAS] == ["明治", "大正", "昭和", "平成", "令和"]
    assert [e.letter for e in ERAS] == ["M", "T", "S", "H", "R"]
    assert [e.code for e in ERAS] == [1, 2, 3, 4, 5]
    assert ERAS[0].start == date(1868, 1, 25)
    for earlier, later in itertools.pairwise(ERAS):
        assert earlier.end is not None
        assert (later.start - earlier.end).days == 1
    assert ERAS[-1].end is None


@pytest.mark.parametrize("era", ["昭和", "昭", "S", "s", 3, "3"])
def test_wareki_to_date_accepts_every_era_spelling(era: str | int) -> None:
    assert wareki_to_date(era, 45, 3, 2) == D1970
    assert wareki_to_date(era, 64, 1, 8) is None
    assert wareki_to_date("X", 1, 1, 1) is None


def test_find_dates_on_a_large_mail() -> None:
    """Correct on a large mail (its speed is measured in bench/, not asserted here)."""
    line = (
        "お世話になっております。令和6年度の資料を送付します。電話 03-1234-5678、"
        "受付 12:30、注文番号 123456789012。生年月日 昭和45年3月2日\n"
    )
    text = line * (100_000 // len(line))
    assert len(find_dates(text)) == text.count("昭和45年3月2日")
    prose = "市民課からのお知らせです。明日の会議は大会議室で行います。" * 3000
    assert find_dates(prose) == []
