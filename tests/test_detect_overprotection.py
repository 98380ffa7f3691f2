"""Over-protection and wrong counts found by sweeping the table generator (issue 8): one
test per class, on real files and real MIME messages built here.

- a reservation list above a statistics table: the statistics rows must not make the list
  a label/value form where 予約番号 values passing the check digit become My Numbers;
- in a label/value form, a value's own label (予約番号) is its nearest label;
- 生年月日 19490713 on the line under 被保険者番号 is a date, not a second insured number;
- a narrow table under a roster pasted in a mail is not glued into the roster's rows;
- an insured number that lost its leading zeros in a numeric cell (546 for 00000546) counts
  under an insured-number header, and a short number nowhere else.
"""

from __future__ import annotations

import datetime as dt

import pytest

from dlp_gateway.detect.engine import DetectionEngine
from dlp_gateway.detect.patterns import load_patterns
from dlp_gateway.detect.records import count_records
from dlp_gateway.detect.tables import EVIDENCE_PER_TABLE
from dlp_gateway.detect.textblocks import find_text_tables
from dlp_gateway.extract.units import Row, TableUnit, TextUnit
from dlp_gateway.scan import Scanner
from tests.test_detect_layouts import people, valid_my_numbers, xlsx
from tests.test_detect_mail_tables import mail


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


@pytest.fixture(scope="module")
def engine() -> DetectionEngine:
    return DetectionEngine(load_patterns(), today=dt.date(2026, 11, 24))


def table(rows: list[list[object]]) -> TableUnit:
    return TableUnit(
        part="a.xlsx",
        location="a.xlsx!Sheet1",
        rows=lambda: (Row(i + 1, list(cells)) for i, cells in enumerate(rows)),
    )


def types(findings: list) -> dict[str, int]:  # type: ignore[type-arg]
    out: dict[str, int] = {}
    for f in findings:
        out[f.type] = out.get(f.type, 0) + 1
    return out


def dashed(number: str, sep: str = "-") -> str:
    return sep.join((number[:4], number[4:8], number[8:]))


STATS = [["地区", "男", "女", "計"], ["東地区", 877, 502, 1379], ["西地区", 605, 808, 1413],
         ["南方地区", 379, 247, 626], ["北方地区", 108, 671, 779]]


# -- a statistics table under a short list ---------------------------------------------------
@pytest.mark.parametrize("gap", [False, True])
@pytest.mark.parametrize("n", [2, 3, 5])
def test_reservation_list_above_statistics_passes(scanner: Scanner, n: int, gap: bool) -> None:
    rows: list[list[object]] = [["マイナンバーカード交付 予約者一覧"],
                                ["予約番号", "氏名", "フリガナ", "予約日時", "電話番号"]]
    for number, p in zip(valid_my_numbers(n, seed=n), people(n), strict=True):
        rows.append([dashed(number, "."), p["name"], p["kana"], "令和8年12月5日 9:00",
                     "0982-35-8316"])
    rows += [[]] * gap + STATS
    result = scanner.scan_file("予約.xlsx", xlsx(rows))
    assert result.counts["my_number"] == 0 and result.verdict.action == "pass", result.counts
    body = "対象者は以下のとおりです。\n" + "\n".join(
        "\t".join(str(v) for v in r) for r in rows if r) + "\nよろしくお願いします。\n"
    result = scanner.scan_message(mail(body))
    assert result.counts["my_number"] == 0 and result.verdict.action == "pass", result.counts


def test_roster_above_statistics_still_counts_every_person(scanner: Scanner) -> None:
    """The same cut keeps the roster's own rows: a My Number roster over statistics."""
    ps = people(3)
    rows: list[list[object]] = [["個人番号", "氏名", "フリガナ", "住所", "電話番号"]]
    for number, p in zip(valid_my_numbers(3, seed=5), ps, strict=True):
        rows.append([dashed(number), p["name"], p["kana"], "延岡市旭町1-2", "0982-35-8316"])
    result = scanner.scan_file("名簿.xlsx", xlsx(rows + STATS))
    assert (result.counts["my_number"], result.counts["records"]) == (3, 3)
    assert result.verdict.action == "hold"


