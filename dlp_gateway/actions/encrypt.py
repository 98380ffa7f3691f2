"""Replace attachments carrying personal data with AES-256 ZIPs (pyzipper WZ_AES).

Each attachment named in ``names`` becomes ``<name>.zip`` holding the original
file under its original (UTF-8) name; a short Japanese note is appended to the
body; every other part and header is kept. If a named attachment cannot be
found the function raises ``EncryptError``: the caller must then hold the
message, never send it unencrypted.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage, Message
from email.policy import SMTP, default

import pyzipper

PASSWORD_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"

NOTE_TEXT = (
    "【情報漏えい防止ゲートウェイ】個人情報を含む添付ファイルを AES-256 で暗号化した ZIP に"
    "置き換えました（{files}）。パスワードは送信者から別の手段でお知らせします。"
)

_OUT_POLICY = SMTP.clone(refold_source="none")


class EncryptError(Exception):
    """An attachment to encrypt was not found or could not be read."""


def new_password(length: int = 16) -> str:
    """A fresh random password from an alphabet without look-alikes (0/O, 1/l/I)."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


def encrypt_attachments(raw: bytes, names: set[str], password: str) -> bytes:
    """Return the message with each attachment in ``names`` replaced by an AES ZIP."""
    if not names:
        return raw
    if not password:
        raise EncryptError("empty password")
    msg = message_from_bytes(raw, policy=default)
    assert isinstance(msg, EmailMessage)
    done: list[str] = []
    for part in _leaves(msg):
        name = _attachment_name(part)
        if name is None or name not in names or name in done:
            continue
        _replace_with_zip(part, name, password)
        done.append(name)
    missing = set(names) - set(done)
    if missing:
        raise EncryptError(f"{len(missing)} attachment(s) to encrypt not found")
    _append_note(msg, NOTE_TEXT.format(files="、".join(f"{n}.zip" for n in done)))
    return msg.as_bytes(policy=_OUT_POLICY)


def zip_bytes(name: str, data: bytes, password: str) -> bytes:
    buf = io.BytesIO()
    with pyzipper.AESZipFile(
        buf, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES
    ) as zf:
        zf.setpassword(password.encode("utf-8"))
        zf.setencryption(pyzipper.WZ_AES, nbits=256)
        zf.writestr(name, data)
    return buf.getvalue()


def _leaves(part: Message) -> Iterator[Message]:
    """Non-multipart parts, not descending into attached messages."""
    if part.get_content_maintype() == "multipart" and isinstance(part.get_payload(), list):
        for sub in part.get_payload():
            yield from _leaves(sub)
    else:
        yield part


def _attachment_name(part: Message) -> str | None:
    try:  # the extraction helper's decoder, so names match ScanResult.parts_with_findings()
        from dlp_gateway.extract.mime import attachment_filename
    except ImportError:
        attachment_filename = None
    if attachment_filename is not None:
        try:
            return attachment_filename(part)
        except Exception:  # fall back to the stdlib decoder below
            pass
    try:
        name = part.get_filename()
    except Exception:
        return None
    return str(name) if name else None


def _part_bytes(part: Message) -> bytes:
    if part.get_content_maintype() == "message":
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if inner is None:
            raise EncryptError("empty attached message")
        return inner.as_bytes(policy=_OUT_POLICY)
    data = part.get_payload(decode=True)
    if data is None:
        raise EncryptError("attachment without content")
    return data


def _replace_with_zip(part: Message, name: str, password: str) -> None:
    data = zip_bytes(name, _part_bytes(part), password)
    for header in ("Content-Type", "Content-Transfer-Encoding", "Content-Disposition",
                   "Content-Description", "Content-ID", "MIME-Version"):
        del part[header]
    if part.is_multipart():
        part.set_payload(None)
    assert isinstance(part, EmailMessage)
    part.set_content(
        data, maintype="application", subtype="zip", disposition="attachment",
        filename=f"{name}.zip",
    )


def _append_note(msg: EmailMessage, note: str) -> None:
    plain = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    if plain is not None and not plain.is_attachment():
        text = _text_of(plain)
        assert isinstance(plain, EmailMessage)
        plain.set_content(text.rstrip("\n") + "\n\n" + note + "\n", charset="utf-8")
    if html is not None and not html.is_attachment():
        text = _text_of(html)
        paragraph = f'<p style="color:#b00">{note}</p>'
        lower = text.lower()
        at = lower.rfind("</body>")
        text = text[:at] + paragraph + text[at:] if at != -1 else text + paragraph
        assert isinstance(html, EmailMessage)
        html.set_content(text, subtype="html", charset="utf-8")
    if plain is None and html is None:
        _add_note_part(msg, note)


def _text_of(part: Message) -> str:
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError):
        data = part.get_payload(decode=True) or b""
        return data.decode("utf-8", "replace")


def _add_note_part(msg: EmailMessage, note: str) -> None:
    if msg.get_content_type() == "multipart/mixed":
        note_part = EmailMessage()
        note_part.set_content(note + "\n", charset="utf-8")
        msg.get_payload().insert(0, note_part)
