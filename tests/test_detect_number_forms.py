"""My Numbers and insured numbers in the forms realistic municipal mail writes them
(issue 8, independent cases U3-U5, O1-O2): real files built in code, real scans.

- U3: a valid number written 4-4-4 in a table cell counts as it does in body text,
  whatever the column is called, unless its header names another number (予約番号).
- U4: a heading (or a label line after the list) governs the whole list of same-shape
  lines next to it, like a column header governs a column.
- U5: 保険証番号 / 記号番号 with a kanji or full-width 記号; 記号 | 番号 | 枝番 columns
  with a kanji 記号; half-width-kana headers.
- O1: counts under 個人番号カード交付件数 are counts, not zero-padded My Numbers.
- O2: shipping and point-card numbers written 4-4-4 are not My Numbers.
"""

from __future__ import annotations

import io
import random
from email.message import EmailMessage

import docx
import openpyxl
import pytest
from stdnum.jp import in_

from dlp_gateway.scan import Scanner
from tests.filebuilders import GIVEN, SURNAMES


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def valid_my_number(rng: random.Random) -> str:
    while True:
        base = "".join(str(rng.randrange(10)) for _ in range(11))
        number = base + in_.calc_check_digit(base)
        if len(set(number)) > 1:
            return number


def invalid_12(rng: random.Random) -> str:
    base = str(rng.randrange(1, 10)) + "".join(str(rng.randrange(10)) for _ in range(10))
    return base + str((int(in_.calc_check_digit(base)) + rng.randrange(1, 10)) % 10)


def grouped(number: str, sep: str) -> str:
    return sep.join((number[:4], number[4:8], number[8:]))


def name(rng: random.Random) -> str:
    return f"{rng.choice(SURNAMES)} {rng.choice(GIVEN)}"


def xlsx(rows: list[list[object]]) -> bytes:
    wb = openpyxl.Workbook()
    for r in rows:
        wb.active.append(r)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def docx_table(rows: list[list[str]], paragraphs: tuple[str, ...] = ()) -> bytes:
    document = docx.Document()
    for p in paragraphs:
        document.add_paragraph(p)
    if rows:
        table = document.add_table(rows=0, cols=len(rows[0]))
        for r in rows:
            for cell, value in zip(table.add_row().cells, r, strict=True):
                cell.text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def mail(body: str, charset: str = "utf-8") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "kaigo@city.example.lg.jp", "x@example.jp", "ご連絡"
    msg.set_content(body, charset=charset)
    return msg.as_bytes()


def counts(scanner: Scanner, filename: str, data: bytes) -> dict[str, object]:
    if filename.endswith(".eml"):
        result = scanner.scan_message(data)
    else:
        result = scanner.scan_file(filename, data)
    return {"verdict": result.verdict.action, **result.counts}


# -- U3: 4-4-4 in cells ---------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("header", ["番号", "カード番号", "備考", "扶養親族の番号"])
def test_444_cells_count_under_any_header_that_names_no_other_number(
    scanner: Scanner, header: str, seed: int
) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 6)
    sep = rng.choice((" ", "-", "　", "－"))
    rows: list[list[object]] = [["氏名", "続柄", header]]
    for _ in range(n):
        relation = rng.choice(("本人", "妻", "子"))
        rows.append([name(rng), relation, grouped(valid_my_number(rng), sep)])
    got = counts(scanner, "扶養.xlsx", xlsx(rows))
    assert got["my_number"] == n, (seed, header, sep, got)
    assert got["verdict"] == "hold", (seed, got)


def test_444_cells_in_a_docx_table(scanner: Scanner) -> None:
    rng = random.Random(7)
    rows = [["氏名", "生年月日", "番号"]]
    rows += [[name(rng), "昭和61年4月28日", grouped(valid_my_number(rng), " ")] for _ in range(2)]
    got = counts(scanner, "扶養親族.docx", docx_table(rows, ("扶養親族等申告書",)))
    assert (got["my_number"], got["records"], got["verdict"]) == (2, 2, "hold"), got


OTHER_NUMBERS = ["予約番号", "注文番号", "Web会議ID", "送り状番号", "お荷物番号"]


