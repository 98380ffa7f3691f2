"""Spreadsheets and Word documents: every sheet, typed cells, era formats, docx parts."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile

import docx
import msoffcrypto
import openpyxl
import pytest
from msoffcrypto.format.ooxml import OOXMLFile

from dlp_gateway.extract.files import extract_file
from dlp_gateway.extract.units import Limits, TableUnit, TextUnit, Unscannable


def run(name: str, data: bytes, limits: Limits | None = None) -> list:
    return list(extract_file(name, data, limits or Limits()))


def save(wb: openpyxl.Workbook) -> bytes:
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def roster_workbook() -> openpyxl.Workbook:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "R4介護認定者"
    ws["A1"] = "介護保険被保険者一覧"
    ws["A2"] = "令和4年4月1日現在"
    ws.append([])
    ws["B4"], ws["C4"], ws["D4"], ws["E4"] = "被保険者番号", "氏名", "生年月日", "個人番号"
    ws["B5"], ws["C5"], ws["D5"], ws["E5"] = "0000012345", "山田太郎", dt.date(1945, 3, 2), \
        123456789018
    ws["F5"] = 12345678901  # an 11-digit My Number (leading zero lost)
    ws["G5"] = 1.25
    ws["H5"] = dt.datetime(2020, 1, 2, 3, 4, 5)
    second = wb.create_sheet("集計")
    second["A1"] = "件数"
    second["B1"] = 1
    return wb


def test_xlsx_sheets_rows_and_typed_cells() -> None:
    result = run("dir/名簿.xlsx", save(roster_workbook()))
    assert [u.location for u in result] == ["名簿.xlsx!R4介護認定者", "名簿.xlsx!集計"]
    table = result[0]
    assert isinstance(table, TableUnit) and table.part == "名簿.xlsx"
    rows = {r.number: r.cells for r in table.rows()}
    assert rows[1] == ["介護保険被保険者一覧"]  # title row above the header, row 3 empty
    assert 3 not in rows
    assert rows[4][:5] == [None, "被保険者番号", "氏名", "生年月日", "個人番号"]
    data = rows[5]
    assert data[0] is None and data[1] == "0000012345" and data[2] == "山田太郎"
    assert data[3] == dt.date(1945, 3, 2)
    assert data[4] == 123456789018 and type(data[4]) is int
    assert data[5] == 12345678901 and type(data[5]) is int
    assert data[6] == 1.25
    assert data[7] == dt.datetime(2020, 1, 2, 3, 4, 5)
    assert table.cell_location(5, 4) == "名簿.xlsx!R4介護認定者!E5"
    assert list(table.rows()) == list(table.rows())  # rows() can be read again


def _patch_styles(data: bytes, mapping: dict[str, str], date1904: bool = False) -> bytes:
    """Rewrite numFmtIds in styles.xml (dropping custom numFmts), like Excel ja-JP does."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            content = src.read(name)
            if name == "xl/styles.xml":
                text = re.sub(r"<numFmts.*?</numFmts>", "", content.decode())
                for old, new in mapping.items():
                    text = text.replace(f'numFmtId="{old}"', f'numFmtId="{new}"')
                content = text.encode()
            if name == "xl/workbook.xml" and date1904:
                content = content.replace(b"<workbookPr/>", b'<workbookPr date1904="1"/>')
            dst.writestr(name, content)
    return out.getvalue()


def test_japanese_era_builtin_formats_become_dates() -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["氏名", "生年月日", "交付日", "金額"])
    ws.append(["山田太郎", 16863, 43831, 16863])  # 1946-03-02 and 2020-01-01 as serials
    ws["B2"].number_format = "yyyy/mm/dd;@"
    ws["C2"].number_format = "yyyy/m/d;@"
    data = _patch_styles(save(wb), {"164": "27", "165": "57"})
    [table] = run("era.xlsx", data)
    cells = list(table.rows())[1].cells
    assert cells == ["山田太郎", dt.date(1946, 3, 2), dt.date(2020, 1, 1), 16863]


def test_era_format_in_1904_workbook() -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws["A1"] = 15401  # 1946-03-02 in the 1904 date system
    ws["A1"].number_format = "yyyy/mm/dd;@"
    data = _patch_styles(save(wb), {"164": "28"}, date1904=True)
    assert b'date1904="1"' in zipfile.ZipFile(io.BytesIO(data)).read("xl/workbook.xml")
    [table] = run("era1904.xlsx", data)
    assert next(table.rows()).cells == [dt.date(1946, 3, 2)]


def test_roster_extracts_every_row() -> None:
    """Every row of a 7,203-row roster is read (speed is measured by bench/, not here)."""
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("名簿")
    ws.append(["被保険者番号", "氏名", "生年月日", "性別", "住所", "要介護度"])
    for i in range(7203):
        ws.append([f"{i:010d}", f"山田{i}", dt.date(1940, 1, 1) + dt.timedelta(days=i),
                   "男", "宮崎県延岡市", "要介護1"])
    data = save(wb)
    count = sum(1 for unit in run("roster.xlsx", data) for _ in unit.rows())
    assert count == 7204


