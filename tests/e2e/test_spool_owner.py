"""One owner for the spool: the service runs as one user, operators' commands as others.

Real system users are created for the test (useradd) and removed afterwards:
``svc`` runs ``dlp-gateway serve`` and owns the data directory (2770, setgid), an
``op`` member of svc's group and an ``outsider`` (not a member) run the CLI, and
root runs it too. Mail released by any of them must be delivered by the service;
a command that cannot write what the service can read must fail visibly and
change nothing. Needs root.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import RECIPIENT, SmtpSink, free_port, roster_mail, send

REPO = Path(__file__).resolve().parents[2]
USERADD = shutil.which("useradd")
USERDEL = shutil.which("userdel")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or USERADD is None or USERDEL is None,
    reason="needs root and useradd/userdel to create throwaway system users",
)


@dataclass
class User:
    name: str
    uid: int
    gid: int


def _useradd(name: str, *extra: str) -> User:
    subprocess.run([USERADD or "useradd", "--system", "--user-group", "--no-create-home",
                    "--shell", "/usr/sbin/nologin", *extra, name], check=True, timeout=30)
    entry = pwd.getpwnam(name)
    return User(name, entry.pw_uid, entry.pw_gid)


def _userdel(name: str) -> None:
    subprocess.run([USERDEL or "userdel", name], capture_output=True, timeout=30)
    subprocess.run(["groupdel", name], capture_output=True, timeout=30)


def _python_for(user: User) -> tuple[list[str], dict[str, str]]:
    """An interpreter ``user`` can run with this checkout importable, or skip."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/nonexistent"}
    if _runs_as(user, sys.executable, env):
        return [sys.executable], env
    # e.g. a pyenv Python under /root (0700): the system python3 of the same version,
    # with this venv's packages (same ABI) and the checkout on PYTHONPATH
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system_python = shutil.which(version, path="/usr/bin:/usr/local/bin")
    purelib = sysconfig.get_paths()["purelib"]
    env = {**env, "PYTHONPATH": f"{REPO}:{purelib}"}
    if system_python and _runs_as(user, system_python, env):
        return [system_python], env
    pytest.skip(f"no Python interpreter that user {user.name} may run with dlp_gateway")


def _runs_as(user: User, python: str, env: dict[str, str]) -> bool:
    try:
        return subprocess.run([python, "-c", "import dlp_gateway.cli"], user=user.uid,
                              group=user.gid, extra_groups=[], env=env, capture_output=True,
                              timeout=60).returncode == 0
    except OSError:
        return False


