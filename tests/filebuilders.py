"""Real files of every supported format, built in code from roster rows.

``BUILDERS[name](rows) -> bytes``: ``name`` is a file name (its extension is what a
sender would use); ``rows`` is a header row then data rows of strings. Each builder
writes the rows so that the gateway, reading the file, sees one person per row.
Used by the extraction tests and by the fail-closed fuzz harness, which mutates
these files (truncation, bit flips, re-labelling).

Also: ``roster_rows(n, seed)``, image/font-like harmless samples (``IMAGES``), a
minimal OLE compound-file writer (``cfb``) and an Outlook .msg builder.
"""

from __future__ import annotations

import bz2
import csv
import datetime as dt
import gzip
import io
import itertools
import lzma
import random
import struct
import tarfile
import zipfile
from collections.abc import Callable, Sequence

Rows = Sequence[Sequence[str]]

SURNAMES = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤"]
GIVEN = ["太郎", "花子", "一郎", "美咲", "健太", "陽子", "翔", "結衣", "大輔", "恵子"]
HEADER = ["被保険者番号", "氏名", "生年月日", "住所"]


def roster_rows(n: int, seed: int = 0) -> list[list[str]]:
    """Header + ``n`` people: 10-digit insured number, name, birth date, address."""
    rng = random.Random(seed)
    rows = [list(HEADER)]
    for i in range(n):
        born = dt.date(1925, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 70))
        rows.append([f"{rng.randrange(10**8, 10**9)}{i % 10}", rng.choice(SURNAMES)
                     + rng.choice(GIVEN), born.strftime("%Y/%m/%d"),
                     f"宮崎県延岡市{rng.randrange(1, 99)}番地"])
    return rows


# --- text formats ---------------------------------------------------------------------------


def csv_bytes(rows: Rows, encoding: str = "utf-8", delimiter: str = ",") -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode(encoding)


def _width(text: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def fixed_width_bytes(rows: Rows, pad: str = " ", encoding: str = "cp932") -> bytes:
    """A core-system 固定長 export: each column padded to its widest value (+2)."""
    widths = [max(_width(r[i]) for r in rows) + 2 for i in range(len(rows[0]))]
    lines = ["".join(v + pad * (w - _width(v)) for v, w in zip(r, widths, strict=False))
             for r in rows]
    return "\r\n".join(lines).encode(encoding) + b"\r\n"


def labelled(label: str, value: str) -> str:
    """``label value`` as a sender writes a number in free text; a blank label: the value."""
    return f"{label} {value}".strip()


def vcard_bytes(rows: Rows) -> bytes:
    """One vCard 3.0 per data row (FN, BDAY, ADR, NOTE with the number after the first
    header, e.g. 被保険者番号)."""
    cards = []
    for number, name, born, address in (r[:4] for r in rows[1:]):
        cards.append("\r\n".join([
            "BEGIN:VCARD", "VERSION:3.0", f"FN:{name}", f"N:{name[:2]};{name[2:]};;;",
            f"BDAY:{born.replace('/', '-')}", f"ADR;TYPE=HOME:;;{address};;;;",
            f"NOTE:{labelled(rows[0][0], number)}", "END:VCARD"]))
    return ("\r\n".join(cards) + "\r\n").encode("utf-8")


def html_xls_bytes(rows: Rows) -> bytes:
    """An HTML table saved with an .xls name (what many systems' "Excel export" is)."""
    body = "".join("<tr>" + "".join(f"<td>{v}</td>" for v in r) + "</tr>" for r in rows)
    return ('<html xmlns:x="urn:schemas-microsoft-com:office:excel"><head>'
            '<meta charset="utf-8"></head><body><table>' + body
            + "</table></body></html>").encode("utf-8")


def spreadsheetml_bytes(rows: Rows) -> bytes:
    """Excel 2003 XML (SpreadsheetML), as saved with an .xls name."""
    from xml.sax.saxutils import escape

    xml_rows = "".join(
        "<Row>" + "".join(f'<Cell><Data ss:Type="String">{escape(v)}</Data></Cell>' for v in r)
        + "</Row>" for r in rows)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<?mso-application progid="Excel.Sheet"?>\n'
            '<Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet" '
            'xmlns:ss="urn:schemas-microsoft-com:office:spreadsheet">'
            f'<Worksheet ss:Name="名簿"><Table>{xml_rows}</Table></Worksheet></Workbook>'
            ).encode()


