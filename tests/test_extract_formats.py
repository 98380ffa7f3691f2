"""Every supported format, built in code, read back with exact verdicts and counts."""

from __future__ import annotations

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
