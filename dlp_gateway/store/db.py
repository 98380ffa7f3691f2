"""The embedded SQLite database: one file under the data directory.

Each store module declares its tables as ``SCHEMA`` DDL and calls
``ensure_schema`` on first use; nothing above ``store/`` writes SQL.
Connections use WAL and ``synchronous=FULL``: a commit that returned is on disk,
which is what lets the relay answer 250 after committing.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DB_FILENAME = "gateway.db"
log = logging.getLogger("dlp_gateway.storage")


def utc_now() -> str:
    """The timestamp every store writes: ISO 8601, UTC, to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class StorageError(OSError):
    """The data directory cannot be used (read-only, missing, not a directory)."""


_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}
_STORAGE_SQLITE = ("disk is full", "disk i/o error", "readonly database", "read-only")


def is_storage_error(exc: BaseException) -> bool:
    """A full, read-only or failing disk (as opposed to a bug)."""
    if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
        return True
    return isinstance(exc, sqlite3.Error) and any(t in str(exc).lower() for t in _STORAGE_SQLITE)


class StorageState:
    """Logs a storage failure once when it starts and once when it ends, not per mail."""

    def __init__(self) -> None:
        self.failing = False
        self._lock = threading.Lock()

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            if self.failing:
                return
            self.failing = True
        log.error("storage unavailable (%s: %s); mail is answered 452 until it recovers",
                  type(exc).__name__, exc)

    def recovered(self) -> None:
        with self._lock:
            if not self.failing:
                return
            self.failing = False
        log.warning("storage available again")


class Database:
    """A thread-safe handle on the gateway's SQLite file.

    One connection guarded by a lock: the gateway's writes are small and few
    (a row per held message, queue entry or audit event), so serialising them is
    simpler and safer than a pool.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30
            )
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(
                f"cannot open the database {self.path}: {exc} "
                "(does the data directory exist and is it writable?)"
            ) from exc
        self._schemas: set[str] = set()
        self._after_commit: list[Callable[[], None]] = []
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
            self._after_commit = []
            try:
                yield self._conn
            except BaseException:
                self._after_commit = []
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the current transaction has committed (now if none)."""
        with self._lock:
            if self._conn.in_transaction:
                self._after_commit.append(callback)
                return
        callback()

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
