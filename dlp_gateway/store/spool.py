"""Raw message files on disk, written so that a crash never leaves half a file.

``write`` goes tmp file -> fsync -> rename -> fsync(dir): once it returns, the
file is on disk under its final name, and a name that exists is complete.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path


class Spool:
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
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()  # a full disk must not fill up further with half files
            raise
        os.replace(tmp, target_dir / name)
        _fsync_dir(target_dir)
        return f"{area}/{name}"

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
