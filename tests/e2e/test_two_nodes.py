"""Issue 12, several nodes: two real `dlp-gateway serve` processes on one real PostgreSQL.

Each node has its own data directory (scan workers, anchor file) and shares the
database (held mail and its bytes, queue, users, sessions, audit log) and the audit
key. Mail goes in over real SMTP on loopback, comes out at a real upstream sink; the
admin pages are driven over HTTP with login and CSRF tokens, as a browser would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller

from dlp_gateway.config import load_config
from dlp_gateway.gateway import Gateway
from dlp_gateway.store.audit import AuditLog
from tests.conftest import (
    RECIPIENT,
    SENDER,
    Delivered,
    SmtpSink,
    free_port,
    roster_mail,
    send,
)

CISO = "ciso@city.example.lg.jp"
PASSWORD = "two-nodes-password"


class SlowSink(SmtpSink):
    """An upstream that takes ``delay`` seconds per message, so that one node cannot
    drain a long queue before the other node's next poll."""

    def __init__(self, delay: float):
        super().__init__()
        self.delay = delay

    def start(self) -> SlowSink:
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
                await asyncio.sleep(sink.delay)
                with sink.lock:
                    sink.messages.append(Delivered(envelope.mail_from, list(envelope.rcpt_tos),
                                                   envelope.original_content))
                return "250 2.0.0 accepted by sink"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                      data_size_limit=None)
        self._controller.start()
        return self