def test_encrypted_xlsx_is_encrypted_office() -> None:
    plain = io.BytesIO(save(roster_workbook()))
    encrypted = io.BytesIO()
    OOXMLFile(plain).encrypt("secret", encrypted)
    assert msoffcrypto.OfficeFile(io.BytesIO(encrypted.getvalue())).is_encrypted()
    result = run("名簿.xlsx", encrypted.getvalue())
    assert result == [Unscannable("名簿.xlsx", "encrypted_office", "EncryptedPackage stream")]


@pytest.mark.parametrize("name", ["名簿.xlsx", "通知.docx", "a.zip"])
def test_garbage_with_office_name_is_corrupt(name: str) -> None:
    garbage = bytes((i * 97 + 13) % 256 for i in range(5000))
    [unit] = run(name, garbage)
    assert isinstance(unit, Unscannable) and unit.reason == "corrupt" and unit.part == name


def test_zip_named_xlsx_without_workbook_is_corrupt_when_broken() -> None:
    data = save(roster_workbook())
    broken = data[: len(data) // 2]  # truncated: central directory gone
    [unit] = run("名簿.xlsx", broken)
    assert unit.reason == "corrupt"


def test_xlsx_with_broken_sheet_xml_is_corrupt() -> None:
    src = zipfile.ZipFile(io.BytesIO(save(roster_workbook())))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            content = src.read(name)
            if name == "xl/worksheets/sheet1.xml":
                content = content[: len(content) // 2]
            dst.writestr(name, content)
    result = run("名簿.xlsx", out.getvalue())
    assert any(isinstance(u, Unscannable) and u.reason == "corrupt" for u in result)


def test_too_many_cells_is_too_large() -> None:
    result = run("名簿.xlsx", save(roster_workbook()), Limits(max_cells=10))
    assert any(isinstance(u, Unscannable) and u.reason == "too_large" for u in result)


# --- docx ------------------------------------------------------------------------------------


def make_docx() -> bytes:
    document = docx.Document()
    document.add_paragraph("通知書")
    document.add_paragraph("山田太郎 様")
    para = document.add_paragraph("個人番号：")
    para.add_run("1234 5678 9018")
    table = document.add_table(rows=3, cols=3)
    for c, text in enumerate(["氏名", "生年月日", "備考"]):
        table.cell(0, c).text = text
    table.cell(1, 0).text = "佐藤花子"
    table.cell(1, 1).text = "昭和45年3月2日"
    merged = table.cell(1, 2).merge(table.cell(2, 2))
    merged.text = "縦結合"
    wide = table.cell(2, 0).merge(table.cell(2, 1))
    wide.text = "横結合"
    inner = table.cell(1, 0).add_table(rows=1, cols=2)
    inner.cell(0, 0).text = "内側"
    inner.cell(0, 1).text = "表"
    document.add_paragraph("以上")
    section = document.sections[0]
    section.header.paragraphs[0].text = "健康福祉部 介護保険課"
    section.footer.paragraphs[0].text = "1/1 ページ"
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def test_docx_paragraphs_tables_header_footer() -> None:
    result = run("通知.docx", make_docx())
    by_location = {u.location: u for u in result}
    body = by_location["通知.docx!body"]
    assert isinstance(body, TextUnit) and body.line_label == "p"
    assert body.text.split("\n") == ["通知書", "山田太郎 様", "個人番号：1234 5678 9018", "以上"]
    table = by_location["通知.docx!table1"]
    assert isinstance(table, TableUnit) and table.cell_style == "rc"
    rows = [r.cells for r in table.rows()]
    assert rows[0] == ["氏名", "生年月日", "備考"]
    assert rows[1] == ["佐藤花子", "昭和45年3月2日", "縦結合"]
    assert rows[2] == ["横結合", None, None]  # merged cells emitted once
    assert table.cell_location(2, 1) == "通知.docx!table1!r2c2"
    nested = by_location["通知.docx!table1.1"]
    assert [r.cells for r in nested.rows()] == [["内側", "表"]]
    assert by_location["通知.docx!header1"].text == "健康福祉部 介護保険課"
    assert by_location["通知.docx!footer1"].text == "1/1 ページ"
    assert all(u.part == "通知.docx" for u in result)


def test_docm_content_type_is_read() -> None:
    src = zipfile.ZipFile(io.BytesIO(make_docx()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            content = src.read(name)
            if name == "[Content_Types].xml":
                content = content.replace(
                    b"application/vnd.openxmlformats-officedocument.wordprocessingml."
                    b"document.main+xml",
                    b"application/vnd.ms-word.document.macroEnabled.main+xml",
                )
            dst.writestr(name, content)
    result = run("通知.docm", out.getvalue())
    assert any(u.location == "通知.docm!body" and "以上" in u.text for u in result)
