"""The durable outbound queue: released mail, encrypted mail and notifications.

An item is (mail_from, rcpts, raw bytes in the spool, attempts, next_attempt_at,
status). ``enqueue`` has committed when it returns. The worker (relay/outbound.py)
claims due items (status ``sending``), delivers them and marks them ``sent`` right
after the upstream's 250; on start, ``recover`` puts items a crash left in
``sending`` back to ``due`` (the one window where a message may go out twice is a
crash between the upstream's 250 and that commit).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from dlp_gateway.store.db import Database, transaction_or, utc_now
from dlp_gateway.store.spool import Spool

# Tables: dlp_gateway/store/schema.py (versioned migrations).

QUEUE_STATUSES = ("due", "sending", "sent", "failed")


@dataclass(frozen=True, slots=True)
class QueueItem:
    id: int
    created: str
    kind: str
    ref: str | None
    mail_from: str
    rcpts: list[str]
    spool_name: str
    size: int
    attempts: int
    next_attempt_at: float
    status: str
    last_error: str | None
    sent_at: str | None
    xforward: dict[str, str] | None = None  # the original client, for upstream's XFORWARD


class OutboundQueue:
    SPOOL_AREA = "queue"

    def __init__(self, db: Database, spool: Spool):
        self.db = db
        self.spool = spool
        self.listeners: list[Any] = []  # callables run after each enqueue (wake the worker)

    def enqueue(
        self,
        mail_from: str,
        rcpts: list[str],
        raw: bytes,
        kind: str = "mail",
        ref: str | None = None,
        delay: float = 0.0,
        conn: Any | None = None,
        xforward: dict[str, str] | None = None,
    ) -> int:
        """Store one outbound message durably; return its queue id.

        ``kind`` is informative (release, notice_approver, password, ...);
        ``mail_from`` "" is the null sender. With ``conn`` the row joins the caller's
        transaction (a spool file is written first; bytes in the database go in the
        same transaction). ``xforward``: the
        original client's attributes, passed on when the upstream speaks XFORWARD.
        """
        if not rcpts:
            raise ValueError("an outbound message needs at least one recipient")
        in_db = getattr(self.spool, "transactional", False)  # bytes commit with the row
        spool_name = "" if in_db else self.spool.write(self.SPOOL_AREA, raw)
        try:
            with transaction_or(self.db, conn) as conn:
                if in_db:
                    spool_name = self.spool.write(self.SPOOL_AREA, raw)
                cur = conn.execute(
                    "INSERT INTO outbound (created, kind, ref, mail_from, rcpts, spool_name,"
                    " size, next_attempt_at, status, xforward)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'due', ?) RETURNING id",
                    (utc_now(), kind, ref, mail_from, json.dumps(rcpts), spool_name, len(raw),
                     time.time() + delay, json.dumps(xforward) if xforward else None),
                )
                item_id = int(cur.fetchone()["id"])
        except BaseException:
            if not in_db:  # (in the database, the rollback took the bytes too)
                self.spool.delete(spool_name)  # no row points at it
            raise
        self.notify_listeners()
        return item_id

    def notify_listeners(self) -> None:
        for listener in self.listeners:
            listener()

    def recover(self, older_than: float | None = None) -> int:
        """Put items left in ``sending`` back to ``due``; return how many.

        At start (``older_than`` None) every such item was interrupted by a crash; while
        running, only items claimed more than ``older_than`` seconds ago (a stuck worker).
        On a database other nodes share, the start takes back only this node's items:
        the others' are being delivered right now.
        """
        now = time.time()
        sql = "UPDATE outbound SET status = 'due', next_attempt_at = ? WHERE status = 'sending'"
        params: tuple = (now,)
        if older_than is not None:
            sql += " AND (claimed_at IS NULL OR claimed_at < ?)"
            params = (now, now - older_than)
        elif self.db.shared:
            sql += " AND claimed_by = ?"
            params = (now, self.db.node_id)
        with self.db.transaction() as conn:
            return conn.execute(sql, params).rowcount

    def expedite(self) -> int:
        """Make items waiting out a backoff due now (the upstream just took a message)."""
        now = time.time()
        waiting = self.db.query(  # a read first: most calls find nothing and write nothing
            "SELECT 1 FROM outbound WHERE status = 'due' AND next_attempt_at > ?"
            " AND last_error IS NOT NULL LIMIT 1", (now,),
        )
        if not waiting:
            return 0
        with self.db.transaction() as conn:
            count = conn.execute(
                "UPDATE outbound SET next_attempt_at = ? WHERE status = 'due'"
                " AND next_attempt_at > ? AND last_error IS NOT NULL",
                (now, now),
            ).rowcount
        self.notify_listeners()
        return count

    def record_undeliverable(
        self, kind: str, ref: str | None, mail_from: str, rcpts: list[str], error: str,
        subject: str = "", conn: Any | None = None,
    ) -> None:
        """A failure nobody could be mailed about: kept for the operators' page."""
        with transaction_or(self.db, conn) as conn:
            conn.execute(
                "INSERT INTO undeliverable (at, kind, ref, mail_from, rcpts, subject, error)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (utc_now(), kind, ref, mail_from, json.dumps(rcpts, ensure_ascii=False),
                 subject[:200], error[:500]),
            )

    def undeliverable(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest failures that could not be mailed to anyone (newest first)."""
        rows = self.db.query("SELECT * FROM undeliverable ORDER BY id DESC LIMIT ?", (limit,))
        return [{**dict(r), "rcpts": json.loads(r["rcpts"])} for r in rows]

    def claim_due(self, now: float | None = None, limit: int = 20) -> list[QueueItem]:
        """Mark up to ``limit`` due items ``sending`` and return them."""
        now = time.time() if now is None else now
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT * FROM outbound WHERE status = 'due' AND next_attempt_at <= ?"
                " ORDER BY next_attempt_at, id LIMIT ?" + self.db.skip_locked,
                (now, limit),
            ).fetchall()
            if rows:  # other nodes skip these rows until this commits, then see 'sending'
                conn.executemany(
                    "UPDATE outbound SET status = 'sending', attempts = attempts + 1,"
                    " claimed_at = ?, claimed_by = ? WHERE id = ?",
                    [(now, self.db.node_id, r["id"]) for r in rows],
                )
        return [_item(r, claimed=True) for r in rows]

    def load(self, item: QueueItem) -> bytes:
        return self.spool.read(item.spool_name)

    def mark_sent(self, item_id: int) -> None:
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT spool_name FROM outbound WHERE id = ?", (item_id,)
            ).fetchone()
            conn.execute(
                "UPDATE outbound SET status = 'sent', sent_at = ?, last_error = NULL WHERE id = ?",
                (utc_now(), item_id),
            )
            if row is not None and getattr(self.spool, "transactional", False):
                self.spool.delete(row["spool_name"])  # the bytes go with the same commit
                row = None
        if row is not None:
            self.spool.delete(row["spool_name"])  # a file: after the commit

    def mark_retry(
        self, item_id: int, error: str, delay: float, rcpts: list[str] | None = None
    ) -> None:
        """Back to ``due`` after ``delay`` seconds (optionally for fewer recipients)."""
        with self.db.transaction() as conn:
            if rcpts is not None:
                conn.execute(
                    "UPDATE outbound SET rcpts = ? WHERE id = ?", (json.dumps(rcpts), item_id)
                )
            conn.execute(
                "UPDATE outbound SET status = 'due', next_attempt_at = ?, last_error = ?"
                " WHERE id = ?",
                (time.time() + delay, error[:500], item_id),
            )

    def mark_failed(self, item_id: int, error: str) -> None:
        """Give up (permanent error or too many attempts); the spool file is kept."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE outbound SET status = 'failed', last_error = ? WHERE id = ?",
                (error[:500], item_id),
            )

    def next_due_at(self) -> float | None:
        rows = self.db.query("SELECT MIN(next_attempt_at) AS t FROM outbound WHERE status = 'due'")
        return rows[0]["t"] if rows and rows[0]["t"] is not None else None

    def items(self, status: str | None = None, ref: str | None = None) -> list[QueueItem]:
        sql = "SELECT * FROM outbound WHERE 1=1"
        params: list[Any] = []
        if status:
            sql += " AND status = ?"
            params.append(status)
        if ref:
            sql += " AND ref = ?"
            params.append(ref)
        return [_item(r) for r in self.db.query(sql + " ORDER BY id", tuple(params))]


def _item(row: Any, claimed: bool = False) -> QueueItem:
    return QueueItem(
        id=row["id"],
        created=row["created"],
        kind=row["kind"],
        ref=row["ref"],
        mail_from=row["mail_from"],
        rcpts=json.loads(row["rcpts"]),
        spool_name=row["spool_name"],
        size=row["size"],
        attempts=row["attempts"] + (1 if claimed else 0),
        next_attempt_at=row["next_attempt_at"],
        status="sending" if claimed else row["status"],
        last_error=row["last_error"],
        sent_at=row["sent_at"],
        xforward=json.loads(row["xforward"]) if row["xforward"] else None,
    )
