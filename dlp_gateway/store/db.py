"""The embedded SQLite database: one file under the data directory.

Each store module declares its tables as ``SCHEMA`` DDL and calls
``ensure_schema`` on first use; nothing above ``store/`` writes SQL.
Connections use WAL and ``synchronous=FULL``: a commit that returned is on disk,
which is what lets the relay answer 250 after committing.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DB_FILENAME = "gateway.db"


def utc_now() -> str:
    """The timestamp every store writes: ISO 8601, UTC, to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Database:
    """A thread-safe handle on the gateway's SQLite file.

    One connection guarded by a lock: the gateway's writes are small and few
    (a row per held message, queue entry or audit event), so serialising them is
    simpler and safer than a pool.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._schemas: set[str] = set()
        # Where the audit log keeps its key and anchor (None: next to this file).
        self.audit_key_file: Path | None = None
        self.audit_anchor_file: Path | None = None

    @classmethod
    def in_data_dir(cls, data_dir: Path | str) -> Database:
        return cls(Path(data_dir) / DB_FILENAME)

    @classmethod
    def for_config(cls, config: Any) -> Database:
        """The data dir's database, knowing the configured audit key and anchor files."""
        db = cls.in_data_dir(config.data_dir)
        db.audit_key_file = config.audit_key_path
        db.audit_anchor_file = config.audit_anchor_path
        return db

    def ensure_schema(self, name: str, ddl: str) -> None:
        """Create a module's tables once per process (idempotent DDL)."""
        with self._lock:
            if name in self._schemas:
                return
            self._conn.executescript(ddl)
            self._schemas.add(name)

    def ensure_columns(self, table: str, columns: tuple[tuple[str, str], ...]) -> None:
        """Add columns a newer version needs to a table an older version created."""
        with self._lock:
            have = {r["name"] for r in self._conn.execute(f"PRAGMA table_info({table})")}
            for name, ddl in columns:
                if name not in have:
                    self._conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; rolls back on any exception."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
