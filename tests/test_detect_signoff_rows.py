"""Rows under a roster that say who made it and when (作成者 | 伊藤 博, 作成日 | 2024/04/01,
"作成者 山口 誠 | 令和6年4月1日作成") are not one more person: the date that lands under
生年月日 is no birth. Generated rosters vary the size, the columns, the footer's labels,
where the footer sits (under the name column, one column in, label and value in one
cell), a blank row before it, and the file type; an empty template with a footer passes."""

from __future__ import annotations

import random

import pytest

from dlp_gateway.scan import Scanner
from tests import filebuilders as fb
from tests.roster import people

LABELS = [("作成者", "name"), ("記入者", "name"), ("確認者", "name"), ("担当者", "name"),
          ("作成日", "date"), ("記入日", "date"), ("作成年月日", "date")]
STAFF = ["伊藤　博", "鈴木　和子", "山口　誠", "渡辺　陽子"]


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def _footer(rng: random.Random, width: int, offset: int) -> list[list[object]]:
    rows: list[list[object]] = []
    for label, kind in rng.sample(LABELS, rng.randrange(1, 4)):
        value = rng.choice(STAFF) if kind == "name" else rng.choice(["2024/04/01", "令和6年4月1日"])
        if rng.random() < 0.3:
            cells: list[object] = [f"{label} {value}"]
        else:
            cells = [label, value]
        rows.append(([""] * offset + cells + [""] * width)[:width])
    return rows


def _roster(rng: random.Random, count: int) -> tuple[list[list[object]], int]:
    with_no = rng.random() < 0.5
    header = (["No"] if with_no else []) + ["氏名", "生年月日"]
    rows: list[list[object]] = [header]
    for i, person in enumerate(people(rng, count), 1):
        rows.append(([i] if with_no else []) + [person.name.replace(" ", "　"),
                                                 f"{person.birth:%Y/%m/%d}"])
    if rng.random() < 0.6:
        rows.append([""] * len(header))
    rows += _footer(rng, len(header), int(with_no) if rng.random() < 0.7 else 0)
    return rows, count


@pytest.mark.parametrize("seed", range(40))
def test_a_signoff_footer_is_not_a_person(scanner: Scanner, seed: int) -> None:
    rng = random.Random(seed)
    count = rng.randrange(3, 10)
    rows, expected = _roster(rng, count)
    kind = rng.choice(["xlsx", "csv"])
    encoding = rng.choice(["utf-8", "cp932"])
    data = fb.xlsx_bytes(rows) if kind == "xlsx" else fb.csv_bytes(rows, encoding)
    result = scanner.scan_file(f"名簿.{kind}", data)
    assert result.counts["records"] == expected, (seed, rows[-3:], result.counts)
    assert result.verdict.action == "encrypt", (seed, result.counts)


@pytest.mark.parametrize("seed", range(10))
def test_an_empty_template_with_a_footer_passes(scanner: Scanner, seed: int) -> None:
    rng = random.Random(seed)
    rows: list[list[object]] = [["No", "氏名", "生年月日", "住所"]]
    rows += [[i, "", "", ""] for i in range(1, rng.randrange(5, 20))]
    rows += _footer(rng, 4, rng.choice([0, 1]))
    result = scanner.scan_file("様式.xlsx", fb.xlsx_bytes(rows))
    assert result.counts["records"] == 0, (seed, rows[-3:], result.counts)
    assert result.verdict.action == "pass", (seed, result.counts)
