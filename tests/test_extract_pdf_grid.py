"""PDF text-layer tables the grid reader used to cut wrongly (issue 8 generated seeds):
narrow glyphs and typed spaces inside a value, a last page with one person, a header with
one person, text placed left of the page, and tables stacked with their own columns."""

from __future__ import annotations

import io
import random

import pytest

from dlp_gateway.extract.pdf import extract_pdf
from dlp_gateway.extract.units import TableUnit, TextUnit
from dlp_gateway.scan import Scanner
from tests.test_detect_layouts import valid_my_numbers

FONT = "HeiseiKakuGo-W5"
Line = list[tuple[float, str]]  # (x, text) of each cell drawn on one line


def pdf_of(pages: list[list[Line]], size: float = 8, leading: float = 13) -> bytes:
    """Each page's lines drawn from the top, each cell a string at its x."""
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    out = io.BytesIO()
    doc = canvas.Canvas(out, pagesize=landscape(A4))
    for lines in pages:
        doc.setFont(FONT, size)
        y = 540.0
        for line in lines:
            for x, text in line:
                doc.drawString(x, y, text)
            y -= leading
        doc.showPage()
    doc.save()
    return out.getvalue()


def table_rows(data: bytes) -> list[list[object]]:
    units = list(extract_pdf("名簿.pdf", data))
    tables = [u for u in units if isinstance(u, TableUnit)]
    assert len(tables) == 1, units
    return [row.cells for row in tables[0].rows()]


def _full_width(text: str) -> str:
    return text.translate(str.maketrans("0123456789", "０１２３４５６７８９"))


def _insured(rng: random.Random) -> str:
    return f"{rng.randrange(10**9):010d}"


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


XS = [60.0, 160.0, 260.0, 360.0]
HEADER: Line = list(zip(XS, ["番号", "氏名", "性別", "住所"], strict=True))


def roster_lines(n: int, seed: int, number=_insured) -> list[Line]:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    return [
        list(
            zip(
                XS,
                [number(rng), f"佐藤 {'一二三四五'[i % 5]}郎", "男", f"本町{i + 1}番"],
                strict=True,
            )
        )
        for i in range(n)
    ]


def test_full_width_number_with_a_narrow_one_stays_one_cell() -> None:
    """The full-width "１" is a thin stroke in a full em: its ink leaves a gap as wide as
    a column gap, its advance does not (seed 80816, 60373)."""
    numbers = ["０１１１２３１４１５", "１９１１０３１１４１", "１１１１１１１１１１"]
    lines = [HEADER] + [
        list(zip(XS, [n, "佐藤 一郎", "男", "本町1番"], strict=True)) for n in numbers
    ]
    rows = table_rows(pdf_of([lines]))
    assert [r[0] for r in rows[1:]] == numbers


def test_one_typed_space_inside_a_value_does_not_end_its_cell() -> None:
    """4962　5628　8333 drawn as one string (an ideographic space between the groups)
    stays one cell; so does a name with one space (seed 2904)."""
    numbers = valid_my_numbers(4, seed=5)
    spaced = ["\u3000".join((n[:4], n[4:8], n[8:])) for n in numbers]
    lines = [list(zip(XS, ["個人番号", "氏名", "性別", "住所"], strict=True))] + [
        list(zip(XS, [n, "山田\u3000花子", "女", "本町1番"], strict=True)) for n in spaced
    ]
    rows = table_rows(pdf_of([lines]))
    assert [r[:2] for r in rows[1:]] == [[n.replace("\u3000", " "), "山田 花子"] for n in spaced]


def test_two_typed_spaces_still_separate_cells() -> None:
    lines = [HEADER] + [
        [(60.0, f"{_insured(random.Random(i))}\u3000\u3000佐藤 一郎"), (260.0, "男")]
        for i in range(4)
    ]
    rows = table_rows(pdf_of([lines]))
    assert all(len([c for c in r if c]) == 3 for r in rows[1:]), rows


