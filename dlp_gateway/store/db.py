"""The gateway's database: SQLite in the data directory, or PostgreSQL for several nodes.

``Database.for_config`` opens SQLite (``<data_dir>/gateway.db``) when ``database_url``
is empty, else PostgreSQL (``PostgresDatabase``). Both run the same store code: SQL is
written once with ``?`` placeholders and portable statements (``INSERT ... ON CONFLICT``,
``RETURNING``); the PostgreSQL connection translates the placeholders, and the few
things that differ are methods of the database (``lock``, ``skip_locked``, ``columns``).
The schema is versioned (``store/schema.py``): opening a database migrates it.

SQLite connections use WAL and ``synchronous=FULL``: a commit that returned is on disk,
which is what lets the relay answer 250 after committing. Each process holds one
connection behind a lock; ``BEGIN IMMEDIATE`` (SQLite) serialises writers, PostgreSQL
uses row locks and advisory locks where the store code asks for them.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import socket
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
    """The data directory or the database cannot be used (read-only, missing, unreachable)."""


def _driver_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    errors: list[type[BaseException]] = [sqlite3.Error]
    integrity: list[type[BaseException]] = [sqlite3.IntegrityError]
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass
    else:
        errors.append(psycopg.Error)
        integrity.append(psycopg.IntegrityError)
    return tuple(errors), tuple(integrity)


# The one error family of both backends, for ``except`` clauses above store/:
# ``DB_ERRORS`` is any database error, ``INTEGRITY_ERRORS`` a constraint violated.
DB_ERRORS, INTEGRITY_ERRORS = _driver_errors()

_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}
_STORAGE_SQLITE = ("disk is full", "disk i/o error", "readonly database", "read-only")


def is_storage_error(exc: BaseException) -> bool:
    """A full, read-only or failing disk, or an unreachable database server (not a bug)."""
    if isinstance(exc, StorageError):  # e.g. the database server refuses connections
        return True
    if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
        return True
    if isinstance(exc, sqlite3.Error):
        return any(t in str(exc).lower() for t in _STORAGE_SQLITE)
    return _is_pg_unavailable(exc)


def _is_pg_unavailable(exc: BaseException) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        return False
    # OperationalError: connection lost or refused, server shutting down, disk full
    # (class 53), too many connections; the relay answers 452 until it is back.
    return isinstance(exc, psycopg.OperationalError)


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
    """A thread-safe handle on the gateway's SQLite file, and the interface the store
    code uses on either backend (``PostgresDatabase`` overrides the SQLite parts).

    One connection guarded by a lock: the gateway's writes are small and few
    (a row per held message, queue entry or audit event), and SQLite takes one
    writer at a time anyway, so serialising them is simpler and safer than a pool.
    """

    dialect = "sqlite"
    shared = False  # True when other nodes use the same database
    skip_locked = ""  # appended to a SELECT that claims rows (PostgreSQL: FOR UPDATE SKIP LOCKED)

    def __init__(self, path: Path | str, migrate: bool = True):
        self.path = Path(path)
        self.data_dir = self.path.parent
        self._lock = threading.RLock()
        self._owner: int | None = None  # the thread inside transaction(), if any
        self._after_commit: list[Callable[[], None]] = []
        # Where the audit log keeps its key and anchor (None: in the data directory).
        self.audit_key_file: Path | None = None
        self.audit_anchor_file: Path | None = None
        self._conn: Any = self._connect()
        if migrate:
            self.migrate()

    def _connect(self) -> Any:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=30
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(
                f"cannot open the database {self.path}: {exc} "
                "(does the data directory exist and is it writable?)"
            ) from exc
        return conn

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def in_data_dir(cls, data_dir: Path | str, database_url: str = "") -> Database:
        """SQLite in ``data_dir``, or the PostgreSQL database at ``database_url``."""
        if database_url:
            from dlp_gateway.store.postgres import PostgresDatabase

            return PostgresDatabase(database_url, data_dir)
        return cls(Path(data_dir) / DB_FILENAME)

    @classmethod
    def for_config(cls, config: Any, migrate: bool = True) -> Database:
        """The configured database, knowing the configured audit key and anchor files."""
        url = getattr(config, "database_url", "") or ""
        if url:
            from dlp_gateway.store.postgres import PostgresDatabase

            db: Database = PostgresDatabase(url, config.data_dir, migrate=migrate)
        else:
            db = cls(Path(config.data_dir) / DB_FILENAME, migrate=migrate)
        db.audit_key_file = config.audit_key_path
        db.audit_anchor_file = config.audit_anchor_path
        return db

    @property
    def node_id(self) -> str:
        """This node's name in rows several nodes share (host and data directory)."""
        return f"{socket.gethostname()}:{self.data_dir.resolve()}"

    def describe(self) -> str:
        """Where the data is, for messages (never a password)."""
        return str(self.path)

    # -- schema -------------------------------------------------------------------------
    def migrate(self) -> tuple[int, int]:
        """Bring the schema to the newest version; returns (version before, after)."""
        from dlp_gateway.store.schema import migrate

        return migrate(self)

    def schema_version(self) -> int:
        from dlp_gateway.store.schema import current_version

        return current_version(self)

    def ensure_schema(self, name: str, ddl: str) -> None:
        """Run idempotent DDL (``CREATE ... IF NOT EXISTS``). Tables of the gateway itself
        belong in ``store/schema.py``'s migrations; this stays for ad-hoc tables."""
        with self.transaction() as conn:
            for statement in split_statements(ddl):
                conn.execute(self.ddl(statement))

    def ensure_columns(self, table: str, columns: tuple[tuple[str, str], ...]) -> None:
        """Add missing columns (ad-hoc tables; the gateway's own change by migrations)."""
        have = set(self.columns(table))
        with self.transaction() as conn:
            for name, ddl in columns:
                if name not in have:
                    conn.execute(self.ddl(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}"))

    def ddl(self, statement: str) -> str:
        """DDL written for SQLite, in this database's dialect."""
        return statement

    def columns(self, table: str) -> list[str]:
        return [r["name"] for r in self.query(f"PRAGMA table_info({table})")]

    def has_table(self, table: str) -> bool:
        rows = self.query(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
        )
        return bool(rows)

    # -- transactions -------------------------------------------------------------------
    def _begin(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """BEGIN IMMEDIATE ... COMMIT; rolls back on any exception. Not nestable: code
        that may run inside a transaction joins it (``transaction_or(db, db.current())``)."""
        with self._lock:
            if self._owner is not None:  # PostgreSQL would only warn, then commit early
                raise RuntimeError("transaction() inside a transaction: join it instead")
            self._begin()
            self._owner = threading.get_ident()
            self._after_commit = []
            try:
                yield self._conn
            except BaseException:
                self._after_commit = []
                self._owner = None
                self._rollback()
                raise
            self._owner = None
            self._conn.execute("COMMIT")
            callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    def _rollback(self) -> None:
        self._conn.execute("ROLLBACK")

    def current(self) -> Any | None:
        """The connection of the transaction this thread is in, or None."""
        if self._owner == threading.get_ident():
            return self._conn
        return None

    def lock(self, conn: Any, name: str) -> None:
        """Serialise transactions that take the lock ``name`` until they end.
        SQLite: BEGIN IMMEDIATE already serialises every writer."""

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the current transaction has committed (now if none)."""
        with self._lock:
            if self._owner is not None:
                self._after_commit.append(callback)
                return
        callback()

    def query(self, sql: str, params: tuple | dict = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def split_statements(ddl: str) -> list[str]:
    """The statements of a DDL script (no triggers or literals with ';' in ours)."""
    return [s.strip() for s in ddl.split(";") if s.strip()]


@contextmanager
def transaction_or(db: Database, conn: Any | None) -> Iterator[Any]:
    """The caller's transaction if given, else a new one."""
    if conn is not None:
        yield conn
    else:
        with db.transaction() as new:
            yield new
