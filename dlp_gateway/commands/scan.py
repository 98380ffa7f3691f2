"""`dlp-gateway scan [--format json|text] [--patterns DIR] [--timeout S] [--max-memory MIB] PATH...`

Scans each PATH (a .eml message, or a single xlsx/docx/csv/txt/zip file) with one
loaded Scanner and prints one result per PATH, in order. With ``--format json``
each result is exactly one JSON object on its own line. A PATH that cannot be read
gives an object with an ``error`` field, and the exit status is 1 at the end.

Each PATH is scanned in a forked child (it starts at once: the dictionary is
already loaded) under one wall-clock limit and one memory cap, as a mail is in the
relay: a scan that runs over becomes ``hold`` with an unscannable part ``timeout``,
one that runs out of memory ``too_large``, a reader that crashes ``corrupt``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from dlp_gateway.detect.patterns import PatternError
from dlp_gateway.policy import REASON_LABELS_JA, TYPE_LABELS_JA

MESSAGE_SUFFIXES = {".eml", ".msg822", ".mbox1"}
DEFAULT_TIMEOUT_SECONDS = 60.0  # as the relay's scan_timeout_seconds
DEFAULT_MAX_MEMORY_MIB = 2048  # as the relay's scan_max_memory_mb
_HEADER_START = (
    b"from:",
    b"received:",
    b"return-path:",
    b"message-id:",
    b"date:",
    b"subject:",
    b"to:",
    b"mime-version:",
    b"delivered-to:",
    b"x-",
)
VERDICT_LABELS = {
    "pass": "通過 (pass)",
    "encrypt": "暗号化して送信 (encrypt)",
    "hold": "保留 (hold)",
}
ROLE_LABELS = {"ciso": "統括情報セキュリティ責任者", "section_head": "所属長"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "scan",
        help="scan messages or files and print the verdict",
        description="Scan .eml messages or single files (xlsx, docx, csv, txt, zip).",
    )
    parser.add_argument("--format", choices=("json", "text"), default="text")
    parser.add_argument("--patterns", metavar="DIR", help="patterns directory (default: bundled)")
    parser.add_argument("--explain", action="store_true",
                        help="say why each finding fired and why near misses did not")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_SECONDS, metavar="SECONDS",
        help=f"wall-clock limit per PATH (default {DEFAULT_TIMEOUT_SECONDS:g}; 0: none)",
    )
    parser.add_argument(
        "--max-memory", type=int, default=DEFAULT_MAX_MEMORY_MIB, metavar="MIB",
        help=f"memory one PATH's scan may add, in MiB (default {DEFAULT_MAX_MEMORY_MIB}; "
             "0: none)",
    )
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dlp_gateway.extract.units import Limits
    from dlp_gateway.scan import Scanner  # heavy import (SudachiPy) only when scanning

    if args.timeout < 0 or args.max_memory < 0:
        print("dlp-gateway scan: --timeout and --max-memory must be >= 0", file=sys.stderr)
        return 2
    limits = Limits()
    if args.timeout:
        # the scan stops itself a little before the child is killed (as in the relay)
        limits.timeout_seconds = max(0.5, args.timeout * 0.9)
    if args.max_memory:
        limits.max_parser_memory_bytes = args.max_memory << 20
    try:
        scanner = Scanner(args.patterns, limits)
    except PatternError as exc:
        print(f"dlp-gateway scan: {exc}", file=sys.stderr)
        return 2
    if args.explain:  # every finding explained: no evidence bound on tables
        scanner.engine.tables.evidence_limit = None
    failed = False
    out = sys.stdout
    for path in args.paths:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            failed = True
            _print_error(out, args.format, path, exc)
            continue
        out.flush()
        if args.timeout or args.max_memory:
            scan_limited(scanner, path, data, args.format, args.timeout, args.max_memory << 20,
                         out, args.explain)
        else:
            render(out, path, args.format, scanner, data, scan_one(scanner, path, data),
                   args.explain)
        out.flush()
    return 1 if failed else 0


def _explain(scanner, path: str, data: bytes, result):  # type: ignore[no-untyped-def]
    """Re-read the input and explain ``result`` (see dlp_gateway.detect.explain)."""
    from dlp_gateway.detect.explain import Explainer
    from dlp_gateway.extract.files import extract_file
    from dlp_gateway.extract.mime import extract_message

    if is_message(path, data):
        units = list(extract_message(data, scanner.limits))
    else:
        units = list(extract_file(Path(path).name, data, scanner.limits))
    return Explainer(scanner).explain(units, result)


def _add_explain(payload: dict, explanation) -> None:  # type: ignore[type-arg, no-untyped-def]
    for i, finding in enumerate(payload["findings"]):
        why = explanation.findings.get(i)
        finding["explain"] = why.to_json() if why else None
    payload["near_misses"] = [m.to_json() for m in explanation.near_misses]
    payload["verdict_explain"] = {"ja": explanation.verdict_ja, "en": explanation.verdict_en}


NEAR_MISSES_SHOWN = 50


def write_explain(out: TextIO, result, explanation) -> None:  # type: ignore[no-untyped-def]
    out.write(f"  判定の理由: {explanation.verdict_ja}\n")
    out.write(f"  (verdict: {explanation.verdict_en})\n")
    out.write("  検出の理由 (why each finding fired):\n")
    # One entry per distinct reason (a 7,203-row roster has a handful, not 21,609 lines);
    # `--format json` keeps the explanation of every single finding.
    groups: dict[tuple, list] = {}  # type: ignore[type-arg]
    for i, finding in enumerate(result.findings):
        why = explanation.findings.get(i)
        if why is not None:
            groups.setdefault((finding.type, why.ja, why.en, tuple(why.rules)), []).append(finding)
    for (ftype, ja, en, rules), members in groups.items():
        first = members[0]
        label = TYPE_LABELS_JA.get(ftype, ftype)
        rule_text = f"  ルール (rules): {', '.join(rules)}" if rules else ""
        more = f"  ほか同じ理由で {len(members) - 1:,} 件 (+{len(members) - 1:,} alike)" \
            if len(members) > 1 else ""
        out.write(f"    {label}\t{first.location}\t{first.masked}{rule_text}{more}\n")
        out.write(f"      {ja}\n      ({en})\n")
    if explanation.near_misses:
        out.write("  見送った候補 (near misses):\n")
        for miss in explanation.near_misses[:NEAR_MISSES_SHOWN]:
            out.write(f"    {miss.location}\t{miss.masked}\n")
            out.write(f"      {miss.ja}\n      ({miss.en})\n")
        if len(explanation.near_misses) > NEAR_MISSES_SHOWN:
            rest = len(explanation.near_misses) - NEAR_MISSES_SHOWN
            out.write(f"    ... ほか {rest:,} 件 (more; --format json lists all)\n")


def scan_one(scanner, path: str, data: bytes):  # type: ignore[no-untyped-def]
    if is_message(path, data):
        return scanner.scan_message(data)
    return scanner.scan_file(Path(path).name, data)


def render(out: TextIO, path: str, fmt: str, scanner, data: bytes, result,  # type: ignore[no-untyped-def]
           explain: bool = False) -> None:
    """Print one PATH's result (with ``--explain``, why each finding fired)."""
    explanation = _explain(scanner, path, data, result) if explain else None
    if fmt == "json":
        payload = result.to_json()
        if explanation is not None:
            _add_explain(payload, explanation)
        write_json(out, path, payload)
    else:
        write_text(out, path, result)
        if explanation is not None:
            write_explain(out, result, explanation)


