"""Tables outside a document's body are read as tables (issue 8, tester class U2).

A roster in a docx header or footer, in a text box, on a pptx slide, or kept only in
an xlsx pivot cache (source sheet deleted) is one person per row, exactly as the
same table in the docx body. Files are built in code: docx headers with python-docx,
text boxes, slides and pivot caches as raw XML. Column order (生年月日 first too),
row count (3-12) and a 個人番号 column vary by seed; the seed is in the test id.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import random
import zipfile
from xml.sax.saxutils import escape

import docx
import pytest

from dlp_gateway.extract.files import extract_file
from dlp_gateway.extract.units import Limits, TableUnit, TextUnit
from dlp_gateway.scan import Scanner
from tests.filebuilders import GIVEN, SURNAMES
from tests.gen.values import random_my_number

N = int(os.environ.get("DLP_FUZZ_N", "0")) or 6
SEEDS = list(range(N))
PLACES = ["headers", "footer", "textbox", "pptx", "pivot"]


def roster(seed: int) -> tuple[list[list[str]], int, bool]:
    """Header row + 3..12 people; columns shuffled; a My Number column on odd seeds."""
    rng = random.Random(seed)
    n = rng.randint(3, 12)
    with_mn = seed % 2 == 1
    columns = ["氏名", "生年月日", "住所"] + (["個人番号"] if with_mn else [])
    rng.shuffle(columns)
    if seed % 3 == 0:  # 生年月日 first: the case that used to give nothing at all
        columns.remove("生年月日")
        columns.insert(0, "生年月日")
    rows = [columns]
    names: set[str] = set()
    while len(rows) <= n:
        name = f"{rng.choice(SURNAMES)} {rng.choice(GIVEN)}"
        if name in names:
            continue
        names.add(name)
        born = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(365 * 60))
        value = {"氏名": name, "生年月日": born.strftime("%Y/%m/%d"),
                 "住所": f"千葉市中央区{rng.randint(1, 9)}-{rng.randint(1, 30)}",
                 "個人番号": random_my_number(rng)}
        rows.append([value[c] for c in columns])
    return rows, n, with_mn


# --- builders -------------------------------------------------------------------------

def docx_header_table(rows: list[list[str]], footer: bool = False) -> bytes:
    document = docx.Document()
    document.add_paragraph("研修のご案内です。")
    section = document.sections[0]
    story = section.footer if footer else section.header
    story.paragraphs[0].text = "介護保険課"
    table = story.add_table(rows=len(rows), cols=len(rows[0]), width=section.page_width)
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


_W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def _w_table(rows: list[list[str]]) -> str:
    cells = "".join(
        "<w:tr>" + "".join(f"<w:tc><w:p><w:r><w:t>{escape(v)}</w:t></w:r></w:p></w:tc>"
                           for v in row) + "</w:tr>"
        for row in rows)
    return f"<w:tbl><w:tblPr/>{cells}</w:tbl>"


def docx_textbox_table(rows: list[list[str]]) -> bytes:
    """A VML text box (w:pict/v:shape/v:textbox/w:txbxContent) holding a table."""
    box = (f'<w:p><w:r><w:pict><v:shape style="width:400pt;height:300pt"><v:textbox>'
           f"<w:txbxContent><w:p><w:r><w:t>対象者一覧</w:t></w:r></w:p>{_w_table(rows)}"
           f"<w:p/></w:txbxContent></v:textbox></v:shape></w:pict></w:r></w:p>")
    document = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                f'<w:document xmlns:w="{_W_NS}" xmlns:v="urn:schemas-microsoft-com:vml">'
                f"<w:body><w:p><w:r><w:t>資料を送ります。</w:t></w:r></w:p>{box}"
                f"<w:sectPr/></w:body></w:document>")
    return _zip({
        "[Content_Types].xml": _types("/word/document.xml", "application/vnd."
                                      "openxmlformats-officedocument.wordprocessingml."
                                      "document.main+xml"),
        "_rels/.rels": _rels("word/document.xml", "officeDocument"),
        "word/document.xml": document,
    })


_A_NS = "http://schemas.openxmlformats.org/drawingml/2006/main"
_P_NS = "http://schemas.openxmlformats.org/presentationml/2006/main"


def pptx_table(rows: list[list[str]]) -> bytes:
    """One slide: a title shape and a graphicFrame with an a:tbl."""
    grid = "".join('<a:gridCol w="2000000"/>' for _ in rows[0])
    trs = "".join(
        '<a:tr h="300000">' + "".join(
            f"<a:tc><a:txBody><a:bodyPr/><a:p><a:r><a:t>{escape(v)}</a:t></a:r></a:p>"
            f"</a:txBody></a:tc>" for v in row) + "</a:tr>"
        for row in rows)
    slide = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
             f'<p:sld xmlns:a="{_A_NS}" xmlns:p="{_P_NS}"><p:cSld><p:spTree>'
             f"<p:sp><p:txBody><a:bodyPr/><a:p><a:r><a:t>訪問予定者</a:t></a:r></a:p>"
             f"</p:txBody></p:sp><p:graphicFrame><a:graphic><a:graphicData>"
             f"<a:tbl><a:tblGrid>{grid}</a:tblGrid>{trs}</a:tbl>"
             f"</a:graphicData></a:graphic></p:graphicFrame></p:spTree></p:cSld></p:sld>")
    presentation = f'<p:presentation xmlns:p="{_P_NS}"/>'
    return _zip({
        "[Content_Types].xml": _types("/ppt/presentation.xml", "application/vnd."
                                      "openxmlformats-officedocument.presentationml."
                                      "presentation.main+xml"),
        "_rels/.rels": _rels("ppt/presentation.xml", "officeDocument"),
        "ppt/presentation.xml": presentation,
        "ppt/slides/slide1.xml": slide,
    })


_X_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def xlsx_pivot_cache(rows: list[list[str]]) -> bytes:
    """A workbook whose only copy of the roster is a pivot cache: the source sheet
    was deleted; 生年月日 is cached as dates, names as shared items (x indexes)."""
    header, data = rows[0], rows[1:]
    fields, records = [], ["<r>" for _ in data]
    for c, name in enumerate(header):
        if name == "生年月日":
            items = "".join(f'<d v="{r[c].replace("/", "-")}T00:00:00"/>' for r in data)
            fields.append(f'<cacheField name="{name}" numFmtId="14"><sharedItems '
                          f'containsDate="1">{items}</sharedItems></cacheField>')
            records = [rec + f'<x v="{i}"/>' for i, rec in enumerate(records)]
        elif name == "個人番号":  # inline values, not shared items
            fields.append(f'<cacheField name="{name}"><sharedItems/></cacheField>')
            records = [rec + f'<s v="{data[i][c]}"/>' for i, rec in enumerate(records)]
        else:
            distinct = list(dict.fromkeys(r[c] for r in data))
            items = "".join(f'<s v="{escape(v)}"/>' for v in distinct)
            fields.append(f'<cacheField name="{name}"><sharedItems>{items}'
                          f"</sharedItems></cacheField>")
            records = [rec + f'<x v="{distinct.index(data[i][c])}"/>'
                       for i, rec in enumerate(records)]
    definition = (f'<pivotCacheDefinition xmlns="{_X_NS}" recordCount="{len(data)}">'
                  f'<cacheSource type="worksheet"><worksheetSource ref="A1:D20" '
                  f'sheet="名簿"/></cacheSource><cacheFields count="{len(fields)}">'
                  f'{"".join(fields)}</cacheFields></pivotCacheDefinition>')
    cache_records = (f'<pivotCacheRecords xmlns="{_X_NS}" count="{len(data)}">'
                     f'{"".join(rec + "</r>" for rec in records)}</pivotCacheRecords>')
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    workbook = (f'<workbook xmlns="{_X_NS}" xmlns:r="{rel}"><sheets>'
                f'<sheet name="集計" sheetId="2" r:id="rId1"/></sheets>'
                f'<pivotCaches><pivotCache cacheId="1" r:id="rId2"/></pivotCaches></workbook>')
    sheet = (f'<worksheet xmlns="{_X_NS}"><sheetData><row r="1"><c r="A1" t="inlineStr">'
             f"<is><t>集計表</t></is></c></row></sheetData></worksheet>")
    wb_rels = ('<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
               'relationships"><Relationship Id="rId1" Type="' + rel + '/worksheet" '
               'Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="' + rel +
               '/pivotCacheDefinition" Target="pivotCache/pivotCacheDefinition1.xml"/>'
               "</Relationships>")
    def_rels = ('<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
                'relationships"><Relationship Id="rId1" Type="' + rel +
                '/pivotCacheRecords" Target="pivotCacheRecords1.xml"/></Relationships>')
    return _zip({
        "[Content_Types].xml": _types("/xl/workbook.xml", "application/vnd.openxmlformats-"
                                      "officedocument.spreadsheetml.sheet.main+xml"),
        "_rels/.rels": _rels("xl/workbook.xml", "officeDocument"),
        "xl/workbook.xml": workbook,
        "xl/_rels/workbook.xml.rels": wb_rels,
        "xl/worksheets/sheet1.xml": sheet,
        "xl/pivotCache/pivotCacheDefinition1.xml": definition,
        "xl/pivotCache/_rels/pivotCacheDefinition1.xml.rels": def_rels,
        "xl/pivotCache/pivotCacheRecords1.xml": cache_records,
    })


def _types(main: str, content_type: str) -> str:
    return ('<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-'
            'package.relationships+xml"/><Default Extension="xml" ContentType='
            f'"application/xml"/><Override PartName="{main}" ContentType="{content_type}"/>'
            "</Types>")


def _rels(target: str, kind: str) -> str:
    return ('<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
            'relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/'
            f'officeDocument/2006/relationships/{kind}" Target="{target}"/></Relationships>')


def _zip(members: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in members.items():
            zf.writestr(name, text.encode("utf-8"))
    return out.getvalue()


BUILD = {
    "headers": ("通知.docx", lambda rows: docx_header_table(rows)),
    "footer": ("通知.docx", lambda rows: docx_header_table(rows, footer=True)),
    "textbox": ("資料.docx", docx_textbox_table),
    "pptx": ("説明会.pptx", pptx_table),
    "pivot": ("集計.xlsx", xlsx_pivot_cache),
}


# --- tests ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("seed", SEEDS)
def test_hidden_table_counts_one_person_per_row(place: str, seed: int,
                                                scanner: Scanner) -> None:
    rows, n, with_mn = roster(seed)
    filename, build = BUILD[place]
    result = scanner.scan_file(filename, build(rows))
    got = {k: result.counts[k] for k in ("records", "birth_date", "my_number")}
    want = {"records": n, "birth_date": n, "my_number": n if with_mn else 0}
    assert got == want, f"seed={seed} place={place} columns={rows[0]}"
    expected = "hold" if with_mn or n >= 10 else "encrypt"
    assert result.verdict.action == expected, f"seed={seed} place={place} n={n}"
    assert not result.unscannable


@pytest.mark.parametrize("place", PLACES)
def test_table_cells_are_not_also_free_text(place: str) -> None:
    """The table is a TableUnit with one row per person; its cells are in no TextUnit,
    while the text around it (a title, the header's other paragraph) still is."""
    rows, n, _mn = roster(3)
    filename, build = BUILD[place]
    units = list(extract_file(filename, build(rows), Limits()))
    tables = [u for u in units if isinstance(u, TableUnit)
              and any(rows[0][0] in (c or "") for r in u.rows() for c in r.cells)]
    assert len(tables) == 1, [u.location for u in units]
    assert next(tables[0].rows()).cells == rows[0]
    assert len(list(tables[0].rows())) == n + 1
    text = "\n".join(u.text for u in units if isinstance(u, TextUnit))
    name_column = rows[0].index("氏名")
    assert not any(row[name_column] in text for row in rows[1:]), text
    location = tables[0].location
    assert {"headers": "!header1!table1", "footer": "!footer1!table1",
            "textbox": "!textbox!table1", "pptx": "!slide1!table1",
            "pivot": "!pivotCacheDefinition1"}[place] in location, location
    surrounding = {"headers": "介護保険課", "footer": "介護保険課", "textbox": "対象者一覧",
                   "pptx": "訪問予定者", "pivot": None}[place]
    if surrounding:
        assert surrounding in text


def test_two_column_header_table_of_staff_passes(scanner: Scanner) -> None:
    """A header table of staff names and 作成日 is not a roster of people."""
    rows = [["担当者", "作成日"], ["山田 太郎", "2024/04/01"], ["佐藤 花子", "2024/04/02"]]
    for footer in (False, True):
        result = scanner.scan_file("通知.docx", docx_header_table(rows, footer=footer))
        assert result.verdict.action == "pass", result.to_json()
        assert result.counts["records"] == 0
        assert result.counts["birth_date"] == 0


def test_same_header_on_every_page_type_is_read_once(scanner: Scanner) -> None:
    """A header repeated for the first page is one table, not two."""
    rows, n, _mn = roster(4)
    document = docx.Document(io.BytesIO(docx_header_table(rows)))
    section = document.sections[0]
    section.different_first_page_header_footer = True
    first = section.first_page_header
    table = first.add_table(rows=len(rows), cols=len(rows[0]), width=section.page_width)
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    first.paragraphs[0].text = "介護保険課"
    out = io.BytesIO()
    document.save(out)
    result = scanner.scan_file("通知.docx", out.getvalue())
    assert result.counts["records"] == n


def _with_source_sheet(data: bytes, rows: list[list[str]]) -> bytes:
    """The pivot workbook with its source sheet 名簿 still there, holding the roster."""
    sheet = (f'<worksheet xmlns="{_X_NS}"><sheetData>' + "".join(
        f'<row r="{r + 1}">' + "".join(
            f'<c r="{chr(65 + c)}{r + 1}" t="inlineStr"><is><t>{escape(v)}</t></is></c>'
            for c, v in enumerate(row)) + "</row>" for r, row in enumerate(rows))
        + "</sheetData></worksheet>")
    source = zipfile.ZipFile(io.BytesIO(data))
    members = {i.filename: source.read(i).decode("utf-8") for i in source.infolist()}
    members["xl/worksheets/sheet1.xml"] = sheet
    members["xl/workbook.xml"] = members["xl/workbook.xml"].replace("集計", "名簿")
    return _zip(members)


@pytest.mark.parametrize("seed", SEEDS)
def test_pivot_cache_of_a_present_sheet_is_not_counted_twice(seed: int,
                                                             scanner: Scanner) -> None:
    rows, n, with_mn = roster(seed)
    result = scanner.scan_file("集計.xlsx", _with_source_sheet(xlsx_pivot_cache(rows), rows))
    assert result.counts["records"] == n, f"seed={seed}"
    assert result.counts["birth_date"] == n, f"seed={seed}"
    assert result.verdict.action == ("hold" if with_mn or n >= 10 else "encrypt")


@pytest.mark.parametrize("seed", SEEDS)
def test_pivot_cache_keeps_people_deleted_from_its_sheet(seed: int, scanner: Scanner) -> None:
    """Rows deleted from the source sheet after the last refresh stay in the cache:
    the reading with more people (the cache) is the one counted."""
    rows, n, _mn = roster(seed)
    data = _with_source_sheet(xlsx_pivot_cache(rows), rows[:2])
    result = scanner.scan_file("集計.xlsx", data)
    assert result.counts["records"] == n, f"seed={seed}"
