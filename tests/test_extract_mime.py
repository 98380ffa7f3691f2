"""Message walk: bodies in every Japanese charset, names, alternatives, forwards."""

from __future__ import annotations

import base64
import email
import email.policy
import io
from email.message import EmailMessage

import openpyxl

from dlp_gateway.extract.mime import attachment_filename, extract_message, iter_attachments
from dlp_gateway.extract.units import Limits, Skipped, TableUnit, TextUnit, Unscannable
from tests.filebuilders import image_bytes

BODY = "山田太郎様の個人番号は123456789018です。\nよろしくお願いします。"


def units(raw: bytes, limits: Limits | None = None) -> list:
    return list(extract_message(raw, limits or Limits()))


def texts(raw: bytes) -> list[TextUnit]:
    """Body text units (header units, tested on their own, left out)."""
    return [u for u in units(raw) if isinstance(u, TextUnit) and "header:" not in u.location]


def raw_mail(headers: str, body: bytes) -> bytes:
    head = "From: a@example.jp\r\nTo: b@example.com\r\nSubject: test\r\nMIME-Version: 1.0\r\n"
    return (head + headers).encode("ascii") + b"\r\n" + body


def xlsx_bytes() -> bytes:
    wb = openpyxl.Workbook()
    wb.active.append(["氏名", "個人番号"])
    wb.active.append(["山田太郎", 123456789018])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# --- charsets ---------------------------------------------------------------------------------


def test_iso2022jp_body() -> None:
    raw = raw_mail(
        "Content-Type: text/plain; charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit\r\n",
        BODY.encode("iso2022_jp"),
    )
    [unit] = texts(raw)
    assert unit.text.strip() == BODY
    assert (unit.part, unit.location, unit.in_body) == ("body", "body", True)


def test_shift_jis_label_decodes_cp932_extensions() -> None:
    body = BODY + "\n①髙橋"  # ① and 髙 exist in cp932 only, not in strict Shift_JIS
    raw = raw_mail(
        "Content-Type: text/plain; charset=Shift_JIS\r\nContent-Transfer-Encoding: 8bit\r\n",
        body.encode("cp932"),
    )
    assert texts(raw)[0].text.strip() == body


def test_euc_jp_body() -> None:
    raw = raw_mail(
        "Content-Type: text/plain; charset=EUC-JP\r\nContent-Transfer-Encoding: 8bit\r\n",
        BODY.encode("euc_jp"),
    )
    assert texts(raw)[0].text.strip() == BODY


def test_utf8_base64_body() -> None:
    raw = raw_mail(
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n",
        base64.encodebytes(BODY.encode()),
    )
    assert texts(raw)[0].text.strip() == BODY


def test_wrong_charset_is_detected() -> None:
    for declared, encoding in (("utf-8", "cp932"), ("iso-8859-1", "cp932"),
                               ("shift_jis", "euc_jp"), ("us-ascii", "utf-8")):
        raw = raw_mail(
            f"Content-Type: text/plain; charset={declared}\r\n"
            "Content-Transfer-Encoding: 8bit\r\n",
            BODY.encode(encoding),
        )
        assert texts(raw)[0].text.strip() == BODY, (declared, encoding)


def test_missing_and_unknown_charset_are_detected() -> None:
    for header in ("Content-Type: text/plain\r\n", "Content-Type: text/plain; charset=x-bogus\r\n",
                   ""):
        for encoding in ("cp932", "euc_jp", "utf-8", "iso2022_jp"):
            raw = raw_mail(header + "Content-Transfer-Encoding: 8bit\r\n", BODY.encode(encoding))
            assert texts(raw)[0].text.strip() == BODY, (header, encoding)


def test_undecodable_bytes_never_raise() -> None:
    raw = raw_mail("Content-Type: text/plain; charset=utf-8\r\n", bytes(range(256)) * 4)
    [unit] = texts(raw)
    assert isinstance(unit.text, str)


# --- structure ----------------------------------------------------------------------------------


