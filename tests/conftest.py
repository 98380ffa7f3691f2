"""Shared fixtures: an upstream SMTP sink and a running gateway, both on loopback.

Reusable by every test module (relay, admin page, browser):

- ``upstream_sink``: an aiosmtpd sink on a free port; ``.messages`` holds what
  arrived (``Delivered(mail_from, rcpts, data)``), ``.wait_for(n)`` waits for it,
  ``.stop()`` / ``.start()`` simulate an upstream outage (same port).
- ``gateway_factory(**config_overrides)``: starts a full gateway (SMTP listener,
  outbound worker, admin web app, expiry task) in a background thread with its own
  event loop, on free ports with a tmp data dir; returns a ``GatewayThread`` with
  ``.smtp_port``, ``.admin_port``, ``.admin_url``, ``.gateway`` (the Gateway), ``.stop()``.
- ``running_gateway``: ``gateway_factory()`` with the defaults.
- ``make_config(tmp_path, sink, **overrides)``, ``send(port, raw, ...)``,
  ``roster_xlsx(n)``, ``roster_mail(n)``, ``clean_mail(kb)`` for building cases.
"""

from __future__ import annotations

import asyncio
import io
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from dlp_gateway.config import Config, load_config

SENDER = "staff@city.example.lg.jp"
RECIPIENT = "center@care.example.com"
APPROVER = "kacho@city.example.lg.jp"
CISO = "ciso@city.example.lg.jp"
XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_process(config: Path, port: int, log: Path, timeout: float = 60) -> subprocess.Popen:
    """``dlp-gateway serve --config`` as a real process, returned once ``port`` answers."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dlp_gateway.cli", "serve", "--config", str(config)],
            stdout=out, stderr=subprocess.STDOUT, cwd=config.parent)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("gateway did not start:\n" + log.read_text())


# -- upstream sink -----------------------------------------------------------------------
@dataclass(frozen=True)
class Delivered:
    mail_from: str
    rcpts: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=default_policy)  # type: ignore[return-value]


class _SinkHandler:
    def __init__(self, sink: SmtpSink):
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.sink.lock:
            self.sink.messages.append(
                Delivered(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
            )
        return "250 2.0.0 accepted by sink"


class SmtpSink:
    """An upstream smarthost stand-in that records every message it accepts."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.messages: list[Delivered] = []
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _new_controller(self) -> Controller:
        return Controller(_SinkHandler(self), hostname="127.0.0.1", port=self.port,
                          data_size_limit=None, enable_SMTPUTF8=True)

    def start(self) -> SmtpSink:
        self._controller = self._new_controller()
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Delivered]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.02)
        with self.lock:
            raise AssertionError(f"expected {count} message(s) upstream, got {len(self.messages)}")

    def to(self, rcpt: str) -> list[Delivered]:
        with self.lock:
            return [m for m in self.messages if rcpt in m.rcpts]


@pytest.fixture
def upstream_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


# -- PostgreSQL (issue 12: several nodes) ---------------------------------------------
@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Any]:
    """A private PostgreSQL server for the whole run (tests/pgcluster.py); skipped with
    the reason when Debian's postgresql is not installed."""
    from tests.pgcluster import SKIP_REASON, PgCluster, find_bindir

    bindir = find_bindir()
    if bindir is None:
        pytest.skip(SKIP_REASON)
    cluster = PgCluster(bindir).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Any) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    url = pg_cluster.database()
    yield url
    pg_cluster.drop(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Run a store test on both backends: "" (SQLite in the data dir) or a fresh
    PostgreSQL database's URL."""
    if request.param == "sqlite":
        return ""
    cluster = request.getfixturevalue("pg_cluster")
    url = cluster.database()
    request.addfinalizer(lambda: cluster.drop(url))
    return str(url)


def db_args(database_url: str) -> list[str]:
    """The CLI flags that point a command at the test's database."""
    return ["--database-url", database_url] if database_url else []


# -- gateway ---------------------------------------------------------------------------
def make_config(tmp_path: Path, sink: SmtpSink | None, **overrides: Any) -> Config:
    values: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "admin_listen": "127.0.0.1:0",
        "upstream": sink.address if sink else f"127.0.0.1:{free_port()}",
        "data_dir": tmp_path / "data",
        "scan_workers": 1,
        "scan_timeout_seconds": 20,
        "queue_retry_base_seconds": 0.2,
        "queue_retry_max_seconds": 1.0,
        "upstream_timeout_seconds": 5,
        "gateway_address": "dlp-gateway@city.example.lg.jp",
    }
    values.update(overrides)
    return load_config(None, **values)


