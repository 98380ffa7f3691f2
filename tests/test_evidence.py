"""Evidence for approvers (issue 9): masked cells, header + first rows of real xlsx/csv
attachments, findings grouped by person, body excerpt with names and birth dates
masked; and the sender's signed status-link tokens."""

from __future__ import annotations

import datetime as dt
import io
import os
import random
import re
import stat
from email.message import EmailMessage

import openpyxl
import pytest

from dlp_gateway.status_link import LinkError, load_key, make_token, read_token
from dlp_gateway.web.evidence import (
    mask_body,
    mask_cell,
    person_groups,
    row_key,
    table_previews,
)
from dlp_gateway.web.render import body_excerpt

SEED = int(os.environ.get("DLP_SEED", random.randrange(1 << 30)))
N = int(os.environ.get("DLP_FUZZ_N", "400"))
SURNAMES = ["佐藤", "鈴木", "高橋", "田中", "渡邉", "齋藤", "小林", "ｻﾄｳ", "Smith"]
GIVEN = ["花子", "太郎", "一郎", "美咲", "ﾊﾅｺ", "John"]
ERAS = ["昭和", "平成", "令和", "S", "H"]


def _digits(text: str) -> list[str]:
    return re.findall(r"[0-9０-９]", text)


def _random_date(rng: random.Random) -> object:
    y, m, d = rng.randint(1930, 2020), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice([
        dt.date(y, m, d), dt.datetime(y, m, d, 0, 0),
        f"{y}/{m:02d}/{d:02d}", f"{y}-{m}-{d}", f"{y}年{m}月{d}日",
        f"{rng.choice(ERAS)}{rng.randint(1, 64)}年{m}月{d}日",
        f"{rng.choice(ERAS[-2:])}{rng.randint(1, 30)}.{m}.{d}",
        f"{y}年{m:02d}月{d:02d}日生",
    ])


def test_every_masked_cell_keeps_at_most_four_digits_and_one_name_character():
    rng = random.Random(SEED)
    for case in range(N):
        kind = rng.choice(["number", "numstr", "name", "date", "mixed"])
        where = f"seed={SEED} case={case} kind={kind}"
        if kind == "number":
            value: object = rng.randint(0, 10 ** rng.randint(1, 15))
        elif kind == "numstr":
            n = rng.randint(6, 16)
            raw = "".join(rng.choice("0123456789") for _ in range(n))
            sep = rng.choice(["", "-", " ", "－"])
            value = sep.join(raw[i:i + 4] for i in range(0, n, 4))
        elif kind == "name":
            value = rng.choice(SURNAMES) + rng.choice(["", " ", "　"]) + rng.choice(GIVEN)
        elif kind == "date":
            value = _random_date(rng)
        else:
            value = f"延岡市{rng.choice(SURNAMES)}町{rng.randint(1, 99)}-{rng.randint(1, 99)}"
        out = mask_cell(value)
        shown = _digits(out)
        assert len(shown) <= 4, (where, value, out)
        if kind == "number":
            total = len(str(value))
            assert len(shown) <= max(0, total - 4), (where, value, out)
        if kind == "date":
            assert shown == [], (where, value, out)  # dates are masked completely
        if kind == "name":
            text = str(value).strip()
            assert out[0] == text[0] and set(out[1:]) <= {"＊"}, (where, value, out)
        if kind == "mixed":
            assert "延岡市" not in out, (where, value, out)


