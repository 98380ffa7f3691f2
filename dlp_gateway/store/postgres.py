"""The PostgreSQL backend: several gateway nodes on one database (``database_url``).

Same store code as SQLite: ``PgConnection`` turns ``?`` / ``:name`` placeholders into
psycopg's, rows are read by column name (or index) as with ``sqlite3.Row``, and DDL
written for SQLite is translated (``ddl``). Transactions are READ COMMITTED; what
SQLite's ``BEGIN IMMEDIATE`` gave for free is asked for explicitly where it matters:
``lock`` (an advisory lock for the audit chain head and login counters), ``skip_locked``
(queue claims) and guarded ``UPDATE ... WHERE status = ?`` (a release happens once).
A small pool of connections per process (one per thread in a transaction), reopened
when the server went away.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import pq

from dlp_gateway.store.db import DB_FILENAME, Database, StorageError

# idle_in_transaction_session_timeout: a node that hangs inside a transaction must not
# hold the audit lock or a held row for ever; the others carry on after a minute.
_OPTIONS = "-c idle_in_transaction_session_timeout=60000 -c lock_timeout=120000"

_DDL_TYPES = (
    (re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b"), "BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    # Byte order like SQLite's BINARY collation: ISO timestamps and ids compare as text.
    (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'),
)


class Row(dict):
    """A result row read by column name or by position, like ``sqlite3.Row``."""

    __slots__ = ("_values",)

    def __init__(self, names: list[str], values: tuple[Any, ...]):
        super().__init__(zip(names, values, strict=True))
        self._values = values

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int):
            return self._values[key]
        return super().__getitem__(key)


def _row_factory(cursor: Any) -> Any:
    names = [c.name for c in cursor.description or ()]
    return lambda values: Row(names, values)


@functools.lru_cache(maxsize=1024)
def translate(sql: str) -> str:
    """``?`` -> ``%s``, ``:name`` -> ``%(name)s``, ``%`` -> ``%%`` outside quoted literals."""
    out: list[str] = []
    i, n = 0, len(sql)
    quote = ""
    while i < n:
        ch = sql[i]
        if quote:
            out.append("%%" if ch == "%" else ch)
            if ch == quote:
                quote = ""
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        elif ch == ":" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_") \
                and (i == 0 or sql[i - 1] != ":"):
            j = i + 1
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            out.append(f"%({sql[i + 1:j]})s")
            i = j
            continue
        elif ch == ":" and i + 1 < n and sql[i + 1] == ":":
            out.append("::")
            i += 2
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


class PgConnection:
    """What the store code calls on a connection, over a psycopg connection."""

    def __init__(self, raw: psycopg.Connection):
        self.raw = raw

    def execute(self, sql: str, params: tuple | list | dict = ()) -> Any:
        return self.raw.execute(translate(sql), params)

    def executemany(self, sql: str, seq: Any) -> Any:
        cur = self.raw.cursor()
        cur.executemany(translate(sql), list(seq))
        return cur

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE

    @property
    def usable(self) -> bool:
        return not (self.raw.closed or self.raw.broken)

    def close(self) -> None:
        self.raw.close()


def redact(url: str) -> str:
    """The URL without its password, for logs and messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<database_url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


POOL_SIZE = 8  # connections per process: concurrent commits share PostgreSQL's WAL flushes


class _Pool:
    """At most ``size`` open connections, handed to one thread at a time."""

    def __init__(self, opener: Any, size: int):
        self._open = opener
        self._idle: list[PgConnection] = []
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()

    def seed(self) -> PgConnection:
        """Open the first connection now (a wrong URL fails at start, not at first use)."""
        conn = self._open()
        with self._lock:
            self._idle.append(conn)
        return conn

    def get(self) -> PgConnection:
        self._slots.acquire()
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None or not conn.usable:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
                conn = self._open()
            return conn
        except BaseException:
            self._slots.release()
            raise

    def put(self, conn: PgConnection) -> None:
        try:
            if conn.usable and not conn.in_transaction:
                with self._lock:
                    self._idle.append(conn)
            else:
                with contextlib.suppress(Exception):
                    conn.close()
        finally:
            self._slots.release()

    def replace(self, conn: PgConnection) -> PgConnection:
        """A fresh connection for one the server closed (the slot stays taken)."""
        with contextlib.suppress(Exception):
            conn.close()
        return self._open()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()


