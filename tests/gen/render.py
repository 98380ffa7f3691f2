"""Sheets -> file bytes (xlsx, xls, csv in four encodings, docx, html, pdf) and mails."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import random
import zipfile
from email.message import EmailMessage
from email.policy import default as default_policy

from . import names, values
from .grid import Block, Cell, Sheet, to_halfwidth_kana

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
CSV_ENCODINGS = {
    "csv_utf8": "utf-8",
    "csv_utf8sig": "utf-8-sig",
    "csv_cp932": "cp932",
    "csv_eucjp": "euc_jp",
}


def text_of(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime | dt.date):
        return f"{value.year}/{value.month:02d}/{value.day:02d}"
    return str(value)


def render_xlsx(sheets: list[Sheet]) -> bytes:
    import openpyxl

    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for sheet in sheets:
        ws = wb.create_sheet(sheet.name)
        for r0, c0, block in sheet.placed:
            for r, row in enumerate(block.rows):
                for c, value in enumerate(row):
                    if value is None:
                        continue
                    cell = ws.cell(row=r0 + r + 1, column=c0 + c + 1, value=value)
                    if isinstance(value, dt.date):
                        cell.number_format = block.date_format
            for a, b, y, z in _merges(block):
                ws.merge_cells(
                    start_row=r0 + a + 1,
                    start_column=c0 + b + 1,
                    end_row=r0 + y + 1,
                    end_column=c0 + z + 1,
                )
    buf = io.BytesIO()
    wb.save(buf)
    return _builtin_era_formats(buf.getvalue())


def _builtin_era_formats(data: bytes) -> bytes:
    """Rewrite the marker era format into built-in numFmtId 57, as Japanese Excel saves it."""
    import re
    import zipfile

    from .build import BUILTIN_ERA_FORMAT

    src = zipfile.ZipFile(io.BytesIO(data))
    styles = src.read("xl/styles.xml").decode("utf-8")
    code = html.escape(BUILTIN_ERA_FORMAT, quote=True)
    match = re.search(r'<numFmt numFmtId="(\d+)" formatCode="' + re.escape(code) + '"/>', styles)
    if not match:
        return data
    styles = styles.replace(match.group(0), "")
    styles = styles.replace(f'numFmtId="{match.group(1)}"', 'numFmtId="57"')
    count = styles.count("<numFmt ")
    styles = re.sub(r'<numFmts count="\d+">', f'<numFmts count="{count}">', styles)
    styles = styles.replace(f'<numFmts count="{count}"></numFmts>', "")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            body = styles.encode("utf-8") if item.filename == "xl/styles.xml" else src.read(item)
            dst.writestr(item, body)
    return out.getvalue()


def render_xls(sheets: list[Sheet]) -> bytes:
    import xlwt

    wb = xlwt.Workbook(encoding="utf-8")
    for sheet in sheets:
        ws = wb.add_sheet(sheet.name)
        for r0, c0, block in sheet.placed:
            date_style = xlwt.easyxf(num_format_str=block.date_format)
            merged = {(a, b): (y, z) for a, b, y, z in _merges(block)}
            covered = {
                (r, c)
                for (a, b), (y, z) in merged.items()
                for r in range(a, y + 1)
                for c in range(b, z + 1)
            }
            for r, row in enumerate(block.rows):
                for c, value in enumerate(row):
                    if (r, c) in merged:
                        y, z = merged[(r, c)]
                        ws.write_merge(r0 + r, r0 + y, c0 + c, c0 + z, text_of(value))
                    elif value is not None and (r, c) not in covered:
                        if isinstance(value, dt.date):
                            ws.write(r0 + r, c0 + c, value, date_style)
                        else:
                            ws.write(r0 + r, c0 + c, value)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def grid_lines(sheet: Sheet) -> list[list[str]]:
    return [[text_of(v) for v in row] for row in sheet.grid()]


def render_csv(sheet: Sheet, encoding: str) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for row in grid_lines(sheet):
        writer.writerow(row)
    return buf.getvalue().encode(encoding)


def render_tsv(sheet: Sheet) -> str:
    """What pasting a copied range from Excel into a mail gives: tab-separated lines."""
    return "\n".join("\t".join(row).rstrip("\t") for row in grid_lines(sheet))


def _merges(block: Block) -> list[tuple[int, int, int, int]]:
    return [m for m in block.merges if (m[0], m[1]) != (m[2], m[3])]


def render_docx(sheet: Sheet) -> bytes:
    import docx

    doc = docx.Document()
    for block in sheet.in_reading_order():
        if block.title:
            doc.add_paragraph(text_of(block.rows[0][0]))
            continue
        table = doc.add_table(rows=len(block.rows), cols=block.width)
        table.style = "Table Grid"
        for r, row in enumerate(block.rows):
            for c, value in enumerate(row):
                if value is not None:
                    table.cell(r, c).text = text_of(value)
        for a, b, y, z in _merges(block):
            table.cell(a, b).merge(table.cell(y, z))
        doc.add_paragraph("")
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def html_tables(sheet: Sheet) -> str:
    parts = []
    for block in sheet.in_reading_order():
        if block.title:
            parts.append(f"<p><b>{html.escape(text_of(block.rows[0][0]))}</b></p>")
            continue
        spans = {(a, b): (y - a + 1, z - b + 1) for a, b, y, z in _merges(block)}
        covered = {
            (r, c)
            for (a, b), (h, w) in spans.items()
            for r in range(a, a + h)
            for c in range(b, b + w)
        } - set(spans)
        lines = ['<table border="1" cellspacing="0">']
        for r, row in enumerate(block.rows):
            cells = []
            for c in range(block.width):
                if (r, c) in covered:
                    continue
                value = row[c] if c < len(row) else None
                h, w = spans.get((r, c), (1, 1))
                attrs = (f' rowspan="{h}"' if h > 1 else "") + (f' colspan="{w}"' if w > 1 else "")
                text = html.escape(text_of(value)).replace("\n", "<br>")
                tag = "th" if r < block.th_rows else "td"
                cells.append(f"<{tag}{attrs}>{text}</{tag}>")
            lines.append("<tr>" + "".join(cells) + "</tr>")
        lines.append("</table>")
        parts.append("\n".join(lines))
    return "\n".join(parts)


def render_html(sheet: Sheet, charset: str, intro: str = "") -> bytes:
    doc = (
        f'<html><head><meta charset="{charset}"><title>一覧</title></head><body>\n'
        f"{intro}{html_tables(sheet)}\n</body></html>\n"
    )
    return doc.encode(charset)


def render_pdf(sheet: Sheet) -> bytes:
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    font = "HeiseiKakuGo-W5"
    if font not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(font))
    style = ParagraphStyle("jp", fontName=font, fontSize=10)
    story: list = []
    for block in sheet.in_reading_order():
        if block.title:
            story.append(Paragraph(html.escape(text_of(block.rows[0][0])), style))
            continue
        data = [[text_of(v) for v in row] + [""] * (block.width - len(row)) for row in block.rows]
        commands = [
            ("FONTNAME", (0, 0), (-1, -1), font),
            ("FONTSIZE", (0, 0), (-1, -1), 8),
            ("GRID", (0, 0), (-1, -1), 0.5, (0, 0, 0)),
        ]
        commands += [("SPAN", (b, a), (z, y)) for a, b, y, z in _merges(block)]
        story += [Table(data, style=TableStyle(commands), repeatRows=0), Spacer(1, 8)]
    buf = io.BytesIO()
    SimpleDocTemplate(buf, pagesize=landscape(A4)).build(story)
    return buf.getvalue()


# -- files and mails ----------------------------------------------------------------------------
def render_file(sheet: Sheet, file_type: str, stem: str, rng: random.Random) -> tuple[str, bytes]:
    if file_type == "xlsx":
        return f"{stem}.xlsx", render_xlsx([sheet])
    if file_type == "xls":
        return f"{stem}.xls", render_xls([sheet])
    if file_type in CSV_ENCODINGS:
        return f"{stem}.csv", render_csv(sheet, CSV_ENCODINGS[file_type])
    if file_type == "docx":
        return f"{stem}.docx", render_docx(sheet)
    if file_type == "html_attach":
        return f"{stem}.html", render_html(sheet, rng.choice(("utf-8", "shift_jis")))
    if file_type == "pdf":
        return f"{stem}.pdf", render_pdf(sheet)
    raise ValueError(file_type)


MIME = {
    ".xlsx": XLSX,
    ".xls": "application/vnd.ms-excel",
    ".csv": "text/csv",
    ".docx": DOCX,
    ".html": "text/html",
    ".pdf": "application/pdf",
    ".zip": "application/zip",
}


class _Cp932ZipInfo(zipfile.ZipInfo):
    """A member name in cp932 without the UTF-8 flag, as Windows' own zip tool writes it."""

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # zipfile's hook
        return self.filename.encode("cp932"), self.flag_bits


