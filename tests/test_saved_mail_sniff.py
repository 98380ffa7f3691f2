"""A saved mail (.eml) under any other name - 転送.txt, mail.dat, no extension - is
sniffed by its content and read as a mail: quoted-printable and base64 bodies decoded,
attachments opened. Generated mails vary the body's transfer encoding and charset,
the header block (long Received/DKIM chains past 4 KiB, an mbox "From " line, X-
fields), the attachments and the name the file was saved under."""

from __future__ import annotations

import random
from email.message import EmailMessage

import pytest

from dlp_gateway.extract.sniff import mail_header, sniff
from dlp_gateway.scan import Scanner
from tests import filebuilders as fb
from tests.fuzzcases import persons_rows
from tests.roster import people

NAMES = ["転送.txt", "mail.dat", "message", "名簿.csv", "保存.eml", "x.bin", "受信メール.msg.txt"]
CHARSETS = ["utf-8", "iso-2022-jp", "shift_jis"]


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def _header_block(rng: random.Random) -> list[tuple[str, str]]:
    fields = [("Received", f"from relay{i}.example.lg.jp (relay{i} [192.0.2.{i}]) by "
               f"mx.example.lg.jp with ESMTPS id {rng.randrange(16**10):010x}; "
               f"Mon, 24 Nov 2026 10:{i:02d}:00 +0900") for i in range(rng.randrange(0, 40))]
    if rng.random() < 0.5:
        fields.append(("DKIM-Signature", "v=1; a=rsa-sha256; d=example.lg.jp; s=sel; b="
                       + "".join(rng.choice("ABCDEFabcdef0123456789+/") for _ in range(600))))
    fields += [("X-Mailer", "Microsoft Outlook 16.0"), ("X-Priority", "3")][: rng.randrange(3)]
    return fields


def generated_mail(seed: int) -> tuple[bytes, int, int, str]:
    """(mail bytes, people in the body, people in the attachment, body transfer encoding)."""
    rng = random.Random(seed)
    body_people = people(rng, rng.randrange(1, 4))
    cte = rng.choice(["quoted-printable", "base64"])
    msg = EmailMessage()
    for name, value in _header_block(rng):
        msg[name] = value
    msg["From"] = "市民課 <a@city.example.lg.jp>"
    msg["To"], msg["Subject"] = "b@example.com", "名簿の送付"
    msg["Date"] = "Mon, 24 Nov 2026 10:00:00 +0900"
    lines = ["お世話になっております。", "下記のとおりです。"] + [
        f"個人番号 {p.my_number} 氏名 {p.name} 生年月日 {p.birth_text}" for p in body_people]
    msg.set_content("\n".join(lines) + "\n", charset=rng.choice(CHARSETS), cte=cte)
    attached = 0
    if rng.random() < 0.7:
        attached = rng.randrange(3, 7)
        rows = persons_rows(rng, people(rng, attached), label="個人番号")
        kind = rng.choice(["csv", "xlsx", "zip"])
        data = {"csv": fb.csv_bytes, "xlsx": fb.xlsx_bytes,
                "zip": lambda r: fb.zip_of({"名簿.csv": fb.csv_bytes(r)})}[kind](rows)
        msg.add_attachment(data, maintype="application", subtype="octet-stream",
                           filename=f"名簿.{kind}")
    raw = msg.as_bytes()
    if rng.random() < 0.3:  # saved from an mbox
        raw = b"From a@city.example.lg.jp Mon Nov 24 10:00:00 2026\n" + raw
    return raw, len(body_people), attached, cte


@pytest.mark.parametrize("seed", range(24))
def test_saved_mail_under_any_name_is_read_as_a_mail(scanner: Scanner, seed: int) -> None:
    raw, in_body, attached, cte = generated_mail(seed)
    name = NAMES[seed % len(NAMES)]
    assert sniff(name, raw).kind == "message", (seed, name)
    result = scanner.scan_file(name, raw)
    where = (seed, name, cte, result.counts, result.unscannable)
    assert result.unscannable == [], where
    assert result.counts["my_number"] == in_body + attached, where
    assert result.counts["records"] == in_body + attached, where
    assert result.verdict.action == "hold", where
    if attached:
        assert any(f.part.startswith(f"{name}/名簿.") for f in result.findings), where


@pytest.mark.parametrize("seed", range(8))
def test_a_damaged_header_block_gives_both_readings(scanner: Scanner, seed: int) -> None:
    """A stray line among the header fields (a flipped byte, an editor's note): the file
    is read as a mail and as text; the base64 body is only readable as a mail."""
    raw, in_body, _attached, _ = generated_mail(1000 + seed)
    head, sep, rest = raw.partition(b"\nSubject:")
    damaged = head + b"\n\xe2\x80\xbb\xe8\xbb\xa2\xe9\x80\x81" + sep + rest  # "※転送" line
    assert mail_header(damaged) == "damaged"
    result = scanner.scan_file("転送.txt", damaged)
    assert result.counts["my_number"] >= in_body, (seed, result.counts)
    assert result.verdict.action == "hold"


@pytest.mark.parametrize("text", [
    b"From: a\r\nThis is a letter about the meeting.\r\n",
    "件名: お知らせ\r\n本文です。\r\n".encode(),
    b"name,birth\r\nTo:,x\r\n",
    b"Subject: only one field\r\n\r\nbody\r\n",
])
def test_text_that_is_not_a_mail_stays_text(text: bytes) -> None:
    assert mail_header(text) is None
    assert sniff("a.txt", text).kind == "text"
