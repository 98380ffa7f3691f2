"""Office internals: data placed only in a corner of a docx/xlsx is still found.

Each case hides a seeded roster in exactly one place (a tracked insertion, deleted
text, a content control, a footnote, an embedded chunk, a cell comment ...); the
scan must count exactly those people and hold the file.
"""

from __future__ import annotations

import io
import random
import re
import subprocess
import sys
import zipfile

import openpyxl
import pytest

from dlp_gateway.extract.files import extract_file
from dlp_gateway.extract.units import Limits, TableUnit, TextUnit, Unscannable
from tests.officebuilders import (
    docx_package,
    glossary_xml,
    para,
    person_line,
    rewrite_members,
    roster_xlsx,
    row_xml,
    run,
    story_xml,
    table_xml,
)
from tests.roster import HEADER, Person, people, roster_csv, roster_html, scanner

CT = "application/vnd.openxmlformats-officedocument.wordprocessingml."
INS = '<w:ins w:id="{i}" w:author="担当" w:date="2024-04-01T00:00:00Z">{x}</w:ins>'
DEL = '<w:del w:id="{i}" w:author="担当" w:date="2024-04-01T00:00:00Z">{x}</w:del>'


def _deltext(text: str) -> str:
    return f'<w:r><w:delText xml:space="preserve">{text}</w:delText></w:r>'


def _fld_complex(text: str) -> str:
    return ('<w:r><w:fldChar w:fldCharType="begin"/></w:r>'
            '<w:r><w:instrText xml:space="preserve"> MERGEFIELD 名簿 </w:instrText></w:r>'
            '<w:r><w:fldChar w:fldCharType="separate"/></w:r>' + run(text) +
            '<w:r><w:fldChar w:fldCharType="end"/></w:r>')


