"""`dlp-gateway db migrate|status`: the database schema's version.

``serve`` (and every command that opens the database) migrates by itself; ``db
migrate`` does it on its own, e.g. once before starting upgraded nodes, and ``db
status`` shows the applied migrations without changing anything.
"""

from __future__ import annotations

import argparse
import sys

from dlp_gateway.config import ConfigError, add_common_arguments, config_from_args
from dlp_gateway.store.db import DB_ERRORS, Database
from dlp_gateway.store.schema import LATEST, MIGRATIONS, applied


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("db", help="database schema: migrate, status (スキーマ管理)")
    actions = parser.add_subparsers(dest="db_action", required=True, metavar="ACTION")
    for name, text in (("migrate", "apply the missing migrations"),
                       ("status", "show the schema version and the applied migrations")):
        action = actions.add_parser(name, help=text)
        action.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS)
        action.add_argument("--data-dir", metavar="DIR", default=argparse.SUPPRESS)
        action.add_argument("--database-url", metavar="URL", default=argparse.SUPPRESS)
    add_common_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"dlp-gateway db: {exc}", file=sys.stderr)
        return 2
    migrate = args.db_action == "migrate"
    try:
        db = Database.for_config(config, migrate=False)
    except (OSError, *DB_ERRORS) as exc:
        print(f"dlp-gateway db: cannot open the database: {exc}", file=sys.stderr)
        return 1
    try:
        if migrate:
            before, after = db.migrate()
            if before == after:
                print(f"{db.describe()}: schema version {after}, up to date")
            else:
                print(f"{db.describe()}: schema version {before} -> {after}")
            return 0
        return _status(db)
    except (OSError, *DB_ERRORS) as exc:
        print(f"dlp-gateway db: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()


def _status(db: Database) -> int:
    done = applied(db)
    version = max((m["version"] for m in done), default=0)
    print(f"{db.describe()} ({db.dialect}): schema version {version} of {LATEST}")
    for row in done:
        print(f"  {row['version']}\t{row['applied_at']}\t{row['description']}")
    for migration in MIGRATIONS:
        if migration.version > version:
            print(f"  {migration.version}\tpending\t{migration.description}")
    return 0 if version == LATEST else 3