@pytest.mark.parametrize("last", [1, 2])
def test_a_last_page_with_one_or_two_people_is_read_by_the_columns_above(
    scanner: Scanner, last: int
) -> None:
    """Page 1: title lines (one of them with two cells) and 24 people; page 2: one or two
    more, too few lines for a grid of their own (seed 60297)."""
    title: list[Line] = [
        [(300.0, "令和7年度 介護保険被保険者一覧")],
        [(10.0, "作成日："), (400.0, "令和8年8月1日")],
    ]
    people = roster_lines(24 + last, seed=last)
    data = pdf_of([[*title, HEADER, *people[:24]], people[24:]])
    rows = table_rows(data)
    assert rows[-1][: len(XS)] == [text for _, text in people[-1]]
    assert len(rows) == 2 + 1 + 24 + last
    result = scanner.scan_file("被保険者一覧.pdf", data)
    assert (result.counts["insured_number"], result.counts["records"]) == (24 + last,) * 2


def test_a_page_continuing_the_table_keeps_its_column_numbers() -> None:
    """Page 1 has an extra column left of the table (a title's second cell): the rows of
    page 2 still fall under page 1's headers."""
    side: Line = [(10.0, "※")]
    page1 = [[*side, *HEADER], *roster_lines(20, seed=3)]
    page2 = roster_lines(20, seed=4)
    rows = table_rows(pdf_of([[[(10.0, "注"), (60.0, "一覧")], *page1], page2]))
    header = next(r for r in rows if "番号" in r)
    column = header.index("番号")
    assert all(r[column] and str(r[column]).isdigit() for r in rows[-20:]), rows[-20:]


def test_a_header_and_one_person_are_a_table(scanner: Scanner) -> None:
    [number] = valid_my_numbers(1, seed=9)
    header = list(zip(XS, ["個人番号", "氏名", "生年月日", "住所"], strict=True))
    person = list(zip(XS, [number, "田中直樹", "平成4年9月3日", "本町1番"], strict=True))
    data = pdf_of([[[(200.0, "個人番号 提供者一覧")], header, person]])
    assert table_rows(data)[-1] == [number, "田中直樹", "平成4年9月3日", "本町1番"]
    result = scanner.scan_file("個人番号一覧.pdf", data)
    assert (result.counts["my_number"], result.counts["records"]) == (1, 1)
    assert result.verdict.action == "hold"


def test_two_lines_of_prose_are_not_a_table() -> None:
    data = pdf_of(
        [[[(60.0, "いつもお世話になっております。")], [(60.0, "よろしくお願いします。")]]]
    )
    units = list(extract_pdf("通知.pdf", data))
    assert not any(isinstance(u, TableUnit) for u in units)
    assert any(isinstance(u, TextUnit) for u in units)


@pytest.mark.parametrize("n", [3, 9, 15])
def test_a_transposed_table_reaching_left_of_the_page(scanner: Scanner, n: int) -> None:
    """Labels down the first column, one person per column, wider than the page and
    centred on it: its left part lies at negative x (seed 2985)."""
    rng = random.Random(n)
    numbers = [_insured(rng) for _ in range(n)]
    xs = [-150.0 + 72 * i for i in range(n + 1)]
    lines = [
        list(zip(xs, ["被保険者番号", *numbers], strict=True)),
        list(zip(xs, ["性別", *(rng.choice("男女") for _ in numbers)], strict=True)),
        list(zip(xs, ["要介護度", *(f"要介護{rng.randint(1, 5)}" for _ in numbers)], strict=True)),
    ]
    data = pdf_of([lines])
    assert table_rows(data)[0] == ["被保険者番号", *numbers]
    result = scanner.scan_file("更新対象者.pdf", data)
    assert (result.counts["insured_number"], result.counts["records"]) == (n, n)