class GatewayThread:
    """A full gateway (server.start) running in its own thread and event loop."""

    def __init__(self, config: Config, web: bool = True):
        self.config = config
        self.web = web
        self.loop = asyncio.new_event_loop()
        self.running: Any = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> GatewayThread:
        from dlp_gateway.server import start

        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(start(self.config, web=self.web), self.loop)
        self.running = future.result(timeout=60)
        return self

    @property
    def gateway(self) -> Any:
        return self.running.gateway

    @property
    def smtp_port(self) -> int:
        return self.running.smtp_port

    @property
    def admin_port(self) -> int | None:
        return self.running.admin_port

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` in the gateway's loop thread (for loop-bound objects)."""
        async def wrapper() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout=30)

    def stop(self) -> None:
        if self.running is not None:
            asyncio.run_coroutine_threadsafe(self.running.stop(), self.loop).result(timeout=60)
            self.running = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def gateway_factory(
    tmp_path: Path, upstream_sink: SmtpSink
) -> Iterator[Callable[..., GatewayThread]]:
    started: list[GatewayThread] = []

    def factory(web: bool = True, **overrides: Any) -> GatewayThread:
        gw = GatewayThread(make_config(tmp_path, upstream_sink, **overrides), web=web).start()
        started.append(gw)
        return gw

    yield factory
    for gw in started:
        if gw.running is not None:
            gw.stop()


@pytest.fixture
def running_gateway(gateway_factory: Callable[..., GatewayThread]) -> GatewayThread:
    return gateway_factory()


# -- sending and building mail ------------------------------------------------------------
def send(
    port: int,
    raw: bytes,
    mail_from: str = SENDER,
    rcpts: list[str] | None = None,
    host: str = "127.0.0.1",
    source: str | None = None,
) -> tuple[int, str]:
    """Send one message; return the (code, text) of the DATA reply (or the first refusal)."""
    rcpts = rcpts or [RECIPIENT]
    source_address = (source, 0) if source else None
    with smtplib.SMTP(host, port, timeout=60, source_address=source_address) as smtp:
        smtp.ehlo()
        code, text = smtp.mail(mail_from)
        if code != 250:
            return code, text.decode()
        for rcpt in rcpts:
            code, text = smtp.rcpt(rcpt)
            if code not in (250, 251):
                return code, text.decode()
        code, text = smtp.data(raw)
        return code, text.decode()


SURNAMES = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤"]
GIVEN = ["花子", "太郎", "一郎", "美咲", "健太", "陽子", "直樹", "由美", "翔", "愛"]


def roster_xlsx(rows: int) -> bytes:
    """A care-insurance roster: 被保険者番号, 氏名, 生年月日 (one person per row)."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "名簿"
    ws.append(["被保険者番号", "氏名", "生年月日"])
    for i in range(rows):
        ws.append([
            f"{1000000001 + i * 7919:010d}",
            f"{SURNAMES[i % 10]} {GIVEN[(i * 3) % 10]}",
            f"昭和{20 + i % 40}年{1 + i % 12}月{1 + i % 28}日",
        ])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def roster_mail(
    rows: int,
    filename: str = "介護名簿.xlsx",
    subject: str = "名簿の送付",
    sender: str = SENDER,
    to: str = RECIPIENT,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("お世話になっております。\n資料を送付いたします。\n")
    msg.add_attachment(roster_xlsx(rows), maintype=XLSX_TYPE[0], subtype=XLSX_TYPE[1],
                       filename=filename)
    return msg.as_bytes(policy=default_policy.clone(linesep="\r\n"))


def clean_mail(kb: int = 20, subject: str = "会議の日程について") -> bytes:
    """An ordinary business mail of about ``kb`` KB, no personal data."""
    line = "来週の定例会議は第二会議室で午後二時から開催します。資料は当日配布します。\n"
    body = "各位\n\n" + line * max(1, (kb * 1024) // len(line.encode("utf-8"))) + "\n以上\n"
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = RECIPIENT
    msg["Subject"] = subject
    msg.set_content(body)
    return msg.as_bytes(policy=default_policy.clone(linesep="\r\n"))


def strip_dlp_headers(data: bytes) -> bytes:
    """Remove the two leading X-DLP-* header lines the gateway prepends."""
    lines = data.split(b"\r\n", 2)
    assert lines[0].startswith(b"X-DLP-Verdict: "), lines[0]
    assert lines[1].startswith(b"X-DLP-Scan-Id: "), lines[1]
    return lines[2]
