"""Info rows above a roster (issue 8, independent tester class U1): 「作成者 | 山田 太郎」,
「所属 | 介護保険課」, 「基準日 | 令和6年4月1日」 label | value rows, a blank row or not, then
the real list header. The info rows must never swallow the header below them. Real xlsx,
csv, tab-separated text and docx files built here from a seeded generator, scanned end to
end with exact verdict and counts; a staff list under the same info rows still passes."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from dlp_gateway.scan import Scanner, ScanResult
from tests.test_detect_layouts import csv_bytes, docx_table, people, valid_my_numbers, xlsx

INFO_LABELS = ("作成者", "所属", "担当者", "記入者", "報告者", "基準日", "作成日")
STAFF = ("山田 太郎", "田中 恵子", "中村 健太", "小林 美咲", "佐藤 一郎")
DEPARTMENTS = ("介護保険課", "長寿福祉課", "市民課", "保険年金課", "健康づくり課")
FORMATS = ("xlsx", "csv", "txt", "docx")
SEEDS = range(48)


def info_value(label: str, rng: random.Random, as_cell: bool) -> object:
    """A staff name, a department or a date, the way each label is really filled in."""
    if label in ("基準日", "作成日"):
        day = dt.date(2024, rng.randint(1, 12), rng.randint(1, 28))
        if as_cell and rng.random() < 0.5:
            return dt.datetime(day.year, day.month, day.day)
        return rng.choice([f"令和6年{day.month}月{day.day}日", day.strftime("%Y/%m/%d")])
    if label == "所属":
        return rng.choice(DEPARTMENTS)
    return rng.choice(STAFF + DEPARTMENTS)  # 担当者 | 介護保険課 happens too


def info_rows(rng: random.Random, as_cell: bool) -> list[list[object]]:
    labels = rng.sample(INFO_LABELS, rng.randint(1, 3))
    if rng.random() < 0.5 and not any(lb in ("基準日", "作成日") for lb in labels):
        labels[0] = "作成者"  # the tester's commonest line
    return [[lb, info_value(lb, rng, as_cell)] for lb in labels]


def roster_rows(rng: random.Random, n: int, seed: int) -> tuple[list[list[object]], int, int]:
    """氏名 | 生年月日 and a random choice of 個人番号 / 被保険者番号 / 住所 / 性別 columns."""
    ps = people(n, seed)
    with_mn = rng.random() < 0.5
    with_ins = rng.random() < 0.5
    extra = [h for h in ("住所", "性別") if rng.random() < 0.5]
    numbers = valid_my_numbers(n, seed)
    header = ["氏名", *(["個人番号"] if with_mn else []), "生年月日"]
    header += [*(["被保険者番号"] if with_ins else []), *extra]
    rows: list[list[object]] = [header]
    for i, p in enumerate(ps):
        born = p["born"]
        assert isinstance(born, dt.date)
        row: list[object] = [p["name"], *([numbers[i]] if with_mn else [])]
        row.append(born.strftime("%Y/%m/%d"))
        row += [*([p["insured"]] if with_ins else [])]
        row += [{"住所": "宮崎県延岡市", "性別": rng.choice("男女")}[h] for h in extra]
        rows.append(row)
    return rows, n if with_mn else 0, n if with_ins else 0


def sheet(seed: int, fmt: str) -> tuple[list[list[object]], int, int, int, str]:
    rng = random.Random(f"info-rows-{seed}")
    n = rng.randint(3, 20)
    rows = info_rows(rng, fmt == "xlsx")
    blank = rng.random() < 0.7
    if blank:
        rows.append([])
    body, mn, ins = roster_rows(rng, n, seed)
    rows += body
    offset = rng.choice([0, 0, 1, 2])
    rows = [[None] * offset + r if r else [] for r in rows]
    shape = f"seed={seed} fmt={fmt} n={n} blank={blank} offset={offset} head={rows[:2]}"
    return rows, n, mn, ins, shape


def encode(rows: list[list[object]], fmt: str) -> bytes:
    if fmt == "xlsx":
        return xlsx(rows)
    if fmt == "csv":
        return csv_bytes(rows, "cp932")
    if fmt == "docx":
        return docx_table(rows)
    return "\n".join("\t".join("" if v is None else str(v) for v in r) for r in rows).encode()


def expected_verdict(records: int, my_number: int) -> str:
    """patterns/policy.toml: a My Number or 10 people hold; fewer people in a file encrypt."""
    if my_number or records >= 10:
        return "hold"
    return "encrypt" if records else "pass"


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def summary(result: ScanResult) -> tuple[str, int, int, int, int]:
    c = result.counts
    return (
        result.verdict.action,
        c["records"],
        c["my_number"],
        c["insured_number"],
        c["birth_date"],
    )


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("seed", SEEDS)
def test_info_rows_above_a_roster_keep_every_person(scanner: Scanner, seed: int, fmt: str) -> None:
    rows, n, mn, ins, shape = sheet(seed, fmt)
    result = scanner.scan_file(f"名簿.{fmt}", encode(rows, fmt))
    want = (expected_verdict(n, mn), n, mn, ins, n)
    assert summary(result) == want, shape


@pytest.mark.parametrize(
    "info",
    [
        [["作成者", "山田 太郎"]],
        [["所属", "介護保険課"]],
        [["基準日", "令和6年4月1日"], ["作成者", "田中 恵子"]],
        [["所属", "介護保険課"], ["担当者", "中村 健太"]],
    ],
)
@pytest.mark.parametrize("blank", [True, False])
def test_tester_layouts_with_my_numbers(
    scanner: Scanner, info: list[list[object]], blank: bool
) -> None:
    """The tester's KG/KH shape: three people with My Numbers under one info row."""
    rows: list[list[object]] = [*info, *([[]] if blank else [])]
    rows.append(["氏名", "個人番号", "生年月日"])
    numbers = valid_my_numbers(3, 5)
    rows += [[p["name"], numbers[i], p["born"]] for i, p in enumerate(people(3, 5))]
    result = scanner.scan_file("名簿.xlsx", xlsx(rows))
    assert summary(result) == ("hold", 3, 3, 0, 3)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("seed", range(12))
def test_info_rows_above_a_staff_list_still_pass(scanner: Scanner, seed: int, fmt: str) -> None:
    """Names with no personal data beside them: 作成者 / 所属 rows change nothing."""
    rng = random.Random(f"info-rows-staff-{seed}")
    rows = info_rows(rng, fmt == "xlsx")
    if rng.random() < 0.7:
        rows.append([])
    rows.append(["所属", "氏名", "内線", "直通電話"])
    for p in people(rng.randint(3, 20), seed):
        ext = str(rng.randint(1000, 4999))
        phone = f"0982-{rng.randint(20, 39)}-{rng.randint(1000, 9999)}"
        rows.append([rng.choice(DEPARTMENTS), p["name"], ext, phone])
    result = scanner.scan_file(f"内線表.{fmt}", encode(rows, fmt))
    assert summary(result)[:4] == ("pass", 0, 0, 0), rows[:4]