def test_tables_stacked_on_a_page_keep_their_own_columns(scanner: Scanner) -> None:
    """Statistics (eight rows, columns at other places) above a six-person kana list, and a
    two-person My Number list above a tally: no cells of one table merged by the gaps of
    the other (seeds 80834, 80902)."""
    stats = [[(360.0, "地区"), (400.0, "男"), (440.0, "女"), (480.0, "計")]] + [
        [(360.0, f"{a}地区"), (404.0, "601"), (444.0, "351"), (484.0, "952")] for a in "東西南北中"
    ]
    kana = ["タナカ ワカナ", "ワタナベ ケンイチ", "ナカムラ ミサキ", "ササキ カナ"]
    roster = [[(360.0, "氏名カナ"), (440.0, "生年月日"), (520.0, "性別")]] + [
        [(360.0, k), (440.0, f"19{60 + i}/10/1{i}"), (520.0, "女")] for i, k in enumerate(kana)
    ]
    rows = table_rows(pdf_of([[*stats, [(300.0, "入所児童名簿")], *roster]]))
    assert ["地区", "男", "女", "計"] in rows
    assert [c for c in rows[-1] if c] == ["ササキ カナ", "1963/10/13", "女"]
    numbers = valid_my_numbers(2, seed=4)
    people = [
        [
            (300.0, "NO"),
            (320.0, "マイナンバー"),
            (400.0, "利用者名"),
            (450.0, "生年月日"),
            (530.0, "性別"),
        ]
    ] + [
        [
            (300.0, str(i + 1)),
            (320.0, ".".join((n[:4], n[4:8], n[8:]))),
            (400.0, "田中 佳奈"),
            (450.0, "昭和39年2月2日"),
            (530.0, "女"),
        ]
        for i, n in enumerate(numbers)
    ]
    tally = [[(390.0, "要介護度"), (435.0, "人数")]] + [
        [(390.0, f"要介護{i}"), (435.0, "0")] for i in range(1, 6)
    ]
    data = pdf_of([[*people, *tally]])
    rows = table_rows(data)
    assert [c for c in rows[1] if c][:3] == [
        "1",
        ".".join((numbers[0][:4], numbers[0][4:8], numbers[0][8:])),
        "田中 佳奈",
    ]
    result = scanner.scan_file("利用者一覧.pdf", data)
    assert (result.counts["my_number"], result.counts["records"]) == (2, 2)


def test_a_full_width_period_stays_on_its_line(scanner: Scanner) -> None:
    """The ink of "．" sits on the baseline, far below the middle of "Ｒ３": the line box,
    not the ink, says which line it is on (seed 11524: Ｒ３．９．３０ split over two rows)."""
    header = list(zip(XS, ["氏名", "ふりがな", "生年月日", "性別"], strict=True))
    dates = ["Ｒ３．９．３０", "Ｒ５．１１．１５", "Ｒ１．１０．１７", "Ｈ３１．４．１"]
    lines = [header] + [
        list(zip(XS, ["阿部 あさひ", "あべ あさひ", d, "男"], strict=True)) for d in dates
    ]
    data = pdf_of([lines])
    rows = table_rows(data)
    assert [r[2] for r in rows[1:]] == dates and len(rows) == 5
    result = scanner.scan_file("園児名簿.pdf", data)
    assert (result.counts["birth_date"], result.counts["records"]) == (4, 4)


def test_a_header_and_one_person_in_two_aligned_cells(scanner: Scanner) -> None:
    """番号 | 要介護度 over one person under a 被保険者一覧 title: two columns, each pair
    of cells aligned (seed 6973)."""
    lines: list[Line] = [
        [(80.0, "令和6年度 介護保険被保険者一覧")],
        [(372.0, "番号"), (437.0, "要介護度")],
        [(372.0, "0751631629"), (437.0, "要介護1")],
    ]
    data = pdf_of([lines])
    assert table_rows(data)[-1] == ["0751631629", "要介護1"]
    result = scanner.scan_file("被保険者一覧.pdf", data)
    assert (result.counts["insured_number"], result.counts["records"]) == (1, 1)


def test_two_unaligned_lines_of_two_cells_stay_text() -> None:
    lines: list[Line] = [
        [(60.0, "延岡市長 様"), (400.0, "令和8年6月1日")],
        [(90.0, "件名：資料の送付"), (330.0, "担当 山田")],
    ]
    units = list(extract_pdf("通知.pdf", pdf_of([lines])))
    assert not any(isinstance(u, TableUnit) for u in units)


