"""Keys every node must share, kept in a database that several nodes use.

The sender's status link is signed on the node that held the mail and opened on
whichever node the load balancer picks, so its key cannot be one node's file. (The
audit key is the opposite: it must stay *outside* the database; README "two nodes".)
"""

from __future__ import annotations

import secrets

from dlp_gateway.store.db import Database, transaction_or, utc_now


def shared_key(db: Database, name: str, size: int = 32) -> bytes:
    """The key ``name``; the first node to ask creates it, every node reads the same.
    Joins the caller's transaction when there is one (a hold's notice needs it)."""
    cache: dict[str, bytes] = db.__dict__.setdefault("_shared_keys", {})  # never change
    if name in cache:
        return cache[name]
    with transaction_or(db, db.current()) as conn:
        conn.execute(
            "INSERT INTO gateway_keys (name, value, created) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO NOTHING",
            (name, secrets.token_hex(size), utc_now()),
        )
        row = conn.execute("SELECT value FROM gateway_keys WHERE name = ?", (name,)).fetchone()
    key = bytes.fromhex(row["value"])
    cache[name] = key
    return key
