"""The versioned schema of the gateway's database, for SQLite and PostgreSQL alike.

``schema_version`` holds one row per applied migration; ``migrate`` applies the missing
ones in order, in one transaction (PostgreSQL: under an advisory lock, so two nodes
starting together migrate once). DDL is written for SQLite and translated by the
database (``Database.ddl``). A migration, once released, is never edited: a change is
a new migration at the end.

Version 1 is the schema of the first release. A SQLite file written before versions
existed has no ``schema_version``: version 1 is idempotent (``IF NOT EXISTS``, columns
added when missing), so such a file is upgraded in place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dlp_gateway.store.db import Database, StorageError, split_statements, utc_now

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version      INTEGER PRIMARY KEY,
    applied_at   TEXT NOT NULL,
    description  TEXT NOT NULL
)
"""

BASELINE = """
CREATE TABLE IF NOT EXISTS held (
    id             TEXT PRIMARY KEY,
    received       TEXT NOT NULL,
    sender         TEXT NOT NULL,
    recipients     TEXT NOT NULL,
    subject        TEXT NOT NULL,
    reasons        TEXT NOT NULL,
    rules          TEXT NOT NULL,
    approver_role  TEXT,
    status         TEXT NOT NULL,
    sha256         TEXT NOT NULL,
    size           INTEGER NOT NULL,
    spool_name     TEXT NOT NULL,
    scan_id        TEXT NOT NULL DEFAULT '',
    counts         TEXT NOT NULL DEFAULT '{}',
    findings       TEXT NOT NULL DEFAULT '[]',
    unscannable    TEXT NOT NULL DEFAULT '[]',
    decided_by     TEXT,
    decided_at     TEXT,
    comment        TEXT,
    escalated_at   TEXT,
    sender_name    TEXT NOT NULL DEFAULT '',
    department     TEXT NOT NULL DEFAULT '',
    release_mode   TEXT,
    sender_authenticated INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS held_status ON held (status, received);
CREATE TABLE IF NOT EXISTS outbound (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    created          TEXT NOT NULL,
    kind             TEXT NOT NULL,
    ref              TEXT,
    mail_from        TEXT NOT NULL,
    rcpts            TEXT NOT NULL,
    spool_name       TEXT NOT NULL,
    size             INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  REAL NOT NULL,
    status           TEXT NOT NULL,
    last_error       TEXT,
    sent_at          TEXT,
    claimed_at       REAL,
    xforward         TEXT
);
CREATE INDEX IF NOT EXISTS outbound_due ON outbound (status, next_attempt_at);
CREATE TABLE IF NOT EXISTS undeliverable (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    kind       TEXT NOT NULL,
    ref        TEXT,
    mail_from  TEXT NOT NULL,
    rcpts      TEXT NOT NULL,
    subject    TEXT NOT NULL DEFAULT '',
    error      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
    seq        INTEGER PRIMARY KEY,
    at         TEXT NOT NULL,
    event      TEXT NOT NULL,
    actor      TEXT NOT NULL,
    held_id    TEXT,
    details    TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    email          TEXT PRIMARY KEY,
    role           TEXT NOT NULL,
    department     TEXT,
    password_hash  TEXT NOT NULL,
    enabled        INTEGER NOT NULL DEFAULT 1,
    created_at     TEXT NOT NULL,
    deputy         INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS login_failures (
    email         TEXT PRIMARY KEY,
    failures      INTEGER NOT NULL,
    locked_until  TEXT
);
CREATE TABLE IF NOT EXISTS web_sessions (
    token_hash  TEXT PRIMARY KEY,
    email       TEXT NOT NULL,
    csrf_token  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    last_seen   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS staff (
    email       TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    department  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS staff_department ON staff (department);
CREATE TABLE IF NOT EXISTS recent_messages (
    key    TEXT PRIMARY KEY,
    at     REAL NOT NULL,
    reply  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS recent_messages_at ON recent_messages (at);
CREATE TABLE IF NOT EXISTS approvals (
    held_id   TEXT NOT NULL,
    approver  TEXT NOT NULL,
    sha256    TEXT NOT NULL,
    mode      TEXT NOT NULL,
    at        TEXT NOT NULL,
    comment   TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (held_id, approver)
)
"""

