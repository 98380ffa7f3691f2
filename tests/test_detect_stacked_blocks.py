"""HTML tables in mail bodies keep their merged cells' columns, and a roster stays a list
when another table follows it directly (issue 8 generated seeds 80698, 9868)."""

from __future__ import annotations

import pytest

from dlp_gateway.extract.html import html_to_text
from dlp_gateway.scan import Scanner
from tests.test_detect_layouts import people, valid_my_numbers
from tests.test_detect_mail_tables import mail


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def test_rowspan_and_colspan_cells_keep_their_columns_in_the_text() -> None:
    source = (
        "<table><tr><td rowspan=3>a</td><td colspan=2 rowspan=2>b</td><td>c</td></tr>"
        "<tr><td>d</td></tr><tr><td>e</td><td>f</td><td>g</td></tr><tr><td>h</td></tr></table>"
    )
    assert html_to_text(source).split("\n") == ["a\tb\t\tc", "\t\t\td", "\te\tf\tg", "h"]


def test_a_nested_table_has_its_own_spans() -> None:
    source = (
        "<table><tr><td rowspan=2>a</td><td><table><tr><td>x</td><td>y</td></tr></table>"
        "</td></tr><tr><td>b</td></tr></table>"
    )
    assert html_to_text(source).split("\n") == ["a\t", "x\ty", "\tb"]


def _era_rows(n: int) -> str:
    out = []
    for i, p in enumerate(people(n, seed=5)):
        born = p["born"]
        era, year = ("昭和", born.year - 1925) if born.year < 1989 else ("平成", born.year - 1988)  # type: ignore[attr-defined]
        out.append(
            f"<tr><td>{i + 1}</td><td>{p['name']}</td><td>{era}</td><td>{year}</td>"
            f"<td>{born.month}</td><td>{born.day}</td></tr>"  # type: ignore[attr-defined]
        )
    return "".join(out)


@pytest.mark.parametrize("n", [3, 12, 37])
def test_birth_dates_in_era_year_month_day_columns_under_a_merged_header(
    scanner: Scanner, n: int
) -> None:
    """№ and 氏名 span both header rows (rowspan=2), 生年 spans 元号 | 年 | 月 | 日: the
    second header row must stay under 生年 in the mail body's text (seed 80698)."""
    html = (
        '<html><body><p>対象者は以下のとおりです。</p><table border="1">'
        '<tr><td rowspan="2">№</td><td rowspan="2">氏名（<br>漢字）</td>'
        '<td colspan="4">生年</td></tr>'
        f"<tr><td>元号</td><td>年</td><td>月</td><td>日</td></tr>{_era_rows(n)}</table>"
        "</body></html>"
    )
    result = scanner.scan_message(mail("", html=html))
    assert (result.counts["birth_date"], result.counts["records"]) == (n, n), result.counts
    assert result.verdict.action != "pass"


@pytest.mark.parametrize("blank", ["", "<p></p>"])
def test_a_roster_followed_by_a_tally_table_stays_a_list(scanner: Scanner, blank: str) -> None:
    """Two people under 番号 in a 被保険者一覧, then 要介護度 | 人数: the tally's rows say
    nothing about the roster's header (seed 9868)."""
    rows = "".join(
        f"<tr><td>{str(p['insured'])[1:]}</td><td>{p['name']}</td><td>男</td>"
        f"<td>本町{i + 1}番</td><td>要支援2</td></tr>"
        for i, p in enumerate(people(2, seed=3))
    )
    tally = "".join(f"<tr><td>要介護{i}</td><td>0</td></tr>" for i in range(1, 6))
    html = (
        "<html><body><p><b>令和7年度 介護保険被保険者一覧</b></p><p>（取扱注意）</p>"
        "<table><tr><td>番号</td><td>利用者名</td><td>性別</td><td>住所</td><td>要介護度</td></tr>"
        f"{rows}</table>{blank}<table><tr><td>要介護度</td><td>人数</td></tr>{tally}"
        "<tr><td>合計</td><td>2</td></tr></table></body></html>"
    )
    result = scanner.scan_message(mail("", html=html))
    assert (result.counts["insured_number"], result.counts["records"]) == (2, 2), result.counts