def test_html_only_body_is_text() -> None:
    html = (
        "<html><head><style>p {color: red}</style><script>var x = '999999999999';</script>"
        "</head><body><p>個人番号&nbsp;:&nbsp;1234&#8209;5678</p><div>山田&amp;太郎</div>"
        "<table><tr><td>氏名</td><td>生年月日</td></tr></table></body></html>"
    )
    msg = EmailMessage()
    msg["Subject"] = "html"
    msg.set_content(html, subtype="html")
    [unit] = texts(msg.as_bytes())
    lines = unit.text.splitlines()
    assert "999999999999" not in unit.text and "color" not in unit.text
    assert "個人番号 : 1234\u20115678" in lines
    assert "山田&太郎" in lines
    assert "氏名\t生年月日" in lines


def test_alternative_emits_every_branch_in_one_group() -> None:
    msg = EmailMessage()
    msg.set_content("short")
    msg.add_alternative("<p>" + BODY.replace("\n", "<br>") + "</p>", subtype="html")
    found = texts(msg.as_bytes())
    assert [(u.location, u.text.strip()) for u in found] == [("body", "short"),
                                                               ("body#2", BODY)]
    groups = {u.alt[0][0] for u in found}
    assert len(groups) == 1 and [u.alt[0][1] for u in found] == ["1", "2"]


def test_second_inline_text_part_is_body2() -> None:
    msg = EmailMessage()
    msg.set_content("first body")
    msg.add_attachment("second inline text", disposition="inline")
    found = texts(msg.as_bytes())
    assert [(u.part, u.location) for u in found] == [("body", "body"), ("body", "body#2")]
    assert list(iter_attachments(email.message_from_bytes(msg.as_bytes(),
                                                          policy=email.policy.default))) == []


def test_forwarded_message_parts() -> None:
    inner = EmailMessage()
    inner["Subject"] = "転送元"
    inner.set_content(BODY)
    inner.add_attachment(xlsx_bytes(), maintype="application", subtype="octet-stream",
                         filename="名簿.xlsx")
    outer = EmailMessage()
    outer["Subject"] = "Fwd"
    outer.set_content("転送します")
    outer.add_attachment(inner)
    result = units(outer.as_bytes())
    bodies = [(u.part, u.location, u.in_body) for u in result
              if isinstance(u, TextUnit) and "header:" not in u.location]
    assert bodies == [("body", "body", True),
                      ("forwarded-1.eml", "forwarded-1.eml!body", True),
                      ("forwarded-1.eml/名簿.xlsx", "forwarded-1.eml/名簿.xlsx!filename", True)]
    [table] = [u for u in result if isinstance(u, TableUnit)]
    assert table.part == "forwarded-1.eml/名簿.xlsx"
    assert table.location == "forwarded-1.eml/名簿.xlsx!Sheet"
    names = [n for n, _ in iter_attachments(email.message_from_bytes(
        outer.as_bytes(), policy=email.policy.default))]
    assert names == ["forwarded-1.eml"]


def test_rfc2047_and_rfc2231_names_and_duplicates() -> None:
    data = base64.encodebytes(b"hello,world\r\n1,2\r\n").decode()
    b_word = "=?ISO-2022-JP?B?" + base64.b64encode("名簿.csv".encode("iso2022_jp")).decode() + "?="
    q_sjis = "=?Shift_JIS?B?" + base64.b64encode("名簿.csv".encode("cp932")).decode() + "?="
    rfc2231 = "UTF-8''%E5%90%8D%E7%B0%BF.csv"
    parts = [
        f'Content-Type: text/csv; name="{b_word}"\r\nContent-Disposition: attachment; '
        f'filename="{b_word}"',
        f"Content-Type: text/csv\r\nContent-Disposition: attachment; filename*={rfc2231}",
        f'Content-Type: application/octet-stream; name="{q_sjis}"',
        "Content-Type: application/octet-stream\r\nContent-Disposition: attachment;\r\n"
        " filename*0*=ISO-2022-JP''%1B%24B%3E%5C%3AY%1B%28B;\r\n filename*1=.txt",
        "Content-Type: application/pdf",
        "Content-Type: text/plain\r\nContent-Disposition: attachment",
    ]
    body = "--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nbody\r\n"
    for headers in parts:
        body += f"--XX\r\n{headers}\r\nContent-Transfer-Encoding: base64\r\n\r\n{data}\r\n"
    body += "--XX--\r\n"
    raw = raw_mail('Content-Type: multipart/mixed; boundary="XX"\r\n', body.encode())
    expected = ["名簿.csv", "名簿 (2).csv", "名簿 (3).csv", "詳細.txt",
                "attachment-1.pdf", "attachment-2.txt"]
    for policy in (email.policy.default, email.policy.compat32):
        msg = email.message_from_bytes(raw, policy=policy)
        assert [n for n, _ in iter_attachments(msg)] == expected, policy
    tables = [u for u in units(raw) if isinstance(u, TableUnit)]
    assert [t.part for t in tables][:3] == expected[:3]