@pytest.mark.parametrize("header", OTHER_NUMBERS)
def test_444_cells_under_a_header_naming_another_number_pass(
    scanner: Scanner, header: str
) -> None:
    rng = random.Random(header)
    rows: list[list[object]] = [[header, "氏名", "予約日"]]
    rows += [[grouped(valid_my_number(rng), "-"), name(rng), "令和8年12月1日"] for _ in range(12)]
    got = counts(scanner, "予約.xlsx", xlsx(rows))
    assert (got["my_number"], got["verdict"]) == (0, "pass"), got


def test_a_444_column_of_mostly_failing_numbers_is_not_a_my_number_column(scanner: Scanner) -> None:
    """One in 11 random 12-digit numbers passes the check digit: a 4-4-4 slip column
    where most fail holds no My Number, even where a few pass by chance."""
    rng = random.Random(11)
    values = [grouped(invalid_12(rng), "-") for _ in range(18)]
    values += [grouped(valid_my_number(rng), "-") for _ in range(2)]
    rng.shuffle(values)
    rows: list[list[object]] = [["備考", "品名", "数量"]]
    rows += [[v, "コピー用紙", rng.randint(1, 9)] for v in values]
    got = counts(scanner, "伝票.xlsx", xlsx(rows))
    assert got["my_number"] == 0, got


def test_444_cells_past_the_evidence_bound_are_counted_the_same(scanner: Scanner) -> None:
    """A long roster: rows after the first findings are counted a column at a time."""
    rng = random.Random(3)
    n = 260
    rows: list[list[object]] = [["氏名", "生年月日", "備考"]]
    rows += [[name(rng), "昭和45年3月2日", grouped(valid_my_number(rng), " ")] for _ in range(n)]
    got = counts(scanner, "名簿.xlsx", xlsx(rows))
    assert (got["my_number"], got["records"]) == (n, n), got


# -- O1: counts under a header that contains 個人番号 -----------------------------------------
@pytest.mark.parametrize(
    "header", ["個人番号カード交付件数", "マイナンバーカード申請数", "個人番号カード交付枚数"]
)
def test_counts_under_a_my_number_card_statistics_header_pass(
    scanner: Scanner, header: str
) -> None:
    rng = random.Random(header)
    padded_valid = [v for v in range(1, 60000) if in_.is_valid(f"{v:012d}")]
    rows: list[list[object]] = [["地区", header, "交付率"]]
    rows += [[f"地区{i}", rng.choice(padded_valid), f"{rng.randint(10, 90)}%"] for i in range(12)]
    got = counts(scanner, "交付状況.xlsx", xlsx(rows))
    assert (got["my_number"], got["records"], got["verdict"]) == (0, 0, "pass"), got


def test_my_numbers_that_lost_their_leading_zero_are_still_found(scanner: Scanner) -> None:
    rng = random.Random(5)
    numbers = []
    while len(numbers) < 4:
        number = valid_my_number(rng)
        if number[0] == "0" and number[1] != "0":
            numbers.append(number)
    rows: list[list[object]] = [["氏名", "個人番号"]] + [[name(rng), int(n)] for n in numbers]
    got = counts(scanner, "名簿.xlsx", xlsx(rows))
    assert got["my_number"] == 4, got


# -- O2: shipping and business numbers in text -----------------------------------------------
SHIPPING = (
    "送り状番号：{}",
    "お荷物番号：{}",
    "お問い合わせ番号 {}",
    "追跡No：{}",
    "追跡番号 {}",
    "ヤマト運輸 {}（宅急便コンパクト）にて発送しました。",
    "ゆうパック {} で本日発送しております。",
    "佐川急便 お問合せ番号 {}",
    "オーダー番号 {}",
    "ポイントカード番号：{}",
)


@pytest.mark.parametrize("line", SHIPPING)
def test_shipping_numbers_written_444_pass(scanner: Scanner, line: str) -> None:
    rng = random.Random(line)
    number = grouped(valid_my_number(rng), rng.choice(("-", " ")))
    body = f"いつもお世話になっております。\n{line.format(number)}\n到着予定：11月29日\n"
    got = counts(scanner, "m.eml", mail(body))
    assert (got["my_number"], got["verdict"]) == (0, "pass"), (line, got)


