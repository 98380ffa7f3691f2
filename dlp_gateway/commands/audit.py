"""`dlp-gateway audit verify|list|export`: the hash-chained audit log.

``verify`` exits 0 when the chain is intact and 1 (listing the problems) when a
row was edited, forged or deleted, or the table no longer reaches the newest
anchored head (``--anchor FILE`` names the anchor file to compare against).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dlp_gateway.config import (
    ConfigError,
    add_common_arguments,
    config_from_args,
    require_database,
)
from dlp_gateway.store.audit import AuditEntry, AuditLog
from dlp_gateway.store.db import Database
from dlp_gateway.store.held import HeldStore
from dlp_gateway.store.spool import open_spool
from dlp_gateway.web.render import audit_csv


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--event")
    parser.add_argument("--actor")
    parser.add_argument("--held-id")
    parser.add_argument("--since", help="ISO date or time (UTC)")
    parser.add_argument("--until", help="ISO date (inclusive) or time (UTC)")


def _common(parser: argparse.ArgumentParser) -> None:
    """--config/--data-dir after the action too (``audit add X --data-dir D``)."""
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS)
    parser.add_argument("--data-dir", metavar="DIR", default=argparse.SUPPRESS)
    parser.add_argument("--database-url", metavar="URL", default=argparse.SUPPRESS)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("audit", help="verify, list or export the audit log (監査ログ)")
    actions = parser.add_subparsers(dest="audit_action", required=True, metavar="ACTION")

    verify = actions.add_parser("verify", help="check the hash chain (exit 1 if broken)")
    verify.add_argument("--anchor", metavar="FILE", default=None,
                        help="anchor file to compare against (default: the configured one)")
    _common(verify)

    listing = actions.add_parser("list", help="print entries")
    _filters(listing)
    listing.add_argument("--limit", type=int, default=None)
    listing.add_argument("--format", choices=("text", "json"), default="text")
    _common(listing)

    export = actions.add_parser("export", help="write entries as CSV (UTF-8 with BOM)")
    export.add_argument("--csv", required=True, metavar="FILE", dest="csv_file")
    _filters(export)
    _common(export)

    add_common_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = require_database(config_from_args(args))
    except ConfigError as exc:
        print(f"dlp-gateway audit: {exc}", file=sys.stderr)
        return 2
    db = Database.for_config(config)
    try:
        log = AuditLog(db)
        if args.audit_action == "verify":
            return _verify(log, args.anchor)
        entries = log.entries(
            event=args.event, actor=args.actor, held_id=args.held_id,
            since=args.since, until=args.until, limit=getattr(args, "limit", None),
        )
        if args.audit_action == "list":
            return _list(entries, args.format)
        return _export(entries, db, config.data_dir, Path(args.csv_file), config.timezone)
    finally:
        db.close()


def _verify(log: AuditLog, anchor: str | None = None) -> int:
    problems = log.verify(anchor)
    try:
        total = len(log.entries())
    except Exception:  # the table itself is gone
        total = 0
    if problems:
        print(f"監査ログに問題があります（{len(problems)}件）:")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(f"監査ログは改ざんされていません（{total}件）")
    return 0


def _list(entries: list[AuditEntry], fmt: str) -> int:
    for e in entries:
        if fmt == "json":
            print(json.dumps({
                "seq": e.seq, "at": e.at, "event": e.event, "actor": e.actor,
                "held_id": e.held_id, "details": e.details, "hash": e.hash,
            }, ensure_ascii=False))
        else:
            details = json.dumps(e.details, ensure_ascii=False, sort_keys=True)
            print(f"{e.seq}\t{e.at}\t{e.event}\t{e.actor}\t{e.held_id or '-'}\t{details}")
    return 0


def _export(
    entries: list[AuditEntry], db: Database, data_dir: Path, target: Path, tz: str | None = None
) -> int:
    held = HeldStore(db, open_spool(db, data_dir))
    facts = {}
    for held_id in {e.held_id for e in entries if e.held_id}:
        try:
            facts[held_id] = held.get(held_id)
        except KeyError:
            continue
    target.write_text(audit_csv(entries, facts, tz), encoding="utf-8", newline="")
    print(f"wrote {len(entries)} entries to {target}")
    return 0
