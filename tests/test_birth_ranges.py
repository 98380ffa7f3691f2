"""Two dates joined as a range (昭和36年4月2日〜昭和37年4月1日生まれ) say who is eligible,
not when one person was born: neither is a birth date, so a staff contact name below the
notice makes no record. Generated notices vary the era spelling, the connector and the
contact line; a real birth date beside a range still counts."""

from __future__ import annotations

import random

import pytest

from dlp_gateway.scan import Scanner

CONNECTORS = ["〜", "～", "~", "-", "から", "－"]
CONTACTS = ["担当：高橋　直樹", "問合せ先　介護保険課　村上　修", "作成者　前田　由美",
            "（担当　清水）"]


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def _date(rng: random.Random, year: int, month: int, day: int) -> str:
    return rng.choice([f"昭和{year - 1925}年{month}月{day}日", f"S{year - 1925}.{month}.{day}",
                       f"{year}年{month}月{day}日", f"{year}/{month:02d}/{day:02d}"])


def _notice(rng: random.Random) -> str:
    year = rng.randrange(1940, 1960)
    first, last = _date(rng, year, 4, 2), _date(rng, year + 1, 4, 1)
    return (f"{rng.choice(['65歳になる方', '対象者', '今年度の対象'])}（{first}"
            f"{rng.choice(CONNECTORS)}{last}{rng.choice(['生まれ', '生', '生まれの方'])}）\n"
            f"{rng.choice(CONTACTS)}\n")


@pytest.mark.parametrize("seed", range(40))
def test_an_eligibility_range_is_no_birth_date(scanner: Scanner, seed: int) -> None:
    text = _notice(random.Random(seed))
    result = scanner.scan_file("notice.txt", text.encode())
    assert result.counts["birth_date"] == 0, text
    assert result.counts["records"] == 0, text
    assert result.verdict.action == "pass", text


@pytest.mark.parametrize("seed", range(10))
def test_a_birth_date_beside_a_range_still_counts(scanner: Scanner, seed: int) -> None:
    rng = random.Random(seed)
    text = _notice(rng) + f"対象者：山田　花子（{_date(rng, 1950, 5, 6)}生）\n"
    result = scanner.scan_file("notice.txt", text.encode())
    assert result.counts["birth_date"] == 1, text
    assert result.counts["records"] == 1, text
