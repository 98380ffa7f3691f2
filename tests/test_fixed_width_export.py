"""A host system's fixed-width export (no header, no keyword): sequence number, My Number,
half-width kana name and yyyymmdd birth date run together on each line. The My Number
column is found by the check digit passing at the same place on every line, as a
headerless table column is; random digit runs and slip-number lists never are."""

from __future__ import annotations

import random

import pytest

from dlp_gateway.scan import Scanner
from tests.roster import people

KANA = ["ﾔﾏﾀﾞ ﾀﾛｳ", "ｽｽﾞｷ ﾊﾅｺ", "ﾀﾅｶ ｲﾁﾛｳ", "ｻﾄｳ ﾄﾒ", "ｲﾄｳ ｹﾝﾀ", "ﾜﾀﾅﾍﾞ ﾕﾐ"]


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def _export(rng: random.Random, rows: int, valid: bool) -> bytes:
    seq_width = rng.choice([0, 5, 7])
    prefix_code = rng.choice(["", "01", "2024"])
    lines = []
    for i, person in enumerate(people(rng, rows), 1):
        number = person.my_number if valid else f"{rng.randrange(10**11, 10**12)}"
        seq = f"{i:0{seq_width}d}" if seq_width else ""
        name = rng.choice(KANA).ljust(16)
        lines.append(f"{prefix_code}{seq}{number}{name}{person.birth:%Y%m%d}")
    newline = rng.choice(["\r\n", "\n"])
    return (newline.join(lines) + newline).encode(rng.choice(["cp932", "utf-8"]))


@pytest.mark.parametrize("seed", range(30))
def test_fixed_width_my_number_column_is_found(scanner: Scanner, seed: int) -> None:
    rng = random.Random(seed)
    rows = rng.randrange(5, 40)
    result = scanner.scan_file(rng.choice(["export.txt", "DATA.DAT", "kojin.txt"]),
                               _export(rng, rows, valid=True))
    assert result.counts["my_number"] == rows, (seed, rows, result.counts)
    assert result.verdict.action == "hold", (seed, result.counts)


@pytest.mark.parametrize("seed", range(30))
def test_random_fixed_width_runs_are_no_my_numbers(scanner: Scanner, seed: int) -> None:
    rng = random.Random(seed)
    result = scanner.scan_file("export.txt", _export(rng, rng.randrange(5, 40), valid=False))
    assert result.counts["my_number"] == 0, (seed, result.counts)


@pytest.mark.parametrize("seed", range(20))
def test_a_slip_number_list_is_no_my_number_column(scanner: Scanner, seed: int) -> None:
    """Real slip numbers pass the check digit about one time in eleven."""
    rng = random.Random(seed)
    slips = "\n".join(f"{rng.randrange(10**11, 10**12)}" for _ in range(rng.randrange(5, 30)))
    text = f"{rng.choice(['注文番号一覧', '伝票番号', '発送分'])}\n{slips}\n"
    assert scanner.scan_file("orders.txt", text.encode()).counts["my_number"] == 0, text
