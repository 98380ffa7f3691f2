"""Write generated cases to files and show them: python -m tests.gen SEED [SEED...] [--out DIR].

With --scan, also scan each case and print expected vs. got.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .cases import make_case, make_letter_case


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.gen")
    parser.add_argument("seeds", nargs="+", type=int)
    parser.add_argument("--out", type=Path, default=None, help="write each case's file here")
    parser.add_argument("--scan", action="store_true", help="scan and compare")
    parser.add_argument("--letter", action="store_true", help="the letter-mail case of SEED")
    args = parser.parse_args()
    scanner = None
    if args.scan:
        from dlp_gateway.scan import Scanner

        scanner = Scanner()
    for seed in args.seeds:
        case = make_letter_case(seed) if args.letter else make_case(seed)
        print(f"seed {seed}: {case.spec.label()}  {case.filename}  expected {case.expected}")
        print(f"  dims: {case.spec.dims()}")
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            path = args.out / f"{seed}_{case.filename}"
            path.write_bytes(case.data)
            print(f"  wrote {path}")
        if scanner is not None:
            result = (
                scanner.scan_message(case.data)
                if case.is_message
                else scanner.scan_file(case.filename, case.data)
            )
            print(f"  got {result.verdict.action} {result.counts}")
            for finding in result.findings[:40]:
                print(f"    {finding.type:15} {finding.location}  {finding.masked}")


if __name__ == "__main__":
    main()
