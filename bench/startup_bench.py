"""Start-up benchmark: `dlp-gateway scan` of one small file, the whole process.

Runs the installed command (a fresh interpreter each time, as a user would) ``--runs``
times per file and prints the minimum and median wall time and CPU time (user + system
of the child), beside the verdict and counts it printed (the result must not change
with the speed). Files are built here: a short Japanese notice (.txt), a small csv with
one person's record, a short mail (.eml). ``--importtime`` prints the slowest imports
of one run (``python -X importtime``). A script, not a test (target: <= 0.3 s).

    .venv/bin/python bench/startup_bench.py [--runs 10] [--importtime]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FILES = {
    "notice.txt": "各位\n来週の定例会議は第二会議室で午後二時から開催します。\n総務課\n"
                  .encode(),
    "person.csv": "氏名,生年月日,住所\n山田太郎,1970/03/02,千葉市中央区1-1\n".encode(),
    "short.eml": ("From: staff@city.example.lg.jp\r\nTo: partner@example.com\r\n"
                  "Subject: =?utf-8?b?5Lya6K2w?=\r\nMIME-Version: 1.0\r\n"
                  "Content-Type: text/plain; charset=utf-8\r\n"
                  "Content-Transfer-Encoding: 8bit\r\n\r\n"
                  "お世話になっております。資料をお送りします。\r\n").encode(),
}


def command() -> list[str]:
    exe = shutil.which("dlp-gateway", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "dlp_gateway.cli"]


def one_run(path: Path) -> tuple[float, float, dict]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([*command(), "scan", "--format", "json", str(path)],
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return wall, cpu, json.loads(done.stdout)


def import_times(path: Path, top: int = 15) -> None:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "dlp_gateway.cli",
                           "scan", str(path)], capture_output=True, text=True, check=False)
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    total = sum(r[0] for r in rows if not r[1].startswith("  ")) / 1e6
    print(f"slowest imports (cumulative; {total:.3f} s of imports in all):")
    for micros, name in sorted(rows, reverse=True)[:top]:
        print(f"  {micros / 1000:7.1f} ms {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{' '.join(command())} scan FILE, {args.runs} runs each, "
              f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
        for name, data in FILES.items():
            path = Path(tmp) / name
            path.write_bytes(data)
            one_run(path)  # warm the page cache
            walls, cpus, results = [], [], set()
            for _ in range(args.runs):
                wall, cpu, result = one_run(path)
                walls.append(wall)
                cpus.append(cpu)
                results.add(json.dumps({"verdict": result["verdict"],
                                        "counts": result["counts"]}, ensure_ascii=False))
            print(f"  {name:11} wall min {min(walls):.3f} s median "
                  f"{statistics.median(walls):.3f} s   cpu min {min(cpus):.3f} s median "
                  f"{statistics.median(cpus):.3f} s   {' | '.join(sorted(results))}")
        if args.importtime:
            import_times(Path(tmp) / "notice.txt")


if __name__ == "__main__":
    main()