def test_a_header_cell_with_a_line_break_is_one_cell() -> None:
    """個人 / 番号 printed on two lines inside one header cell, closer together than the
    rows are (seed 797): one header row whose cell holds the line break."""
    numbers = valid_my_numbers(6, seed=8)
    lines: list[Line] = [[(60.0, "個人")], [(60.0, "番号"), (160.0, "氏名"), (260.0, "住所")]]
    lines += [[(60.0, n), (160.0, "中山 こはる"), (260.0, "幸町1476-13")] for n in numbers]
    # rows 18 points apart; the wrapped cell's first line drawn 8 points lower (10 apart)
    rows = table_rows(_shifted_first_line(lines, 8.0))
    assert rows[0] == ["個人\n番号", "氏名", "住所"]
    assert [r[0] for r in rows[1:]] == numbers


def _shifted_first_line(lines: list[Line], down: float) -> bytes:
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.pdfgen import canvas

    pdf_of([[]])  # registers the font
    out = io.BytesIO()
    doc = canvas.Canvas(out, pagesize=landscape(A4))
    doc.setFont(FONT, 8)
    y = 540.0
    for index, line in enumerate(lines):
        for x, text in line:
            doc.drawString(x, y - (down if index == 0 else 0), text)
        y -= 18
    doc.save()
    return out.getvalue()


@pytest.mark.parametrize("n", [4, 30])
def test_a_header_left_at_the_foot_of_a_page_heads_the_next_page(scanner: Scanner, n: int) -> None:
    """Statistics fill page 1 and the roster's header is its last line; the roster is on
    page 2 (seeds 6877, 11137): the header is read by page 2's columns, not merged into
    the statistics' columns."""
    stats = [[(360.0, "地区"), (412.0, "男"), (440.0, "女"), (468.0, "計")]] + [
        [(360.0, f"地区{i}"), (412.0, "601"), (440.0, "351"), (468.0, "952")] for i in range(30)
    ]
    header: Line = [(331.0, "№"), (351.0, "カナ氏名"), (421.0, "生年月日"), (495.0, "性別")]
    kana = ["マスダ ワカナ", "タナカ オサム", "イトウ ワカナ", "ワタナベ カズヤ"]
    roster = [
        [
            (331.0, str(i + 1)),
            (351.0, kana[i % 4]),
            (421.0, f"198{i % 10}年9月2{i % 8}日"),
            (495.0, "女"),
        ]
        for i in range(n)
    ]
    data = pdf_of([[*stats, [(300.0, "入所児童名簿")], header], roster])
    rows = table_rows(data)
    assert ["№", "カナ氏名", "生年月日", "性別"] in rows
    result = scanner.scan_file("入所児童名簿.pdf", data)
    assert (result.counts["birth_date"], result.counts["records"]) == (n, n), result.counts


def test_the_last_person_above_a_tally_on_the_next_page_keeps_the_roster_columns(
    scanner: Scanner,
) -> None:
    """The roster's last person heads page 2, a tally of other columns below it (seed
    161357): that line is read by page 1's columns, not the tally's."""
    header: Line = [(300.0, "氏名"), (360.0, "よみがな"), (440.0, "生年月日"), (530.0, "性別")]
    people = [
        [
            (300.0, f"佐藤 {g}"),
            (360.0, f"さとう {k}"),
            (440.0, f"平成{i + 1}年6月14日"),
            (530.0, "女"),
        ]
        for i, (g, k) in enumerate([("花子", "はなこ"), ("若菜", "わかな")] * 12)
    ]
    tally = [[(440.0, "要介護度"), (485.0, "人数")]] + [
        [(440.0, f"要介護{i}"), (485.0, str(i))] for i in range(1, 6)
    ]
    data = pdf_of([[header, *people[:23]], [people[23], *tally]])
    rows = table_rows(data)
    assert ["佐藤 若菜", "さとう わかな", "平成24年6月14日", "女"] in rows
    result = scanner.scan_file("名簿.pdf", data)
    assert (result.counts["birth_date"], result.counts["records"]) == (24, 24), result.counts


