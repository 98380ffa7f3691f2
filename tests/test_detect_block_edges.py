"""Where one table block ends and the next begins (issue 8 fuzz seeds): a 被保険者一覧
title reaching its 番号 column over blank rows or below statistics, a PDF's statistics
above a titled roster of as many columns, and a tab-separated roster pasted beside a
tally whose first person's row carries the tally's header."""

from __future__ import annotations

import io

import openpyxl
import pytest

from dlp_gateway.scan import Scanner
from tests.test_detect_layouts import people, valid_my_numbers
from tests.test_detect_mail_tables import mail
from tests.test_extract_pdf_grid import pdf_of, table_rows


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def _counts(result) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    c = result.counts
    return c["my_number"], c["insured_number"], c["records"]


def _lost_zero_my_number(i: int) -> str:
    """A valid My Number starting with zeros, written as Excel shows it (zeros lost)."""
    from stdnum.jp import in_

    base = f"{i + 1:02d}{7_341_209 + 7 * i:07d}"[:9].zfill(11)
    return str(int(base + in_.calc_check_digit(base)))


def _insured(n: int, seed: int) -> list[str]:
    return [str(p["insured"]) for p in people(n, seed=seed)]


@pytest.mark.parametrize("n", [1, 2, 5])
def test_a_titled_number_column_with_a_blank_row_per_person(scanner: Scanner, n: int) -> None:
    """介護保険被保険者一覧, 番号 alone, a blank second row under it and under each person
    (two rows per person, one column; seed 1006927): one person is a list too."""
    lines = ["令和6年度 介護保険被保険者一覧", "作成日：令和8年3月26日", "", "番号", ""]
    for number in _insured(n, seed=21):
        lines += [number, ""]
    result = scanner.scan_file("被保険者一覧.csv", ("\n".join(lines) + "\n").encode("utf-8"))
    assert _counts(result) == (0, n, n), result.counts
    assert result.verdict.action != "pass"


def test_a_number_under_a_title_that_says_nothing_of_insurance_is_not_counted(
    scanner: Scanner,
) -> None:
    """The same one-person shape under 会議室予約一覧: 番号 is no insured number."""
    lines = ["令和6年度 会議室予約一覧", "", "番号", "", "0931192958", ""]
    result = scanner.scan_file("予約一覧.csv", ("\n".join(lines) + "\n").encode("utf-8"))
    assert _counts(result) == (0, 0, 0), result.counts
    assert result.verdict.action == "pass"


def _statistics(rows: int) -> list[list[object]]:
    areas = [f"{a}地区{i}" for i in range(rows) for a in "東西南北"][:rows]
    return [["地区", "男", "女", "計"]] + [
        [a, 100 + i, 200 + i, 300 + 2 * i] for i, a in enumerate(areas)
    ]


def _xlsx(rows: list[list[object]], sheet: str) -> bytes:
    book = openpyxl.Workbook()
    ws = book.active
    ws.title = sheet
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.mark.parametrize("n", [2, 7, 30])
@pytest.mark.parametrize("title", ["令和7年度 介護保険被保険者一覧", None])
def test_a_titled_number_column_below_statistics(
    scanner: Scanner, n: int, title: str | None
) -> None:
    """40 rows of statistics, blank rows, then 令和7年度 介護保険被保険者一覧, a blank row
    and a lone 番号 column (seed 1012085); or no title line and the sheet named
    被保険者一覧: either title starts the number column's own block."""
    rows = [*_statistics(40), [], []]
    rows += [[title], []] if title else []
    rows += [["番号"]] + [[number] for number in _insured(n, seed=22)]
    sheet = "集計" if title else "被保険者一覧"
    result = scanner.scan_file("資料.xlsx", _xlsx(rows, sheet))
    assert _counts(result) == (0, n, n), result.counts


def test_statistics_above_a_number_column_of_no_insured_title_stay_innocent(
    scanner: Scanner,
) -> None:
    rows = [*_statistics(40), [], ["令和7年度 会議室予約一覧"], [], ["番号"]]
    rows += [[number] for number in _insured(7, seed=22)]
    result = scanner.scan_file("資料.xlsx", _xlsx(rows, "集計"))
    assert _counts(result) == (0, 0, 0), result.counts