def _body_only(kind: str, persons: list[Person]) -> tuple[str, dict]:
    """Body XML (and parts) that hold ``persons`` only in the place named ``kind``."""
    lines = [person_line(p) for p in persons]
    intro = para(run("下記のとおり。"))
    wrap = {
        "ins": lambda t, i: para(INS.format(i=i, x=run(t))),
        "del": lambda t, i: para(DEL.format(i=i, x=_deltext(t))),
        "inline_sdt": lambda t, i: para(f"<w:sdt><w:sdtPr/><w:sdtContent>{run(t)}"
                                        "</w:sdtContent></w:sdt>"),
        "block_sdt": lambda t, i: f"<w:sdt><w:sdtPr/><w:sdtContent>{para(run(t))}"
                                  "</w:sdtContent></w:sdt>",
        "smarttag": lambda t, i: para(f'<w:smartTag w:uri="urn:x" w:element="PersonName">'
                                      f"{run(t)}</w:smartTag>"),
        "customxml": lambda t, i: para(f'<w:customXml w:element="person">{run(t)}'
                                       "</w:customXml>"),
        "fldsimple": lambda t, i: para(f'<w:fldSimple w:instr=" MERGEFIELD 名簿 ">{run(t)}'
                                       "</w:fldSimple>"),
        "fldcomplex": lambda t, i: para(_fld_complex(t)),
        "hyperlink_in_ins": lambda t, i: para(INS.format(
            i=i, x=f'<w:hyperlink w:anchor="a">{run(t)}</w:hyperlink>')),
    }
    if kind in wrap:
        return intro + "".join(wrap[kind](t, i) for i, t in enumerate(lines, 1)), {}
    if kind == "sdt_table_rows":
        rows = "".join(row_xml([p.my_number, p.name, p.birth_text]) for p in persons)
        return intro + table_xml(list(HEADER), f"<w:sdt><w:sdtPr/><w:sdtContent>{rows}"
                                 "</w:sdtContent></w:sdt>"), {}
    if kind in ("footnotes", "endnotes", "comments"):
        child = kind[:-1]
        rel = kind
        return intro, {f"{kind}.xml": (story_xml(kind, child, lines), rel,
                                       f"{CT}{kind}+xml")}
    if kind == "glossary":
        return intro, {"glossary/document.xml": (glossary_xml(lines), "glossaryDocument",
                                                 f"{CT}document.glossary+xml")}
    if kind == "altchunk_html":
        chunk = roster_html(persons).encode()
        return intro + '<w:altChunk r:id="{rid:afchunk.htm}"/>', {
            "afchunk.htm": (chunk, "aFChunk", "text/html")}
    if kind == "embedded_xlsx":
        return intro, {"embeddings/Microsoft_Excel_Worksheet.xlsx": (
            roster_xlsx(persons), "package",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")}
    raise ValueError(kind)


DOCX_PLACES = ["ins", "del", "inline_sdt", "block_sdt", "smarttag", "customxml",
               "fldsimple", "fldcomplex", "hyperlink_in_ins", "sdt_table_rows",
               "footnotes", "endnotes", "comments", "glossary", "altchunk_html",
               "embedded_xlsx"]


@pytest.mark.parametrize("kind", DOCX_PLACES)
def test_docx_corner_is_read(kind: str) -> None:
    rng = random.Random(kind)
    persons = people(rng, rng.randrange(2, 6))
    body, parts = _body_only(kind, persons)
    data = docx_package(body.replace("<w:body>", ""), parts)
    result = scanner().scan_file("通知.docx", data)
    assert not result.unscannable, result.unscannable
    assert result.counts["my_number"] == len(persons), kind
    assert result.counts["records"] == len(persons), kind
    assert result.verdict.action == "hold"


def test_extra_member_and_nested_package_are_read() -> None:
    rng = random.Random(3)
    a, b = people(rng, 2), people(rng, 3)
    data = docx_package(para(run("本文")), extra_members={
        "data/名簿.csv": roster_csv(a).encode("cp932"),
        "word/embeddings/inner.zip": _zip({"名簿.txt": "\n".join(
            person_line(p) for p in b).encode()}),
    })
    result = scanner().scan_file("通知.docx", data)
    assert result.counts["my_number"] == 5
    parts = {f.part for f in result.findings}
    assert parts == {"通知.docx/data/名簿.csv", "通知.docx/word/embeddings/inner.zip/名簿.txt"}


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    return buf.getvalue()


def test_deleted_text_is_set_apart_from_its_neighbours() -> None:
    body = para(run("氏名 山田") + DEL.format(i=1, x=_deltext("太郎")) + run("花子"))
    units = list(extract_file("a.docx", docx_package(body), Limits()))
    [text] = [u for u in units if isinstance(u, TextUnit) and u.location == "a.docx!body"]
    assert text.text == "氏名 山田 太郎 花子"


def test_sdt_rows_keep_table_structure() -> None:
    rng = random.Random(1)
    persons = people(rng, 3)
    body, _ = _body_only("sdt_table_rows", persons)
    [table] = [u for u in extract_file("a.docx", docx_package(body), Limits())
               if isinstance(u, TableUnit)]
    rows = [r.cells for r in table.rows()]
    assert rows[0] == list(HEADER)
    assert rows[1:] == [[p.my_number, p.name, p.birth_text] for p in persons]


# --- xlsx ------------------------------------------------------------------------------------


def test_xlsx_legacy_cell_comments_are_read() -> None:
    rng = random.Random(4)
    persons = people(rng, 3)
    data = roster_xlsx(persons, comments=True)
    result = scanner().scan_file("名簿.xlsx", data)
    assert result.counts["my_number"] == 3
    assert result.counts["records"] == 3
    assert all("comment" in f.location for f in result.findings)


def test_xlsx_threaded_comments_are_read() -> None:
    rng = random.Random(5)
    persons = people(rng, 2)
    comments = "".join(
        f'<threadedComment ref="A{i}" dT="2024-04-01T00:00:00" personId="{{0}}" '
        f'id="{{{i:08d}-0000-0000-0000-000000000000}}"><text>{person_line(p)}</text>'
        "</threadedComment>" for i, p in enumerate(persons, 2))
    xml = ('<?xml version="1.0" encoding="UTF-8"?><ThreadedComments xmlns="http://schemas.'
           f'microsoft.com/office/spreadsheetml/2018/threadedcomments">{comments}'
           "</ThreadedComments>").encode()
    base = _plain_xlsx()
    data = rewrite_members(base, {}, {"xl/threadedComments/threadedComment1.xml": xml})
    result = scanner().scan_file("名簿.xlsx", data)
    assert result.counts["my_number"] == 2
    assert result.verdict.action == "hold"


def _plain_xlsx() -> bytes:
    wb = openpyxl.Workbook()
    wb.active["A1"] = "会議室予約"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_xlsx_sheet_stored_in_utf16_is_read() -> None:
    rng = random.Random(6)
    persons = people(rng, 4)
    data = roster_xlsx(persons)
    sheet = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml")
    text = sheet.decode("utf-8").replace('encoding="UTF-8"', 'encoding="UTF-16"')
    if not text.startswith("<?xml"):
        text = '<?xml version="1.0" encoding="UTF-16"?>' + text
    data = rewrite_members(data, {"xl/worksheets/sheet1.xml": text.encode("utf-16")})
    result = scanner().scan_file("名簿.xlsx", data)
    assert not result.unscannable, result.unscannable
    assert result.counts["my_number"] == 4
    assert result.counts["records"] == 4


@pytest.mark.parametrize("where", ["cells", "dimension"])
def test_far_apart_cells_are_too_large_not_a_crash(where: str) -> None:
    """A 5 KB xlsx spanning A1:XFD1048576: held as too_large, the process survives."""
    wb = openpyxl.Workbook()
    wb.active["A1"] = "個人番号"
    wb.active["B2"] = "x"
    buf = io.BytesIO()
    wb.save(buf)
    data = buf.getvalue()
    sheet = zipfile.ZipFile(io.BytesIO(data)).read("xl/worksheets/sheet1.xml")
    if where == "cells":
        sheet = sheet.replace(b'r="B2"', b'r="XFD1048576"').replace(b'<row r="2"',
                                                                      b'<row r="1048576"')
    else:
        sheet = re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1:XFD1048576"', sheet)
    data = rewrite_members(data, {"xl/worksheets/sheet1.xml": sheet})
    assert len(data) < 8192
    code = ("import sys; from tests.roster import scanner; "
            "r = scanner().scan_file('big.xlsx', sys.stdin.buffer.read()); "
            "print(r.verdict.action, [u.reason for u in r.unscannable])")
    proc = subprocess.run([sys.executable, "-c", code], input=data, capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.decode().split() == ["hold", "['too_large']"]


def test_binary_workbook_reader_crash_is_corrupt_in_a_child() -> None:
    """Garbage that claims to be xls goes through the isolated reader and is held."""
    import olefile

    data = olefile.MAGIC + bytes(4096)
    result = list(extract_file("名簿.xls", data, Limits()))
    assert result and all(isinstance(u, Unscannable) for u in result)
    assert {u.reason for u in result} <= {"corrupt"}


NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def _shared_strings_xlsx(persons: list[Person], target: str, member: str) -> bytes:
    """A workbook whose cells are all shared strings (rich text runs with phonetic
    guides among them), the table stored at ``member`` and referenced as ``target``."""
    strings = ["個人番号", "氏名", "生年月日"]
    rows = ['<row r="1">' + "".join(f'<c r="{c}1" t="s"><v>{i}</v></c>'
                                    for i, c in enumerate("ABC")) + "</row>"]
    items = [f"<si><t>{s}</t></si>" for s in strings]
    for n, p in enumerate(persons, 2):
        base = len(items)
        items += [f"<si><t>{p.my_number}</t></si>",
                  f"<si><r><t>{p.name[:2]}</t></r><r><rPr><b/></rPr><t>{p.name[2:]}</t></r>"
                  '<rPh sb="0" eb="2"><t>ヨミ</t></rPh><phoneticPr fontId="1"/></si>',
                  f"<si><t>{p.birth_text}</t></si>"]
        rows.append(f'<row r="{n}">' + "".join(
            f'<c r="{c}{n}" t="s"><v>{base + i}</v></c>' for i, c in enumerate("ABC")) + "</row>")
    sheet = f'<worksheet xmlns="{NS_MAIN}"><sheetData>{"".join(rows)}</sheetData></worksheet>'
    sst = f'<sst xmlns="{NS_MAIN}" count="{len(items)}">{"".join(items)}</sst>'
    base_xlsx = _plain_xlsx()
    z = zipfile.ZipFile(io.BytesIO(base_xlsx))
    rels = z.read("xl/_rels/workbook.xml.rels").decode().replace(
        "</Relationships>",
        '<Relationship Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        f'relationships/sharedStrings" Target="{target}" Id="rId99"/></Relationships>')
    types = z.read("[Content_Types].xml").decode().replace(
        "</Types>", f'<Override PartName="/{member}" ContentType="application/vnd.openxml'
        'formats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
    return rewrite_members(base_xlsx, {
        "xl/worksheets/sheet1.xml": sheet.encode(),
        "xl/_rels/workbook.xml.rels": rels.encode(),
        "[Content_Types].xml": types.encode(),
    }, {member: sst.encode()})


@pytest.mark.parametrize(("target", "member"), [
    ("sharedStrings.xml", "xl/sharedStrings.xml"),
    ("/xl/strings/table1.xml", "xl/strings/table1.xml"),
    ("SharedStrings.xml", "xl/SharedStrings.xml"),
])
def test_shared_strings_oddities_are_read(target: str, member: str) -> None:
    rng = random.Random(member)
    persons = people(rng, 4)
    result = scanner().scan_file("名簿.xlsx", _shared_strings_xlsx(persons, target, member))
    assert not result.unscannable, result.unscannable
    assert result.counts["my_number"] == 4
    assert result.counts["name"] == 4  # rich-text runs joined, phonetic guide left out
    assert result.counts["records"] == 4


def test_embedded_package_past_the_depth_limit_is_too_deep_plain_docx_is_not() -> None:
    rng = random.Random(8)
    persons = people(rng, 2)
    plain = docx_package(para(run("本文")))
    nested = docx_package(para(run("本文")), extra_members={
        "word/embeddings/inner.xlsx": roster_xlsx(persons)})
    limits = Limits(max_depth=0)
    assert not [u for u in extract_file("a.docx", plain, limits) if isinstance(u, Unscannable)]
    held = [u for u in extract_file("a.docx", nested, limits) if isinstance(u, Unscannable)]
    assert [(u.part, u.reason) for u in held] == [("a.docx/word/embeddings/inner.xlsx",
                                                   "too_deep")]
