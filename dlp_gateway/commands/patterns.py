"""`dlp-gateway patterns check [DIR]` and `dlp-gateway patterns test [DIR]`.

check: validates every file of a patterns set (TOML syntax, unknown keys, types,
regexes, ranges, policy references) and prints ``file:line: message`` per problem.
test:  runs every ``[[examples]]`` entry (text -> expected count of its type) and
every policy example (a small message or table -> expected verdict).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import TextIO

from dlp_gateway.detect.patterns import (
    PATTERN_FILES,
    PatternSet,
    PolicyExample,
    check_patterns,
    load_patterns,
    resolve_dir,
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "patterns",
        help="check or test a patterns directory",
        description="Validate (check) or run the examples of (test) a patterns directory.",
    )
    actions = parser.add_subparsers(dest="patterns_command", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="validate every file: exit 1 on any error")
    check.add_argument("dir", nargs="?", metavar="DIR", help="patterns directory (bundled)")
    check.set_defaults(handler=run_check)
    test = actions.add_parser("test", help="run every example: exit 1 on a failure")
    test.add_argument("dir", nargs="?", metavar="DIR", help="patterns directory (bundled)")
    test.set_defaults(handler=run_test)


def run_check(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    directory = resolve_dir(args.dir)
    problems = check_patterns(directory)
    for problem in problems:
        out.write(f"{problem}\n")
    if problems:
        out.write(f"{len(problems)} 件のエラー ({len(problems)} error(s)) in {directory}\n")
        return 1
    files = sorted(p.name for p in directory.glob("*.toml"))
    patterns = load_patterns(directory)
    examples = sum(len(getattr(patterns, k).examples) for k in PATTERN_FILES)
    examples += len(patterns.id_examples) + len(patterns.policy.examples)
    out.write(
        f"OK: {directory}: {len(files)} files, {len(patterns.policy.rules)} rules, "
        f"{len(patterns.id_types)} extra ID types, {examples} examples, "
        f"hash {patterns.digest[:12]}\n"
    )
    return 0


@dataclass(frozen=True)
class ExampleResult:
    file: str
    example: str
    expected: str
    got: str

    @property
    def ok(self) -> bool:
        return self.expected == self.got


def run_examples(patterns: PatternSet) -> list[ExampleResult]:
    """Every detection example and every policy example of a loaded set, in file order."""
    from dlp_gateway.extract.units import TextUnit
    from dlp_gateway.scan import Scanner

    scanner = Scanner(patterns=patterns)
    engine = scanner.engine
    results = []
    cases = [(k, k, ex) for k in PATTERN_FILES for ex in getattr(patterns, k).examples]
    cases += [("id_types", ex.type, ex) for ex in patterns.id_examples]
    for file, kind, ex in cases:
        findings = engine.scan_text(TextUnit(ex.text, "body", "body", in_body=True))
        got = sum(1 for f in findings if f.type == kind)
        results.append(ExampleResult(f"{file}.toml", f"[{kind}] {ex.text}", str(ex.count),
                                     str(got)))
    for pex in patterns.policy.examples:
        result = scanner.scan_message(example_message(pex), (pex.sender, list(pex.recipients)))
        results.append(ExampleResult("policy.toml", pex.name, pex.verdict, result.verdict.action))
    return results


def example_message(ex: PolicyExample) -> bytes:
    """A policy example as a real message: its text as the body, its table as a csv."""
    msg = EmailMessage()
    msg["From"] = ex.sender
    msg["To"] = ", ".join(ex.recipients)
    msg["Subject"] = f"patterns test: {ex.name}"
    msg.set_content(ex.text or "添付のとおりです。")
    if ex.table:
        csv = "\r\n".join(",".join(_csv_cell(c) for c in row) for row in ex.table) + "\r\n"
        msg.add_attachment(csv.encode("utf-8"), maintype="text", subtype="csv",
                           filename=ex.attachment)
    return msg.as_bytes()


def _csv_cell(value: object) -> str:
    text = str(value)
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def run_test(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    directory = resolve_dir(args.dir)
    problems = check_patterns(directory)
    if problems:
        for problem in problems:
            out.write(f"{problem}\n")
        out.write("patterns check failed; fix these first (examples not run)\n")
        return 1
    results = run_examples(load_patterns(directory))
    write_table(out, results)
    failed = sum(not r.ok for r in results)
    out.write(f"{len(results) - failed} passed, {failed} failed ({len(results)} examples)\n")
    return 1 if failed else 0


def write_table(out: TextIO, results: list[ExampleResult]) -> None:
    out.write("結果\tfile\texpected\tgot\texample\n")
    for r in results:
        mark = "PASS" if r.ok else "FAIL"
        text = r.example.replace("\n", " ")
        if len(text) > 60:
            text = text[:59] + "…"
        out.write(f"{mark}\t{r.file}\t{r.expected}\t{r.got}\t{text}\n")


def default_dir() -> Path:
    return resolve_dir(None)