def test_a_pdf_roster_whose_columns_fall_in_the_gaps_of_statistics_above(
    scanner: Scanner,
) -> None:
    """Statistics (4 columns) and, under a title, a roster of 4 columns on the same page,
    the roster's My Number cell reaching past where the statistics' first column starts
    (seed 1012332): the title line is a place where the page's columns may change."""
    numbers = valid_my_numbers(4, seed=31)
    names = ["長野 美穂", "岡山 翔", "山形 誠", "福島 修"]
    stats: list[list[tuple[float, str]]] = [[(360, "地区"), (404, "男"), (432, "女"), (460, "計")]]
    areas = [f"{a}方地区" for a in "東西南北中央上下" * 2] + ["三川内"]  # the last one short
    stats += [
        [(360, area), (404, f"{100 + i}"), (432, f"{200 + i}"), (460, f"{300 + i}")]
        for i, area in enumerate(areas)
    ]
    roster = [[(296, "個人番号"), (388, "患者名"), (435, "性別"), (463, "住所")]]
    roster += [
        [(296, f"{m[:4]}―{m[4:8]}―{m[8:]}"), (388, name), (435, "女"), (463, "本町1丁目")]
        for m, name in zip(numbers, names, strict=True)
    ]
    title = [[(78, "令和6年度 個人番号 提供者一覧")], [(78, "作成日：令和8年1月25日")]]
    data = pdf_of([stats + title + roster])
    rows = table_rows(data)
    assert ["個人番号", "患者名", "性別", "住所"] in [
        [c for c in row if c is not None] for row in rows
    ], rows
    result = scanner.scan_file("提供者一覧.pdf", data)
    assert _counts(result) == (4, 0, 4), result.counts


_KANA = ["イノウエ キヨシ", "タケダ ユキオ", "ヤマダ キヨシ", "オガワ ヒサコ", "スズキ ミツ"]
_KANJI_DATES = [
    "昭和二年三月二十四日", "昭和十五年十月二十日", "昭和八年六月三日", "昭和十五年四月二日",
    "大正十五年一月九日",
]


def test_a_pasted_roster_whose_first_row_carries_the_header_of_a_tally_beside_it(
    scanner: Scanner,
) -> None:
    """カナ氏名 | 誕生日 over kana names and kanji-numeral dates, a tally beside it whose
    header sits on the first person's row (seed 1014673): that row is a person, not the
    second row of a header merged by a lost colspan."""
    levels = ["要支援1", "要支援2", "要介護1", "要介護2", "要介護3"]
    lines = ["カナ氏名\t誕生日", f"{_KANA[0]}\t{_KANJI_DATES[0]}\t\t要介護度\t人数"]
    lines += [
        f"{kana}\t{date}\t\t{level}\t1"
        for kana, date, level in zip(_KANA[1:], _KANJI_DATES[1:], levels, strict=False)
    ]
    lines += ["\t\t\t合計\t5"]
    body = "対象者は以下のとおりです。\n\n" + "\n".join(lines) + "\n\nよろしくお願いします。\n"
    result = scanner.scan_message(mail(body))
    assert result.counts["records"] == len(_KANA), result.counts


def test_a_pasted_roster_narrower_than_the_tally_beside_it_is_not_widened(
    scanner: Scanner,
) -> None:
    """№ | マイナンバー | 姓 | 名 | 出生年月日, numbers that lost their leading zeros, a tally
    beside the lower rows (seed 1015920): the wider rows are the tally's, not a My Number
    split over cells, so the header keeps its columns."""
    numbers = [_lost_zero_my_number(i) for i in range(4)]
    rows = ["№\tマイナンバー\t姓（漢字）\t名（漢字）\t出生年月日\t住所"]
    for i, (m, p) in enumerate(zip(numbers, people(4, seed=23), strict=True)):
        tally = "\t\t要介護度\t人数" if i == 2 else ("\t\t要支援1\t1" if i == 3 else "")
        sei, mei = str(p["name"]).split(" ", 1)
        born = f"{p['born']:%Y年%m月%d日}"  # type: ignore[str-format]
        rows.append(f"{i + 1}\t{m}\t{sei}\t{mei}\t{born}\t本町{i}番{tally}")
    rows += ["\t" * 7 + f"要介護{k}\t1" for k in range(1, 5)]
    body = "対象者は以下のとおりです。\n\n" + "\n".join(rows) + "\n\nよろしくお願いします。\n"
    result = scanner.scan_message(mail(body))
    assert _counts(result) == (4, 0, 4), result.counts
    assert result.counts["birth_date"] == 4, result.counts


