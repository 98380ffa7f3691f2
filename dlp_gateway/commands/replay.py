"""`dlp-gateway replay [--since 7d] [--patterns DIR] [--data-dir DIR]`

Re-scans stored mail — every held message, and passed mail kept by the opt-in
retention (``retain_passed_days``) — with the active patterns set and with a
candidate set, and prints per mail the verdict now and with the candidate, then a
summary of how many would change which way. Nothing is sent or changed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from dlp_gateway.config import (
    ConfigError,
    add_common_arguments,
    config_from_args,
    require_database,
)

_SINCE = re.compile(r"^(\d+)\s*([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
_DIGITS = re.compile(r"\d[\d\- ]{6,}\d")
STRENGTH = {"pass": 0, "encrypt": 1, "hold": 2}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "replay", help="re-scan stored mail with a candidate patterns set",
        description="Compare the verdicts of stored mail (held, and retained passed mail) "
        "under the active patterns set and a candidate set. Read-only.",
    )
    add_common_arguments(parser)
    parser.add_argument("--since", default="7d", metavar="AGE",
                        help="how far back: 7d, 12h, 30m or a date (2026-11-01); default 7d")
    parser.add_argument("--patterns", metavar="DIR",
                        help="candidate patterns directory (default: the configured one)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class Stored:
    id: str
    source: str  # "held" | "passed"
    received: str
    subject: str
    sender: str
    recipients: list[str]
    raw: bytes


def parse_since(value: str, now: dt.datetime | None = None) -> dt.datetime:
    now = now or dt.datetime.now(dt.UTC)
    m = _SINCE.match(value.strip())
    if m:
        return now - dt.timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"--since: expected 7d, 12h, 30m or a date, got {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def stored_mail(gateway, since: dt.datetime) -> Iterator[Stored]:  # type: ignore[no-untyped-def]
    """Held messages and retained passed mail received at or after ``since``, oldest first."""
    from dlp_gateway.store.retained import RetainedStore

    items: list[Stored] = []
    for held in gateway.held.list():
        if _parse(held.received) < since:
            continue
        try:
            raw = gateway.held.raw(held.id)
        except Exception as exc:  # a missing or altered spool file: say so, go on
            print(f"{held.id}: cannot read stored message ({exc})", file=sys.stderr)
            continue
        items.append(Stored(held.id, "held", held.received, held.subject, held.sender,
                            held.recipients, raw))
    config = gateway.config
    store = RetainedStore(config.data_dir, max(1, config.retain_passed_days),
                          config.retain_max_mb * 1024 * 1024)
    for kept in store.entries(since):
        from dlp_gateway.relay.headers import decoded_subject

        items.append(Stored(kept.id, "passed", kept.received, decoded_subject(kept.raw),
                            kept.sender, kept.recipients, kept.raw))
    yield from sorted(items, key=lambda s: _parse(s.received))


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    from dlp_gateway.detect.patterns import PatternError, load_patterns
    from dlp_gateway.gateway import Gateway
    from dlp_gateway.reload import ACTIVE_DIR
    from dlp_gateway.scan import Scanner

    try:
        config = require_database(config_from_args(args))
        since = parse_since(args.since)
    except (ConfigError, ValueError) as exc:
        print(f"dlp-gateway replay: {exc}", file=sys.stderr)
        return 2
    now_dir = _active_dir(config.data_dir / ACTIVE_DIR) or config.patterns_dir
    try:
        current = Scanner(patterns=load_patterns(now_dir))
        candidate = Scanner(patterns=load_patterns(args.patterns or config.patterns_dir))
    except PatternError as exc:
        print(f"dlp-gateway replay: {exc}", file=sys.stderr)
        return 2
    gateway = Gateway(config)
    changes: Counter[tuple[str, str]] = Counter()
    try:
        if args.format == "text":
            out.write(f"# now: {current.patterns.digest[:12]} ({current.patterns.directory})\n"
                      f"# candidate: {candidate.patterns.digest[:12]} "
                      f"({candidate.patterns.directory})\n"
                      "id\tsource\treceived\tnow\tcandidate\tsubject\n")
        for mail in stored_mail(gateway, since):
            envelope = (mail.sender, list(mail.recipients))
            before = current.scan_message(mail.raw, envelope).verdict
            after = candidate.scan_message(mail.raw, envelope).verdict
            changes[(before.action, after.action)] += 1
            _write(out, args.format, mail, before, after)
    finally:
        gateway.close()
    _summary(out, args.format, changes)
    return 0


def _write(out: TextIO, fmt: str, mail: Stored, before, after) -> None:  # type: ignore[no-untyped-def]
    subject = _DIGITS.sub(lambda m: "*" * (len(m.group()) - 4) + m.group()[-4:], mail.subject)
    if fmt == "json":
        out.write(json.dumps({
            "id": mail.id, "source": mail.source, "received": mail.received, "subject": subject,
            "now": before.action, "candidate": after.action, "now_rules": list(before.rules),
            "candidate_rules": list(after.rules), "changed": before.action != after.action,
        }, ensure_ascii=False) + "\n")
        return
    mark = "" if before.action == after.action else "  *"
    out.write(f"{mail.id}\t{mail.source}\t{mail.received}\t{before.action}"
              f"\t{after.action}{mark}\t{subject[:40]}\n")


def _summary(out: TextIO, fmt: str, changes: Counter[tuple[str, str]]) -> None:
    total = sum(changes.values())
    same = sum(n for (a, b), n in changes.items() if a == b)
    stricter = sum(n for (a, b), n in changes.items() if STRENGTH[b] > STRENGTH[a])
    looser = total - same - stricter
    moves = {f"{a}->{b}": n for (a, b), n in sorted(changes.items()) if a != b}
    if fmt == "json":
        out.write(json.dumps({"summary": {"total": total, "unchanged": same,
                                          "stricter": stricter, "looser": looser,
                                          "changes": moves}}) + "\n")
        return
    out.write(f"合計 {total} 通: 変化なし {same}、厳しくなる {stricter}、緩くなる {looser} "
              f"(total {total}: unchanged {same}, stricter {stricter}, looser {looser})\n")
    for move, n in moves.items():
        out.write(f"  {move}: {n}\n")


def _active_dir(root: Path) -> Path | None:
    dirs = [d for d in root.glob("*") if d.is_dir() and not d.name.startswith(".")]
    return max(dirs, key=lambda d: d.stat().st_mtime) if dirs else None


def _parse(stamp: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