@pytest.mark.parametrize("n", [2, 6])
def test_a_roster_right_under_statistics_starts_its_own_block(scanner: Scanner, n: int) -> None:
    """Statistics under a header of no known kind (地区 | 男 | 女 | 計), then, with no blank
    line, a title and a roster whose header has one known kind (被保番号): the roster's
    header starts a new block (seed 10925, a PDF has no blank rows)."""
    areas = [f"{a}地区{i}" for i in range(30) for a in "東西南北"]
    lines = ["地区,男,女,計"] + [f"{a},{i + 3}1,{i + 4}2,{2 * i + 7}3" for i, a in enumerate(areas)]
    lines += [
        "令和8年度 要介護認定 更新対象者",
        "作成日：令和8年3月25日",
        "被保番号,住所,電話番号,要介護度",
    ]
    lines += [
        f"{p['insured']},本町{i + 1}番,0982-22-98{i:02d},要介護1"
        for i, p in enumerate(people(n, seed=6))
    ]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    result = scanner.scan_file("更新対象者.csv", data)
    assert (result.counts["insured_number"], result.counts["records"]) == (n, n), result.counts


@pytest.mark.parametrize("n", [2, 9])
def test_a_group_label_over_the_name_does_not_rename_the_birth_column(
    scanner: Scanner, n: int
) -> None:
    """対象者 over 氏名(ふりがな) only (a PDF keeps no merge): read as a group label it
    spreads right over 生年, which is still a birth date column (seed 120544)."""
    lines = [",対象者", "NO,氏名(ふりがな),生年,性別,電話番号"]
    lines += [
        f"{i + 1},{p['name']}（{p['kana']}）,{p['born']:%Y/%m/%d},女,0982-20-59{i:02d}"
        for i, p in enumerate(people(n, seed=7))
    ]
    result = scanner.scan_file("対象者一覧.csv", ("\n".join(lines) + "\n").encode("utf-8"))
    assert (result.counts["birth_date"], result.counts["records"]) == (n, n), result.counts
    assert result.verdict.action != "pass"


def test_a_short_cell_keeps_its_line_break_as_a_space() -> None:
    """カナ<br>氏名 is one header cell: its row stays one tab-separated line; a long cell
    (prose laid out in a table) keeps its lines."""
    prose = "<br>".join(["いつもお世話になっております。", "名簿を送付いたします。"] * 2)
    source = (
        "<table><tr><td>記号</td><td>番号</td><td>カナ<br>氏名</td></tr>"
        "<tr><td>12</td><td>345</td><td>ヤマダ タロウ</td></tr></table>"
        f"<table><tr><td>{prose}</td></tr></table>"
    )
    lines = html_to_text(source).split("\n")
    assert lines[:2] == ["記号\t番号\tカナ 氏名", "12\t345\tヤマダ タロウ"]
    assert lines[2:] == ["いつもお世話になっております。", "名簿を送付いたします。"] * 2


@pytest.mark.parametrize("n", [1, 22])
def test_health_numbers_under_a_header_cell_with_a_line_break(scanner: Scanner, n: int) -> None:
    """記号 | 番号 | 枝番 | カナ<br>氏名 in a mail body (seeds 222886, 212046)."""
    rows = "".join(
        f"<tr><td>{27 + i}-{17 + i}</td><td>{str(p['insured'])[3:]}</td><td>0{i % 4}</td>"
        f"<td>{p['kana']}</td></tr>"
        for i, p in enumerate(people(n, seed=4))
    )
    html = (
        "<html><body><p>対象者は以下のとおりです。</p><table border=1>"
        f"<tr><td>記号</td><td>番号</td><td>枝番</td><td>カナ<br>氏名</td></tr>{rows}"
        "</table></body></html>"
    )
    result = scanner.scan_message(mail("", html=html))
    assert (result.counts["insured_number"], result.counts["records"]) == (n, n), result.counts
    assert result.verdict.action == "hold"


@pytest.mark.parametrize("n", [3, 40])
def test_a_titled_roster_under_statistics_after_a_blank_row(scanner: Scanner, n: int) -> None:
    """Statistics, a blank row, then 令和8年度 介護保険被保険者一覧 (a title with digits), a
    group row 生年月日 over 元号 | 年 | 月 | 日 and a header whose 番号 is an insured
    number only by that title (seed 243104): the title starts the roster's block."""
    areas = [f"{a}地区{i}" for i in range(30) for a in "東西南北"]
    lines = ["地区,男,女,計"] + [f"{a},{i + 3}1,{i + 4}2,{2 * i + 7}3" for i, a in enumerate(areas)]
    lines += ["", "令和8年度 介護保険被保険者一覧", "作成日：令和8年11月22日", ",生年月日"]
    lines += ["番号,元号,年,月,日,性別,住所"]
    roster = [
        f"{p['insured']},昭和,{p['born'].year - 1925},{p['born'].month},{p['born'].day},男,"  # type: ignore[attr-defined]
        f"本町{i + 1}番"
        for i, p in enumerate(people(n, seed=9))
        if p["born"].year < 1989  # type: ignore[attr-defined]
    ]
    lines += roster
    want = len(roster)
    result = scanner.scan_file("被保険者一覧.csv", ("\n".join(lines) + "\n").encode("utf-8"))
    assert (result.counts["insured_number"], result.counts["records"]) == (want, want)


