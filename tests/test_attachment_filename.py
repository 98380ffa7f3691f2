"""An attachment's file name is read as text: a name with its birth date or My Number in
the name (延岡花子_S12.3.4生_調査票.xlsx) is a person record even when the file itself holds
nothing. The name travels in the clear (even as a ZIP entry name after encryption), so
it counts as body text. Generated names vary the person, the date spelling, the
separator, the document word and how the header encodes the name (RFC 2231, RFC 2047,
raw UTF-8); ordinary file names with dates must still pass."""

from __future__ import annotations

import random
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8

import pytest

from dlp_gateway.scan import Scanner
from tests.roster import people

DOCS = ["認定調査票", "申請書", "相談記録", "名簿", "報告書", "調書"]
SEPARATORS = ["_", "-", " ", "　", "＿"]
EXTENSIONS = [".xlsx", ".docx", ".pdf", ".txt"]
INNOCENT = ["議事録_20240401_総務課.docx", "請求書_令和6年4月1日.pdf", "見積書-R6.4.1.xlsx",
            "研修資料_2024-04-01_人事課.pptx", "山田課長_打合せメモ_4月1日.docx"]


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def _birth_spelling(rng: random.Random, year: int, month: int, day: int) -> str:
    era, base = ("S", 1925) if year < 1989 else ("H", 1988)
    return rng.choice([
        f"{era}{year - base}.{month}.{day}生",
        f"{year}年{month}月{day}日生",
        f"生年月日{year:04d}{month:02d}{day:02d}",
    ])


def _mail(filename: str, rng: random.Random) -> bytes:
    msg = EmailMessage()
    msg["From"] = "staff@city.example.lg.jp"
    msg["To"] = "center@example.com"
    msg["Subject"] = "資料送付"
    msg.set_content("お世話になっております。資料を送付します。\n")
    msg.add_attachment(b"placeholder", maintype="application", subtype="octet-stream",
                       filename=filename)
    policy = SMTPUTF8 if rng.random() < 0.3 else SMTP  # raw UTF-8 or RFC 2231 / 2047
    return msg.as_bytes(policy=policy)


@pytest.mark.parametrize("seed", range(40))
def test_a_record_in_an_attachment_name_is_held(scanner: Scanner, seed: int) -> None:
    rng = random.Random(seed)
    person = people(rng, 1)[0]
    sep = rng.choice(SEPARATORS)
    birth = person.birth
    parts = [person.name, _birth_spelling(rng, birth.year, birth.month, birth.day),
             rng.choice(DOCS)]
    filename = sep.join(parts) + rng.choice(EXTENSIONS)
    result = scanner.scan_message(_mail(filename, rng))
    where = (seed, filename, result.counts)
    assert result.counts["records"] == 1, where
    assert result.verdict.action == "hold", where
    assert any(f.location.endswith("!filename!L1") for f in result.findings), where


@pytest.mark.parametrize("filename", INNOCENT)
def test_ordinary_attachment_names_with_dates_pass(scanner: Scanner, filename: str) -> None:
    result = scanner.scan_message(_mail(filename, random.Random(0)))
    assert result.counts["records"] == 0, (filename, result.counts)
    assert result.verdict.action == "pass", (filename, result.counts)