def zip_file(filename: str, data: bytes, rng: random.Random) -> tuple[str, bytes]:
    buf = io.BytesIO()
    folder = rng.choice(("", "R8名簿/"))
    name = folder + filename
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = _Cp932ZipInfo(name) if rng.random() < 0.5 else zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, data)
    return filename.rsplit(".", 1)[0] + ".zip", buf.getvalue()


class Letter:
    """The correspondents of one mail: the addressee (〇〇様) and the sender (signature)."""

    def __init__(self, rng: random.Random):
        s1, g1 = names.pick_surname(rng), names.pick_given(rng, "mid")
        s2, g2 = names.pick_surname(rng), names.pick_given(rng, "mid")
        self.to_name = f"{s1.kanji} {g1.kanji}"
        self.to_surname = s1.kanji
        self.from_name = f"{s2.kanji} {g2.kanji}"
        self.org = rng.choice(
            (
                "株式会社ケアサポート宮崎",
                "社会福祉法人 ひまわり会",
                "延岡市地域包括支援センター",
                "日向市 介護保険課",
            )
        )

    def opening(self) -> str:
        return (
            f"{self.org}\n{self.to_surname} 様\n\nいつもお世話になっております。\n"
            f"延岡市 長寿福祉課の{self.from_name.split()[0]}です。\n"
        )

    def closing(self) -> str:
        return (
            "ご確認のほど、よろしくお願いいたします。\n\n"
            f"------------------------------\n延岡市 健康福祉部 長寿福祉課 介護保険係\n"
            f"{self.from_name}\nTEL 0982-22-7000（内線 2314）\n"
            "E-mail staff@city.example.lg.jp\n------------------------------\n"
        )


