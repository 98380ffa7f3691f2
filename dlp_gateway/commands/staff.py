"""`dlp-gateway staff import|add|list`: the staff directory (職員名簿).

The directory tells the gateway each sender's department, so that a hold goes
to the heads of the sender's own department. ``import`` reads the city's CSV
export (``email,name,department``; UTF-8 or cp932) and can be run again with a
newer export.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dlp_gateway.config import ConfigError, config_from_args, require_database
from dlp_gateway.ownership import open_data_database
from dlp_gateway.store.audit import AuditLog
from dlp_gateway.store.db import Database
from dlp_gateway.store.staff import StaffError, StaffStore, decode_csv, parse_csv


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="TOML configuration file")
    parser.add_argument("--data-dir", metavar="DIR", default=argparse.SUPPRESS,
                        help="data directory (default ./data)")
    parser.add_argument("--database-url", metavar="URL", default=argparse.SUPPRESS)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("staff", help="staff directory: who works in which department")
    actions = parser.add_subparsers(dest="staff_action", required=True, metavar="ACTION")

    imp = actions.add_parser(
        "import", help="import a CSV (columns email,name,department; UTF-8 or cp932)"
    )
    imp.add_argument("file", metavar="FILE.csv")
    imp.add_argument("--replace", action="store_true",
                     help="also remove people who are not in the file")
    _common(imp)

    add = actions.add_parser("add", help="add or update one person")
    add.add_argument("email")
    add.add_argument("--name", required=True)
    add.add_argument("--department", required=True)
    _common(add)

    listing = actions.add_parser("list", help="list the directory")
    listing.add_argument("--department", default=None)
    listing.add_argument("--format", choices=("text", "json"), default="text")
    _common(listing)

    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("--data-dir", metavar="DIR", help="data directory (default ./data)")
    parser.add_argument("--database-url", metavar="URL", help="PostgreSQL URL (several nodes)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        if args.staff_action in ("list",):
            require_database(config)
    except ConfigError as exc:
        print(f"dlp-gateway staff: {exc}", file=sys.stderr)
        return 2
    if args.staff_action == "import":
        try:  # read the export before dropping to the data owner, who may not be able to
            args.csv_bytes = Path(args.file).read_bytes()
        except OSError as exc:
            print(f"dlp-gateway staff: {exc}", file=sys.stderr)
            return 1
    db = open_data_database(config, "staff")  # as the data owner (README "One owner")
    try:
        return _ACTIONS[args.staff_action](args, db)
    except (StaffError, OSError) as exc:
        print(f"dlp-gateway staff: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()


def _operator() -> str:
    from dlp_gateway.commands.users import _operator as users_operator

    return users_operator()


def _import(args: argparse.Namespace, db: Database) -> int:
    members, skipped = parse_csv(decode_csv(args.csv_bytes))
    result = StaffStore(db).import_members(members, replace=args.replace)
    AuditLog(db).append(
        "staff_imported", _operator(), None,
        {"file": Path(args.file).name, "added": result.added, "updated": result.updated,
         "unchanged": result.unchanged, "removed": result.removed, "skipped": len(skipped)},
    )
    for line in skipped:
        print(f"skipped: {line}", file=sys.stderr)
    print(f"imported {len(members)} people: {result.added} added, {result.updated} updated, "
          f"{result.unchanged} unchanged, {result.removed} removed, {len(skipped)} skipped")
    return 0


def _add(args: argparse.Namespace, db: Database) -> int:
    member, outcome = StaffStore(db).add(args.email, args.name, args.department)
    AuditLog(db).append(
        "staff_added", _operator(), None,
        {"email": member.email, "name": member.name, "department": member.department,
         "outcome": outcome},
    )
    print(f"{outcome} {member.email} ({member.department})")
    return 0


def _list(args: argparse.Namespace, db: Database) -> int:
    for member in StaffStore(db).list(args.department):
        if args.format == "json":
            print(json.dumps({"email": member.email, "name": member.name,
                              "department": member.department}, ensure_ascii=False))
        else:
            print(f"{member.email}\t{member.name}\t{member.department}")
    return 0


_ACTIONS = {"import": _import, "add": _add, "list": _list}
