"""A 4-4-4 My Number broken once by the mail client's hard wrap (個人番号は 1234 5678⏎9018),
also inside a quoted reply, counts when a My Number keyword governs it; a number list
(one 4-digit value per line) and a number under a negative label never do."""

from __future__ import annotations

import random

import pytest

from dlp_gateway.scan import Scanner
from tests.roster import my_number


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def _wrapped(rng: random.Random, digits: str, quote: str) -> str:
    """1234 5678⏎9018 or 1234-⏎5678-9018: the wrap falls after the first or second group,
    the separator before it kept or dropped."""
    sep = rng.choice([" ", "-"])
    groups = [digits[:4], digits[4:8], digits[8:]]
    cut = rng.choice([1, 2])
    head = sep.join(groups[:cut]) + rng.choice([sep, ""])
    return f"{head}\n{quote}{sep.join(groups[cut:])}"


@pytest.mark.parametrize("seed", range(30))
def test_a_hard_wrapped_my_number_counts(scanner: Scanner, seed: int) -> None:
    rng = random.Random(seed)
    quote = rng.choice(["", "> ", ">> "])
    label = rng.choice(["個人番号は", "マイナンバー：", "個人番号"])
    text = (f"{quote}お世話になっております。\n{quote}{label} "
            f"{_wrapped(rng, my_number(rng), quote)} です。\n")
    result = scanner.scan_file("mail.txt", text.encode())
    assert result.counts["my_number"] == 1, text
    assert result.verdict.action == "hold", text


@pytest.mark.parametrize("seed", range(20))
def test_number_lines_and_negative_labels_are_no_my_number(scanner: Scanner, seed: int) -> None:
    rng = random.Random(seed)
    digits = my_number(rng)
    lines = "\n".join([digits[:4], digits[4:8], digits[8:]])
    text = rng.choice([
        f"マイナンバーカード交付件数（月別）\n{lines}\n",
        f"注文番号 {digits[:4]} {digits[4:8]}\n{digits[8:]}\n個人番号の記載は不要です。",
    ])
    assert scanner.scan_file("a.txt", text.encode()).counts["my_number"] == 0, text