def test_stacked_one_column_lines_are_found() -> None:
    from dlp_gateway.detect.textblocks import find_stacked_columns

    lines = ["対象者です。", "出生年月日", "カナ氏名", "19790506", "ナカノ カナ", "19810425"]
    text = "\n".join([*lines, "タカハシ カナエ", "よろしく"])
    [block] = find_stacked_columns(text)
    assert [r.cells[0] for r in block.rows] == text.split("\n")[1:7]
    assert find_stacked_columns("出生年月日\nカナ氏名\n19790506\n19810425\nナカノ カナ\n") == []


@pytest.mark.parametrize("n", [2, 28])
def test_a_one_column_list_with_two_rows_per_person_in_a_mail_body(
    scanner: Scanner, n: int
) -> None:
    """出生年月日 over カナ氏名 in one column, a person's date and name on two rows (seed
    236748; a PDF gives the same lines, seed 259010)."""
    rows = "".join(
        f"<tr><td>{p['born']:%Y%m%d}</td></tr><tr><td>{p['kana']}</td></tr>"  # type: ignore[str-format]
        for p in people(n, seed=2)
    )
    html = (
        "<html><body><p>対象者は以下のとおりです。</p><table border=1>"
        f"<tr><td>出生年月日</td></tr><tr><td>カナ氏名</td></tr>{rows}</table>"
        "<p>ご確認のほど、よろしくお願いいたします。</p></body></html>"
    )
    result = scanner.scan_message(mail("", html=html))
    assert (result.counts["birth_date"], result.counts["records"]) == (n, n), result.counts


@pytest.mark.parametrize("n", [2, 30])
def test_a_column_of_symbol_and_number_joined_by_a_middle_dot(scanner: Scanner, n: int) -> None:
    """記号番号 over lines such as 63-42・4989815 (seed 274372, a one-column PDF list)."""
    lines = ["国保資格一覧", "", "記号番号"] + [
        f"{10 + i}-{20 + i}・{str(p['insured'])[3:]}" for i, p in enumerate(people(n, seed=1))
    ]
    result = scanner.scan_message(mail("\n".join(lines) + "\n\nよろしくお願いします。\n"))
    assert (result.counts["insured_number"], result.counts["records"]) == (n, n), result.counts


@pytest.mark.parametrize("n", [3, 15])
def test_a_transposed_list_whose_number_label_is_insured_by_its_title(
    scanner: Scanner, n: int
) -> None:
    """被保険者一覧 above 番号 | numbers… and 要介護度 | …, one person per column (seed
    164732): the title makes the plain 番号 row an insured-number row."""
    numbers = [str(int(p["insured"])) for p in people(n, seed=11)]  # type: ignore[call-overload]
    lines = ["令和7年度 介護保険被保険者一覧", "宮崎市 介護保険課", ""]
    lines += ["番号," + ",".join(numbers), "要介護度," + ",".join(["要介護2"] * n)]
    result = scanner.scan_file("被保険者一覧.csv", ("\n".join(lines) + "\n").encode("cp932"))
    assert (result.counts["insured_number"], result.counts["records"]) == (n, n), result.counts


@pytest.mark.parametrize("header", ["ﾏｲﾅﾝﾊﾞｰ", "個人番号"])
def test_a_number_header_over_digit_cells_beside_other_headers(
    scanner: Scanner, header: str
) -> None:
    """ﾏｲﾅﾝﾊﾞｰ over twelve one-digit cells, then 性別 | 電話番号, no names (seed 180995):
    the values under the number header are judged joined."""
    numbers = valid_my_numbers(12, seed=3)
    lines = [header + "," * 12 + "性別,電話番号"]
    lines += [",".join([*n, "男", f"0982-33-58{i:02d}"]) for i, n in enumerate(numbers)]
    result = scanner.scan_file("個人番号一覧.csv", ("\n".join(lines) + "\n").encode("utf-8"))
    assert (result.counts["my_number"], result.counts["records"]) == (12, 12), result.counts
    assert result.verdict.action == "hold"
