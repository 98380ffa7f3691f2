"""csv/tsv/txt/html files, charset detection and content sniffing."""

from __future__ import annotations

import codecs
import io
from email.message import EmailMessage

import pytest

from dlp_gateway.extract.files import extract_file
from dlp_gateway.extract.text import choose_encoding, decode_bytes
from dlp_gateway.extract.units import Limits, Skipped, TableUnit, TextUnit, Unscannable

CSV = "被保険者番号,氏名,生年月日\r\n0000012345,山田太郎,S45.3.2\r\n0000012346,ﾔﾏﾀﾞ ﾊﾅｺ,\r\n"


def run(name: str, data: bytes, limits: Limits | None = None) -> list:
    return list(extract_file(name, data, limits or Limits()))


@pytest.mark.parametrize(
    "encoded",
    [
        CSV.encode("cp932"),
        codecs.BOM_UTF8 + CSV.encode("utf-8"),
        CSV.encode("utf-8"),
        CSV.encode("utf-16"),  # with BOM
        CSV.encode("euc_jp"),
    ],
    ids=["cp932", "utf8-bom", "utf8", "utf16", "euc-jp"],
)
def test_csv_encodings(encoded: bytes) -> None:
    [table] = run("C:\\data\\名簿.csv", encoded)
    assert isinstance(table, TableUnit)
    assert (table.part, table.location) == ("名簿.csv", "名簿.csv")
    rows = list(table.rows())
    assert [r.number for r in rows] == [1, 2, 3]
    assert rows[0].cells == ["被保険者番号", "氏名", "生年月日"]
    assert rows[1].cells == ["0000012345", "山田太郎", "S45.3.2"]
    assert rows[2].cells == ["0000012346", "ﾔﾏﾀﾞ ﾊﾅｺ", None]
    assert table.cell_location(2, 1) == "名簿.csv!B2"


def test_csv_row_numbers_follow_lines_with_multiline_fields() -> None:
    data = '氏名,住所\n山田,"大阪府\n堺市"\n佐藤,東京都\n'.encode()
    [table] = run("a.csv", data)
    rows = list(table.rows())
    assert [(r.number, r.cells[0]) for r in rows] == [(1, "氏名"), (2, "山田"), (4, "佐藤")]


def test_tsv_and_tabular_txt_are_tables_prose_is_text() -> None:
    tsv = "氏名\t生年月日\n山田\t1970/03/02\n佐藤\t1980/01/01\n".encode("cp932")
    [table] = run("a.tsv", tsv)
    assert list(table.rows())[1].cells == ["山田", "1970/03/02"]
    [table] = run("export.txt", tsv)
    assert isinstance(table, TableUnit)
    prose = "お世話になっております。\n個人番号は123456789018です。\n以上、よろしくお願いします。\n"
    [text] = run("memo.txt", prose.encode("cp932"))
    assert isinstance(text, TextUnit)
    assert (text.part, text.location, text.in_body) == ("memo.txt", "memo.txt", False)
    assert text.text == prose


def test_html_file_and_text_named_xls() -> None:
    html = '<html><head><meta charset="shift_jis"><title>t</title></head><body>' \
           "<p>個人番号</p><p>1234 5678 9018</p></body></html>"
    [unit] = run("a.htm", html.encode("cp932"))
    assert unit.text == "t\n個人番号\n1234 5678 9018"  # the title is read too
    # old systems export tab-separated text under an .xls name
    [table] = run("export.xls", "氏名\t番号\n山田\t1\n佐藤\t2\n".encode("cp932"))
    assert isinstance(table, TableUnit) and list(table.rows())[2].cells == ["佐藤", "2"]