def test_the_same_number_labelled_as_a_my_number_is_held(scanner: Scanner) -> None:
    """The nearest label wins both ways: after a shipping line, マイナンバー still counts."""
    rng = random.Random(1)
    body = (
        f"送り状番号：{grouped(valid_my_number(rng), '-')}\n"
        f"マイナンバー：{grouped(valid_my_number(rng), '-')}\n"
    )
    got = counts(scanner, "m.eml", mail(body))
    assert got["my_number"] == 1, got


# -- U5: insurance-card numbers ----------------------------------------------------------------
CARD_TEXTS = (
    "記号　宮延１２－３４　番号　５６７８　枝番　００",
    "記号　宮延１２　番号　３４５６７",
    "記号：愛知 123 番号：45",
    "被保険者証の記号番号は 宮延12・345 です。",
    "保険証番号 宮延23-456 の方の限度額適用認定証を発行しました。",
    "保険証番号 23-456",
    "保険証番号：1234567",
    "保険証番号：１２３４５６７",
)


@pytest.mark.parametrize("text", CARD_TEXTS)
def test_insurance_card_numbers_in_text(scanner: Scanner, text: str) -> None:
    body = f"お世話になります。\n{text}\n氏名 延岡 太郎\n"
    got = counts(scanner, "m.eml", mail(body))
    assert got["insured_number"] == 1 and got["verdict"] == "hold", (text, got)


@pytest.mark.parametrize(
    "text",
    ["保険証番号欄は空欄のまま提出してください。", "保険証番号の確認は令和8年4月1日までです。"],
)
def test_a_card_label_without_a_number_is_nothing(scanner: Scanner, text: str) -> None:
    got = counts(scanner, "m.eml", mail(f"お世話になります。\n{text}\n"))
    assert got["insured_number"] == 0, got


