"""Every supported format, built in code, read back with exact verdicts and counts."""

from __future__ import annotations

import random

import pytest

from dlp_gateway.scan import Scanner
from tests.filebuilders import BUILDERS, roster_rows

ROWS = roster_rows(12, seed=7)


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_roster_in_every_format_is_held_with_12_records(scanner: Scanner, name: str) -> None:
    data = BUILDERS[name](ROWS)
    result = scanner.scan_file(name, data)
    assert result.unscannable == [], result.unscannable
    assert result.counts["records"] == 12, (name, result.counts)
    assert result.counts["insured_number"] == 12
    assert result.verdict.action == "hold"


@pytest.mark.parametrize("seed", [101, 202, 303])
def test_generated_rosters_in_every_format(scanner: Scanner, seed: int) -> None:
    """Random roster sizes and contents: 1-9 people encrypt, 10 or more hold."""
    rng = random.Random(seed)
    for name in sorted(BUILDERS):
        people = rng.choice([1, 3, 9, 10, 25])
        rows = roster_rows(people, seed=rng.randrange(10**6))
        result = scanner.scan_file(name, BUILDERS[name](rows))
        where = f"seed={seed} {name} people={people}"
        assert result.unscannable == [], (where, result.unscannable)
        assert result.counts["records"] == people, (where, result.counts)
        assert result.verdict.action == ("hold" if people >= 10 else "encrypt"), where
