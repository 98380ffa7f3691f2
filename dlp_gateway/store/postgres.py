"""The PostgreSQL backend: several gateway nodes on one database (``database_url``).

Same store code as SQLite: ``PgConnection`` turns ``?`` / ``:name`` placeholders into
psycopg's, rows are read by column name (or index) as with ``sqlite3.Row``, and DDL
written for SQLite is translated (``ddl``). Transactions are READ COMMITTED; what
SQLite's ``BEGIN IMMEDIATE`` gave for free is asked for explicitly where it matters:
``lock`` (an advisory lock for the audit chain head and login counters), ``skip_locked``
(queue claims) and guarded ``UPDATE ... WHERE status = ?`` (a release happens once).
One connection per process behind a lock, reopened when the server went away.
"""

from __future__ import annotations

import contextlib
import functools
import re
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


class PostgresDatabase(Database):
    dialect = "postgresql"
    shared = True
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, data_dir: Path | str, migrate: bool = True):
        self.url = url
        super_path = Path(data_dir) / DB_FILENAME  # never created: data_dir is what counts
        super().__init__(super_path, migrate=migrate)

    def _connect(self) -> Any:
        try:
            Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"data directory {self.data_dir} is not usable: {exc}") from exc
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

    def _usable(self) -> None:
        """Reopen the connection if the server dropped it (between transactions only)."""
        if not self._conn.usable:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = self._connect()

    def _begin(self) -> None:
        self._usable()
        try:
            self._conn.execute("BEGIN")
        except psycopg.OperationalError:
            if self._conn.usable:
                raise
            self._usable()  # the server closed an idle connection (restart, failover)
            self._conn.execute("BEGIN")

    def _rollback(self) -> None:
        if self._conn.usable:
            self._conn.execute("ROLLBACK")

    def query(self, sql: str, params: tuple | dict = ()) -> list[Any]:
        with self._lock:
            if self._owner is not None:
                return self._conn.execute(sql, params).fetchall()
            self._usable()
            try:
                return self._conn.execute(sql, params).fetchall()
            except psycopg.OperationalError:
                if self._conn.usable:
                    raise
                self._usable()  # a read outside a transaction: safe to send again
                return self._conn.execute(sql, params).fetchall()

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
        with self._lock, contextlib.suppress(Exception):
            self._conn.close()
