"""Held messages: the raw bytes in the spool, their metadata in the database.

``add`` writes the spool file durably first, then commits the row: a row
always points at a complete file. A file without a row (crash in between) is
harmless: the client got no 250 and will send again.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from dlp_gateway.store.db import Database, transaction_or, utc_now
from dlp_gateway.store.spool import Spool
from dlp_gateway.store.staff import StaffStore

# Tables: dlp_gateway/store/schema.py (versioned migrations).
STATUSES = ("held", "released", "rejected", "expired", "withdrawn")
PAGE_SIZE = 50

# Held ids: letters and digits only, starting with a letter, so an id never looks like
# a command-line option (``held show -abc``) and survives any copy-paste.
ID_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
ID_LENGTH = 12


def new_held_id() -> str:
    first = secrets.choice(ID_ALPHABET[:49])  # a letter
    return first + "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH - 1))


class HeldStateError(Exception):
    """The held message is not in the state the action requires (e.g. already released)."""


class HeldNotFound(KeyError):
    """No held message has this id."""


class HeldIntegrityError(Exception):
    """The spooled raw message no longer matches the SHA-256 recorded when it was held."""


@dataclass(frozen=True, slots=True)
class HeldMessage:
    id: str
    received: str
    sender: str
    recipients: list[str]
    subject: str
    reasons: list[str]
    rules: list[str]
    approver_role: str | None
    status: str
    sha256: str
    size: int
    scan_id: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)
    unscannable: list[dict[str, Any]] = field(default_factory=list)
    decided_by: str | None = None
    decided_at: str | None = None
    comment: str | None = None
    escalated_at: str | None = None
    sender_name: str = ""  # from the staff directory when the mail was held
    department: str = ""  # the sender's department then ('' if not in the directory)
    release_mode: str | None = None  # as_is | encrypted once released
    sender_authenticated: bool = False

    def summary_json(self) -> dict[str, Any]:
        """The fields of ``held list --format json``, exactly."""
        return {
            "id": self.id,
            "received": self.received,
            "sender": self.sender,
            "recipients": list(self.recipients),
            "subject": self.subject,
            "reasons": list(self.reasons),
            "approver_role": self.approver_role,
            "status": self.status,
        }


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class HeldStore:
    SPOOL_AREA = "held"

    def __init__(self, db: Database, spool: Spool):
        self.db = db
        self.spool = spool

    def add(
        self,
        raw: bytes,
        *,
        sender: str,
        recipients: list[str],
        subject: str,
        reasons: list[str],
        rules: list[str],
        approver_role: str | None,
        scan_id: str = "",
        counts: dict[str, int] | None = None,
        findings: list[dict[str, Any]] | None = None,
        unscannable: list[dict[str, Any]] | None = None,
        sender_authenticated: bool = False,
        conn: Any | None = None,
    ) -> HeldMessage:
        """Spool ``raw`` (fsync'd) and commit its row; only then is it held. With ``conn``
        the row joins the caller's transaction."""
        held_id = new_held_id()
        digest = hashlib.sha256(raw).hexdigest()
        in_db = getattr(self.spool, "transactional", False)  # bytes commit with the row
        spool_name = (f"{self.SPOOL_AREA}/{held_id}" if in_db
                      else self.spool.write(self.SPOOL_AREA, raw, name=held_id))
        member = StaffStore(self.db).get(sender) if sender else None
        row = {
            "id": held_id,
            "received": utc_now(),
            "sender": sender,
            "recipients": _dumps(recipients),
            "subject": subject,
            "reasons": _dumps(reasons),
            "rules": _dumps(rules),
            "approver_role": approver_role,
            "status": "held",
            "sha256": digest,
            "size": len(raw),
            "spool_name": spool_name,
            "scan_id": scan_id,
            "counts": _dumps(counts or {}),
            "findings": _dumps(findings or []),
            "unscannable": _dumps(unscannable or []),
            "sender_name": member.name if member else "",
            "department": member.department if member else "",
            "sender_authenticated": int(sender_authenticated),
        }
        columns = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        try:
            with transaction_or(self.db, conn) as conn:
                if in_db:
                    self.spool.write(self.SPOOL_AREA, raw, name=held_id)
                conn.execute(f"INSERT INTO held ({columns}) VALUES ({marks})", row)
                return _message(conn.execute("SELECT * FROM held WHERE id = ?", (held_id,))
                                .fetchone())
        except BaseException:
            if not in_db:  # (in the database, the rollback took the bytes too)
                self.spool.delete(spool_name)  # no row points at it
            raise

    def get(self, held_id: str) -> HeldMessage:
        rows = self.db.query("SELECT * FROM held WHERE id = ?", (held_id,))
        if not rows:
            raise HeldNotFound(held_id)
        return _message(rows[0])

    def list(self, status: str | None = None) -> list[HeldMessage]:
        """Newest first; ``status`` filters (held|released|rejected|expired)."""
        if status:
            rows = self.db.query(
                "SELECT * FROM held WHERE status = ? ORDER BY received DESC, rowid DESC", (status,)
            )
        else:
            rows = self.db.query("SELECT * FROM held ORDER BY received DESC, rowid DESC")
        return [_message(r) for r in rows]

    def search(self, filters: HeldFilter) -> list[HeldMessage]:
        """Held mail matching every given filter, newest first, *without* findings
        (a list page needs counts, not up to 5,000 findings per row). The status is
        filtered in SQL, the rest in Python (recipients and rules are JSON lists)."""
        columns = ", ".join(
            "'[]' AS findings" if c == "findings" else c for c in _columns(self.db)
        )
        sql = f"SELECT {columns} FROM held"
        params: tuple[str, ...] = ()
        if filters.status:
            sql += " WHERE status = ?"
            params = (filters.status,)
        rows = self.db.query(sql + " ORDER BY received DESC, rowid DESC", params)
        return [m for m in map(_message, rows) if filters.matches(m)]

    def set_release_mode(
        self, held_id: str, mode: str, conn: Any | None = None
    ) -> None:
        with transaction_or(self.db, conn) as conn:
            conn.execute("UPDATE held SET release_mode = ? WHERE id = ?", (mode, held_id))
    def list_due(self, escalate_before: str, expire_before: str) -> list[HeldMessage]:
        """Held messages received before a deadline: only those the expiry pass acts on
        (uses the (status, received) index; the rest are never loaded)."""
        rows = self.db.query(
            "SELECT * FROM held WHERE status = 'held' AND (received <= ? OR"
            " (escalated_at IS NULL AND received <= ?)) ORDER BY received",
            (expire_before, escalate_before),
        )
        return [_message(r) for r in rows]

    def raw(self, held_id: str) -> bytes:
        """The stored message bytes, after checking them against the recorded SHA-256."""
        rows = self.db.query("SELECT spool_name, sha256 FROM held WHERE id = ?", (held_id,))
        if not rows:
            raise HeldNotFound(held_id)
        data = self.spool.read(rows[0]["spool_name"])
        if hashlib.sha256(data).hexdigest() != rows[0]["sha256"]:
            raise HeldIntegrityError(f"held message {held_id}: spool file does not match sha256")
        return data

    def set_status(
        self,
        held_id: str,
        status: str,
        decided_by: str,
        comment: str = "",
        expected: str = "held",
        conn: Any | None = None,
    ) -> HeldMessage:
        """Move a message from ``expected`` to ``status`` atomically, or raise HeldStateError.

        With ``conn`` the update joins the caller's transaction.
        """
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        with transaction_or(self.db, conn) as conn:
            cur = conn.execute(
                "UPDATE held SET status = ?, decided_by = ?, decided_at = ?, comment = ?"
                " WHERE id = ? AND status = ?",
                (status, decided_by, utc_now(), comment, held_id, expected),
            )
            if cur.rowcount != 1:
                found = conn.execute("SELECT status FROM held WHERE id = ?", (held_id,)).fetchone()
                if found is None:
                    raise HeldNotFound(held_id)
                raise HeldStateError(
                    f"held message {held_id} is {found['status']}, not {expected}"
                )
            row = conn.execute("SELECT * FROM held WHERE id = ?", (held_id,)).fetchone()
        return _message(row)

    def mark_escalated(
        self, held_id: str, at: str | None = None, conn: Any | None = None
    ) -> bool:
        """Record the escalation once: False if the mail was escalated or decided
        meanwhile (by another node's expiry pass, say)."""
        with transaction_or(self.db, conn) as conn:
            return conn.execute(
                "UPDATE held SET escalated_at = ? WHERE id = ? AND status = 'held'"
                " AND escalated_at IS NULL", (at or utc_now(), held_id),
            ).rowcount == 1


def _columns(db: Database) -> list[str]:
    return db.columns("held")



@dataclass(frozen=True, slots=True)
class HeldFilter:
    """Search criteria of the held list: each is a case-insensitive substring."""

    status: str = "held"
    q: str = ""  # subject, sender, sender name, recipients
    sender: str = ""
    recipient: str = ""
    department: str = ""
    rule: str = ""

    def matches(self, m: HeldMessage) -> bool:
        def has(needle: str, *hay: str) -> bool:
            needle = needle.strip().lower()
            return not needle or any(needle in (h or "").lower() for h in hay)

        return (
            has(self.q, m.subject, m.sender, m.sender_name, *m.recipients)
            and has(self.sender, m.sender, m.sender_name)
            and has(self.recipient, *m.recipients)
            and has(self.department, m.department)
            and (not self.rule or self.rule in m.rules)
        )


def _message(row: Any) -> HeldMessage:
    return HeldMessage(
        id=row["id"],
        received=row["received"],
        sender=row["sender"],
        recipients=json.loads(row["recipients"]),
        subject=row["subject"],
        reasons=json.loads(row["reasons"]),
        rules=json.loads(row["rules"]),
        approver_role=row["approver_role"],
        status=row["status"],
        sha256=row["sha256"],
        size=row["size"],
        scan_id=row["scan_id"],
        counts=json.loads(row["counts"]),
        findings=json.loads(row["findings"]),
        unscannable=json.loads(row["unscannable"]),
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        comment=row["comment"],
        escalated_at=row["escalated_at"],
        sender_name=row["sender_name"] or "",
        department=row["department"] or "",
        release_mode=row["release_mode"],
        sender_authenticated=bool(row["sender_authenticated"]),
    )