def test_attachment_filename_strips_directories() -> None:
    msg = EmailMessage()
    msg.add_attachment(b"x", maintype="application", subtype="octet-stream",
                       filename="C:\\Users\\tanaka\\名簿.xlsx")
    [part] = list(msg.iter_attachments())
    assert attachment_filename(part) == "名簿.xlsx"


def test_raw_8bit_cp932_filename() -> None:
    body = (b'--XX\r\nContent-Type: text/plain\r\n\r\nhi\r\n--XX\r\n'
            b'Content-Type: application/octet-stream\r\nContent-Disposition: attachment; '
            b'filename="' + "名簿.csv".encode("cp932") + b'"\r\n\r\na,b\r\n1,2\r\n--XX--\r\n')
    raw = raw_mail('Content-Type: multipart/mixed; boundary="XX"\r\n', body)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert [n for n, _ in iter_attachments(msg)] == ["名簿.csv"]


def test_attachment_extracted_and_skipped_types() -> None:
    msg = EmailMessage()
    msg.set_content("本文")
    msg.add_attachment(xlsx_bytes(), maintype="application", subtype="vnd.ms-excel",
                       filename="名簿.xlsx")
    msg.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf",
                       filename="a.pdf")
    msg.add_attachment(image_bytes("PNG"), maintype="image", subtype="png")
    result = units(msg.as_bytes())
    [table] = [u for u in result if isinstance(u, TableUnit)]
    rows = list(table.rows())
    assert rows[1].cells == ["山田太郎", 123456789018]
    skipped = {(u.part, u.content_type) for u in result if isinstance(u, Skipped)}
    assert skipped == {("attachment-1.png", "image/png")}  # a real PNG, by its structure
    # a "PDF" that PDFium cannot open but that reads as text is scanned as text
    assert [u.location for u in result if isinstance(u, TextUnit) and u.part == "a.pdf"]


def test_broken_multipart_is_reported_not_passed() -> None:
    raw = raw_mail('Content-Type: multipart/mixed; boundary="NOPE"\r\n',
                   b"--OTHER\r\nContent-Type: text/plain\r\n\r\nhello\r\n--OTHER--\r\n")
    result = units(raw)
    assert any(isinstance(u, Unscannable) and u.part == "message" and u.reason == "corrupt"
               for u in result)


def test_garbage_message_never_raises() -> None:
    for raw in (b"", b"\x00\xff" * 100, b"Content-Type: multipart/mixed\r\n\r\n--",
                b"Content-Type: text/plain; charset=\"\r\n\r\n\xff"):
        units(raw)  # must not raise


def test_deep_forwarding_is_too_deep() -> None:
    msg = EmailMessage()
    msg.set_content("innermost")
    for _ in range(4):
        outer = EmailMessage()
        outer.set_content("fwd")
        outer.add_attachment(msg)
        msg = outer
    result = units(msg.as_bytes(), Limits(max_depth=2))
    assert any(isinstance(u, Unscannable) and u.reason == "too_deep"
               and u.part == "forwarded-1.eml/forwarded-1.eml/forwarded-1.eml" for u in result)