def base_message(letter: Letter, subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"{letter.from_name} <staff@city.example.lg.jp>"
    msg["To"] = f"{letter.to_name} 様 <center@care.example.com>"
    msg["Subject"] = subject
    msg["Date"] = "Tue, 24 Nov 2026 10:00:00 +0900"
    return msg


def _set_text(msg: EmailMessage, text: str, rng: random.Random, subtype: str = "plain") -> None:
    for charset in (rng.choice(("utf-8", "iso-2022-jp", "shift_jis")), "utf-8"):
        try:
            text.encode(charset)
        except UnicodeEncodeError:
            continue
        if charset == "utf-8":
            msg.set_content(text, subtype=subtype, charset="utf-8", cte="base64")
        else:
            msg.set_content(
                text.encode(charset),
                maintype="text",
                subtype=subtype,
                cte="7bit" if charset == "iso-2022-jp" else "base64",
                params={"charset": charset},
            )
        return


def mail_with_attachment(filename: str, data: bytes, rng: random.Random) -> bytes:
    letter = Letter(rng)
    msg = base_message(
        letter, rng.choice(("名簿の送付について", "【送付】対象者一覧", "資料送付の件"))
    )
    body = (
        letter.opening() + "標記の件について、資料を添付にて送付いたします。\n\n" + letter.closing()
    )
    _set_text(msg, body, rng)
    ctype = MIME[filename[filename.rfind(".") :]]
    maintype, subtype = ctype.split("/")
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes(policy=default_policy.clone(linesep="\r\n"))


def mail_with_body_table(sheet: Sheet, kind: str, rng: random.Random) -> bytes:
    letter = Letter(rng)
    msg = base_message(letter, rng.choice(("対象者について", "名簿（本文貼付）", "Re: 一覧の件")))
    intro = letter.opening() + "対象者は以下のとおりです。\n\n"
    if kind == "tsv_body":
        _set_text(msg, intro + render_tsv(sheet) + "\n\n" + letter.closing(), rng)
    else:

        def para(text: str) -> str:
            return "".join(f"<p>{html.escape(line)}</p>\n" for line in text.splitlines())

        doc = (
            f'<html><head><meta charset="utf-8"></head><body>\n{para(intro)}'
            f"{html_tables(sheet)}\n{para(letter.closing())}</body></html>\n"
        )
        msg.set_content(doc, subtype="html", charset="utf-8", cte="base64")
    return msg.as_bytes(policy=default_policy.clone(linesep="\r\n"))


def mail_with_text(text: str, rng: random.Random) -> bytes:
    letter = Letter(rng)
    msg = base_message(letter, "Web会議のご案内")
    _set_text(msg, text + "\n" + letter.closing(), rng)
    return msg.as_bytes(policy=default_policy.clone(linesep="\r\n"))


# -- people written in a letter's body ------------------------------------------------------
# How a letter names the person it is about: a 様 line with the birth date below, a
# labelled 様 line, a 氏名 label (the name by its position, any space, half-width kana),
# prose with さん, English. Each is data about a person, unlike the 〇〇様 that opens the
# letter (the addressee) and the signature.
PERSON_STYLES = (
    "sama",
    "sama_labelled",
    "sama_bracket",
    "labelled",
    "labelled_kana",
    "prose",
    "english",
)
BODY_DATE_FORMS = (
    "wareki_kanji",
    "short_dot",
    "wareki_paren",
    "seireki_paren",
    "seireki_kanji",
    "fullwidth_kanji",
)


def person_text(
    style: str, surname: names.Surname, given: names.GivenName, dob: dt.date, rng: random.Random
) -> str:
    date = str(values.format_date(dob, rng.choice(BODY_DATE_FORMS)))
    name = f"{surname.kanji}{rng.choice((' ', '　'))}{given.kanji}"
    sep = rng.choice(("：", "　"))
    if style == "sama":
        return f"{name}{rng.choice(('様', ' 様'))}\n生年月日{sep}{date}"
    if style == "sama_labelled":
        return f"対象者{sep}{name}様\n生年月日{sep}{date}\n住所{sep}{values.address(rng)}"
    if style == "sama_bracket":
        return f"【対象者】{name} 様\n（{date}生）"
    if style == "labelled":
        return f"氏名{rng.choice(('：', '　', ':'))}{name}\n生年月日{sep}{date}"
    if style == "labelled_kana":
        return f"氏名：{to_halfwidth_kana(f'{surname.reading} {given.reading}')}\n生年月日：{date}"
    if style == "prose":
        return (
            f"{surname.kanji}{given.kanji}さん（{date}生）の件、ケアマネジャーから連絡があり、"
            "来週退院予定とのことです。"
        )
    english = values.english_date(dob)
    return f"Name: {surname.reading} {given.reading} ({name})\nDate of Birth: {english}"


def mail_with_people(people: list[str], rng: random.Random) -> bytes:
    """A letter whose body names ``people`` (paragraphs of ``person_text``); the opening is
    the full letter opening (addressee 様) or a short greeting right above the first."""
    letter = Letter(rng)
    msg = base_message(letter, rng.choice(("対象者について", "認定調査の依頼", "Re: 見守りの件")))
    opening = letter.opening() + "\n" if rng.random() < 0.5 else "お世話になります。\n\n"
    body = opening + "\n\n".join(people) + "\n\n上記の方の件、よろしくお願いします。\n\n"
    _set_text(msg, body + letter.closing(), rng)
    return msg.as_bytes(policy=default_policy.clone(linesep="\r\n"))
