"""Decoding that cannot be tricked: bad bytes, wrong and missing charset labels.

Seeded cases over encoding x label x damage x container (txt, csv, mail body in
each transfer encoding). The damage is a few invalid bytes in the letter's filler
lines, so the roster itself is intact and the counts must be exact.
"""

from __future__ import annotations

import random
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest

from dlp_gateway.extract.files import extract_file
from dlp_gateway.extract.text import choose_encoding, decodings
from dlp_gateway.extract.units import Limits, TableUnit, TextUnit
from tests.roster import damage, people, roster_csv, roster_prose, scanner

ENCODINGS = {"utf-8": "utf-8", "cp932": "shift_jis", "euc_jp": "euc-jp",
             "iso2022_jp": "iso-2022-jp"}
WRONG = {"utf-8": "shift_jis", "cp932": "utf-8", "euc_jp": "shift_jis",
         "iso2022_jp": "utf-8"}


def _filler_end(data: bytes) -> int:
    """Byte offset of the end of the letter's two filler lines."""
    return data.index(b"\n", data.index(b"\n") + 1)


def _case(seed: int) -> tuple[str, str | None, int]:
    rng = random.Random(seed)
    encoding = rng.choice(sorted(ENCODINGS))
    label = rng.choice(["right", "wrong", "none"])
    declared = {"right": ENCODINGS[encoding], "wrong": WRONG[encoding], "none": None}[label]
    return encoding, declared, rng.randrange(1, 4)


@pytest.mark.parametrize("seed", range(24))
def test_damaged_letter_keeps_its_keywords_under_any_label(seed: int) -> None:
    rng = random.Random(seed)
    encoding, declared, bad = _case(seed)
    persons = people(rng, rng.randrange(2, 6))
    data = roster_prose(persons).encode(encoding)
    if encoding != "iso2022_jp":  # 7-bit: an 8-bit byte in it is damage anyway
        data = damage(data, rng, bad, 0, _filler_end(data))
    else:
        data = damage(data, rng, bad, 0, 2)  # before the first escape sequence
    text = decodings(data, declared)[0][1]
    for p in persons:
        assert f"個人番号 {p.my_number} 氏名 {p.name}" in text, (seed, encoding, declared)
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@city.example.lg.jp", "b@example.com", "送付"
    cte = rng.choice(["8bit", "base64", "quoted-printable"])
    msg.set_payload(data)
    msg["Content-Type"] = "text/plain" + (f"; charset={declared}" if declared else "")
    msg["Content-Transfer-Encoding"] = cte
    if cte == "base64":
        import base64

        msg.set_payload(base64.encodebytes(data).decode("ascii"))
    elif cte == "quoted-printable":
        import quopri

        msg.set_payload(quopri.encodestring(data).decode("ascii"))
    else:
        msg.set_payload(data.decode("ascii", "surrogateescape"))
    raw = msg.as_bytes(policy=default_policy)
    result = scanner().scan_message(raw)
    assert result.counts["my_number"] == len(persons), (seed, encoding, declared, cte)
    assert result.counts["records"] == len(persons), (seed, encoding, declared, cte)
    assert result.verdict.action == "hold"


@pytest.mark.parametrize("seed", range(16))
def test_damaged_csv_reads_its_header(seed: int) -> None:
    rng = random.Random(1000 + seed)
    encoding = rng.choice(["utf-8", "cp932", "euc_jp"])
    persons = people(rng, rng.randrange(2, 8))
    data = roster_csv(persons).encode(encoding)
    # one to three bad bytes between the header line and the first row
    header_end = data.index(b"\n") + 1
    data = data[:header_end] + bytes([0xFF]) * rng.randrange(1, 4) + b"\r\n" + data[header_end:]
    units = list(extract_file("名簿.csv", data, Limits()))
    table = units[0]
    assert isinstance(table, TableUnit)
    assert next(table.rows()).cells == ["個人番号", "氏名", "生年月日"], encoding
    result = scanner().scan_file("名簿.csv", data)
    assert result.counts["my_number"] == len(persons)
    assert result.counts["records"] == len(persons)


def test_one_bad_byte_keeps_utf8_as_utf8() -> None:
    data = "個人番号,氏名\r\n".encode() + b"\xff" + "123456789018,山田太郎\r\n".encode()
    assert choose_encoding(data) == "utf-8"
    assert choose_encoding(data, "utf-8") == "utf-8"


def _ambiguous_kanji() -> list[str]:
    """Kanji whose EUC-JP bytes also read as clean cp932 kanji (both bytes >= 0xE0)."""
    out = []
    for code in range(0x4E00, 0x9FA0):
        try:
            data = chr(code).encode("euc_jp")
            other = data.decode("cp932")
        except UnicodeError:
            continue
        if len(data) == 2 and min(data) >= 0xE0 and "\u4e00" <= other <= "\u9fff":
            out.append(chr(code))
    return out


def _ambiguous_roster(rng: random.Random, count: int) -> tuple[bytes, list]:
    kanji = _ambiguous_kanji()
    persons = people(rng, count)
    text = "".join(f"my number {p.my_number} {''.join(rng.sample(kanji, 3))}\n"
                   for p in persons)
    return text.encode("euc_jp"), persons


def test_ambiguous_bytes_are_scanned_under_every_plausible_reading() -> None:
    """Unlabelled bytes that read cleanly as cp932 and as EUC-JP: both readings are units."""
    data, _ = _ambiguous_roster(random.Random(7), 3)
    assert [e for e, _ in decodings(data)] == ["cp932", "euc_jp"]
    assert [e for e, _ in decodings(data, "euc-jp")] == ["euc_jp"]  # clean as declared
    units = [u for u in extract_file("a.txt", data, Limits()) if isinstance(u, TextUnit)]
    assert [u.location for u in units] == ["a.txt", "a.txt[euc_jp]"]
    # (aligned lines may also be read as a fixed-width table: an outer layout group)
    assert {u.alt[-1] for u in units} == {("a.txt#charset", "cp932"),
                                          ("a.txt#charset", "euc_jp")}


@pytest.mark.parametrize("seed", range(4))
def test_alternative_readings_count_each_person_once(seed: int) -> None:
    rng = random.Random(seed)
    data, persons = _ambiguous_roster(rng, rng.randrange(2, 7))
    result = scanner().scan_file("a.txt", data)
    assert result.counts["my_number"] == len(persons)
    assert result.counts["records"] == len(persons)
    assert {f.location.split("!")[0] for f in result.findings} == {"a.txt"}  # one reading


def test_alternative_readings_never_double_count() -> None:
    """Every reading holds the numbers; the records are those of one reading."""
    rng = random.Random(11)
    persons = people(rng, 4)
    data = roster_prose(persons).encode("euc_jp")
    data = data[:3] + b"\xff" + data[3:]  # misaligns the first line
    result = scanner().scan_file("memo.txt", data)
    assert result.counts["my_number"] == 4
    assert result.counts["records"] == 4
    locations = {f.location.split("!")[0] for f in result.findings}
    assert len(locations) == 1  # findings of exactly one reading