# -- nearest label in a label/value form -------------------------------------------------------
def test_form_value_under_its_own_other_label_is_not_a_my_number(
    engine: DetectionEngine,
) -> None:
    number = dashed(valid_my_numbers(1, seed=3)[0])
    form: list[list[object]] = [["マイナンバーカード交付 予約票"], ["予約番号", number],
                                ["氏名", "原田 健太"], ["予約日時", "令和8年12月5日 9:00"]]
    assert "my_number" not in types(engine.scan_table(table(form)))
    below: list[list[object]] = [["予約番号", "氏名"], [number, "原田 健太"]]
    assert "my_number" not in types(engine.scan_table(table(below)))
    # a label that names nothing else leaves the 4-4-4 grouping its meaning, and a keyword
    # inside the cell is nearer than the label beside it
    for label, value in (("備考", number), ("予約番号", f"個人番号 {number}")):
        found = engine.scan_table(table([[label, value, "氏名", "原田 健太"]]))
        assert types(found).get("my_number") == 1, (label, value)


# -- a date under a line holding an insured-number keyword ------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "後期高齢者医療被保険者番号：01287682\n生年月日：19490713\n",
        "被保険者番号 01287682 生年月日 19490713",
        "後期高齢者医療 被保険者証再交付申請書\n申請日\t令和8年3月17日\n"
        "後期高齢者医療被保険者番号\t01287682\n生年月日\t19490713\n住所\t延岡市西町2丁目8番10号\n",
    ],
)
def test_birth_date_under_an_insured_keyword_is_a_date(
    engine: DetectionEngine, text: str
) -> None:
    found = engine.scan_text(TextUnit(text=text, part="body", location="body", in_body=True))
    assert types(found) == {"insured_number": 1, "birth_date": 1}
    assert count_records(found).total == 1


def test_insured_keyword_nearer_than_a_birth_label_still_counts(engine: DetectionEngine) -> None:
    text = "生年月日 被保険者番号 19490713"
    found = engine.scan_text(TextUnit(text=text, part="body", location="body", in_body=True))
    assert types(found).get("insured_number") == 1


# -- a narrow table pasted under a roster ---------------------------------------------------------
def test_narrow_table_under_a_pasted_roster_is_not_joined_into_rows(scanner: Scanner) -> None:
    ps = people(20)
    lines = ["記号\t番号\t枝番\t姓\t名\t住所\t電話番号"]
    lines += [f"{10 + i}-{20 + i}\t{1000000 + i * 7919}\t0{i % 4}\t{p['name']}".replace(" ", "\t")
              + f"\t延岡市旭町{i}-2\t0982-35-{1000 + i}" for i, p in enumerate(ps)]
    levels = ["要支援1", "要支援2", *(f"要介護{k}" for k in range(1, 6))]
    lines += ["要介護度\t人数", *(f"{level}\t{k % 3 + 2}" for k, level in enumerate(levels))]
    lines += ["合計\t20"]
    text = "一覧です。\n" + "\n".join(lines) + "\n以上\n"
    (block,) = find_text_tables(text)
    # the reading that joins cells broken over lines keeps the narrow table's rows whole
    narrow = [r.cells for r in block.joined_rows if r.number > 22]
    assert narrow == [["要介護度", "人数"], *([level, str(k % 3 + 2)] for k, level in
                                           enumerate(levels)), ["合計", "20"]]
    result = scanner.scan_message(mail(text))
    assert (result.counts["insured_number"], result.counts["records"]) == (20, 20)


def test_a_header_broken_over_lines_is_still_joined() -> None:
    text = "No\t氏名(ふ\nりがな)\t生年月日\n1\t山田 太郎\t昭和45年3月2日\n"
    text += "2\t佐藤 花子\t昭和50年1月5日\n"
    (block,) = find_text_tables(text)
    assert block.joined_rows[0].cells == ["No", "氏名(ふ\nりがな)", "生年月日"]


