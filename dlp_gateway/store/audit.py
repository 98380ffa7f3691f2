"""Append-only, hash-chained audit log.

Each row stores the SHA-256 of the previous row's hash and its own content, so
editing or deleting any row (except by rewriting every later one, which the
exported chain head in the logs makes visible) breaks ``verify``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from dlp_gateway.store.db import Database, utc_now

SCHEMA = """
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
"""

GENESIS = "0" * 64

# Events written by the gateway (hold, release, reject, expiry, login, ...).
EVENTS = (
    "hold",
    "pass",
    "encrypt",
    "release",
    "approve",
    "reject",
    "escalate",
    "expire",
    "login",
    "login_failed",
    "logout",
    "user_added",
    "user_disabled",
    "monitor",
)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: str
    event: str
    actor: str
    held_id: str | None
    details: dict[str, object]
    prev_hash: str
    hash: str


def _row_hash(
    prev_hash: str, seq: int, at: str, event: str, actor: str, held_id: str | None, details: str
) -> str:
    payload = json.dumps(
        [prev_hash, seq, at, event, actor, held_id, details],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class AuditLog:
    def __init__(self, db: Database):
        self.db = db
        db.ensure_schema("audit", SCHEMA)

    def append(
        self,
        event: str,
        actor: str,
        held_id: str | None = None,
        details: dict[str, object] | None = None,
    ) -> AuditEntry:
        """Append one event. ``details`` must hold masked values only."""
        at = utc_now()
        body = json.dumps(details or {}, ensure_ascii=False, sort_keys=True)
        with self.db.transaction() as conn:
            last = conn.execute(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq = (last["seq"] + 1) if last else 1
            prev = last["hash"] if last else GENESIS
            digest = _row_hash(prev, seq, at, event, actor, held_id, body)
            conn.execute(
                "INSERT INTO audit_log (seq, at, event, actor, held_id, details, prev_hash, hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, at, event, actor, held_id, body, prev, digest),
            )
        return AuditEntry(seq, at, event, actor, held_id, details or {}, prev, digest)

    def entries(
        self,
        event: str | None = None,
        actor: str | None = None,
        held_id: str | None = None,
        limit: int | None = None,
        since: str | None = None,
        until: str | None = None,
        newest_first: bool = False,
    ) -> list[AuditEntry]:
        """Filtered entries. ``since``/``until`` are ISO dates or times (UTC); a
        date-only ``until`` includes that whole day."""
        sql = "SELECT * FROM audit_log WHERE 1=1"
        params: list[object] = []
        for column, value in (("event", event), ("actor", actor), ("held_id", held_id)):
            if value:
                sql += f" AND {column} = ?"
                params.append(value)
        if since:
            sql += " AND at >= ?"
            params.append(since)
        if until:
            sql += " AND at < ?"
            params.append(_upper_bound(until))
        sql += " ORDER BY seq DESC" if newest_first else " ORDER BY seq"
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        return [_entry(row) for row in self.db.query(sql, tuple(params))]

    def verify(self) -> list[str]:
        """Return a list of problems; empty means the chain is intact."""
        problems: list[str] = []
        prev = GENESIS
        expected_seq = 1
        for row in self.db.query("SELECT * FROM audit_log ORDER BY seq"):
            if row["seq"] != expected_seq:
                problems.append(f"row {expected_seq}: missing (next row is {row['seq']})")
            if row["prev_hash"] != prev:
                problems.append(f"row {row['seq']}: previous-hash link broken")
            digest = _row_hash(
                row["prev_hash"], row["seq"], row["at"], row["event"], row["actor"],
                row["held_id"], row["details"],
            )
            if digest != row["hash"]:
                problems.append(f"row {row['seq']}: content does not match its hash (edited)")
            prev = row["hash"]
            expected_seq = row["seq"] + 1
        return problems


def _upper_bound(until: str) -> str:
    """Exclusive upper bound for ``at``: the next day for a date, else just past the time."""
    try:
        day = dt.date.fromisoformat(until)
    except ValueError:
        return until + "\uffff"
    return (day + dt.timedelta(days=1)).isoformat()


def _entry(row) -> AuditEntry:  # type: ignore[no-untyped-def]
    return AuditEntry(
        seq=row["seq"],
        at=row["at"],
        event=row["event"],
        actor=row["actor"],
        held_id=row["held_id"],
        details=json.loads(row["details"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )
