"""Append-only audit log: an HMAC-keyed hash chain, its head anchored outside the DB.

Each row stores HMAC-SHA256(key, previous row's MAC + its own content). The key
lives in a file outside the database (``audit.key``, mode 0640, created on first
use; ``audit_key_file`` puts it elsewhere), so someone who can write the database
but not read the key cannot forge, edit or re-chain a row. After every append the
new head (sequence number + MAC) is appended to an anchor file (``audit.anchor``,
opened O_APPEND; ``audit_anchor_file`` puts it elsewhere) and logged, so deleting
the newest rows, truncating or dropping the table is caught too: ``verify``
checks every anchored head against the table. Rows from before the key existed
(plain SHA-256) are accepted only as a prefix of the chain.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlp_gateway.store.db import Database, transaction_or, utc_now

log = logging.getLogger("dlp_gateway.audit")
KEY_FILENAME = "audit.key"
ANCHOR_FILENAME = "audit.anchor"

# Table: dlp_gateway/store/schema.py (versioned migrations).

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
    prev_hash: str, seq: int, at: str, event: str, actor: str, held_id: str | None, details: str,
    key: bytes | None = None,
) -> str:
    """HMAC-SHA256 with ``key``; plain SHA-256 without (rows written before keys)."""
    payload = json.dumps(
        [prev_hash, seq, at, event, actor, held_id, details],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    if key is None:
        return hashlib.sha256(payload).hexdigest()
    return "h1:" + hmac.new(key, payload, hashlib.sha256).hexdigest()


def load_or_create_key(path: Path) -> bytes:
    """The chain key (32 random bytes, hex in a 0640 file); created if absent.

    Group-readable: operators in the service's group run the CLI, which writes audit
    rows too (README "One owner"); nobody else may read it.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o037:
            log.warning("audit key %s is readable by others (mode %o); use 0640", path, mode)
        for _ in range(50):  # another process may be writing it this very moment
            text = path.read_text().strip()
            if text:
                return bytes.fromhex(text)
            time.sleep(0.02)
        raise ValueError(f"audit key file {path} is empty") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return bytes.fromhex(path.read_text().strip())


def read_anchors(path: Path) -> dict[int, str]:
    """``seq -> mac`` of every head written to the anchor file."""
    anchors: dict[int, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            anchors[int(parts[0])] = parts[1]
    return anchors


class AuditLog:
    def __init__(
        self, db: Database, key_file: Path | str | None = None,
        anchor_file: Path | str | None = None,
    ):
        self.db = db
        key_file = key_file or getattr(db, "audit_key_file", None)
        anchor_file = anchor_file or getattr(db, "audit_anchor_file", None)
        self.key_file = Path(key_file) if key_file else db.data_dir / KEY_FILENAME
        self.anchor_file = Path(anchor_file) if anchor_file else db.data_dir / ANCHOR_FILENAME
        self._key: bytes | None = None

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = load_or_create_key(self.key_file)
        return self._key

    def _anchor(self, seq: int, digest: str, at: str) -> None:
        """Append the new head to the anchor file (O_APPEND) and the log."""
        fd = os.open(self.anchor_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o660)
        try:
            os.write(fd, f"{seq} {digest} {at}\n".encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        log.info("audit head seq=%d mac=%s", seq, digest)

    def append(
        self,
        event: str,
        actor: str,
        held_id: str | None = None,
        details: dict[str, object] | None = None,
        conn: Any | None = None,
    ) -> AuditEntry:
        """Append one event. ``details`` must hold masked values only. With ``conn`` the
        row joins the caller's transaction (its anchor is written after that commits)."""
        at = utc_now()
        body = json.dumps(details or {}, ensure_ascii=False, sort_keys=True)
        key = self.key
        with transaction_or(self.db, conn) as conn:
            # One chain whatever the number of nodes: appends wait for each other here
            # until the transaction that holds the head commits (SQLite: BEGIN IMMEDIATE).
            self.db.lock(conn, "audit_log head")
            last = conn.execute(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq = (last["seq"] + 1) if last else 1
            prev = last["hash"] if last else GENESIS
            digest = _row_hash(prev, seq, at, event, actor, held_id, body, key)
            conn.execute(
                "INSERT INTO audit_log (seq, at, event, actor, held_id, details, prev_hash, hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, at, event, actor, held_id, body, prev, digest),
            )
            # After the commit: a crash in between leaves a valid row past the last
            # anchor, never an anchor pointing at a row that does not exist.
            self.db.after_commit(lambda: self._anchor(seq, digest, at))
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

    def verify(self, anchor_file: Path | str | None = None) -> list[str]:
        """Return a list of problems; empty means the chain is intact and every
        anchored head is still in the table."""
        problems: list[str] = []
        rows = self._rows(problems)
        key = self._key_for_verify(problems, bool(rows))
        problems += _chain_problems(rows, key)
        problems += self._anchor_problems(rows, Path(anchor_file) if anchor_file else None)
        return problems

    def _rows(self, problems: list[str]) -> list:
        try:
            return self.db.query("SELECT * FROM audit_log ORDER BY seq")
        except Exception as exc:  # the table was dropped under us
            problems.append(f"audit table unreadable: {exc}")
            return []

    def _key_for_verify(self, problems: list[str], have_rows: bool) -> bytes | None:
        if self.key_file.exists():
            return self.key
        if have_rows:
            problems.append(f"key file {self.key_file} missing: keyed rows cannot be checked")
        return None

    def _anchor_problems(self, rows: list, anchor_file: Path | None) -> list[str]:
        path = anchor_file or self.anchor_file
        keyed = any(str(r["hash"]).startswith("h1:") for r in rows)
        if not path.exists():
            return [f"anchor file {path} missing"] if keyed else []
        anchors = read_anchors(path)
        if not anchors:
            return [f"anchor file {path} is empty"] if keyed else []
        by_seq = {r["seq"]: r["hash"] for r in rows}
        problems = []
        head_seq = max(anchors)
        last_row = max(by_seq) if by_seq else 0
        if last_row < head_seq:
            problems.append(f"rows {last_row + 1}..{head_seq} missing: the anchor's head is "
                            f"row {head_seq} but the table ends at {last_row} (deleted/truncated)")
        for seq, digest in sorted(anchors.items()):
            if seq in by_seq and by_seq[seq] != digest:
                problems.append(f"row {seq}: differs from its anchored head (rewritten)")
            elif seq not in by_seq and seq <= last_row:
                problems.append(f"row {seq}: anchored but missing (deleted)")
        return problems


def _chain_problems(rows: list, key: bytes | None) -> list[str]:
    problems: list[str] = []
    prev = GENESIS
    expected_seq = 1
    keyed_seen = False
    for row in rows:
        if row["seq"] != expected_seq:
            problems.append(f"row {expected_seq}: missing (next row is {row['seq']})")
        if row["prev_hash"] != prev:
            problems.append(f"row {row['seq']}: previous-hash link broken")
        keyed = str(row["hash"]).startswith("h1:")
        if keyed_seen and not keyed:
            problems.append(f"row {row['seq']}: unkeyed row after keyed rows (forged)")
        keyed_seen = keyed_seen or keyed
        if keyed and key is None:
            pass  # reported once by the caller
        else:
            digest = _row_hash(
                row["prev_hash"], row["seq"], row["at"], row["event"], row["actor"],
                row["held_id"], row["details"], key if keyed else None,
            )
            if not hmac.compare_digest(digest, str(row["hash"])):
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