class PostgresDatabase(Database):
    """Up to ``POOL_SIZE`` connections per process; a transaction keeps its connection
    for its thread, and ``query`` in that thread reads through it (its own writes
    included), as with SQLite's single connection."""

    dialect = "postgresql"
    shared = True
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, data_dir: Path | str, migrate: bool = True):
        self.url = url
        self._local = threading.local()
        self._pool = _Pool(self._open, POOL_SIZE)
        super_path = Path(data_dir) / DB_FILENAME  # never created: data_dir is what counts
        super().__init__(super_path, migrate=migrate)

    def _connect(self) -> Any:
        try:
            Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"data directory {self.data_dir} is not usable: {exc}") from exc
        return self._pool.seed()

    def _open(self) -> PgConnection:
        try:
            raw = psycopg.connect(
                self.url, autocommit=True, row_factory=_row_factory, connect_timeout=10,
                application_name="dlp-gateway", options=_OPTIONS,
            )
        except psycopg.Error as exc:
            raise StorageError(
                f"cannot connect to the database {redact(self.url)}: {exc}".strip()
            ) from exc
        return PgConnection(raw)

    def describe(self) -> str:
        return redact(self.url)

    # -- transactions: one pooled connection per thread ---------------------------------
    def _mine(self) -> PgConnection | None:
        return getattr(self._local, "conn", None)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """BEGIN ... COMMIT on a pooled connection; rolls back on any exception."""
        if self._mine() is not None:
            raise RuntimeError("transaction() inside a transaction: join it instead")
        conn = self._pool.get()
        try:
            conn = self._begin_on(conn)
            self._local.conn, self._local.after = conn, []
            try:
                yield conn
            except BaseException:
                if conn.usable:
                    with contextlib.suppress(psycopg.Error):
                        conn.execute("ROLLBACK")
                raise
            finally:
                callbacks = self._local.after
                self._local.conn, self._local.after = None, []
            conn.execute("COMMIT")
        finally:
            self._pool.put(conn)
        for callback in callbacks:
            callback()

    def _begin_on(self, conn: PgConnection) -> PgConnection:
        try:
            conn.execute("BEGIN")
        except psycopg.OperationalError:
            if conn.usable:
                raise
            conn = self._pool.replace(conn)  # the server closed an idle connection
            conn.execute("BEGIN")
        return conn

    def current(self) -> Any | None:
        return self._mine()

    def after_commit(self, callback: Any) -> None:
        if self._mine() is not None:
            self._local.after.append(callback)
        else:
            callback()

    def query(self, sql: str, params: tuple | dict = ()) -> list[Any]:
        mine = self._mine()
        if mine is not None:
            return mine.execute(sql, params).fetchall()
        conn = self._pool.get()
        try:
            try:
                return conn.execute(sql, params).fetchall()
            except psycopg.OperationalError:
                if conn.usable:
                    raise
                conn = self._pool.replace(conn)  # a read outside a transaction: send again
                return conn.execute(sql, params).fetchall()
        finally:
            self._pool.put(conn)

    def lock(self, conn: Any, name: str) -> None:
        """A transaction-scoped advisory lock: other nodes taking ``name`` wait for the
        end of this transaction."""
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (name,))

    def ddl(self, statement: str) -> str:
        for pattern, replacement in _DDL_TYPES:
            statement = pattern.sub(replacement, statement)
        return statement

    def columns(self, table: str) -> list[str]:
        rows = self.query(
            "SELECT column_name AS name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            (table,),
        )
        return [r["name"] for r in rows]

    def has_table(self, table: str) -> bool:
        rows = self.query(
            "SELECT 1 FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_name = ?", (table,),
        )
        return bool(rows)

    def close(self) -> None:
        self._pool.close()
