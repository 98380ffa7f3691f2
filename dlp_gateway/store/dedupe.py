"""Retries of a message the gateway already owns, answered from the first copy.

A gateway that dies after committing a message but before its 250 reaches the
client gets the same message again. ``message_key`` names it (client address,
envelope, Message-ID and content hash); ``remember`` stores the reply in the
transaction that committed the message, so a retry inside the window gets that
reply and nothing is held, encrypted (a second password) or delivered twice.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from dlp_gateway.store.db import Database, transaction_or

# Table: dlp_gateway/store/schema.py (versioned migrations).


def message_key(client: str, sender: str, rcpts: list[str], message_id: str, raw: bytes) -> str:
    body = hashlib.sha256(raw).hexdigest()
    ident = json.dumps([client, sender.lower(), sorted(r.lower() for r in rcpts),
                        message_id.strip(), body])
    return hashlib.sha256(ident.encode("utf-8", "surrogateescape")).hexdigest()


class RecentMessages:
    def __init__(self, db: Database, window_seconds: float):
        self.db = db
        self.window = window_seconds
        self._last_purge = 0.0

    def reply_for(self, key: str) -> str | None:
        """The reply the first copy got, if it was accepted inside the window."""
        rows = self.db.query(
            "SELECT reply FROM recent_messages WHERE key = ? AND at >= ?",
            (key, time.time() - self.window),
        )
        return rows[0]["reply"] if rows else None

    def remember(self, key: str, reply: str, conn: Any | None = None) -> None:
        with transaction_or(self.db, conn) as conn:
            conn.execute(
                "INSERT INTO recent_messages (key, at, reply) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET at = excluded.at, reply = excluded.reply",
                (key, time.time(), reply),
            )
            now = time.time()
            if now - self._last_purge > 60:
                self._last_purge = now
                conn.execute("DELETE FROM recent_messages WHERE at < ?", (now - self.window,))
