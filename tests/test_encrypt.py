"""actions/encrypt.py: AES-256 zips of the attachments that carry findings."""

from __future__ import annotations

import io
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

import pytest
import pyzipper

from dlp_gateway.actions.encrypt import (
    PASSWORD_ALPHABET,
    EncryptError,
    encrypt_attachments,
    new_password,
)
from tests.conftest import XLSX_TYPE, roster_xlsx


def _mail(html_only: bool = False) -> bytes:
    msg = EmailMessage()
    msg["From"] = "staff@city.example.lg.jp"
    msg["To"] = "center@care.example.com"
    msg["Subject"] = "資料送付"
    msg["X-Custom"] = "keep me"
    if html_only:
        msg.set_content("<html><body><p>資料です</p></body></html>", subtype="html")
    else:
        msg.set_content("資料を送付します。\n")
    msg.add_attachment(roster_xlsx(3), maintype=XLSX_TYPE[0], subtype=XLSX_TYPE[1],
                       filename="利用者名簿.xlsx")
    msg.add_attachment(b"agenda", maintype="text", subtype="plain", filename="agenda.txt")
    return msg.as_bytes()


def test_named_attachment_becomes_aes256_zip_and_others_are_kept():
    password = new_password()
    out = message_from_bytes(
        encrypt_attachments(_mail(), {"利用者名簿.xlsx"}, password), policy=default
    )
    names = [p.get_filename() for p in out.iter_attachments()]
    assert names == ["利用者名簿.xlsx.zip", "agenda.txt"]
    assert out["X-Custom"] == "keep me" and out["Subject"] == "資料送付"
    zipped = next(out.iter_attachments()).get_content()
    assert zipped[8:10] == b"\x63\x00"  # local header: method 99 = WinZip AES
    aes_extra = zipped.index(b"\x01\x99\x07\x00")  # AE-x extra field, 7 bytes
    assert zipped[aes_extra + 8] == 3  # strength 3 = AES-256
    with pyzipper.AESZipFile(io.BytesIO(zipped)) as zf:
        info = zf.infolist()[0]
        assert info.filename == "利用者名簿.xlsx"
        assert info.flag_bits & 0x800  # UTF-8 file name flag
        assert info.flag_bits & 0x1  # encrypted
        with pytest.raises(RuntimeError):
            zf.read(info.filename)  # no password
        assert zf.read(info.filename, pwd=password.encode()) == roster_xlsx_bytes(zf, password)
    body = out.get_body(preferencelist=("plain",)).get_content()
    assert body.startswith("資料を送付します。") and "AES-256" in body
    assert password not in out.as_string()


def roster_xlsx_bytes(zf, password):
    data = zf.read(zf.namelist()[0], pwd=password.encode())
    assert data.startswith(b"PK") and len(data) > 1000
    return data


def test_html_only_body_gets_a_paragraph():
    out = message_from_bytes(
        encrypt_attachments(_mail(html_only=True), {"利用者名簿.xlsx"}, "pw-123456789"),
        policy=default,
    )
    html = out.get_body(preferencelist=("html",)).get_content()
    assert "<p" in html and "暗号化" in html and html.index("暗号化") < html.index("</body>")


def test_missing_attachment_refuses_rather_than_sending_plain():
    with pytest.raises(EncryptError):
        encrypt_attachments(_mail(), {"not-there.xlsx"}, "pw-123456789")


def test_new_password_is_random_and_unambiguous():
    passwords = {new_password() for _ in range(50)}
    assert len(passwords) == 50
    for pw in passwords:
        assert len(pw) == 16 and set(pw) <= set(PASSWORD_ALPHABET)
        assert not set(pw) & set("0O1lI")