# -- leading zeros lost in a numeric cell ---------------------------------------------------------
def kouki_rows(numbers: list[int]) -> list[list[object]]:
    rows: list[list[object]] = [["No.", "後期高齢者医療被保険者番号", "氏名", "電話番号"]]
    for i, (number, p) in enumerate(zip(numbers, people(len(numbers)), strict=True), 1):
        rows.append([i, number, p["name"], f"0982-35-{1000 + i}"])
    return rows


@pytest.mark.parametrize("short", [546, 7, 38211])
def test_insured_number_that_lost_its_zeros_counts_under_its_header(
    scanner: Scanner, short: int
) -> None:
    numbers = [12345678 + 1111 * i for i in range(14)]
    numbers[5] = short
    result = scanner.scan_file("後期.xlsx", xlsx(kouki_rows(numbers)))
    assert (result.counts["insured_number"], result.counts["records"]) == (14, 14)


def test_lost_zero_rule_agrees_past_the_evidence_bound(scanner: Scanner) -> None:
    """Rows counted a column at a time (past the evidence bound) pad the same way."""
    n = EVIDENCE_PER_TABLE + 60
    numbers = [10000000 + 1237 * i for i in range(n)]
    for at in (3, n - 40, n - 7):
        numbers[at] = 100 + at
    result = scanner.scan_file("後期.xlsx", xlsx(kouki_rows(numbers)))
    assert (result.counts["insured_number"], result.counts["records"]) == (n, n)


def test_short_numbers_elsewhere_never_count(scanner: Scanner) -> None:
    # a column of mostly short values under an insured header is not a lost-zero column
    numbers = [100 + i for i in range(10)] + [12345678, 23456789]
    result = scanner.scan_file("後期.xlsx", xlsx(kouki_rows(numbers)))
    assert result.counts["insured_number"] == 2
    # a 番号 column of small integers beside names is no insured-number column
    rows: list[list[object]] = [["番号", "氏名", "備考"]]
    rows += [[i, p["name"], 546] for i, p in enumerate(people(12), 1)]
    result = scanner.scan_file("名簿.xlsx", xlsx(rows))
    assert result.counts["insured_number"] == 0
    # nor a short value in a label/value form
    form: list[list[object]] = [["後期高齢者医療被保険者番号", 546], ["氏名", "原田 健太"]]
    result = scanner.scan_file("申請.xlsx", xlsx(form))
    assert result.counts["insured_number"] == 0


# -- a reading whose kana run holds a header word ----------------------------------------------
@pytest.mark.parametrize(
    ("value", "label"),
    [("小林 芽依（コバヤシ メイ）", False), ("ハヤシ メイ", False), ("利用者フリガナ", True),
     ("被保険者フリガナ", True), ("氏名ふりがな", True), ("カナシメイ", True)],
)
def test_header_word_inside_a_kana_reading_is_no_label(
    engine: DetectionEngine, value: str, label: bool
) -> None:
    """コバヤシ メイ folds to コバヤシメイ, which holds シメイ (氏名): not a header."""
    assert engine.classify.known_label(value) is label


def test_one_person_under_a_line_broken_name_header_counts(scanner: Scanner) -> None:
    rows: list[list[object]] = [["氏名／\nフリガナ", "生年", "性別", "電話番号"],
                                ["小林 芽依（コバヤシ メイ）", dt.date(2019, 6, 21), "女",
                                 "0982-29-7495"]]
    result = scanner.scan_file("児童名簿.xlsx", xlsx(rows))
    assert (result.counts["records"], result.verdict.action) == (1, "encrypt")


# -- a split number with two of its cells joined -------------------------------------------------
def test_my_number_in_three_cells_two_of_them_joined_by_a_space(engine: DetectionEngine) -> None:
    """A PDF table of 4 | 4 | 4 cells read back with two cells in one: 5305 0380 | 8276."""
    rows: list[list[object]] = [["マイナンバー", None, "姓", "名", "生年月日"]]
    for number in valid_my_numbers(3, seed=21):
        rows.append([f"{number[:4]} {number[4:8]}", number[8:], "山口", "太郎", "2004/05/24"])
    assert types(engine.scan_table(table(rows))).get("my_number") == 3