def _workbook(rows: int) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "名簿"
    ws.append(["令和6年度 要介護認定者一覧"])  # a title row above the header
    ws.append([])
    ws.append(["被保険者番号", "氏名", "生年月日", "住所"])
    for i in range(rows):
        ws.append([f"{1000000001 + i * 7919:010d}", f"{SURNAMES[i % 6]} {GIVEN[i % 4]}",
                   dt.date(1940 + i % 40, 1 + i % 12, 1 + i % 28), f"延岡市本町{i + 1}-2"])
    ws2 = wb.create_sheet("集計")
    ws2.append(["区分", "人数"])
    ws2.append(["要介護1", 12])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _mail(body: str, xlsx: bytes | None = None, csv: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@city.example", "b@care.example", "名簿"
    msg.set_content(body)
    if xlsx:
        msg.add_attachment(xlsx, maintype="application",
                           subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                           filename="介護名簿.xlsx")
    if csv:
        msg.add_attachment(csv.encode("cp932"), maintype="text", subtype="csv",
                           filename="一覧.csv")
    return msg.as_bytes()


def test_table_previews_show_sheet_header_and_first_five_rows_masked():
    csv = "氏名,生年月日,個人番号\r\n" + "".join(
        f"{SURNAMES[i % 6]}{GIVEN[i % 4]},昭和{30 + i}年1月2日,1234567890{i:02d}\r\n"
        for i in range(8))
    previews = table_previews(_mail("本文です。", _workbook(30), csv))
    by_sheet = {(p.part, p.sheet): p for p in previews}
    roster = by_sheet[("介護名簿.xlsx", "名簿")]
    assert roster.header == ["被保険者番号", "氏名", "生年月日", "住所"]
    assert roster.header_row == 3
    assert [n for n, _ in roster.rows] == [4, 5, 6, 7, 8]
    first = roster.rows[0][1]
    assert first[0] == "＊＊＊＊＊＊0001" and first[1].startswith("佐") and "藤" not in first[1]
    assert _digits(first[2]) == [] and "延岡市" not in first[3]
    assert ("介護名簿.xlsx", "集計") in by_sheet
    listing = next(p for p in previews if p.part == "一覧.csv")
    assert listing.header == ["氏名", "生年月日", "個人番号"] and len(listing.rows) == 5
    for _, cells in listing.rows:
        assert len(_digits(cells[2])) <= 4 and _digits(cells[1]) == []


def test_findings_grouped_by_person_and_expandable():
    findings = []
    for row in range(2, 32):
        for col, kind in (("A", "insured_number"), ("B", "name"), ("C", "birth_date")):
            findings.append({"type": kind, "part": "名簿.xlsx",
                             "location": f"名簿.xlsx!名簿!{col}{row}", "masked": "x"})
    findings.append({"type": "name", "part": "名簿.xlsx", "location": "名簿.xlsx!名簿!F40",
                     "masked": "山＊"})
    groups = person_groups(findings)
    assert groups[0].label == "30人: 被保険者番号・氏名・生年月日"
    assert len(groups[0].findings) == 90
    assert groups[1].label.startswith("1件: 氏名のみ") and not groups[1].record
    assert row_key("a.docx!table1!r3c2") == row_key("a.docx!table1!r3c5")


def test_body_excerpt_masks_names_and_birth_dates_found_there():
    body = ("お世話になっております。\n対象者: 山田 太郎 様（昭和45年3月2日生）\n"
            "個人番号 1234 5678 9012\n以上")
    findings = [
        {"type": "name", "part": "body", "location": "body!L2", "masked": "山＊＊＊＊"},
        {"type": "birth_date", "part": "body", "location": "body!L2", "masked": "x"},
        {"type": "my_number", "part": "body", "location": "body!L3", "masked": "********9012"},
    ]
    excerpt = body_excerpt(_mail(body), findings=findings)
    assert "お世話になっております" in excerpt
    assert "太郎" not in excerpt and "山田" not in excerpt and "山＊＊＊＊" in excerpt
    assert "45" not in excerpt and "3月2" not in excerpt
    assert "1234" not in excerpt and "9012" in excerpt
    # a finding whose line cannot be matched still masks every date in the excerpt
    assert "1970" not in mask_body("生年月日は\n1970/03/02", [
        {"type": "birth_date", "location": "body!L9", "masked": "x"}])


# -- status links -----------------------------------------------------------------------


def test_status_token_is_signed_for_one_mail_and_expires(tmp_path):
    key = load_key(tmp_path)
    assert load_key(tmp_path) == key  # created once
    assert stat.S_IMODE((tmp_path / "status-link.key").stat().st_mode) == 0o600
    now = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    token = make_token(key, "Ab-_9xYz", now + dt.timedelta(hours=72))
    claim = read_token(key, token, now)
    assert claim.held_id == "Ab-_9xYz"
    payload, _, sig = token.partition(".")
    for forged in (payload + "." + sig[::-1], make_token(b"k" * 32, "Ab-_9xYz", now), "x",
                   "", payload):
        with pytest.raises(LinkError):
            read_token(key, forged, now)
    with pytest.raises(LinkError) as late:
        read_token(key, token, now + dt.timedelta(hours=72))
    assert late.value.expired