def eml_bytes(rows: Rows) -> bytes:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.jp", "b@example.jp", "名簿"
    msg.set_content("名簿を送ります。")
    msg.add_attachment(csv_bytes(rows), maintype="text", subtype="csv", filename="名簿.csv")
    return msg.as_bytes()


# --- office ---------------------------------------------------------------------------------


def xlsx_bytes(rows: Rows) -> bytes:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "名簿"
    for r in rows:
        ws.append(list(r))
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def docx_bytes(rows: Rows) -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph("名簿")
    table = document.add_table(rows=0, cols=len(rows[0]))
    for r in rows:
        cells = table.add_row().cells
        for cell, value in zip(cells, r, strict=False):
            cell.text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def ods_bytes(rows: Rows) -> bytes:
    return _odf(rows, "application/vnd.oasis.opendocument.spreadsheet", spreadsheet=True)


def odt_bytes(rows: Rows) -> bytes:
    return _odf(rows, "application/vnd.oasis.opendocument.text", spreadsheet=False)


def _odf(rows: Rows, mimetype: str, spreadsheet: bool) -> bytes:
    from xml.sax.saxutils import escape

    table = "".join(
        "<table:table-row>" + "".join(
            f'<table:table-cell office:value-type="string"><text:p>{escape(v)}</text:p>'
            "</table:table-cell>" for v in r) + "</table:table-row>" for r in rows)
    kind = "spreadsheet" if spreadsheet else "text"
    content = (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" office:version="1.2">'
        f'<office:body><office:{kind}>' + ("" if spreadsheet else "<text:p>名簿</text:p>")
        + f'<table:table table:name="名簿">{table}</table:table></office:{kind}>'
        "</office:body></office:document-content>")
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
        f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{mimetype}"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), mimetype)
        zf.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
        zf.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
    return out.getvalue()


# --- pdf ------------------------------------------------------------------------------------