def test_eml_file_attached() -> None:
    msg = EmailMessage()
    msg["Subject"] = "old"
    msg.set_content("個人番号 123456789018")
    msg.add_attachment(CSV.encode("cp932"), maintype="text", subtype="csv", filename="名簿.csv")
    result = run("old.eml", msg.as_bytes())
    [body] = [u for u in result if isinstance(u, TextUnit) and "header:" not in u.location
              and not u.location.endswith("!filename")]
    assert (body.part, body.location, body.in_body) == ("old.eml", "old.eml!body", False)
    [table] = [u for u in result if isinstance(u, TableUnit)]
    assert table.part == "old.eml/名簿.csv"
    assert list(table.rows())[1].cells[1] == "山田太郎"


def test_large_csv_streams() -> None:
    line = "0000012345,山田太郎,ヤマダタロウ,1970/03/02,大阪府堺市堺区南瓦町3番1号\r\n"
    data = ("番号,氏名,カナ,生年月日,住所\r\n" + line * 100_000).encode("cp932")
    [table] = run("voters.csv", data)
    first = next(table.rows())
    assert first.cells[0] == "番号"
    count = sum(1 for _ in table.rows())
    assert count == 100_001


def test_csv_cell_budget() -> None:
    result = run("a.csv", CSV.encode(), Limits(max_cells=4))
    assert [u.reason for u in result if isinstance(u, Unscannable)] == ["too_large"]


# --- sniffing ------------------------------------------------------------------------------------


def test_empty_pdf_image_and_garbage() -> None:
    assert run("a.xlsx", b"") == [Skipped("a.xlsx", "empty")]
    # a broken "PDF" that reads as text is scanned as text; a binary one is corrupt
    [text_unit] = run("a.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj")
    assert isinstance(text_unit, TextUnit)
    [broken] = run("b.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 4)
    assert (broken.part, broken.reason) == ("b.pdf", "corrupt")
    # a magic prefix alone never makes a part harmless
    [fake_jpeg] = run("scan.jpg", b"\xff\xd8\xff\xe0" + bytes(100))
    assert fake_jpeg.reason == "unsupported_format"
    [fake_gif] = run("renamed.txt", b"GIF89a" + bytes(100))
    assert fake_gif.reason == "unsupported_format"
    garbage = bytes((i * 131 + 7) % 256 for i in range(4000))
    [unknown] = run("blob.bin", garbage)
    assert (unknown.part, unknown.reason) == ("blob.bin", "unsupported_format")


def test_content_beats_extension() -> None:
    # a csv named .pdf is read as text; text that starts with %PDF- is still text
    [table] = run("report.pdf", CSV.encode("cp932"))
    assert isinstance(table, TableUnit)
    [text_unit] = run("list.csv", b"%PDF-1.4 ...")
    assert isinstance(text_unit, (TextUnit, TableUnit))


def test_too_large_part() -> None:
    assert run("a.txt", b"x" * 100, Limits(max_part_bytes=10))[0].reason == "too_large"


# --- charset detection ----------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["cp932", "euc_jp", "utf-8", "iso2022_jp", "utf-16"])
def test_decode_without_label(encoding: str) -> None:
    text = "介護保険被保険者証の番号は0000012345です。氏名：山田太郎（ﾔﾏﾀﾞﾀﾛｳ）"
    if encoding == "iso2022_jp":
        text = text.replace("ﾔﾏﾀﾞﾀﾛｳ", "ヤマダタロウ")  # no half-width kana in ISO-2022-JP
    assert decode_bytes(text.encode(encoding)) == text


def test_halfwidth_kana_cp932_is_not_taken_for_euc() -> None:
    data = "ﾔﾏﾀﾞ ﾀﾛｳ,ｻﾄｳ ﾊﾅｺ\r\n".encode("cp932") * 5
    assert choose_encoding(data) == "cp932"


def test_declared_label_wins_when_it_fits() -> None:
    data = "山田".encode("cp932")
    assert choose_encoding(data, "Shift_JIS") == "cp932"
    assert choose_encoding(b"plain ascii", "x-unknown") == "utf-8"
    assert isinstance(decode_bytes(io.BytesIO(bytes(range(256))).read(), "bogus"), str)
