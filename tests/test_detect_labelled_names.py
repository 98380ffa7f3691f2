"""Names the dictionary does not know, 様 lines that are data, and birth-date spellings
(issue 8, classes seen on independent mail: old-fashioned names after a 氏名 label, a
入所者 column, 「山口 勝様」 over a birth date, 昭和12年（1937年）3月4日, English dates,
山田太郎（S12.3.4生） in one cell). Real mails and real xlsx files, real scans."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import random
import unicodedata
from email.message import EmailMessage

import openpyxl
import pytest

from dlp_gateway.detect.birth import cell_date
from dlp_gateway.detect.dates import find_dates
from dlp_gateway.scan import Scanner
from tests.gen import names as gen_names
from tests.gen import values as gen_values
from tests.gen.grid import to_halfwidth_kana

OLD = gen_names.OLD_FASHIONED_GIVEN
SURNAMES = gen_names.COMMON_SURNAMES[:30] + gen_names.OLD_KANJI_SURNAMES


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def mail(body: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "黒木 健一 <kaigo@city.example.lg.jp>"
    msg["To"] = "担当 <t@care.example.jp>"
    msg["Subject"] = "認定調査の依頼"
    msg.set_content(body)
    return msg.as_bytes()


SIGNATURE = "\n\n--\n介護保険課 認定係 黒木 健一\nTEL 0982-22-7000（内線 1234）\n"


def _counts(scanner: Scanner, data: bytes) -> tuple[str, int, int]:
    result = scanner.scan_message(data)
    return result.verdict.action, result.counts["records"], result.counts["name"]


# -- U1: a name by its position after a name label --------------------------------------------
LABELLED = [
    (surname, given, sep, label)
    for (surname, given), sep, label in zip(
        random.Random(81).sample(list(itertools.product(SURNAMES, OLD)), 24),
        itertools.cycle(("　", " ", "", "　", " ")),
        itertools.cycle(("氏名：", "氏名　", "氏名:", "対象者：", "お名前：", "1. 氏名　")),
        strict=False,
    )
]


@pytest.mark.parametrize(("surname", "given", "sep", "label"), LABELLED)
def test_old_fashioned_name_after_label_is_a_record(
    scanner: Scanner, surname: gen_names.Surname, given: gen_names.GivenName, sep: str, label: str
) -> None:
    body = (
        "お世話になっております。\n下記の方の認定調査をお願いします。\n\n"
        f"{label}{surname.kanji}{sep}{given.kanji}\n生年月日：昭和4年4月5日\n住所：延岡市北方町2番地"
        + SIGNATURE
    )
    assert _counts(scanner, mail(body)) == ("hold", 1, 1), body


@pytest.mark.parametrize("given", OLD[:8], ids=lambda g: g.reading)
def test_halfwidth_kana_name_after_label(scanner: Scanner, given: gen_names.GivenName) -> None:
    kana = to_halfwidth_kana(f"ヤマダ {given.reading}")
    body = f"お世話になります。\n氏名：{kana}\n生年月日：昭和3年4月5日" + SIGNATURE
    assert _counts(scanner, mail(body)) == ("hold", 1, 1)


@pytest.mark.parametrize("given", ["トメ", "ハツエ", "ミツ子", "キヨ"])
def test_kana_given_name_before_an_honorific_in_prose(scanner: Scanner, given: str) -> None:
    body = f"お疲れ様です。\n興梠{given}さん（昭和4年5月6日生）の件、来週退院予定です。" + SIGNATURE
    assert _counts(scanner, mail(body)) == ("hold", 1, 1)


@pytest.mark.parametrize(
    "value",
    ["別紙のとおり", "高齢者", "下記参照", "未定", "各位"],
)
def test_label_followed_by_no_name_is_not_a_name(scanner: Scanner, value: str) -> None:
    body = f"お世話になります。\n氏名：{value}\n生年月日：昭和4年4月5日" + SIGNATURE
    verdict, records, names = _counts(scanner, mail(body))
    assert (records, names) == (0, 0)
    assert verdict == "pass"


def test_reading_in_brackets_is_the_same_person(scanner: Scanner) -> None:
    body = (
        "関係各位\n\n下記2名の見守り依頼がありました。\n\n"
        "1. 氏名　伊藤　末吉（イトウ スエキチ）\n   生年月日　S6.4.4\n\n"
        "2. 氏名　林　幸子（ハヤシ サチコ）\n   生年月日　S5.8.18\n" + SIGNATURE
    )
    assert _counts(scanner, mail(body)) == ("hold", 2, 2)


# -- U2: a 様 line is the salutation only when it opens the letter ------------------------------
@pytest.mark.parametrize(
    "person",
    [
        "山口 勝様\n生年月日　昭和16年3月4日",
        "対象者　山口 勝様\n生年月日　昭和16年3月4日",
        "【対象者】延岡 花子 様\n（昭和16年3月4日生）",
        "椎葉　トメ 様\n生年月日：1936年5月9日",
    ],
)
@pytest.mark.parametrize("opening", ["お世話になります。\n\n", ""])
def test_sama_line_over_a_birth_date_is_data(scanner: Scanner, person: str, opening: str) -> None:
    body = opening + person + "\n上記の方の件、承知しました。\n\n延岡市 介護保険課\n黒木\n"
    assert _counts(scanner, mail(body)) == ("hold", 1, 1), body


def test_salutation_opening_a_letter_is_not_a_name(scanner: Scanner) -> None:
    body = (
        "山口 勝様\n\nいつもお世話になっております。\n会議資料を送付します。\n"
        "開催日：令和8年12月1日\n" + SIGNATURE
    )
    assert _counts(scanner, mail(body)) == ("pass", 0, 0)


# -- U1 in tables: a people header, names the dictionary does not know -------------------------
def xlsx(rows: list[list[object]]) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


@pytest.mark.parametrize("header", ["入所者", "入居者", "対象者", "氏名"])
def test_people_column_of_old_names_is_read(scanner: Scanner, header: str) -> None:
    rng = random.Random(header)
    people = [(rng.choice(SURNAMES).kanji, rng.choice(OLD).kanji) for _ in range(7)]
    rows: list[list[object]] = [["No", header, "生年月日", "居室"]]
    for i, (s, g) in enumerate(people):
        born = f"昭和{rng.randint(2, 15)}年{rng.randint(1, 12)}月{rng.randint(1, 28)}日"
        rows.append([i + 1, f"{s} {g}", born, f"{100 + i}号室"])
    result = scanner.scan_file("入所者一覧.xlsx", xlsx(rows))
    assert (result.verdict.action, result.counts["records"], result.counts["name"]) == (
        "encrypt",
        7,
        7,
    )


# -- U6: birth-date spellings ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("昭和12年（1937年）3月4日", dt.date(1937, 3, 4)),
        ("1937年（昭和12年）3月4日", dt.date(1937, 3, 4)),
        ("1937年（S12年）3月4日", dt.date(1937, 3, 4)),
        ("March 04, 1937", dt.date(1937, 3, 4)),
        ("4 March 1937", dt.date(1937, 3, 4)),
        ("Mar. 4, 1937", dt.date(1937, 3, 4)),
        ("4th Sept 1937", dt.date(1937, 9, 4)),
    ],
)
def test_date_spellings_are_read(text: str, expected: dt.date) -> None:
    found = find_dates(unicodedata.normalize("NFKC", text))
    assert [d.value for d in found] == [expected]
    assert cell_date(text) == expected  # the same text as a table cell


@pytest.mark.parametrize(
    "text", ["Mayday 2024", "May 2024 report", "Marching 4, 1937", "4 Marks 1937"]
)
def test_english_words_are_not_dates(text: str) -> None:
    assert find_dates(text) == []


@pytest.mark.parametrize(
    "line",
    ["Date of Birth: March 04, 1937", "DOB: 4 March 1937", "Birthday: Mar. 4, 1937"],
)
def test_english_birth_date_with_a_name_is_a_record(scanner: Scanner, line: str) -> None:
    body = (
        f"Dear Sir,\n\nName: Hanako Yamada (山田 花子)\n{line}\nAddress: Nobeoka City\n\n"
        "Regards,\nKuroki\n"
    )
    verdict, records, _ = _counts(scanner, mail(body))
    assert (verdict, records) == ("hold", 1)


@pytest.mark.parametrize("form", ["wareki_paren", "seireki_paren", "english"])
def test_birth_date_column_in_both_calendars(scanner: Scanner, form: str) -> None:
    rng = random.Random(form)
    rows: list[list[object]] = [["氏名", "生年月日", "住所"]]
    for _ in range(4):
        dob = gen_values.random_birth(rng, "old")
        name = f"{rng.choice(SURNAMES).kanji} {rng.choice(OLD).kanji}"
        rows.append([name, gen_values.format_date(dob, form), gen_values.address(rng)])
    result = scanner.scan_file("名簿.xlsx", xlsx(rows))
    assert (result.verdict.action, result.counts["records"], result.counts["birth_date"]) == (
        "encrypt",
        4,
        4,
    )


@pytest.mark.parametrize("n", [5, 260])  # 260: past the evidence bound, counted by columns
def test_name_cell_with_its_birth_date_one_record_per_row(scanner: Scanner, n: int) -> None:
    rng = random.Random(n)
    rows: list[list[object]] = [["No", "対象者", "内容"]]
    for i in range(n):
        dob = gen_values.random_birth(rng, "old")
        name = f"{rng.choice(SURNAMES).kanji}{rng.choice(OLD).kanji}"
        form = rng.choice(("short_dot", "wareki_kanji", "seireki_paren"))
        rows.append([i + 1, f"{name}（{gen_values.format_date(dob, form)}生）", "住宅改修"])
    result = scanner.scan_file("対象者.xlsx", xlsx(rows))
    assert (result.counts["records"], result.counts["birth_date"]) == (n, n)
    assert result.verdict.action == ("encrypt" if n < 10 else "hold")


def test_name_cell_with_a_birth_date_column_counts_the_date_once(scanner: Scanner) -> None:
    rows: list[list[object]] = [["氏名", "生年月日"]]
    rows += [[f"山田 トメ（S{k}.3.4生）", f"昭和{k}年3月4日"] for k in range(2, 7)]
    result = scanner.scan_file("名簿.xlsx", xlsx(rows))
    assert (result.counts["records"], result.counts["birth_date"]) == (5, 5)


def test_form_with_two_people_counts_two(scanner: Scanner) -> None:
    html = (
        "<html><body><p>お世話になります。</p><table border=1>"
        "<tr><td>氏名</td><td>椎葉 節子</td></tr>"
        "<tr><td>生年月日</td><td>昭和19年8月12日</td></tr>"
        "<tr><td>氏名</td><td>小林 和子</td></tr>"
        "<tr><td>生年月日</td><td>昭和11年11月28日</td></tr>"
        "</table></body></html>"
    )
    msg = EmailMessage()
    msg["From"] = "黒木 健一 <kaigo@city.example.lg.jp>"
    msg["To"] = "X <x@example.jp>"
    msg["Subject"] = "対象者"
    msg.set_content(html, subtype="html")
    assert _counts(scanner, msg.as_bytes()) == ("hold", 2, 2)