def pdf_bytes(rows: Rows, font: str = "HeiseiKakuGo-W5", rows_per_page: int = 60) -> bytes:
    """A roster printed to PDF: each cell drawn at its column's x, one line per row."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont(font))
    out = io.BytesIO()
    page = canvas.Canvas(out, pagesize=A4)
    xs = [40, 130, 210, 300, 420, 500][: len(rows[0])]
    for i in range(1, len(xs)):  # a column starts after the widest text of the one before
        widest = max(pdfmetrics.stringWidth(r[i - 1], font, 9) for r in rows if len(r) >= i)
        xs[i] = max(xs[i], xs[i - 1] + widest + 12)
    y = 800.0
    page.setFont(font, 9)
    for index, r in enumerate(rows):
        if index and index % rows_per_page == 0:
            page.showPage()
            page.setFont(font, 9)
            y = 800.0
        for x, value in zip(xs, r, strict=False):
            page.drawString(x, y, value)
        y -= 12
    page.save()
    return out.getvalue()


def image_only_pdf_bytes() -> bytes:
    """A "scanned" PDF: a page with an image and no text layer."""
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    page = canvas.Canvas(out)
    page.drawImage(ImageReader(io.BytesIO(image_bytes("PNG"))), 50, 500, 200, 200)
    page.save()
    return out.getvalue()


# --- archives -------------------------------------------------------------------------------


def zip_of(files: dict[str, bytes], comment: bytes = b"") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.comment = comment
    return out.getvalue()


def tar_of(files: dict[str, bytes], mode: str = "w") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return out.getvalue()


def sevenz_of(files: dict[str, bytes], password: str | None = None,
              header_encryption: bool = False) -> bytes:
    import py7zr

    out = io.BytesIO()
    with py7zr.SevenZipFile(out, "w", password=password,
                            header_encryption=header_encryption) as archive:
        for name, data in files.items():
            archive.writestr(data, name)
    return out.getvalue()


def lzh_of(files: dict[str, bytes]) -> bytes:
    """An LHA archive, level-0 headers, stored (-lh0-) members."""
    out = bytearray()
    for name, data in files.items():
        raw_name = name.encode("cp932")
        body = (b"-lh0-" + struct.pack("<IIIBB", len(data), len(data), 0, 0x20, 0)
                + bytes([len(raw_name)]) + raw_name + struct.pack("<H", _crc16(data)))
        header = bytes([len(body), sum(body) & 0xFF]) + body
        out += header + data
    return bytes(out + b"\0")


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


# --- images and other harmless kinds ----------------------------------------------------------


def image_bytes(fmt: str) -> bytes:
    from PIL import Image

    img = Image.new("RGB", (16, 16), (200, 30, 30))
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


IMAGES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/bmp": "BMP",
          "image/tiff": "TIFF", "image/webp": "WEBP", "image/x-icon": "ICO"}


def appledouble_bytes() -> bytes:
    """A __MACOSX/._name AppleDouble file with a Finder-info entry."""
    finder = bytes(32)
    header = struct.pack(">II16sH", 0x00051607, 0x00020000, b"Mac OS X        ", 1)
    entry = struct.pack(">III", 9, len(header) + 12, len(finder))
    return header + entry + finder


def ds_store_bytes() -> bytes:
    block = bytes(2048)
    return struct.pack(">I4sIII", 1, b"Bud1", 2048, 2048, 2048) + bytes(16) + block + bytes(2048)


# --- OLE compound files (.msg) ----------------------------------------------------------------


def cfb(streams: dict[str, bytes]) -> bytes:
    """A minimal compound file (MS-CFB v3): ``{"storage/stream": bytes}``.

    Streams under 4096 bytes go to the mini stream, as the format requires.
    """
    sector, mini = 512, 64
    entries: list[dict] = [{"name": "Root Entry", "type": 5, "children": []}]
    index: dict[str, int] = {"": 0}
    for path in streams:
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            key = "/".join(parts[:depth])
            if key in index:
                continue
            entries.append({"name": parts[depth - 1],
                            "type": 2 if depth == len(parts) else 1, "children": []})
            index[key] = len(entries) - 1
            entries[index["/".join(parts[: depth - 1])]]["children"].append(index[key])
    ministream = bytearray()
    big: list[tuple[int, bytes]] = []
    for path, data in streams.items():
        entry = entries[index[path]]
        entry["size"] = len(data)
        if len(data) < 4096:
            entry["start"] = len(ministream) // mini
            ministream += data + bytes(-len(data) % mini or 0)
            if not data:
                entry["start"] = 0xFFFFFFFE
        else:
            big.append((index[path], data))
    sectors: list[bytes] = []
    fat: list[int] = []

    def chain(data: bytes) -> int:
        count = max(1, -(-len(data) // sector))
        first = len(sectors)
        for i in range(count):
            sectors.append(data[i * sector : (i + 1) * sector].ljust(sector, b"\0"))
            fat.append(first + i + 1 if i < count - 1 else 0xFFFFFFFE)
        return first

    for entry_index, data in big:
        entries[entry_index]["start"] = chain(data)
    mini_start = chain(bytes(ministream)) if ministream else 0xFFFFFFFE
    minifat = [0xFFFFFFFE] * (len(ministream) // mini)
    for path, data in streams.items():
        entry = entries[index[path]]
        if 0 < len(data) < 4096:
            n = -(-len(data) // mini)
            for i in range(n):
                minifat[entry["start"] + i] = entry["start"] + i + 1 if i < n - 1 else 0xFFFFFFFE
    minifat_start = chain(struct.pack(f"<{len(minifat)}I", *minifat)) if minifat else 0xFFFFFFFE
    entries[0]["start"], entries[0]["size"] = mini_start, len(ministream)
    for entry in entries:  # children as a right-sibling chain
        kids = entry["children"]
        entry["child"] = kids[0] if kids else 0xFFFFFFFF
        for a, b in itertools.pairwise(kids):
            entries[a]["right"] = b
    directory = b"".join(_dir_entry(e) for e in entries)
    directory += bytes(-len(directory) % sector)
    dir_start = chain(directory)
    fat_sectors = 1
    while (len(sectors) + fat_sectors) * 4 > fat_sectors * sector:
        fat_sectors += 1
    fat_first = len(sectors)
    fat.extend([0xFFFFFFFD] * fat_sectors)
    fat_data = struct.pack(f"<{len(fat)}I", *fat)
    fat_data += b"\xff" * (fat_sectors * sector - len(fat_data))
    for i in range(fat_sectors):
        sectors.append(fat_data[i * sector : (i + 1) * sector])
    difat = [fat_first + i for i in range(fat_sectors)] + [0xFFFFFFFF] * (109 - fat_sectors)
    header = (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(16)
              + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + bytes(6)
              + struct.pack("<IIIIIIIII", 0, fat_sectors, dir_start, 0, 4096,
                            minifat_start, 1 if minifat else 0, 0xFFFFFFFE, 0)
              + struct.pack("<109I", *difat))
    return header + b"".join(sectors)


def _dir_entry(entry: dict) -> bytes:
    name = (entry["name"] + "\0").encode("utf-16-le")
    return (name.ljust(64, b"\0") + struct.pack("<HBB", len(name), entry["type"], 1)
            + struct.pack("<III", entry.get("left", 0xFFFFFFFF), entry.get("right", 0xFFFFFFFF),
                          entry["child"])
            + bytes(16 + 4 + 16) + struct.pack("<II", entry.get("start", 0), entry.get("size", 0))
            + bytes(4))


def msg_bytes(subject: str, body: str, attachments: dict[str, bytes] | None = None) -> bytes:
    """An Outlook .msg: subject, plain body and file attachments (Unicode properties)."""
    streams = {
        "__substg1.0_0037001F": subject.encode("utf-16-le"),
        "__substg1.0_1000001F": body.encode("utf-16-le"),
        "__substg1.0_0C1A001F": "市民課 担当".encode("utf-16-le"),
        "__properties_version1.0": bytes(32),
    }
    for i, (name, data) in enumerate((attachments or {}).items()):
        prefix = f"__attach_version1.0_#{i:08X}/"
        streams[prefix + "__substg1.0_3707001F"] = name.encode("utf-16-le")
        streams[prefix + "__substg1.0_37010102"] = data
        streams[prefix + "__properties_version1.0"] = bytes(8)
    return cfb(streams)


def msg_with_roster(rows: Rows) -> bytes:
    return msg_bytes("名簿送付", "名簿を添付します。", {"名簿.csv": csv_bytes(rows)})


# --- the registry -----------------------------------------------------------------------------


def _gz(name: str) -> Callable[[Rows], bytes]:
    return lambda rows: gzip.compress(csv_bytes(rows))


BUILDERS: dict[str, Callable[[Rows], bytes]] = {
    "名簿.csv": csv_bytes,
    "名簿.tsv": lambda rows: csv_bytes(rows, delimiter="\t"),
    "名簿.txt": fixed_width_bytes,
    "名簿_固定長.dat": lambda rows: fixed_width_bytes(rows, pad="\0"),
    "連絡先.vcf": vcard_bytes,
    "名簿.xlsx": xlsx_bytes,
    "名簿.docx": docx_bytes,
    "名簿.ods": ods_bytes,
    "名簿.odt": odt_bytes,
    "名簿_html.xls": html_xls_bytes,
    "名簿_xml.xls": spreadsheetml_bytes,
    "名簿.pdf": pdf_bytes,
    "名簿.eml": eml_bytes,
    "名簿.msg": msg_with_roster,
    "名簿.zip": lambda rows: zip_of({"名簿.csv": csv_bytes(rows)}),
    "名簿.csv.gz": _gz("名簿.csv"),
    "名簿.csv.bz2": lambda rows: bz2.compress(csv_bytes(rows)),
    "名簿.csv.xz": lambda rows: lzma.compress(csv_bytes(rows)),
    "名簿.tar": lambda rows: tar_of({"名簿.csv": csv_bytes(rows)}),
    "名簿.tar.gz": lambda rows: tar_of({"名簿.csv": csv_bytes(rows)}, "w:gz"),
    "名簿.tgz": lambda rows: tar_of({"名簿.csv": csv_bytes(rows)}, "w:gz"),
    "名簿.tar.bz2": lambda rows: tar_of({"名簿.csv": csv_bytes(rows)}, "w:bz2"),
    "名簿.tar.xz": lambda rows: tar_of({"名簿.csv": csv_bytes(rows)}, "w:xz"),
    "名簿.7z": lambda rows: sevenz_of({"名簿.csv": csv_bytes(rows)}),
    "名簿.lzh": lambda rows: lzh_of({"名簿.csv": csv_bytes(rows)}),
}


def rar4_of(files: dict[str, bytes]) -> bytes:
    """A RAR 4 archive with stored (method 0x30) members, as WinRAR writes with -m0."""
    import zlib

    def block(head_type: int, flags: int, body: bytes) -> bytes:
        rest = struct.pack("<BHH", head_type, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(rest) & 0xFFFF) + rest

    out = b"Rar!\x1a\x07\x00" + block(0x73, 0, bytes(6))
    for name, data in files.items():
        raw = name.encode("ascii")
        body = struct.pack("<IIBIIBBHI", len(data), len(data), 0, zlib.crc32(data),
                           0x21, 20, 0x30, len(raw), 0x20) + raw
        out += block(0x74, 0x8000, body) + data
    return out + block(0x7B, 0x4000, b"")


def doc_bytes(rows: Rows, intro: str = "名簿を送ります。") -> bytes:
    """A Word 97-2003 .doc: FIB + one UTF-16 piece; rows as a Word table (cell marks)."""
    text = intro + "\r" + "".join("\x07".join(r) + "\x07\x07" for r in rows) + "\r"
    encoded = text.encode("utf-16-le")
    text_at = 0x800
    fib = bytearray(text_at)
    struct.pack_into("<HH", fib, 0, 0xA5EC, 0x00C1)
    struct.pack_into("<H", fib, 0x0A, 0x0200)  # fWhichTblStm: 1Table
    pos = 32
    struct.pack_into("<H", fib, pos, 14)
    pos += 2 + 28
    struct.pack_into("<H", fib, pos, 22)
    pos += 2 + 88
    struct.pack_into("<H", fib, pos, 93)
    clx = b"\x02" + struct.pack("<I", 4 * 2 + 8) + struct.pack("<II", 0, len(text)) + (
        struct.pack("<HIH", 0, text_at, 0))
    struct.pack_into("<II", fib, pos + 2 + 66 * 4, 0, len(clx))
    return cfb({"WordDocument": bytes(fib) + encoded, "1Table": clx})


def ppt_bytes(lines: Sequence[str]) -> bytes:
    """A PowerPoint 97-2003 .ppt stream: a container of TextCharsAtom records."""
    atoms = b"".join(struct.pack("<HHI", 0, 0x0FA0, len(t.encode("utf-16-le")))
                     + t.encode("utf-16-le") for t in lines)
    document = struct.pack("<HHI", 0x000F, 0x03E8, len(atoms)) + atoms
    return cfb({"PowerPoint Document": document, "Current User": bytes(20)})


BUILDERS["名簿.doc"] = doc_bytes
BUILDERS["名簿.ppt"] = lambda rows: ppt_bytes(
    [" ".join(labelled(h, v) for h, v in zip(rows[0][:3], r[:3], strict=True))
     for r in rows[1:]])


def _rtf_escape(text: str) -> str:
    return "".join(c if c.isascii() else "".join(f"\\'{b:02x}" for b in c.encode("cp932"))
                   for c in text)


def rtf_bytes(rows: Rows) -> bytes:
    """An RTF document (as Word saves it, \\ansicpg932) with the rows as a table."""
    body = "".join("\\trowd " + "".join(f"\\cellx{1500 * (i + 1)}" for i in range(len(r)))
                   + "".join(f"\\pard\\intbl {_rtf_escape(v)}\\cell " for v in r) + "\\row\n"
                   for r in rows)
    return ("{\\rtf1\\ansi\\ansicpg932\\deff0{\\fonttbl{\\f0\\fnil MS Mincho;}}"
            "{\\*\\generator test;}\n" + body + "}").encode("ascii")


def compressed_rtf(rtf: bytes) -> bytes:
    """PR_RTF_COMPRESSED in LZFu form (all literals, then the end reference)."""
    out = bytearray()
    write = 207
    for i in range(0, len(rtf), 8):
        out.append(0)
        out += rtf[i : i + 8]
        write = (write + len(rtf[i : i + 8])) % 4096
    if len(rtf) % 8 == 0:
        out.append(0x01)
        out += struct.pack(">H", write << 4)
    else:  # the end token takes the bit after the last literal of a short group
        group_start = len(out) - (len(rtf) % 8) - 1
        out[group_start] |= 1 << (len(rtf) % 8)
        out += struct.pack(">H", write << 4)
    return struct.pack("<IIII", len(out) + 12, len(rtf), 0x75465A4C, 0) + bytes(out)


def msg_rtf_only(rows: Rows) -> bytes:
    """An Outlook .msg whose body exists only as compressed RTF."""
    lines = "\\par ".join(
        _rtf_escape(" ".join(labelled(h, v) for h, v in zip(rows[0][:3], r[:3], strict=True)))
        for r in rows[1:])
    rtf = ("{\\rtf1\\ansi\\ansicpg932 " + lines + "\\par }").encode("ascii")
    return cfb({"__substg1.0_0037001F": "名簿".encode("utf-16-le"),
                "__substg1.0_10090102": compressed_rtf(rtf),
                "__properties_version1.0": bytes(32)})


BUILDERS["名簿.rtf"] = rtf_bytes
BUILDERS["名簿_rtf.msg"] = msg_rtf_only


def emf_bytes() -> bytes:
    """An Enhanced Metafile: EMR_HEADER (88 bytes, " EMF") and EMR_EOF."""
    header = bytearray(88)
    struct.pack_into("<II", header, 0, 1, 88)
    header[40:44] = b" EMF"
    struct.pack_into("<IIIHH", header, 44, 0x00010000, 108, 2, 1, 0)
    eof = struct.pack("<IIIII", 14, 20, 0, 16, 20)
    return bytes(header) + eof


def wmf_bytes() -> bytes:
    """A placeable Windows Metafile with only the EOF record."""
    placeable = struct.pack("<IHhhhhHIH", 0x9AC6CDD7, 0, 0, 0, 100, 100, 1440, 0, 0)
    header = struct.pack("<HHHIHIH", 1, 9, 0x0300, 12, 0, 3, 0)
    return placeable + header + struct.pack("<IH", 3, 0)


def add_members(package: bytes, members: dict[str, bytes]) -> bytes:
    """The same Office package with more members (as a sender's tool might leave)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        for name, data in members.items():
            dst.writestr(name, data)
    return out.getvalue()


def xlsm_bytes(rows: Rows) -> bytes:
    """A macro-enabled workbook: the xlsx with the macroEnabled main content type."""
    source = xlsx_bytes(rows)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(source)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "[Content_Types].xml":
                data = data.replace(
                    b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml",
                    b"application/vnd.ms-excel.sheet.macroEnabled.main+xml")
            dst.writestr(info, data)
    return out.getvalue()


def vcard21_sjis_bytes(rows: Rows) -> bytes:
    """vCard 2.1 as Japanese phones export it: Shift_JIS, quoted-printable values."""
    import quopri

    def qp(text: str) -> str:
        return quopri.encodestring(text.encode("cp932")).decode("ascii").replace("=\n", "")

    def bday(born: str) -> str:  # a date the phone stored as text (年月日, era) is encoded
        if born.isascii():
            return f"BDAY:{born.replace('/', '')}"
        return f"BDAY;CHARSET=SHIFT_JIS;ENCODING=QUOTED-PRINTABLE:{qp(born)}"

    cards = [
        "\r\n".join(["BEGIN:VCARD", "VERSION:2.1",
                     f"N;CHARSET=SHIFT_JIS;ENCODING=QUOTED-PRINTABLE:{qp(name[:2])};{qp(name[2:])}",
                     bday(born),
                     f"NOTE;CHARSET=SHIFT_JIS;ENCODING=QUOTED-PRINTABLE:"
                     f"{qp(labelled(rows[0][0], no))}",
                     "END:VCARD"])
        for no, name, born, _ in (r[:4] for r in rows[1:])]
    return ("\r\n".join(cards) + "\r\n").encode("ascii")


def html_xls_cp932_bytes(rows: Rows) -> bytes:
    """Excel's own "Web page" save: Shift_JIS, mso attributes, x:num cells."""
    body = "".join("<tr height=18>" + "".join(
        f"<td class=xl65 x:num>{v}</td>" if v.isdigit() else f"<td class=xl66>{v}</td>"
        for v in r) + "</tr>\n" for r in rows)
    html = ('<html xmlns:o="urn:schemas-microsoft-com:office:office" '
            'xmlns:x="urn:schemas-microsoft-com:office:excel">\n<head>\n'
            '<meta http-equiv=Content-Type content="text/html; charset=shift_jis">\n'
            "<style>.xl65{mso-number-format:\"\\@\";}</style></head>\n<body>\n"
            f"<table border=0 cellpadding=0 cellspacing=0>\n{body}</table>\n</body>\n</html>\n")
    return html.encode("cp932")


BUILDERS["名簿.xlsm"] = xlsm_bytes
BUILDERS["連絡先_sjis.vcf"] = vcard21_sjis_bytes
BUILDERS["名簿_web.xls"] = html_xls_cp932_bytes


def rar4_encrypted_of(files: dict[str, bytes]) -> bytes:
    """A RAR 4 archive whose members carry the password flag (FHD_PASSWORD + salt)."""
    import zlib

    def block(head_type: int, flags: int, body: bytes) -> bytes:
        rest = struct.pack("<BHH", head_type, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(rest) & 0xFFFF) + rest

    out = b"Rar!\x1a\x07\x00" + block(0x73, 0, bytes(6))
    for name, data in files.items():
        raw = name.encode("ascii")
        body = struct.pack("<IIBIIBBHI", len(data), len(data), 0, zlib.crc32(data),
                           0x21, 29, 0x30, len(raw), 0x20) + raw + bytes(8)
        out += block(0x74, 0x8404, body) + data
    return out + block(0x7B, 0x4000, b"")


# --- Excel binary workbook (.xlsb, BIFF12) ----------------------------------------------------


def _biff12(record_type: int, body: bytes = b"") -> bytes:
    """One BIFF12 record: type and size as 7-bit little-endian varints (MS-XLSB 2.1.4)."""
    def varint(value: int, limit: int) -> bytes:
        out = bytearray()
        while True:
            byte, value = value & 0x7F, value >> 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                break
        assert len(out) <= limit
        return bytes(out)

    return varint(record_type, 2) + varint(len(body), 4) + body


def _wide(text: str) -> bytes:
    """XLWideString: a 32-bit character count, then UTF-16LE."""
    return struct.pack("<I", len(text)) + text.encode("utf-16-le")


def xlsb_bytes(rows: Rows, sheet: str = "名簿") -> bytes:
    """A minimal Excel binary workbook, written by hand (no Python writer exists):
    workbook.bin with one BrtBundleSh, a worksheet of BrtCellSt (inline string) and
    BrtCellReal (number) cells, the package relationships and content types."""
    cells = bytearray()
    for r, row in enumerate(rows):
        # BrtRowHdr: rw, ixfe, miyRw, flags (2 + 1 bytes), ccolspan = 0
        cells += _biff12(0x0000, struct.pack("<IIHHBI", r, 0, 300, 0, 0, 0))
        for c, value in enumerate(row):
            cell = struct.pack("<II", c, 0)  # column, iStyleRef 0
            if value.isdigit() and len(value) < 15 and not value.startswith("0"):
                cells += _biff12(0x0005, cell + struct.pack("<d", float(value)))  # BrtCellReal
            else:
                cells += _biff12(0x0006, cell + _wide(value))  # BrtCellSt
    width = max(len(r) for r in rows)
    sheet_bin = (_biff12(0x0081)  # BrtBeginSheet
                 + _biff12(0x0094, struct.pack("<IIII", 0, len(rows) - 1, 0, width - 1))
                 + _biff12(0x0091) + bytes(cells) + _biff12(0x0092)  # sheet data
                 + _biff12(0x0082))  # BrtEndSheet
    workbook_bin = (_biff12(0x0083) + _biff12(0x008F)  # BrtBeginBook, BrtBeginBundleShs
                    + _biff12(0x009C, struct.pack("<II", 0, 1) + _wide("rId1") + _wide(sheet))
                    + _biff12(0x0090) + _biff12(0x0084))  # BrtEndBundleShs, BrtEndBook
    ns = "http://schemas.openxmlformats.org"
    content_types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<Types xmlns="{ns}/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="bin" ContentType="application/'
        'vnd.ms-excel.sheet.binary.macroEnabled.main"/>'
        '<Override PartName="/xl/worksheets/sheet1.bin" ContentType="application/'
        'vnd.ms-excel.worksheet"/></Types>')
    root_rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<Relationships xmlns="{ns}/package/2006/relationships"><Relationship Id="rId1" '
        f'Type="{ns}/officeDocument/2006/relationships/officeDocument" '
        'Target="xl/workbook.bin"/></Relationships>')
    book_rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        f'<Relationships xmlns="{ns}/package/2006/relationships"><Relationship Id="rId1" '
        f'Type="{ns}/officeDocument/2006/relationships/worksheet" '
        'Target="worksheets/sheet1.bin"/></Relationships>')
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", content_types)
        zf.writestr("_rels/.rels", root_rels)
        zf.writestr("xl/workbook.bin", workbook_bin)
        zf.writestr("xl/_rels/workbook.bin.rels", book_rels)
        zf.writestr("xl/worksheets/sheet1.bin", sheet_bin)
    return out.getvalue()