class Node:
    """One `dlp-gateway serve` process."""

    def __init__(self, root: Path, name: str, url: str, sink: SmtpSink):
        self.name = name
        self.smtp_port, self.admin_port = free_port(), free_port()
        self.data_dir = root / name
        self.config = root / f"{name}.toml"
        self.config.write_text(
            f'listen = "127.0.0.1:{self.smtp_port}"\n'
            f'admin_listen = "127.0.0.1:{self.admin_port}"\n'
            f'upstream = "{sink.address}"\n'
            f'data_dir = "{self.data_dir}"\n'
            f'database_url = "{url}"\n'
            f'audit_key_file = "{root / "audit.key"}"\n'
            'gateway_address = "dlp-gateway@city.example.lg.jp"\n'
            "scan_workers = 1\nqueue_retry_base_seconds = 0.2\nqueue_retry_max_seconds = 1.0\n"
        )
        self.log = root / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Node:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dlp_gateway.cli", "serve", "--config", str(self.config)],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            if _listening(self.smtp_port) and _listening(self.admin_port):
                return
            time.sleep(0.1)
        raise AssertionError(f"node {self.name} did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        with contextlib.suppress(ProcessLookupError):  # scan workers too: nothing left behind
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def admin(self) -> httpx.Client:
        """A logged-in admin-page session (login form + CSRF token, as a browser does)."""
        client = httpx.Client(base_url=self.admin_url, timeout=60)
        page = client.get("/login")
        r = client.post("/login", data={"email": CISO, "password": PASSWORD,
                                         "csrf_token": _csrf(page.text)})
        assert r.status_code == 303 and r.headers["location"] == "/held", r.text
        return client


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "page has no csrf_token"
    return found.group(1)


def _release(client: httpx.Client, held_id: str) -> httpx.Response:
    token = _csrf(client.get(f"/held/{held_id}").text)
    return client.post(f"/held/{held_id}/release", data={
        "mode": "as_is", "comment": "二拠点から確認", "confirm": "yes", "csrf_token": token})


def _hold(node: Node, rows: int = 25) -> str:
    code, text = send(node.smtp_port, roster_mail(rows))
    found = re.search(r"held for approval (\S+)", text)
    assert code == 250 and found, (code, text)
    return found.group(1)


def _to_recipient(sink: SmtpSink) -> list[Delivered]:
    return [m for m in sink.to(RECIPIENT) if b"X-DLP-Verdict: released" in m.data]


def _settle(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.05)


@pytest.fixture
def cluster(tmp_path: Path, pg_url: str) -> Iterator[tuple[Node, Node, SmtpSink, str]]:
    sink = SlowSink(0.15).start()
    nodes = [Node(tmp_path, name, pg_url, sink) for name in ("a", "b")]
    try:
        for node in nodes:
            node.start()
        for node in nodes:
            node.wait_ready()
        # The account exists once, in the shared database, made with node A's CLI.
        r = subprocess.run(
            [sys.executable, "-m", "dlp_gateway.cli", "users", "add", CISO, "--role", "ciso",
             "--config", str(nodes[0].config)],
            input=PASSWORD + "\n", text=True, capture_output=True, timeout=60,
        )
        assert r.returncode == 0, r.stderr
        yield nodes[0], nodes[1], sink, pg_url
    finally:
        for node in nodes:
            node.stop()
        sink.stop()


def test_held_on_a_released_from_b_is_delivered_exactly_once(cluster):
    a, b, sink, _url = cluster
    held_id = _hold(a)
    with contextlib.closing(b.admin()) as client:
        page = client.get("/held")
        assert held_id in page.text  # B lists what A held
        r = _release(client, held_id)
        assert r.status_code == 303 and "done=released" in r.headers["location"], r.text
        assert client.post(f"/held/{held_id}/release", data={
            "mode": "as_is", "comment": "再送", "confirm": "yes",
            "csrf_token": _csrf(client.get(f"/held/{held_id}").text)}).status_code == 409
    sink.wait_for(1, timeout=30)
    time.sleep(2.5)  # both nodes' workers have polled the queue at least twice since
    delivered = _to_recipient(sink)
    assert len(delivered) == 1, [m.data[:200] for m in delivered]
    assert delivered[0].mail_from == SENDER


def test_release_from_both_admin_pages_at_once_succeeds_once(cluster):
    a, b, sink, _url = cluster
    clients = [a.admin(), b.admin()]
    try:
        for _round in range(3):
            held_id = _hold(b)
            tokens = [_csrf(c.get(f"/held/{held_id}").text) for c in clients]
            barrier = threading.Barrier(2)
            codes: list[int] = []

            def post(i: int, held_id: str = held_id, tokens: list[str] = tokens,
                     barrier: threading.Barrier = barrier, codes: list[int] = codes) -> None:
                barrier.wait()
                codes.append(clients[i].post(f"/held/{held_id}/release", data={
                    "mode": "as_is", "comment": "同時承認", "confirm": "yes",
                    "csrf_token": tokens[i]}).status_code)

            threads = [threading.Thread(target=post, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert sorted(codes) == [303, 409], codes
    finally:
        for c in clients:
            c.close()
    _settle(lambda: len(_to_recipient(sink)) >= 3)
    time.sleep(2.5)
    assert len(_to_recipient(sink)) == 3


def test_both_nodes_drain_one_queue_without_duplicates(cluster, tmp_path):
    a, b, sink, url = cluster
    sink.delay = 0.6  # one node alone would need ~3 s: the other polls within 1 s
    # A third writer (the queue is only a table): 90 items, each to its own address.
    writer = Gateway(load_config(None, data_dir=tmp_path / "writer", database_url=url,
                                 audit_key_file=tmp_path / "audit.key"))
    try:
        rcpts = [f"r{i:03d}@care.example.com" for i in range(90)]
        for rcpt in rcpts:
            writer.queue.enqueue(SENDER, [rcpt], f"Subject: {rcpt}\r\n\r\nx\r\n".encode())
        _settle(lambda: len(sink.messages) >= len(rcpts), timeout=60)
        time.sleep(2.5)
        got = [m.rcpts[0] for m in sink.messages]
        assert sorted(got) == rcpts  # every item once, none twice
        items = writer.queue.items()
        assert {i.status for i in items} == {"sent"}
        nodes = {row["claimed_by"] for row in writer.db.query(
            "SELECT DISTINCT claimed_by FROM outbound")}
        assert len(nodes) == 2, nodes  # both nodes took part
        assert all(str(a.data_dir) in n or str(b.data_dir) in n for n in nodes), nodes
    finally:
        writer.close()


def test_audit_chain_from_both_nodes_verifies(cluster, tmp_path):
    a, b, sink, url = cluster
    ids = [_hold(a, 15), _hold(b, 15), _hold(a, 12)]
    with contextlib.closing(b.admin()) as client:
        assert _release(client, ids[0]).status_code == 303
    with contextlib.closing(a.admin()) as client:
        assert _release(client, ids[1]).status_code == 303
    _settle(lambda: len(_to_recipient(sink)) >= 2)
    for node in (a, b):  # each node's anchor file checks against the one shared chain
        r = subprocess.run([sys.executable, "-m", "dlp_gateway.cli", "audit", "verify",
                            "--config", str(node.config)], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "改ざんされていません" in r.stdout
    reader = Gateway(load_config(None, data_dir=tmp_path / "reader", database_url=url,
                                 audit_key_file=tmp_path / "audit.key"))
    try:
        entries = AuditLog(reader.db).entries()
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
        holds = {e.held_id for e in entries if e.event == "hold"}
        assert set(ids) <= holds
        logins = [e for e in entries if e.event == "login"]
        assert len(logins) == 2
    finally:
        reader.close()


def _login_attempt(node: Node, password: str) -> httpx.Response:
    client = httpx.Client(base_url=node.admin_url, timeout=60)
    with contextlib.closing(client):
        page = client.get("/login")
        return client.post("/login", data={"email": CISO, "password": password,
                                            "csrf_token": _csrf(page.text)})


def test_session_and_lockout_hold_across_nodes(cluster):
    a, b, _sink, _url = cluster
    with contextlib.closing(a.admin()) as on_a:
        cookies = dict(on_a.cookies)
        with httpx.Client(base_url=b.admin_url, cookies=cookies, timeout=60) as on_b:
            page = on_b.get("/held")  # the session made on A, used on B
            assert page.status_code == 200 and CISO in page.text
            r = on_b.post("/logout", data={"csrf_token": _csrf(page.text)})
            assert r.status_code == 303
        assert on_a.get("/held").status_code == 303  # logged out on B: gone on A too
    # Five wrong passwords spread over both nodes lock the address on both.
    for i in range(5):
        r = _login_attempt((a, b)[i % 2], "wrong-password")
        assert r.status_code != 303
    for node in (a, b):
        r = _login_attempt(node, PASSWORD)  # even the right password is refused now
        assert r.status_code != 303 and "ロック" in r.text
