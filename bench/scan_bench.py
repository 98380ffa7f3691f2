"""Scan-engine benchmark (not a test): `make bench` or `python bench/scan_bench.py`.

Generates a 7,203-row care-insurance roster (the Nobeoka incident) as xlsx and a
680,000-row voter list (the Sakai scale) as csv under bench/out/, then measures, each
in a fresh child process so peak memory is its own:
- the bare parse of the file (python-calamine for xlsx, the csv module for csv),
- the full scan (extract + detect + records + verdict), with exact counts checked.

Targets on the 2-core reference machine: roster <= 0.3 s; voter csv <= 20 s with
peak RSS < 1 GiB.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
ROSTER_ROWS = 7_203
VOTER_ROWS = 680_000
SURNAMES = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤"]
GIVEN = ["太郎", "花子", "一郎", "美咲", "健太", "陽子", "翔", "結衣", "大輔", "恵子"]


def make_roster(path: Path) -> None:
    import openpyxl

    rng = random.Random(7203)
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("R4介護認定者")
    ws.append(["令和4年5月20日現在 要介護・要支援認定者一覧"])
    ws.append(["被保険者番号", "氏名", "生年月日", "性別", "住所", "要介護度"])
    for i in range(ROSTER_ROWS):
        born = dt.date(1920, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 40))
        ws.append(
            [
                f"{i + 1:010d}",
                rng.choice(SURNAMES) + rng.choice(GIVEN),
                born,
                rng.choice("男女"),
                f"宮崎県延岡市東本小路{rng.randrange(1, 200)}番地",
                rng.choice(["要支援1", "要支援2", "要介護1", "要介護3"]),
            ]
        )
    wb.save(path)


def make_voters(path: Path) -> None:
    rng = random.Random(680000)
    with path.open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["投票区", "氏名", "フリガナ", "生年月日", "性別", "住所"])
        for i in range(VOTER_ROWS):
            born = dt.date(1925, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 80))
            out.writerow(
                [
                    f"第{i % 90 + 1}投票区",
                    rng.choice(SURNAMES) + rng.choice(GIVEN),
                    "サトウタロウ",
                    born.strftime("%Y/%m/%d"),
                    rng.choice("男女"),
                    f"大阪府堺市堺区{rng.randrange(1, 50)}丁{rng.randrange(1, 30)}番",
                ]
            )


CHILD = r"""
import json, resource, sys, time
kind, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
t0 = time.perf_counter()
if kind == "parse-xlsx":
    import io, python_calamine
    wb = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    cells = sum(len(r) for name in wb.sheet_names for r in wb.get_sheet_by_name(name).to_python())
    out = {"cells": cells}
elif kind == "parse-csv":
    import csv, io
    rows = sum(1 for _ in csv.reader(io.StringIO(data.decode("utf-8"))))
    out = {"rows": rows}
else:
    from dlp_gateway.scan import Scanner
    scanner = Scanner()
    t0 = time.perf_counter()
    result = scanner.scan_file(path.rsplit("/", 1)[-1], data)
    out = {"verdict": result.verdict.action, "counts": result.counts}
out["seconds"] = time.perf_counter() - t0
out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out, ensure_ascii=False))
"""


def run_child(kind: str, path: Path) -> dict:  # type: ignore[type-arg]
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, kind, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    OUT.mkdir(exist_ok=True)
    roster, voters = OUT / "roster_7203.xlsx", OUT / "voters_680000.csv"
    for path, make in ((roster, make_roster), (voters, make_voters)):
        if not path.exists():
            t = time.perf_counter()
            make(path)
            print(f"generated {path.name} in {time.perf_counter() - t:.1f} s", flush=True)
    failures = 0
    for label, path, parse, rows, target_s in (
        ("roster xlsx", roster, "parse-xlsx", ROSTER_ROWS, 0.3),
        ("voter csv", voters, "parse-csv", VOTER_ROWS, 20.0),
    ):
        bare = run_child(parse, path)
        scan = run_child("scan", path)
        ok = scan["seconds"] <= target_s and scan["counts"]["records"] == rows
        ok = ok and scan["peak_rss_mib"] < 1024
        failures += not ok
        print(
            f"{label:12} rows={rows:>7,}  bare parse {bare['seconds']:.3f} s "
            f"({bare['peak_rss_mib']:.0f} MiB)  scan {scan['seconds']:.3f} s "
            f"({scan['peak_rss_mib']:.0f} MiB)  verdict={scan['verdict']} "
            f"counts={scan['counts']}  target<={target_s}s: {'OK' if ok else 'MISSED'}"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