BUILDERS["名簿.xlsb"] = xlsb_bytes


# --- RAR 5 (headers written by hand after the RAR 5.0 technote; no rar writer is installable) --


def _vint(value: int) -> bytes:
    """RAR 5 vint: 7 bits a byte, least significant first, high bit = more follows."""
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _rar5_block(head_type: int, flags: int, fields: bytes, extra: bytes = b"",
                data_size: int | None = None) -> bytes:
    """CRC32, header size, then type, flags, [extra size], [data size], fields, extra."""
    import zlib

    flags |= (0x0001 if extra else 0) | (0x0002 if data_size is not None else 0)
    body = _vint(head_type) + _vint(flags)
    body += _vint(len(extra)) if extra else b""
    body += _vint(data_size) if data_size is not None else b""
    body += fields + extra
    sized = _vint(len(body)) + body
    return struct.pack("<I", zlib.crc32(sized)) + sized


RAR5_SIGNATURE = b"Rar!\x1a\x07\x01\x00"


def rar5_of(files: dict[str, bytes], password: bool = False,
            header_encryption: bool = False, seed: int = 0) -> bytes:
    """A RAR 5 archive of stored members (compression info 0: method 0, "store").

    ``password``: each file header carries the file-encryption extra record (type 0x01:
    version 0 = AES-256, flags 0x0001 password check present, KDF count, 16-byte salt,
    16-byte IV, 12-byte check value) and the data is random bytes standing for the AES
    ciphertext, padded to the 16-byte block. ``header_encryption`` (rar -hp): an archive
    encryption header (type 4) follows the signature and every later header is
    encrypted; here the rest is random bytes, as nobody can read it without the key.
    """
    import zlib

    rng = random.Random(seed)
    out = bytearray(RAR5_SIGNATURE)
    if header_encryption:
        out += _rar5_block(4, 0, _vint(0) + _vint(0x0001) + bytes([15]) + rng.randbytes(16)
                           + rng.randbytes(12))
        return bytes(out + rng.randbytes(16 + 64 * max(1, len(files))))
    out += _rar5_block(1, 0, _vint(0))  # main archive header, archive flags 0
    for name, data in files.items():
        raw = name.encode("utf-8")
        extra = b""
        stored = data
        if password:
            record = (_vint(0) + _vint(0x0001) + bytes([15]) + rng.randbytes(16)
                      + rng.randbytes(16) + rng.randbytes(12))
            extra = _vint(len(record) + 1) + _vint(0x01) + record
            stored = rng.randbytes(-(-len(data) // 16) * 16 or 16)
        fields = (_vint(0x0004)  # file flags: data CRC32 present
                  + _vint(len(data)) + _vint(0x20)  # unpacked size, attributes
                  + struct.pack("<I", zlib.crc32(data))
                  + _vint(0) + _vint(0)  # compression info (store), host OS Windows
                  + _vint(len(raw)) + raw)
        out += _rar5_block(2, 0, fields, extra, data_size=len(stored)) + stored
    out += _rar5_block(5, 0, _vint(0))  # end of archive
    return bytes(out)
