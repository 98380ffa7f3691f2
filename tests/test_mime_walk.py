"""The MIME walk reads everything a recipient can read: every alternative, headers,
preamble and epilogue, forwarded messages in any transfer encoding, hidden HTML.

Mails are built with the stdlib email package over seeded rosters; counts are exact.
"""

from __future__ import annotations

import base64
import quopri
import random
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import default as default_policy

import pytest

from dlp_gateway.extract.mime import extract_message
from dlp_gateway.extract.units import Limits, TextUnit
from tests.roster import people, roster_html, roster_prose, scanner

CHARSETS = ["iso-2022-jp", "shift_jis", "euc-jp", "utf-8"]


def _mail(**headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = headers.pop("From", "市民課 <shimin@city.example.lg.jp>")
    msg["To"] = headers.pop("To", "center@care.example.com")
    msg["Subject"] = headers.pop("Subject", "資料送付")
    return msg


def _raw(msg: Message) -> bytes:
    return msg.as_bytes(policy=default_policy.clone(linesep="\r\n"))


def _encoded_word(text: str, charset: str, label: str | None = None, q: bool = False) -> str:
    """An RFC 2047 word holding ``text`` encoded in ``charset`` but labelled ``label``."""
    data = text.encode(charset.replace("-", "_") if charset != "utf-8" else "utf-8")
    if q:
        body = quopri.encodestring(data, header=True).decode("ascii").replace("=\n", "")
        return f"=?{label or charset}?Q?{body}?="
    return f"=?{label or charset}?B?{base64.b64encode(data).decode('ascii')}?="


@pytest.mark.parametrize("seed", range(12))
def test_subject_in_any_charset_is_scanned(seed: int) -> None:
    rng = random.Random(seed)
    [person] = people(rng, 1)
    charset = rng.choice(CHARSETS)
    label = rng.choice([None, "utf-8", "shift_jis"])  # None: correctly labelled
    word = _encoded_word(f"個人番号{person.my_number}の件", charset, label, q=rng.random() < .5)
    raw = (
        "From: a@city.example.lg.jp\r\nTo: b@example.com\r\n"
        f"Subject: {word}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nよろしくお願いします。\r\n"
    ).encode()
    [subject] = [u for u in extract_message(raw, Limits()) if "header:Subject" in u.location]
    assert person.my_number in subject.text, (charset, label)
    result = scanner().scan_message(raw)
    assert result.counts["my_number"] == 1
    assert [f.location for f in result.findings] == ["header:Subject!L1"]
    assert result.verdict.action != "pass"


def test_display_names_are_text_units() -> None:
    msg = _mail(From=str(Header("山田 太郎", "iso-2022-jp")) + " <yamada@city.example.lg.jp>")
    msg["Cc"] = "=?utf-8?B?" + base64.b64encode("佐藤 花子".encode()).decode() + "?= <s@x.jp>"
    msg.set_content("本文")
    units = {u.location: u.text for u in extract_message(_raw(msg), Limits())
             if isinstance(u, TextUnit)}
    assert "山田 太郎" in units["header:From"]
    assert "佐藤 花子" in units["header:Cc"]
    assert units["header:Subject"] == "資料送付"


def test_preamble_and_epilogue_are_scanned() -> None:
    rng = random.Random(5)
    persons = people(rng, 3)
    outer = MIMEMultipart()
    outer["Subject"] = "x"
    outer.preamble = roster_prose(persons[:2])
    outer.epilogue = roster_prose(persons[2:])
    outer.attach(MIMEText("本文です。", "plain", "utf-8"))
    raw = outer.as_string().encode(rng.choice(["utf-8", "cp932"]))  # raw 8-bit preamble
    result = scanner().scan_message(raw)
    assert result.counts["my_number"] == 3
    assert result.counts["records"] == 3
    assert {f.location.split("!")[0] for f in result.findings} == {"preamble", "epilogue"}
    assert all(f.in_body for f in result.findings)


@pytest.mark.parametrize("cte", ["base64", "quoted-printable", "7bit", "8bit"])
@pytest.mark.parametrize("charset", CHARSETS)
def test_forwarded_message_in_any_transfer_encoding(cte: str, charset: str) -> None:
    rng = random.Random(hash((cte, charset)) & 0xFFFF)
    persons = people(rng, rng.randrange(2, 6))
    inner = MIMEText(roster_prose(persons), "plain", charset)
    inner["Subject"] = "転送元"
    inner_bytes = inner.as_bytes()
    part = Message()
    part["Content-Type"] = "message/rfc822"
    part["Content-Transfer-Encoding"] = cte
    if cte == "base64":
        part.set_payload(base64.encodebytes(inner_bytes).decode("ascii"))
    elif cte == "quoted-printable":
        part.set_payload(quopri.encodestring(inner_bytes).decode("ascii"))
    else:
        part.set_payload(inner_bytes.decode("ascii", "surrogateescape"))
    outer = MIMEMultipart()
    outer["Subject"] = "Fwd: 転送元"
    outer.attach(MIMEText("転送します。", "plain", "utf-8"))
    raw = _insert_part(outer, part)
    result = scanner().scan_message(raw)
    assert result.counts["my_number"] == len(persons), (cte, charset)
    assert result.counts["records"] == len(persons)
    assert {f.part for f in result.findings} == {"forwarded-1.eml"}


def _insert_part(outer: MIMEMultipart, part: Message) -> bytes:
    """Serialise ``outer`` with ``part`` appended without re-encoding its payload."""
    boundary = outer.get_boundary() or "BOUNDARY"
    outer.set_boundary(boundary)
    head = outer.as_bytes().rsplit(f"--{boundary}--".encode(), 1)[0]
    return (head + f"--{boundary}\n".encode() + part.as_bytes(unixfrom=False)
            + f"\n--{boundary}--\n".encode())


@pytest.mark.parametrize("seed", range(6))
def test_every_alternative_is_scanned_and_counted_once(seed: int) -> None:
    rng = random.Random(seed)
    persons = people(rng, rng.randrange(2, 6))
    where = rng.choice(["both", "plain", "html"])
    msg = _mail()
    plain = roster_prose(persons) if where in ("both", "plain") else "資料を送付します。\n"
    html = roster_html(persons) if where in ("both", "html") else "<p>資料を送付します。</p>"
    msg.set_content(plain, charset=rng.choice(["iso-2022-jp", "utf-8"]))
    msg.add_alternative(html, subtype="html")
    result = scanner().scan_message(_raw(msg))
    assert result.counts["my_number"] == len(persons), where
    assert result.counts["records"] == len(persons), where
    assert len({f.location.split("!")[0] for f in result.findings}) == 1


def test_richer_short_alternative_is_not_hidden_by_a_longer_one() -> None:
    """The old walk kept only the longer branch; the data here is in the shorter one."""
    rng = random.Random(9)
    persons = people(rng, 2)
    msg = _mail()
    msg.set_content(roster_prose(persons))
    msg.add_alternative("<p>" + "ご確認ください。" * 200 + "</p>", subtype="html")
    result = scanner().scan_message(_raw(msg))
    assert result.counts["records"] == 2
    assert result.verdict.action == "hold"


def test_html_comment_title_and_attributes_are_read() -> None:
    rng = random.Random(2)
    a, b, c, d = people(rng, 4)
    html = (
        f"<html><head><title>個人番号 {a.my_number}</title></head><body>"
        f"<!-- 個人番号 {b.my_number} -->"
        f"<p>ご確認ください<img src=x.png alt=\"個人番号 {c.my_number}\"></p>"
        f"<form><input type=hidden name=n value=\"個人番号 {d.my_number}\"></form>"
        "</body></html>"
    )
    msg = _mail()
    msg.set_content(html, subtype="html")
    result = scanner().scan_message(_raw(msg))
    assert result.counts["my_number"] == 4
    assert result.verdict.action == "hold"


@pytest.mark.parametrize("where", ["body", "attachment"])
def test_text_claiming_base64_is_read_raw_too(where: str) -> None:
    """A part labelled base64 that carries plain text: its raw text is scanned as well,
    and the people in it are counted once."""
    rng = random.Random(where)
    persons = people(rng, 3)
    text = roster_prose(persons)
    name = '; name="memo.txt"\r\nContent-Disposition: attachment; filename="memo.txt"' \
        if where == "attachment" else ""
    raw = (
        "From: a@city.example.lg.jp\r\nTo: b@example.com\r\nSubject: x\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
        "--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n送付します。\r\n"
        f"--B\r\nContent-Type: text/plain; charset=utf-8{name}\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{text}\r\n--B--\r\n"
    ).encode()
    result = scanner().scan_message(raw)
    assert result.counts["my_number"] == 3
    assert result.counts["records"] == 3
    assert len({f.location.split("!")[0] for f in result.findings}) == 1  # one variant
