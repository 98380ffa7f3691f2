"""Tables inside mail text (pasted tab-separated rosters, HTML tables) and the mail's
correspondents (salutation, signature, display names), scanned as real MIME messages."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage

import pytest

from dlp_gateway.scan import Scanner
from tests.test_detect_layouts import people, valid_my_numbers, wareki


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def mail(body: str, html: str | None = None, attachments: tuple = ()) -> bytes:  # type: ignore[type-arg]
    msg = EmailMessage()
    msg["From"] = "総務課 鈴木 一郎 <suzuki@city.example.lg.jp>"
    msg["To"] = "山田 太郎 <yamada@care.example.com>"
    msg["Cc"] = '"高橋 花子（介護保険課）" <takahashi@city.example.lg.jp>'
    msg["Subject"] = "名簿の送付"
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for name, data, maintype, subtype in attachments:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


def roster_lines(n: int, sep: str = "\t") -> list[str]:
    lines = [sep.join(["被保険者番号", "氏名", "生年月日"])]
    lines += [sep.join([str(p["insured"]), str(p["name"]), wareki(p["born"])]) for p in people(n)]  # type: ignore[arg-type]
    return lines


@pytest.mark.parametrize("n", [3, 12])
def test_tab_separated_roster_in_body_counts_one_person_per_row(scanner: Scanner, n: int) -> None:
    body = "山田様\n\nいつもお世話になっております。\n対象者は以下のとおりです。\n\n"
    body += "\n".join(roster_lines(n)) + "\n\nよろしくお願いします。\n"
    result = scanner.scan_message(mail(body))
    assert (result.counts["records"], result.counts["insured_number"]) == (n, n)
    assert result.verdict.action == "hold"
    assert all(f.in_body for f in result.findings)


def test_html_table_in_body(scanner: Scanner) -> None:
    ps = people(6)
    numbers = valid_my_numbers(6, seed=21)
    cells = "".join(
        f"<tr><td>{p['name']}</td><td>{p['born']:%Y/%m/%d}</td><td>{n}</td></tr>"  # type: ignore[str-format]
        for p, n in zip(ps, numbers, strict=True)
    )
    html = (
        "<html><body><p>関係者各位</p><table><tr><th>氏名</th><th>生年月日</th>"
        f"<th>個人番号</th></tr>{cells}</table></body></html>"
    )
    result = scanner.scan_message(mail("HTML メールです。", html=html))
    assert result.counts["my_number"] == 6
    assert result.counts["records"] == 6


def test_html_table_attachment(scanner: Scanner) -> None:
    ps = people(11)
    cells = "".join(
        f"<tr><td>{p['insured']}</td><td>{p['name']}</td><td>{wareki(p['born'])}</td></tr>"  # type: ignore[arg-type]
        for p in ps
    )
    html = f"<table><tr><th>被保険者番号</th><th>氏名</th><th>生年月日</th></tr>{cells}</table>"
    attachment = ("roster.html", html.encode("utf-8"), "text", "html")
    result = scanner.scan_message(mail("添付のとおり", attachments=(attachment,)))
    assert (result.counts["records"], result.counts["insured_number"]) == (11, 11)
    assert result.verdict.action == "hold"


def test_correspondents_are_not_names(scanner: Scanner) -> None:
    body = (
        "山田 太郎 様\n\n"
        "いつもお世話になっております。総務課の鈴木です。\n"
        "高橋さんからご依頼の会議資料を添付します。\n"
        "ご確認のほどよろしくお願いいたします。\n\n"
        "--\n"
        "〇〇市 総務部 総務課\n"
        "鈴木 一郎\n"
        "TEL 0982-22-1111（内線 123）\n"
        "suzuki@city.example.lg.jp\n"
    )
    result = scanner.scan_message(mail(body))
    assert result.counts["name"] == 0, [f.to_json() for f in result.findings]
    assert result.verdict.action == "pass"


def test_signature_without_separator_and_data_names_still_count(scanner: Scanner) -> None:
    body = (
        "各位\n\n"
        "転入者の確認をお願いします。\n"
        "佐藤花子さん（昭和45年3月2日生）\n"
        "\n"
        "市民課 鈴木一郎\n"
        "電話 0982-22-1111\n"
    )
    result = scanner.scan_message(mail(body))
    assert result.counts["name"] == 1
    assert result.counts["records"] == 1
    assert result.verdict.action == "hold"


def test_birth_dates_in_a_pasted_table_are_dated_today_or_before(scanner: Scanner) -> None:
    future = dt.date.today() + dt.timedelta(days=400)
    body = "氏名\t生年月日\n山田太郎\t" + f"{future:%Y/%m/%d}\n佐藤花子\t{future:%Y/%m/%d}\n"
    assert scanner.scan_message(mail(body)).counts["records"] == 0


def test_one_column_list_pasted_under_an_insured_title(scanner: Scanner) -> None:
    numbers = [str(p["insured"]) for p in people(12)]
    body = "各位\n\n令和8年度 介護保険被保険者一覧\n\n番号\n\n" + "\n\n".join(numbers)
    body += "\n\nよろしくお願いします。\n"
    result = scanner.scan_message(mail(body))
    assert (result.counts["insured_number"], result.counts["records"]) == (12, 12)
    assert result.verdict.action == "hold"


def test_html_merged_header_over_one_digit_cells(scanner: Scanner) -> None:
    ps = people(4)
    numbers = valid_my_numbers(4, seed=61)
    body_rows = "".join(
        "<tr><td>"
        + str(i + 1)
        + "</td>"
        + "".join(f"<td>{d}</td>" for d in n)
        + f"<td>{p['name']}</td><td>{p['born']:%Y/%m/%d}</td></tr>"  # type: ignore[str-format]
        for i, (p, n) in enumerate(zip(ps, numbers, strict=True))
    )
    html = (
        "<table><tr><th>No</th><th colspan=12>マイナンバー</th><th>氏名</th><th>生年月日</th></tr>"
        f"{body_rows}</table>"
    )
    result = scanner.scan_message(mail("添付なし", html=html))
    assert (result.counts["my_number"], result.counts["records"]) == (4, 4)


def _full_width(text: str) -> str:
    return text.translate(str.maketrans("0123456789", "０１２３４５６７８９"))


@pytest.mark.parametrize("n", [2, 5, 9])
def test_html_attachment_with_rowspan_header_in_a_zip(scanner: Scanner, n: int) -> None:
    """被保険者 over 番号 while the other headers span both rows (rowspan=2): the second
    header row keeps its column, so the full-width numbers under it count (seed 60651)."""
    import io
    import zipfile

    rows = "".join(
        f"<tr><td>{i + 1}</td><td>{_full_width(str(p['insured']))}</td><td>男</td>"
        f"<td>中央町{i + 1}-2</td><td>090-3392-12{i:02d}</td><td>要介護1</td></tr>"
        for i, p in enumerate(people(n))
    )
    html = (
        '<html><head><meta charset="utf-8"></head><body><table border="1">'
        '<tr><th rowspan="2">No.</th><th>被保険者</th><th rowspan="2">性別</th>'
        '<th rowspan="2">住所</th><th rowspan="2">電話番号</th><th rowspan="2">要介護度</th></tr>'
        f"<tr><th>番号</th></tr>{rows}</table></body></html>"
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("名簿/更新対象者.html", html.encode("utf-8"))
    attachment = ("更新対象者.zip", buf.getvalue(), "application", "zip")
    result = scanner.scan_message(mail("添付のとおりです。", attachments=(attachment,)))
    assert (result.counts["insured_number"], result.counts["records"]) == (n, n), result.counts
    assert result.verdict.action != "pass"


def test_html_rowspan_and_colspan_keep_cells_in_their_columns() -> None:
    from dlp_gateway.extract.htmltable import split_tables

    source = (
        "<table><tr><td rowspan=3>a</td><td colspan=2 rowspan=2>b</td><td>c</td></tr>"
        "<tr><td>d</td></tr><tr><td>e</td><td>f</td><td>g</td></tr><tr><td>h</td></tr></table>"
    )
    tables, _ = split_tables(source)
    assert [r.cells for r in tables[0]] == [
        ["a", "b", None, "c"],
        [None, None, None, "d"],
        [None, "e", "f", "g"],
        ["h"],
    ]


def test_order_list_pasted_with_a_broken_header_passes(scanner: Scanner) -> None:
    numbers = valid_my_numbers(12, seed=71)
    lines = ["注文", "番号\t品名\t数量\t納品日\t担当者"]
    lines += [
        f"{n[:4]}ー{n[4:8]}ー{n[8:]}\tボールペン\t3\t令和8年2月19日\t谷口 健一" for n in numbers
    ]
    result = scanner.scan_message(mail("発注一覧です。\n\n" + "\n".join(lines) + "\n"))
    assert result.counts["my_number"] == 0
    assert result.verdict.action == "pass"


def test_list_after_a_rule_line_mentioning_a_section_still_counts(scanner: Scanner) -> None:
    body = (
        "お世話になっております。\n\n"
        "━━━━━━━━━━━━\n"
        "福祉課 対象者一覧\n"
        "佐藤花子（昭和45年3月2日生）\n"
        "田中一郎（昭和50年1月1日生）\n"
    )
    result = scanner.scan_message(mail(body))
    assert result.counts["records"] == 2
    assert result.verdict.action == "hold"