@pytest.mark.parametrize("seed", range(4))
def test_kanji_symbol_columns_make_one_insured_number_per_row(scanner: Scanner, seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(3, 15)
    rows: list[list[object]] = [["保険者番号", "記号", "番号", "枝番", "被保険者氏名", "生年月日"]]
    for _ in range(n):
        symbol = rng.choice(("宮延", "延岡", "日向"))
        rows.append(
            ["452037", symbol, str(rng.randint(10000, 99999)), f"{rng.randint(0, 4):02d}",
             name(rng), "昭和30年10月20日"]
        )
    got = counts(scanner, "国保.xlsx", xlsx(rows))
    assert (got["insured_number"], got["records"]) == (n, n), (seed, got)


def test_halfwidth_kana_headers(scanner: Scanner) -> None:
    rng = random.Random(2)
    lines = ["ﾋﾎｹﾝｼｬﾊﾞﾝｺﾞｳ,ｼﾒｲ,ｾｲﾈﾝｶﾞｯﾋﾟ"]
    for _ in range(6):
        lines.append(f"{rng.randint(1, 9999999):010d},ﾔﾏﾀﾞ ﾀﾛｳ,{rng.randint(1930, 1950)}0715")
    data = ("\r\n".join(lines) + "\r\n").encode("cp932")
    got = counts(scanner, "kaigo.csv", data)
    assert got["insured_number"] == 6, got


# -- U4: a heading governs its list -------------------------------------------------------------
def insured_lines(rng: random.Random, n: int, digits: int, bullet: str) -> list[str]:
    tails = ("要介護1", "要支援2", "還付額 2,948円", "R8.10.31")
    return [
        f"{bullet}{rng.randrange(10 ** (digits - 1)):0{digits}d}　{rng.choice(tails)}"
        for _ in range(n)
    ]


@pytest.mark.parametrize("seed", range(8))
def test_a_heading_governs_every_line_of_its_list(scanner: Scanner, seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(10, 18)
    digits = rng.choice((8, 10))
    bullet = rng.choice(("", "・", "- ", "※"))
    heading = rng.choice(
        ("認定結果一覧（被保険者番号・判定結果）", "後期高齢者医療 還付対象者（被保険者番号）",
         "被保険者番号：")
    )
    items = insured_lines(rng, n, digits, bullet)
    after = rng.random() < 0.4
    gap = "\n" if rng.random() < 0.5 else ""
    if after:
        text = "下記の方の認定結果が出ました。\n\n" + "\n".join(items) + f"\n{gap}（{heading}）\n"
    else:
        text = f"{heading}\n{gap}" + "\n".join(items) + "\n\n以上\n"
    form = rng.choice(("eml", "txt", "docx"))
    if form == "eml":
        got = counts(scanner, "m.eml", mail(text))
    elif form == "txt":
        got = counts(scanner, "一覧.txt", text.encode("cp932"))
    else:
        got = counts(scanner, "一覧.docx", docx_table([], tuple(text.split("\n"))))
    assert (got["insured_number"], got["records"]) == (n, n), (seed, form, after, text, got)
    assert got["verdict"] == "hold", (seed, got)


@pytest.mark.parametrize("seed", range(6))
def test_a_heading_governs_a_quoted_list_in_a_reply(scanner: Scanner, seed: int) -> None:
    """A reply quoting the list (> 0123456789　氏名) under a quoted heading, with a quoted
    blank line (a lone >) between: the quote marks are not part of the lines' shape."""
    rng = random.Random(f"quoted-{seed}")
    n = rng.randint(6, 15)
    digits = rng.choice((8, 10))
    quote = rng.choice(("> ", ">", "> > ", ">> ", "＞ "))
    heading = rng.choice(
        ("下記の被保険者番号・氏名の方の認定結果をお知らせください。", "被保険者番号　氏名")
    )
    items = [f"{rng.randrange(10 ** (digits - 1)):0{digits}d}　{name(rng)}" for _ in range(n)]
    gap = [quote.rstrip()] if rng.random() < 0.7 else []
    quoted = [heading, *gap, *items]
    body = "承知しました。\n\n" + "\n".join(f"{quote}{line}" for line in quoted) + "\n\n--\n担当\n"
    charset = rng.choice(("iso-2022-jp", "utf-8", "shift_jis"))
    got = counts(scanner, "m.eml", mail(body, charset))
    assert (got["insured_number"], got["records"]) == (n, n), (seed, quote, charset, body, got)
    assert got["verdict"] == "hold", got


def test_a_list_under_an_insurer_heading_is_not_insured_numbers(scanner: Scanner) -> None:
    rng = random.Random(9)
    items = insured_lines(rng, 12, 8, "・")
    text = "保険者番号一覧（保険者番号・保険者名）\n" + "\n".join(items) + "\n"
    got = counts(scanner, "m.eml", mail(text))
    assert got["insured_number"] == 0, got


def test_a_heading_governs_only_the_list_next_to_it(scanner: Scanner) -> None:
    """A blank line, then a list of another kind (phone extensions): not governed."""
    rng = random.Random(4)
    first = insured_lines(rng, 10, 10, "")
    other = [f"{rng.randrange(10 ** 7):08d}　電話受付" for _ in range(6)]
    text = "被保険者番号\n" + "\n".join(first) + "\n\n\n受付一覧\n" + "\n".join(other) + "\n"
    got = counts(scanner, "m.eml", mail(text))
    assert got["insured_number"] == 10, got


@pytest.mark.parametrize("label", ["予約番号", "送り状番号", "お問い合わせ番号"])
def test_a_label_beside_a_444_value_in_a_form_is_the_nearest_label(
    scanner: Scanner, label: str
) -> None:
    rng = random.Random(label)
    value = grouped(valid_my_number(rng), " ")
    rows: list[list[object]] = [[label, value], ["氏名", name(rng)], ["予約日", "令和8年12月1日"]]
    assert counts(scanner, "予約票.xlsx", xlsx(rows))["my_number"] == 0
    rows[0][0] = "番号"  # a label naming no other number: the grouping counts
    assert counts(scanner, "予約票.xlsx", xlsx(rows))["my_number"] == 1


def test_a_title_naming_insurance_does_not_make_a_444_column_insured(scanner: Scanner) -> None:
    """番号 under a 介護保険課 title takes the insured meaning only for values of an insured
    number's length; 12-digit values written 4-4-4 stay My Numbers."""
    rng = random.Random(8)
    rows: list[list[object]] = [["令和7年度 提供者一覧"], ["宮崎市 介護保険課"], []]
    rows.append(["No.", "番号"])
    rows += [[i + 1, grouped(valid_my_number(rng), "-")] for i in range(11)]
    got = counts(scanner, "一覧.xlsx", xlsx(rows))
    assert (got["my_number"], got["insured_number"]) == (11, 0), got