# -- 姓 | 名 columns of place-name surnames ----------------------------------------------------
def test_two_people_under_split_name_headers_of_place_name_surnames(scanner: Scanner) -> None:
    """宮城 | 久子 under 姓（漢字）| 名（漢字）: each cell one part of a name, so the block is a
    list of two people (with a 番号 column the title 被保険者一覧 gives its meaning)."""
    rows: list[list[object]] = [
        ["番号", "姓（漢字）", "名（漢字）", "性別", "住所", "電話番号"],
        ["0714719910", "宮城", "久子", "女", "宮崎市旭町831-11", "090-4588-8241"],
        ["0357073836", "延岡", "千代子", "女", "宮崎市出北1丁目11番11号", "0982-30-5152"],
    ]
    result = scanner.scan_file("被保険者一覧.xlsx", xlsx(rows, sheet="被保険者一覧"))
    assert (result.counts["insured_number"], result.counts["records"]) == (2, 2)


# -- a column of numbers under a negative label, in text laid out with spaces ----------------------
@pytest.mark.parametrize(("head", "mine"), [("予約番号 氏名 予約日時", 0), ("受付番号  氏名", 0),
                                            ("氏名 予約日時", 3), ("番号 氏名", 3)])
def test_column_head_is_the_nearest_label_in_text(
    engine: DetectionEngine, head: str, mine: int
) -> None:
    """Lines that each start with a 4-4-4 number under a line starting with 予約番号: the
    column head is their nearest label, not the マイナンバー of the title or the grouping."""
    numbers = valid_my_numbers(4, seed=3)
    text = "マイナンバーカード交付 予約者一覧\n" + head + "\n"
    text += "\n".join(f"{dashed(n)} 原田 健太 令和8年12月{i + 1}日" for i, n in enumerate(numbers))
    found = engine.scan_text(TextUnit(text=text + "\n", part="a.pdf", location="a.pdf!text"))
    # (the first row sits within the label window of the head: read by its words as before)
    assert types(found).get("my_number", 0) == mine


@pytest.mark.parametrize("n", [12, EVIDENCE_PER_TABLE + 30])
def test_statistics_under_a_lost_zero_column_do_not_count(scanner: Scanner, n: int) -> None:
    """要支援1 | 4 under the roster sits in the insured column: 4 is a count, not 00000004
    (padding counts only on a person's row), per cell and past the evidence bound."""
    numbers = [10000000 + 1237 * i for i in range(n)]
    numbers[2] = 546
    rows = [*kouki_rows(numbers), [], ["要介護度", "人数"]]
    rows += [[level, k % 9 + 1] for k, level in enumerate(
        ["要支援1", "要支援2", "要介護1", "要介護2", "要介護3", "要介護4", "要介護5"])]
    rows += [["合計", n]]
    result = scanner.scan_file("後期.xlsx", xlsx(rows))
    assert (result.counts["insured_number"], result.counts["records"]) == (n, n)


# -- a column header is the nearest label of a number in a free-text cell -------------------------
@pytest.mark.parametrize(("header", "mine"), [("電話番号", 0), ("予約番号", 0), ("備考", 1)])
def test_column_header_labels_numbers_in_its_free_text_cells(
    engine: DetectionEngine, header: str, mine: int
) -> None:
    """Two rows a pasted table glued into one cell (0982-22-6701 / 5772-1980-2396) under
    電話番号: that header is the number's nearest label, not its 4-4-4 grouping."""
    number = dashed(valid_my_numbers(1, seed=9)[0])
    rows: list[list[object]] = [["氏名", "フリガナ", header]]
    rows += [["高橋 佳奈", "タカハシ カナ", f"0982-22-6701\n{number}"],
             ["伊藤 陽子", "イトウ ヨウコ", "090-7843-6414"]]
    assert types(engine.scan_table(table(rows))).get("my_number", 0) == mine
