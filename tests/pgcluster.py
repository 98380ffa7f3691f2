"""A private, throwaway PostgreSQL server for the tests (Debian's ``postgresql``).

``PgCluster.start()`` runs ``initdb`` into a new temporary directory and starts
``postgres`` on 127.0.0.1 with an OS-assigned free port and its unix socket in that
directory (never the system's cluster, never a fixed port). As root it runs as the
``postgres`` OS user through ``runuser`` (postgres refuses to run as root).
``stop()`` stops the server and removes the directory. ``database()`` creates a
fresh database and returns its URL. ``find_bindir()`` is None when the binaries are
absent (``make postgresql`` installs them); tests then skip with that reason.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

SKIP_REASON = ("PostgreSQL server binaries (initdb, pg_ctl) not found: "
               "`make postgresql` installs Debian's postgresql")


def find_bindir() -> Path | None:
    """The directory with initdb/pg_ctl/postgres (Debian keeps them out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).resolve().parent if which else None


# Stops the server when the test process is gone without calling stop() (killed, or
# ended by a timeout's SIGTERM): pg_ctl daemonises postgres, so nothing else would.
_WATCHDOG = """
import os, shutil, subprocess, sys, time
parent, root, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
while os.path.exists(root):
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        subprocess.run(cmd, capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
        break
    time.sleep(0.5)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgCluster:
    def __init__(self, bindir: Path, durable: bool = False):
        self.bindir = bindir
        self.durable = durable  # False (tests): fsync off; True (bench): as in production
        self.root = Path(tempfile.mkdtemp(prefix="dlp-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self.user = "postgres"
        self._as_postgres = os.geteuid() == 0
        self._count = 0
        self._lock = threading.Lock()
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        else:
            self.user = os.environ.get("USER") or "postgres"

    def _command(self, *argv: str) -> list[str]:
        cmd = [str(self.bindir / argv[0]), *argv[1:]]
        return ["runuser", "-u", "postgres", "--", *cmd] if self._as_postgres else cmd

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._command(*argv), capture_output=True, text=True,
                              timeout=120, check=True, cwd=self.root)

    def _watch(self) -> None:
        stop = self._command("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(self.root),
                          *stop], start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> PgCluster:
        self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--no-sync")
        for _attempt in range(3):  # a free port may be taken between probe and bind
            self.port = _free_port()
            options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                       "-c max_connections=200")
            if not self.durable:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            try:
                self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                          "-o", options, "-w", "-t", "60", "start")
                self._watch()
                return self
            except subprocess.CalledProcessError:
                continue
        log = (self.root / "server.log").read_text(errors="replace")[-2000:]
        self.stop()
        raise RuntimeError(f"PostgreSQL did not start:\n{log}")

    def pause(self) -> None:
        """Stop the server, keeping its data and port (an outage)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start it again on the same port after ``pause``."""
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c max_connections=200")
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")

    @property
    def admin_url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def database(self, prefix: str = "t") -> str:
        """A new, empty database; its URL."""
        import psycopg

        with self._lock:
            self._count += 1
            name = f"{prefix}_{os.getpid()}_{self._count}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{name}"

    def drop(self, url: str) -> None:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with contextlib.suppress(psycopg.Error), \
                psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