def test_a_wrapped_header_cell_beside_a_header_wider_than_its_column() -> None:
    """被保 / 番号 wrapped in one header cell, beside a "No." wider than the one-digit
    column under it (seed 240463)."""
    lines: list[Line] = [[(80.0, "被保")], [(60.0, "No."), (80.0, "番号"), (200.0, "住所")]]
    lines += [
        [(60.0, str(i + 1)), (80.0, f"06265292{i:02d}"), (200.0, "幸町1番")] for i in range(5)
    ]
    rows = table_rows(_shifted_first_line(lines, 8.0))
    assert rows[0] == ["No.", "被保\n番号", "住所"]


def test_a_header_over_digit_cells_and_one_person(scanner: Scanner) -> None:
    """①個人番号 over twelve one-digit cells, one person (seed 241587): the person's line
    gives the columns, so the digits stay in cells of their own."""
    [number] = valid_my_numbers(1, seed=12)
    digits = [(208.0 + 17.4 * i, d) for i, d in enumerate(number)]
    header: Line = [(208.0, "①個人番号（マイナンバー）"), (430.0, "②利用者名"), (500.0, "③性別")]
    person: Line = [*digits, (430.0, "田中 直樹"), (500.0, "男")]
    data = pdf_of([[header, person]])
    rows = table_rows(data)
    assert rows[-1] == [*number, "田中 直樹", "男"]
    result = scanner.scan_file("個人番号.pdf", data)
    assert result.counts["my_number"] == 1 and result.verdict.action == "hold"


def test_stacked_tables_covering_each_others_gaps_are_still_a_grid(scanner: Scanner) -> None:
    """Statistics whose cells fall in the roster's gaps and the other way round: the page
    as a whole shows no gap at all, its two bands do (seed 250331)."""
    stats = [[(360.0, "北川地区"), (404.0, "313"), (432.0, "670"), (460.0, "1983")]] * 6
    rng = random.Random(2)
    numbers = [f"{rng.randrange(10**7, 10**8)}" for _ in range(8)]
    roster = [[(331.0, "保険証番号"), (386.0, "世帯主氏名"), (446.0, "電話番号")]] + [
        [(331.0, n), (386.0, "佐々木 美代子"), (446.0, f"090-4835-64{i:02d}")]
        for i, n in enumerate(numbers)
    ]
    data = pdf_of([[*stats, [(300.0, "令和6年度 後期高齢者医療 被保険者名簿")], *roster]])
    rows = table_rows(data)
    assert [c for c in rows[-1] if c] == [numbers[-1], "佐々木 美代子", "090-4835-6407"]
    result = scanner.scan_file("被保険者名簿.pdf", data)
    assert (result.counts["insured_number"], result.counts["records"]) == (8, 8), result.counts


def pdf_at(*pages: list[tuple[float, float, str]]) -> bytes:
    """Strings drawn at (x, y), page by page."""
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.pdfgen import canvas

    pdf_of([[]])  # registers the font
    out = io.BytesIO()
    doc = canvas.Canvas(out, pagesize=landscape(A4))
    for items in pages:
        doc.setFont(FONT, 8)
        for x, y, text in items:
            doc.drawString(x, y, text)
        doc.showPage()
    doc.save()
    return out.getvalue()


def test_header_cells_wrapped_over_one_person(scanner: Scanner) -> None:
    """生年 / 月日 over 元号 | 年 | 月 | 日 and カナ / 氏名, lines 12 points apart, one
    person 18 points below (seed 243202): the wrapped lines join their cells, and the
    row pitch comes from the header and the person, not from the wrapped lines."""
    items = [(330.0, 510.0, "生年"), (330.0, 498.0, "月日"), (265.0, 486.0, "カナ")]
    header = ["氏名", "元号", "年", "月", "日", "住所"]
    person = ["タナカ イツキ", "令和", "3", "8", "29", "日向市出北3丁目1番3号"]
    xs = [265.0, 330.0, 355.0, 375.0, 395.0, 420.0]
    items += [(x, 474.0, text) for x, text in zip(xs, header, strict=True)]
    items += [(x, 456.0, text) for x, text in zip(xs, person, strict=True)]
    data = pdf_at(items)
    rows = table_rows(data)
    assert rows == [[None, "生年\n月日"], ["カナ\n氏名", *header[1:]], person]
    result = scanner.scan_file("児童名簿.pdf", data)
    assert (result.counts["birth_date"], result.counts["records"]) == (1, 1), result.counts
