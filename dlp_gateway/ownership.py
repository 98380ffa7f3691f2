"""One owner for the data directory, whoever runs a command.

The service (systemd: user ``dlp-gateway``) owns ``data_dir``; operators run
``held release``, ``users`` ... as root or as members of its group. So that the
service can always read and write what a command created:

- root: the command switches to the data directory's owner and group before it
  opens anything (``become_data_owner``), so every file is the service's own;
- anyone else: umask 007, and spool files get the spool's group and mode 0660
  (``store.spool``); a setgid data directory (``install -m 2770``) makes SQLite's
  files and new directories the group's too.

A file the owner could not read is an error (``SpoolPermissionError``), never a
silently undeliverable release.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("dlp_gateway.ownership")

SHARED_UMASK = 0o007


def share_files() -> None:
    """Group-readable/writable files from here on (the process umask)."""
    os.umask(SHARED_UMASK)


def become_data_owner(data_dir: Path | str) -> bool:
    """As root, switch to the owner of an existing ``data_dir``; True if switched.

    Nothing happens when not root, when the directory does not exist yet, or when
    root owns it (a single-user set-up).
    """
    share_files()
    if os.geteuid() != 0:
        return False
    try:
        st = os.stat(data_dir)
    except FileNotFoundError:
        return False
    if st.st_uid == 0:
        return False
    try:
        name = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        name = None
    if name is not None:
        os.initgroups(name, st.st_gid)
    else:
        os.setgroups([])
    os.setgid(st.st_gid)
    os.setuid(st.st_uid)
    with contextlib.suppress(Exception):
        log.debug("switched to the owner of %s (uid %d, gid %d)", data_dir, st.st_uid, st.st_gid)
    return True


def share_database_files(data_dir: Path | str, filename: str) -> None:
    """Make our SQLite files group read-write (SQLite creates them 0644 & ~umask; its
    -wal and -shm files copy the database file's mode)."""
    for path in Path(data_dir).glob(filename + "*"):
        try:
            st = path.stat()
            if st.st_uid == os.geteuid() and (st.st_mode & 0o060) != 0o060:
                path.chmod((st.st_mode | 0o060) & 0o7770)
        except OSError as exc:  # not ours, or gone: the owner's process shares it
            log.debug("cannot share %s: %s", path, exc)


def open_data_database(config: Any, command: str) -> Any:
    """The data dir's database for a state-changing CLI command, as the data owner.

    Drops to the owner of the data directory first (README "One owner"), keeps the
    SQLite files group-shared, and says on stderr when it had to create a new
    database: a mistyped ``--data-dir`` must not go unnoticed.
    """
    from dlp_gateway.store.db import DB_FILENAME, Database

    become_data_owner(config.data_dir)
    path = config.data_dir / DB_FILENAME
    fresh = not path.exists() and not getattr(config, "database_url", "")  # SQLite only
    db = Database.for_config(config)
    share_database_files(config.data_dir, DB_FILENAME)
    if fresh:
        print(f"dlp-gateway {command}: 新しいデータベースを作成しました "
              f"(created a new database): {path.resolve()}", file=sys.stderr)
    return db
