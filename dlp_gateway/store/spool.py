"""Raw message files on disk, written so that a crash never leaves half a file.

(With PostgreSQL, ``DatabaseSpool`` keeps the bytes in the database instead.)

``write`` goes tmp file -> fsync -> rename -> fsync(dir): once it returns, the
file is on disk under its final name, and a name that exists is complete.
Files get mode 0660 and the spool root's group, and a file the spool's owner could
not read is refused (``SpoolPermissionError``): an operator's command running as
another user never leaves mail the service cannot deliver (dlp_gateway.ownership).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path
from typing import Any


class SpoolPermissionError(PermissionError):
    """A spool file the service (the spool's owner or group) could not read."""


class Spool:
    transactional = False  # files: written before, deleted after the row's commit

    def __init__(self, root: Path | str):
        self.root = Path(root)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    def _dir(self, area: str) -> Path:
        path = self.root / area
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write(self, area: str, data: bytes, name: str | None = None) -> str:
        """Store ``data`` durably; return its name relative to the spool root."""
        name = name or secrets.token_hex(12)
        target_dir = self._dir(area)
        tmp = self.root / "tmp" / f"{name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o660)
        try:
            try:
                self._share(fd, tmp)
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
        except SpoolPermissionError:
            raise  # _share removed the file already
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()  # a full disk must not fill up further with half files
            raise
        os.replace(tmp, target_dir / name)
        _fsync_dir(target_dir)
        return f"{area}/{name}"

    def _share(self, fd: int, path: Path) -> None:
        """Give a new file the spool root's group (g+rw); refuse it if the owner of
        the spool could still not read it."""
        root = os.stat(self.root)
        st = os.fstat(fd)
        if st.st_gid != root.st_gid:
            with contextlib.suppress(PermissionError):
                os.fchown(fd, -1, root.st_gid)
        os.fchmod(fd, 0o660)
        st = os.fstat(fd)
        if st.st_uid != root.st_uid and st.st_gid != root.st_gid:
            path.unlink()
            raise SpoolPermissionError(
                f"spool file would not be readable by the spool's owner (uid {root.st_uid}, "
                f"gid {root.st_gid}): run this as root, as the service user or as a member "
                f"of its group"
            )

    def check_writable(self) -> None:
        """Raise OSError now, at start, if files cannot be written here."""
        probe = self.root / "tmp" / f".probe.{os.getpid()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        probe.unlink()

    def read(self, relname: str) -> bytes:
        return self.path(relname).read_bytes()

    def path(self, relname: str) -> Path:
        path = (self.root / relname).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"spool name escapes the spool: {relname!r}")
        return path

    def delete(self, relname: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(relname).unlink()

    def clean_tmp(self, older_than_seconds: float = 3600.0) -> int:
        """Remove old leftovers of writes interrupted by a crash (never referenced)."""
        removed = 0
        cutoff = time.time() - older_than_seconds
        for leftover in (self.root / "tmp").glob("*.tmp"):
            try:
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DatabaseSpool:
    """The spool in the database (``spool_blobs``), for nodes sharing one PostgreSQL:
    a mail held on one node is released and delivered from another, so its bytes
    cannot live on one node's disk. Same interface as ``Spool``; a write joins the
    transaction the calling thread is in (the row and its bytes commit together)."""

    transactional = True  # writes and deletes join the caller's transaction

    def __init__(self, db: Any):
        self.db = db

    def write(self, area: str, data: bytes, name: str | None = None) -> str:
        relname = f"{area}/{name or secrets.token_hex(12)}"
        from dlp_gateway.store.db import transaction_or, utc_now

        with transaction_or(self.db, self.db.current()) as conn:
            conn.execute(
                "INSERT INTO spool_blobs (name, data, created) VALUES (?, ?, ?)",
                (relname, bytes(data), utc_now()),
            )
        return relname

    def read(self, relname: str) -> bytes:
        rows = self.db.query("SELECT data FROM spool_blobs WHERE name = ?", (relname,))
        if not rows:
            raise FileNotFoundError(f"spool entry {relname} is not in the database")
        return bytes(rows[0]["data"])

    def delete(self, relname: str) -> None:
        from dlp_gateway.store.db import transaction_or

        with transaction_or(self.db, self.db.current()) as conn:
            conn.execute("DELETE FROM spool_blobs WHERE name = ?", (relname,))

    def check_writable(self) -> None:
        """Nothing on disk: the database's own health is checked by opening it."""

    def clean_tmp(self, older_than_seconds: float = 3600.0) -> int:
        """Remove bytes no held mail or queue item points at (a crash between the
        write and its row's commit), older than ``older_than_seconds``."""
        import datetime as dt

        cutoff = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=older_than_seconds))
        with self.db.transaction() as conn:
            return conn.execute(
                "DELETE FROM spool_blobs WHERE created < ?"
                " AND name NOT IN (SELECT spool_name FROM held)"
                " AND name NOT IN (SELECT spool_name FROM outbound)",
                (cutoff.isoformat(timespec="seconds"),),
            ).rowcount


def open_spool(db: Any, data_dir: Path | str) -> Spool | DatabaseSpool:
    """The spool that goes with ``db``: files in the data directory for SQLite, the
    database itself when nodes share one."""
    if getattr(db, "shared", False):
        return DatabaseSpool(db)
    return Spool(Path(data_dir) / "spool")