@dataclass
class Setup:
    root: Path
    data: Path
    config: Path
    svc: User
    op: User
    outsider: User
    python: list[str]
    env: dict[str, str]
    smtp_port: int
    sink: SmtpSink

    def cli(self, user: User | None, *args: str, stdin: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        """Run ``dlp-gateway ARGS`` as ``user`` (None: root)."""
        argv = [*self.python, "-m", "dlp_gateway.cli", *args[:2], "--config", str(self.config),
                *args[2:]]
        env = {**self.env, "USER": user.name if user else "root"}
        if user is None:
            return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                                  input=stdin)
        groups = [self.svc.gid] if user is self.op else []
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                              user=user.uid, group=user.gid, extra_groups=groups, umask=0o022,
                              input=stdin)

    def held_status(self, held_id: str) -> str:
        done = self.cli(None, "held", "list", "--format", "json")
        assert done.returncode == 0, done.stderr
        rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        return next(r["status"] for r in rows if r["id"] == held_id)

    def hold_one(self, subject: str) -> str:
        code, reply = send(self.smtp_port, roster_mail(20, subject=subject))
        match = re.search(r"held for approval (\S+)", reply)
        assert code == 250 and match, reply
        return match.group(1)

    def wait_delivered(self, subject: str, timeout: float = 20.0) -> list[object]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.sink.to(RECIPIENT) if m.message["Subject"] == subject]
            if found:
                return found
            time.sleep(0.1)
        return []


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"service exited: {err}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError("service did not start listening")


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    tag = f"{os.getpid() % 100000}"
    names = [f"dlpsvc{tag}", f"dlpop{tag}", f"dlpout{tag}"]
    root = Path(tempfile.mkdtemp(prefix="dlp-owner-"))
    root.chmod(0o755)
    sink = SmtpSink().start()
    proc: subprocess.Popen[bytes] | None = None
    try:
        svc = _useradd(names[0])
        op = _useradd(names[1], "--groups", names[0])
        outsider = _useradd(names[2])
        python, env = _python_for(svc)
        data = root / "data"
        data.mkdir()
        os.chown(data, svc.uid, svc.gid)
        data.chmod(0o2770)  # README: install -d -o dlp-gateway -g dlp-gateway -m 2770
        smtp_port = free_port()
        config = root / "gateway.toml"
        config.write_text("\n".join([
            "[gateway]",
            f'listen = "127.0.0.1:{smtp_port}"',
            f'upstream = "{sink.address}"',
            f'admin_listen = "127.0.0.1:{free_port()}"',
            f'data_dir = "{data}"',
            "scan_workers = 1",
            "queue_retry_base_seconds = 0.2",
            "queue_retry_max_seconds = 1.0",
            'gateway_address = "dlp-gateway@city.example.lg.jp"',
            "",
        ]), "utf-8")
        config.chmod(0o644)
        proc = subprocess.Popen(
            [*python, "-m", "dlp_gateway.cli", "serve", "--config", str(config)],
            env=env, user=svc.uid, group=svc.gid, extra_groups=[], umask=0o007,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        _wait_listening(smtp_port, proc)
        yield Setup(root, data, config, svc, op, outsider, python, env, smtp_port, sink)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        sink.stop()
        for name in names:
            _userdel(name)
        shutil.rmtree(root, ignore_errors=True)


def _foreign_files(data: Path, svc: User) -> list[str]:
    """Files in the data dir that the service could not read and write."""
    bad = []
    for path in [data, *data.rglob("*")]:
        st = path.lstat()
        owner_ok = st.st_uid == svc.uid
        group_ok = st.st_gid == svc.gid and (st.st_mode & 0o060) == 0o060
        if not (owner_ok or group_ok):
            bad.append(f"{path.relative_to(data)} uid={st.st_uid} gid={st.st_gid} "
                       f"mode={oct(st.st_mode)}")
    return bad


def test_release_by_root_is_delivered_by_the_service(setup: Setup) -> None:
    subject = "名簿 owner-root"
    held_id = setup.hold_one(subject)
    done = setup.cli(None, "held", "release", "--mode", "as_is", "--confirm",
                     "--comment", "root", "--", held_id)
    assert done.returncode == 0, done.stderr
    assert "released" in done.stdout
    assert len(setup.wait_delivered(subject)) == 1
    assert _foreign_files(setup.data, setup.svc) == []


def test_release_by_group_member_is_delivered_by_the_service(setup: Setup) -> None:
    subject = "名簿 owner-member"
    held_id = setup.hold_one(subject)
    done = setup.cli(setup.op, "held", "release", "--mode", "as_is", "--confirm",
                     "--comment", "member", "--", held_id)
    assert done.returncode == 0, done.stderr
    assert len(setup.wait_delivered(subject)) == 1
    assert _foreign_files(setup.data, setup.svc) == []


def test_users_added_by_root_are_used_by_the_service(setup: Setup) -> None:
    """`users add` as root: the service (another user) reads the account and writes on."""
    approver = "ciso-owner@city.example.lg.jp"  # the sender is in no department: CISO routing
    done = setup.cli(None, "users", "add", approver, "--role", "ciso",
                     stdin="correct horse battery staple 7\n")
    assert done.returncode == 0, done.stderr
    assert _foreign_files(setup.data, setup.svc) == []
    subject = "名簿 owner-users"
    setup.hold_one(subject)  # the service writes the database after root did
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the hold notice goes to the new approver
        if setup.sink.to(approver):
            break
        time.sleep(0.1)
    assert setup.sink.to(approver), "the service did not see the account root added"


def test_release_by_outsider_fails_visibly_and_changes_nothing(setup: Setup) -> None:
    subject = "名簿 owner-outsider"
    held_id = setup.hold_one(subject)
    done = setup.cli(setup.outsider, "held", "release", "--comment", "outsider", "--",
                      held_id)
    assert done.returncode != 0
    assert "released" not in done.stdout
    assert done.stderr.strip(), "the operator must be told"
    assert "Traceback" not in done.stderr
    assert setup.held_status(held_id) == "held"
    time.sleep(1.0)
    assert setup.wait_delivered(subject, timeout=0.5) == []


def test_spool_refuses_a_file_its_owner_could_not_read(setup: Setup, tmp_path: Path) -> None:
    """A writable spool whose group the writer cannot give the file: an error, no file."""
    spool_root = setup.root / "open-spool"
    spool_root.mkdir()
    os.chown(spool_root, setup.svc.uid, setup.svc.gid)
    spool_root.chmod(0o777)  # writable by anyone, not setgid: the writer keeps its group
    code = (
        "import sys; from dlp_gateway.store.spool import Spool, SpoolPermissionError\n"
        f"s = Spool({str(spool_root)!r})\n"
        "try:\n    s.write('outbound', b'x')\nexcept SpoolPermissionError as e:\n"
        "    print('refused', e); sys.exit(3)\n"
    )
    done = subprocess.run([*setup.python, "-c", code], env=setup.env, capture_output=True,
                          text=True, timeout=60, user=setup.outsider.uid,
                          group=setup.outsider.gid, extra_groups=[])
    assert done.returncode == 3, done.stdout + done.stderr
    assert list((spool_root / "outbound").iterdir()) == []
    assert list((spool_root / "tmp").iterdir()) == []
