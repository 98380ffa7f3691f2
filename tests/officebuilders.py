"""Real Office packages built in code, with data placed in the corners readers miss.

``docx_package`` starts from a document saved by python-docx and swaps in a body
and extra parts (with their relationships and content types), so Word's own
structure stays intact. ``xlsx_package`` does the same for an openpyxl workbook.
"""

from __future__ import annotations

import io
import re
import zipfile
from xml.sax.saxutils import escape

import docx
import openpyxl

from tests.roster import Person

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
R_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"


def person_line(p: Person) -> str:
    return escape(f"個人番号 {p.my_number} 氏名 {p.name} 生年月日 {p.birth_text}")


def run(text: str) -> str:
    return f'<w:r><w:t xml:space="preserve">{text}</w:t></w:r>'


def para(inner: str) -> str:
    return f"<w:p>{inner}</w:p>"


def table_xml(header: list[str], rows_xml: str) -> str:
    head = "".join(f"<w:tc><w:p>{run(escape(h))}</w:p></w:tc>" for h in header)
    return f"<w:tbl><w:tblPr/><w:tr>{head}</w:tr>{rows_xml}</w:tbl>"


def row_xml(cells: list[str]) -> str:
    return "<w:tr>" + "".join(f"<w:tc><w:p>{run(escape(c))}</w:p></w:tc>" for c in cells) \
        + "</w:tr>"


def story_xml(root: str, child: str, paragraphs: list[str]) -> bytes:
    """A footnotes/endnotes/comments part: one child element holding the paragraphs."""
    extra = ' w:author="担当" w:initials="T"' if child == "comment" else ""
    body = "".join(para(run(t)) for t in paragraphs)
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            f'<w:{root} xmlns:w="{W_NS}"><w:{child} w:id="1"{extra}>{body}</w:{child}>'
            f"</w:{root}>").encode()


def glossary_xml(paragraphs: list[str]) -> bytes:
    body = "".join(para(run(t)) for t in paragraphs)
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            f'<w:glossaryDocument xmlns:w="{W_NS}"><w:docParts><w:docPart><w:docPartPr>'
            f'<w:name w:val="名簿"/></w:docPartPr><w:docPartBody>{body}</w:docPartBody>'
            "</w:docPart></w:docParts></w:glossaryDocument>").encode()


def docx_package(
    body_xml: str,
    parts: dict[str, tuple[bytes, str, str]] | None = None,
    extra_members: dict[str, bytes] | None = None,
) -> bytes:
    """A docx whose body is ``body_xml``; ``parts`` maps a part name (under word/) to
    (content, relationship type suffix, content type); the body may refer to a part's
    relationship id as ``{rid:NAME}``."""
    base = io.BytesIO()
    docx.Document().save(base)
    src = zipfile.ZipFile(base)
    parts = parts or {}
    rids = {name: f"rIdX{i}" for i, name in enumerate(parts, 1)}
    for name, rid in rids.items():
        body_xml = body_xml.replace("{rid:" + name + "}", rid)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "word/document.xml":
                content = re.sub(rb"<w:body>.*?(<w:sectPr)", b"<w:body>" +
                                 body_xml.encode() + rb"\1", content, flags=re.S)
            elif info.filename == "word/_rels/document.xml.rels":
                rels = "".join(
                    f'<Relationship Id="{rids[n]}" Type="{REL}{kind}" Target="{n}"/>'
                    for n, (_c, kind, _t) in parts.items()
                )
                content = content.replace(b"</Relationships>", rels.encode() +
                                          b"</Relationships>")
            elif info.filename == "[Content_Types].xml":
                overrides = "".join(
                    f'<Override PartName="/word/{n}" ContentType="{ctype}"/>'
                    for n, (_c, _k, ctype) in parts.items()
                )
                content = content.replace(b"</Types>", overrides.encode() + b"</Types>")
            dst.writestr(info, content)
        for name, (content, _kind, _ctype) in parts.items():
            dst.writestr(f"word/{name}", content)
        for name, content in (extra_members or {}).items():
            dst.writestr(name, content)
    return out.getvalue()


def roster_xlsx(persons: list[Person], comments: bool = False) -> bytes:
    from openpyxl.comments import Comment

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "名簿"
    ws.append(["個人番号", "氏名", "生年月日"])
    for p in persons:
        if comments:
            ws.append(["", "", ""])
            ws.cell(ws.max_row, 1).comment = Comment(
                f"個人番号 {p.my_number} 氏名 {p.name} 生年月日 {p.birth_text}", "担当")
        else:
            ws.append([p.my_number, p.name, p.birth])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def rewrite_members(data: bytes, change: dict[str, bytes | None],
                    add: dict[str, bytes] | None = None) -> bytes:
    """A copy of the zip ``data`` with members replaced (bytes) or removed (None)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename in change:
                if change[info.filename] is not None:
                    dst.writestr(info.filename, change[info.filename])
                continue
            dst.writestr(info, src.read(info.filename))
        for name, content in (add or {}).items():
            dst.writestr(name, content)
    return out.getvalue()