@pytest.mark.parametrize("n", [3, 5, 12])
def test_a_transposed_roster_whose_reading_holds_a_label_word(scanner: Scanner, n: int) -> None:
    """氏名(ふりがな) | 高橋 芽依（タカハシ メイ） | …, one child per column (seed 1020378):
    タカハシ メイ holds シメイ, yet a name under a name label is a value, not a header."""
    names = ["金子 凛（カネコ リン）", "高橋 芽依（タカハシ メイ）", "松田 蓮（マツダ レン）"]
    names = [names[i % 3] for i in range(n)]
    births = [f"20{20 + i % 3}-0{1 + i % 9}-1{i % 9}" for i in range(n)]
    lines = [
        ",".join(["氏名(ふりがな)", *names]),
        ",".join(["誕生日", *births]),
        ",".join(["性別", *(["女"] * n)]),
        ",".join(["電話番号", *(f"090-2954-45{i:02d}" for i in range(n))]),
    ]
    result = scanner.scan_file("児童名簿.csv", ("\n".join(lines) + "\n").encode("utf-8-sig"))
    assert (result.counts["name"], result.counts["records"]) == (n, n), result.counts


def test_a_transposed_header_row_of_labels_is_still_a_list_header(scanner: Scanner) -> None:
    """氏名 | フリガナ | 生年月日 over people: フリガナ is a whole label, so the first row is
    a header, never a transposed 氏名 row."""
    lines = ["氏名,フリガナ,生年月日"] + [
        f"{p['name']},{p['kana']},{p['born']:%Y/%m/%d}"  # type: ignore[str-format]
        for p in people(4, seed=24)
    ]
    result = scanner.scan_file("名簿.csv", ("\n".join(lines) + "\n").encode("utf-8"))
    assert result.counts["records"] == 4, result.counts


@pytest.mark.parametrize(("label", "value", "want"), [
    ("被保番号", "28496", 1),  # 00028496 stored as a number: its own label, any length
    ("番号", "28496", 0),  # a plain 番号 takes the title's lengths (6-10 digits)
    ("番号", "0028496", 1),
])
def test_a_form_under_an_insured_title_reads_its_own_insured_label(
    scanner: Scanner, label: str, value: str, want: int
) -> None:
    """後期高齢者医療 被保険者証再交付申請書 with 被保番号 28496 (seed 1021780): the title's
    lengths are for a plain 番号 only; 被保番号 is an insured label by itself."""
    lines = [
        "後期高齢者医療 被保険者証再交付申請書,", "申請日,令和8年4月18日", f"{label},{value}",
        "氏名,田中貞子", "生年月日,1955/11/30", "性別,女",
    ]
    result = scanner.scan_file("申請書.csv", ("\n".join(lines) + "\n").encode("utf-8"))
    assert result.counts["insured_number"] == want, result.counts
    assert result.counts["records"] == 1, result.counts


def test_a_one_column_two_row_list_of_one_person_in_a_mail_body(scanner: Scanner) -> None:
    """出生年月日 / 氏名カナ over one person's 3120714 / カトウ イサム (seed 1028191)."""
    lines = ["対象者は以下のとおりです。", "", "出生年月日", "氏名カナ", "3120714", "カトウ イサム"]
    body = "\n".join([*lines, "", "よろしく。", ""])
    result = scanner.scan_message(mail(body))
    assert result.counts["records"] == 1, result.counts
    assert result.verdict.action != "pass"


@pytest.mark.parametrize("n", [3, 9])
def test_a_two_row_header_whose_names_fill_every_other_row(scanner: Scanner, n: int) -> None:
    """番号 | 【氏名】 over 性別, a person's number and name, then their sex (seed 1031691):
    the names fill only the first rows, so the header is judged on those."""
    rows: list[list[object]] = [["番号", "【氏名】"], [None, "性別"]]
    names = ["林一郎"] + [str(p["name"]).replace(" ", "") for p in people(n - 1, seed=25)]
    for name, number in zip(names, _insured(n, seed=25), strict=True):
        rows += [[int(number) or 1, name], [None, "男"]]  # 林一郎 alone reads as no name
    result = scanner.scan_file("被保険者一覧.xlsx", _xlsx(rows, "被保険者一覧"))
    assert (result.counts["insured_number"], result.counts["records"]) == (n, n), result.counts