# Columns the first release added to tables of earlier builds (files without versions).
BASELINE_ADDED_COLUMNS = {
    "held": (
        ("sender_name", "TEXT NOT NULL DEFAULT ''"),
        ("department", "TEXT NOT NULL DEFAULT ''"),
        ("release_mode", "TEXT"),
        ("sender_authenticated", "INTEGER NOT NULL DEFAULT 0"),
    ),
    "outbound": (("claimed_at", "REAL"), ("xforward", "TEXT")),
    "users": (("deputy", "INTEGER NOT NULL DEFAULT 0"),),
}

Step = Callable[[Database, Any], None]


def _sql(ddl: str, only: str | None = None) -> Step:
    def step(db: Database, conn: Any) -> None:
        if only is None or db.dialect == only:
            for statement in split_statements(ddl):
                conn.execute(db.ddl(statement))

    return step


def _add_missing_columns(db: Database, conn: Any) -> None:
    """What ``ensure_columns`` did before versions: old SQLite files get new columns."""
    for table, columns in BASELINE_ADDED_COLUMNS.items():
        have = set(_columns(db, conn, table))
        for name, ddl in columns:
            if name not in have:
                conn.execute(db.ddl(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}"))


def _columns(db: Database, conn: Any, table: str) -> list[str]:
    if db.dialect == "sqlite":
        return [r["name"] for r in conn.execute(f"PRAGMA table_info({table})")]
    rows = conn.execute(
        "SELECT column_name AS name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ?", (table,),
    )
    return [r["name"] for r in rows]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    steps: tuple[Step, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "baseline: held, outbound, audit_log, users, sessions, staff, approvals", (
        _sql(BASELINE),
        _add_missing_columns,
        # SQLite orders held mail of the same second by its implicit rowid; PostgreSQL
        # has none, so it gets a real column of that name.
        _sql("ALTER TABLE held ADD COLUMN rowid BIGSERIAL", only="postgresql"),
    )),
    Migration(2, "spool_blobs: message bytes in the database (PostgreSQL nodes)", (
        _sql("""
        CREATE TABLE IF NOT EXISTS spool_blobs (
            name     TEXT PRIMARY KEY,
            data     BLOB NOT NULL,
            created  TEXT NOT NULL
        )"""),
    )),
    Migration(3, "outbound.claimed_by: the node delivering an item", (
        _sql("ALTER TABLE outbound ADD COLUMN claimed_by TEXT"),
    )),
    Migration(4, "gateway_keys: keys every node shares (status links)", (
        _sql("""
        CREATE TABLE IF NOT EXISTS gateway_keys (
            name     TEXT PRIMARY KEY,
            value    TEXT NOT NULL,
            created  TEXT NOT NULL
        )"""),
    )),
)
LATEST = MIGRATIONS[-1].version


def _version(conn: Any) -> int:
    row = conn.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()
    return int(row["v"] or 0) if row else 0


def current_version(db: Database) -> int:
    """The schema version of the database (0: never migrated)."""
    if not db.has_table("schema_version"):
        return 0
    rows = db.query("SELECT MAX(version) AS v FROM schema_version")
    return int(rows[0]["v"] or 0) if rows else 0


def migrate(db: Database) -> tuple[int, int]:
    """Apply the missing migrations; return (version before, version after).

    A database newer than this program is refused (StorageError): an older node must
    not write rows a newer schema reads differently.
    """
    seen = current_version(db)
    if seen > LATEST:
        raise _too_new(db, seen)
    if seen == LATEST:
        return seen, seen  # the common case: a read, no write lock
    with db.transaction() as conn:
        db.lock(conn, "dlp-gateway schema migration")
        conn.execute(db.ddl(VERSION_TABLE))
        before = _version(conn)  # another node may have migrated meanwhile
        if before > LATEST:
            raise _too_new(db, before)
        for migration in MIGRATIONS:
            if migration.version <= before:
                continue
            for step in migration.steps:
                step(db, conn)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at, description) VALUES (?, ?, ?)",
                (migration.version, utc_now(), migration.description),
            )
    return before, LATEST


def _too_new(db: Database, version: int) -> StorageError:
    return StorageError(
        f"the database {db.describe()} has schema version {version}, newer than this "
        f"dlp-gateway knows ({LATEST}): upgrade dlp-gateway on this node"
    )


def applied(db: Database) -> list[dict[str, Any]]:
    """The migrations applied to ``db``, oldest first (for ``dlp-gateway db status``)."""
    if not db.has_table("schema_version"):
        return []
    rows = db.query("SELECT version, applied_at, description FROM schema_version ORDER BY version")
    return [dict(r) for r in rows]
