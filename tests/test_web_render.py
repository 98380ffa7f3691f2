"""Display helpers of the admin page: masking numbers, body excerpts, summaries."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage

import pytest

from dlp_gateway.web.render import audit_csv, body_excerpt, mask_digits, waited, why_held


@pytest.mark.parametrize(
    ("text", "hidden", "kept"),
    [
        ("個人番号 123456789018 です", "12345678", "9018"),
        ("番号 1234-5678-9018", "1234-5678", "9018"),
        ("番号 1234 5678 9018", "1234 5678", "9018"),
        ("番号 １２３４ ５６７８ ９０１８", "１２３４ ５６７８", "９０１８"),
        ("番号 1234 / 5678 / 9018", "1234 / 5678", "9018"),
        ("番号 1234‐5678‐9018", "1234‐5678", "9018"),
    ],
)
def test_mask_digits_hides_all_but_last_four(text, hidden, kept):
    masked = mask_digits(text)
    assert hidden not in masked
    assert kept in masked
    assert masked.count("*") + masked.count("＊") >= 8


def test_mask_digits_leaves_short_numbers():
    assert mask_digits("4月1日 第2会議室 10時") == "4月1日 第2会議室 10時"
    assert mask_digits(None) == ""


def test_body_excerpt_plain_and_html():
    msg = EmailMessage()
    msg["Subject"] = "x"
    msg.set_content("<b>本文</b>\nマイナンバー 123456789018\n")
    plain = body_excerpt(msg.as_bytes())
    assert "123456789018" not in plain and "9018" in plain
    assert "<b>本文</b>" in plain  # plain text stays as it is; the template escapes it

    html = EmailMessage()
    html["Subject"] = "x"
    html.set_content("<p>こんにちは</p><script>alert(1)</script><p>番号 1234-5678-9018</p>",
                     subtype="html")
    text = body_excerpt(html.as_bytes())
    assert "こんにちは" in text and "alert" not in text and "<p>" not in text
    assert "1234-5678" not in text


def test_body_excerpt_of_garbage_does_not_crash():
    assert "12345678" not in body_excerpt(b"\xff\xfe garbage 123456789018 \x00")


def test_why_held_lines():
    lines = why_held({"my_number": 3, "insured_number": 7203, "records": 7203}, [],
                     [{"part": "a.zip", "reason": "encrypted_archive"}])
    assert lines == ["マイナンバー 3件", "被保険者番号 7,203件", "個人 7,203人分",
                     "暗号化された圧縮ファイル 1件"]
    assert why_held({}, ["検査時間 123456789018"], []) == ["検査時間 ********9018"]


def test_waited():
    t0 = dt.datetime(2025, 4, 1, tzinfo=dt.UTC)
    assert waited(t0.isoformat(), t0 + dt.timedelta(minutes=7)) == "7分"
    assert waited(t0.isoformat(), t0 + dt.timedelta(hours=5, minutes=12)) == "5時間12分"
    assert waited(t0.isoformat(), t0 + dt.timedelta(days=2, hours=3)) == "2日3時間"


def test_audit_csv_has_bom_and_crlf():
    assert audit_csv([], {}).startswith("\ufeff連番,")
    assert audit_csv([], {}).endswith("\r\n")


@pytest.mark.parametrize("charset_header, encoding", [
    ("", "utf-8"),  # swaks --body, scripts: 8-bit body, no charset
    ("", "cp932"),
    ('; charset="iso-2022-jp"', "iso-2022-jp"),
    ('; charset="us-ascii"', "utf-8"),  # mislabelled
])
def test_body_excerpt_reads_japanese_bodies_as_the_scanner_does(charset_header, encoding):
    body = "介護保険課です。\n明日の会議資料をお送りします。\nよろしくお願いします。\n"
    raw = (f"From: a@city.example.lg.jp\r\nTo: b@example.com\r\nSubject: x\r\n"
           f"MIME-Version: 1.0\r\nContent-Type: text/plain{charset_header}\r\n"
           f"Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + body.encode(encoding)
    excerpt = body_excerpt(raw)
    assert "\ufffd" not in excerpt
    assert "明日の会議資料をお送りします。" in excerpt