def scan_limited(scanner, path: str, data: bytes, fmt: str, timeout: float,  # type: ignore[no-untyped-def]
                 memory_bytes: int, out: TextIO, explain: bool = False) -> None:
    """Scan ``path`` in a forked child under the limits; print its result, or, if the
    child ran over or crashed, a hold result naming the reason."""
    import shutil
    import tempfile

    from dlp_gateway.extract.isolate import IsolatedFailure, run_isolated
    from dlp_gateway.extract.units import Unscannable

    with tempfile.TemporaryFile("w+", encoding="utf-8") as buffer:
        def child() -> None:
            render(buffer, path, fmt, scanner, data, scan_one(scanner, path, data), explain)
            buffer.flush()

        try:
            run_isolated(child, memory_bytes=memory_bytes,
                         timeout=timeout if timeout else float("inf"))
        except IsolatedFailure as exc:
            part = "message" if is_message(path, data) else Path(path).name
            result = scanner.held_result(Unscannable(part, exc.reason, exc.detail))
            render(out, path, fmt, scanner, data, result)
            return
        buffer.seek(0)
        shutil.copyfileobj(buffer, out)


def is_message(path: str, data: bytes) -> bool:
    """A .eml file, or a file that starts like a mail header block."""
    if Path(path).suffix.lower() in MESSAGE_SUFFIXES:
        return True
    if Path(path).suffix:
        return False
    return data[:200].lstrip().lower().startswith(_HEADER_START)


def _print_error(out: TextIO, fmt: str, path: str, exc: OSError) -> None:
    message = exc.strerror or str(exc)
    if fmt == "json":
        out.write(json.dumps({"path": path, "error": message}, ensure_ascii=False) + "\n")
    else:
        out.write(f"{path}: エラー (error): {message}\n")


def write_json(out: TextIO, path: str, result: dict) -> None:  # type: ignore[type-arg]
    """One object on one line, findings streamed so a huge roster is never one giant string."""
    findings = result.pop("findings")
    head = json.dumps({"path": path, **result}, ensure_ascii=False)
    out.write(head[:-1] + ', "findings": [')
    for i, finding in enumerate(findings):
        out.write(("," if i else "") + json.dumps(finding, ensure_ascii=False))
    out.write("]}\n")


def write_text(out: TextIO, path: str, result) -> None:  # type: ignore[no-untyped-def]
    v = result.verdict
    out.write(f"{path}: {VERDICT_LABELS.get(v.action, v.action)}")
    if v.approver_role:
        out.write(f"  承認者 (approver): {ROLE_LABELS.get(v.approver_role, v.approver_role)}")
    out.write("\n")
    for reason in v.reasons:
        out.write(f"  理由 (reason): {reason}\n")
    counts = "、".join(f"{label} {result.counts[t]:,}" for t, label in TYPE_LABELS_JA.items())
    out.write(f"  検出数 (counts): {counts}、人数 (records) {result.counts['records']:,}\n")
    for finding in result.findings[:20]:
        label = TYPE_LABELS_JA.get(finding.type, finding.type)
        out.write(f"    {label}\t{finding.location}\t{finding.masked}\t{finding.confidence:.2f}\n")
    shown = min(20, len(result.findings))
    if result.findings_total > shown:
        out.write(f"    ... ほか {result.findings_total - shown:,} 件 (more)\n")
    for u in result.unscannable:
        out.write(
            f"  検査不能 (unscannable): {u.part}: {REASON_LABELS_JA.get(u.reason, u.reason)}"
            f" [{u.reason}]\n"
        )
    for s in result.skipped:
        out.write(f"  未検査 (skipped): {s.part}: {s.content_type}\n")
