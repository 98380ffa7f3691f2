"""Issue 10, loss and availability: a poisoned outbound queue, 8-bit senders, idle
connections, recipient limits, crashing scans, duplicate retries, undeliverable
notices, read-only data dirs. Real sockets, real SQLite, real processes."""

from __future__ import annotations

import os
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

from aiosmtpd.controller import Controller

from tests.conftest import (
    RECIPIENT,
    SENDER,
    SmtpSink,
    _SinkHandler,
    clean_mail,
    make_config,
    roster_mail,
    send,
)
from tests.e2e.scan_crash import MARKER, crash_on_marker


class AsciiOnlySink(SmtpSink):
    """An upstream that does not offer SMTPUTF8."""

    def start(self) -> AsciiOnlySink:
        self._controller = Controller(_SinkHandler(self), hostname="127.0.0.1", port=self.port,
                                      data_size_limit=None, enable_SMTPUTF8=False)
        self._controller.start()
        return self


def _wait(predicate, timeout: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_one_smtputf8_address_does_not_poison_the_queue(tmp_path):
    from tests.conftest import GatewayThread

    sink = AsciiOnlySink().start()
    gw = GatewayThread(make_config(tmp_path, sink), web=False).start()
    try:
        queue = gw.gateway.queue
        poisoned = queue.enqueue(SENDER, ["山田@介護.example.jp"], clean_mail(2), "release", "h1")
        fine = [queue.enqueue(SENDER, [f"r{i}@care.example.com"], clean_mail(2), "release",
                              f"h{i}") for i in range(2, 6)]
        assert _wait(lambda: len(sink.messages) >= 5)  # 4 mails + the failure notice
        items = {i.id: i for i in queue.items()}
        assert all(items[i].status == "sent" for i in fine)
        assert items[poisoned].status == "failed" and "SMTPUTF8" in items[poisoned].last_error
        assert not [i for i in queue.items() if i.status == "sending"]
        notices = [m for m in sink.messages if m.rcpts == [SENDER]]
        assert len(notices) == 1  # the sender is told, clearly
    finally:
        gw.stop()
        sink.stop()


def test_items_stuck_in_sending_are_picked_up_again(gateway_factory, upstream_sink):
    gw = gateway_factory(web=False, upstream_timeout_seconds=1)
    queue = gw.gateway.queue
    item = queue.enqueue(SENDER, [RECIPIENT], clean_mail(1), "release", "x", delay=3600)
    with gw.gateway.db.transaction() as conn:  # as a worker that died mid-delivery leaves it
        conn.execute("UPDATE outbound SET status = 'sending', claimed_at = ? WHERE id = ?",
                     (time.time() - 3600, item))
    # the worker recovers it without a restart (a restart recovers everything anyway)
    assert _wait(lambda: queue.items()[0].status == "sent", 20)
    assert len(upstream_sink.messages) == 1


def test_8bit_non_utf8_sender_gets_5xx_and_nothing_is_written(running_gateway):
    with socket.create_connection(("127.0.0.1", running_gateway.smtp_port), timeout=10) as s:
        reader = s.makefile("rb")
        reader.readline()
        s.sendall(b"EHLO x\r\n")
        while not reader.readline().startswith(b"250 "):
            pass
        s.sendall(b"MAIL FROM:<\xe5\xb1\xb1\xff\xfe@city.example.lg.jp>\r\n")
        reply = reader.readline()
    assert reply.startswith(b"553"), reply
    spool = running_gateway.config.data_dir / "spool"
    assert [p for p in spool.rglob("*") if p.is_file()] == []


def test_recipient_limit(gateway_factory):
    gw = gateway_factory(web=False, max_recipients=5)
    with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=10) as smtp:
        smtp.ehlo()
        smtp.mail(SENDER)
        codes = [smtp.rcpt(f"r{i}@care.example.com")[0] for i in range(8)]
    assert codes == [250] * 5 + [452] * 3


def _connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10,
                                    source_address=(source, 0))
    return sock


def _banner(sock: socket.socket) -> bytes:
    return sock.recv(512)


def test_idle_connections_cannot_lock_everyone_out(gateway_factory, upstream_sink):
    gw = gateway_factory(web=False, max_connections=10, max_connections_per_client=4,
                         smtp_idle_before_mail_seconds=1.0)
    port = gw.smtp_port
    hogs = [_connect(port) for _ in range(4)]
    assert all(_banner(s).startswith(b"220") for s in hogs)
    extra = _connect(port)  # a fifth from the same client: refused
    assert _banner(extra).startswith(b"421")
    extra.close()
    other = _connect(port, "127.0.0.2")  # another client still gets in
    assert _banner(other).startswith(b"220")
    other.close()
    # idle before MAIL: closed after the short timeout, not 300 s
    time.sleep(1.8)
    for sock in hogs:
        sock.settimeout(2)
        try:
            data = sock.recv(512)
        except ConnectionResetError:
            data = b""
        assert data == b"" or data.startswith(b"421"), data
        sock.close()
    assert send(port, clean_mail(1))[0] == 250


def test_at_the_global_limit_idle_connections_make_room(gateway_factory, upstream_sink):
    gw = gateway_factory(web=False, max_connections=5, max_connections_per_client=100)
    idle = [_connect(gw.smtp_port) for _ in range(5)]
    assert all(_banner(s).startswith(b"220") for s in idle)
    assert send(gw.smtp_port, clean_mail(1))[0] == 250  # a newcomer is served
    for sock in idle:
        sock.close()


def test_scan_that_kills_its_worker_is_held_as_corrupt(gateway_factory, upstream_sink):
    gw = gateway_factory(web=False, scan_max_attempts=2)
    gw.running.scanner.scan_fn = crash_on_marker
    raw = MARKER + b"\r\n" + clean_mail(1)
    code, reply = send(gw.smtp_port, raw)
    assert code == 250 and "held for approval" in reply, reply
    [held] = gw.gateway.held.list("held")
    assert "corrupt" in held.rules
    assert send(gw.smtp_port, clean_mail(1))[0] == 250  # the pool came back


def test_retry_after_a_lost_250_is_answered_from_the_first_copy(gateway_factory,
                                                                 upstream_sink):
    gw = gateway_factory(web=False)
    roster = b"Message-ID: <r1@city.example.lg.jp>\r\n" + roster_mail(30)
    first = send(gw.smtp_port, roster)
    again = send(gw.smtp_port, roster)  # the client never saw the first 250 and retries
    assert first == again and "held for approval" in first[1]
    assert len(gw.gateway.held.list("held")) == 1
    assert len(gw.gateway.audit.entries(event="hold")) == 1
    small = b"Message-ID: <r2@city.example.lg.jp>\r\n" + roster_mail(3, subject="少人数")
    one = send(gw.smtp_port, small)
    two = send(gw.smtp_port, small)
    assert one == two and one[0] == 250
    upstream_sink.wait_for(3)  # the zipped mail, its password, the hold's sender notice
    time.sleep(0.5)
    passwords = [m for m in upstream_sink.messages if m.rcpts == [SENDER]
                 and "パスワード" in str(m.message.get("Subject", ""))]
    assert len(passwords) == 1
    zipped = [m for m in upstream_sink.messages if m.rcpts == [RECIPIENT]]
    assert len(zipped) == 1
    # a different message (another Message-ID) is not a retry
    other = roster.replace(b"<r1@", b"<r3@")
    assert "held for approval" in send(gw.smtp_port, other)[1]
    # without a Message-ID an identical resend is a new message (nothing tells them apart)
    assert "held for approval" in send(gw.smtp_port, roster_mail(30))[1]
    assert "held for approval" in send(gw.smtp_port, roster_mail(30))[1]
    assert len(gw.gateway.held.list("held")) == 4


def test_failures_nobody_can_be_mailed_about_are_kept_for_operators(tmp_path):
    import re

    import httpx

    from tests.conftest import GatewayThread

    refusing = SmtpSink()  # never started: every delivery fails
    gw = GatewayThread(make_config(tmp_path, refusing, queue_max_attempts=1)).start()
    try:
        gw.gateway.users.add("op@city.example.lg.jp", "operator", "password-123")
        gw.gateway.queue.enqueue(SENDER, [RECIPIENT], clean_mail(1, "至急の件"), "release",
                                 "h1")
        assert _wait(lambda: bool(gw.gateway.queue.undeliverable()), 20)
        [failure] = gw.gateway.queue.undeliverable()
        assert failure["kind"] == "notice" and failure["rcpts"] == [SENDER]
        with httpx.Client(base_url=gw.admin_url, timeout=30) as client:
            page = client.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            client.post("/login", data={"email": "op@city.example.lg.jp",
                                        "password": "password-123", "csrf_token": token})
            shown = client.get("/failures")
        assert shown.status_code == 200 and SENDER in shown.text and "配送失敗" in shown.text
    finally:
        gw.stop()


def test_read_only_data_dir_is_a_clear_error(tmp_path):
    if os.geteuid() == 0:
        data_dir = Path("/proc/self/fdinfo")  # exists, and not even root may write there
    else:
        data_dir = tmp_path / "ro"
        data_dir.mkdir()
        data_dir.chmod(0o500)
    proc = subprocess.run(
        [sys.executable, "-m", "dlp_gateway.cli", "serve", "--data-dir", str(data_dir),
         "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "data" in proc.stderr
    assert str(data_dir) in proc.stderr


# -- SIGKILL of serve: no child survives ---------------------------------------------
def _children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, p in parents.items() if p in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigkill_of_serve_takes_every_child_with_it(tmp_path):
    import signal

    from tests.conftest import free_port

    port = free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'listen = "127.0.0.1:{port}"\nadmin_listen = "127.0.0.1:0"\n'
        f'upstream = "maildir:{tmp_path / "maildir"}"\ndata_dir = "{tmp_path / "data"}"\n'
        "scan_workers = 2\n"
    )
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "dlp_gateway.cli", "serve", "--config",
                             str(config)], stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    children: set[int] = set()
    try:
        assert _wait(lambda: _listening(port), 60), log.read_text()
        assert send(port, roster_mail(30))[0] == 250  # the scan workers are up and used
        children = _children(proc.pid)
        assert len(children) >= 3, children  # forkserver, resource tracker, scan workers
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert _wait(lambda: not [c for c in children if _alive(c)], 8), \
            [c for c in children if _alive(c)]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for child in children:  # never leave a process behind, even when the test fails
            if _alive(child):
                os.kill(child, signal.SIGKILL)


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_small_mail_has_a_lane_while_large_scans_run(gateway_factory, upstream_sink):
    import threading

    from tests.e2e.scan_crash import slow_if_large

    gw = gateway_factory(web=False, scan_workers=2, small_mail_bytes=100_000,
                         scan_timeout_seconds=30)
    gw.running.scanner.scan_fn = slow_if_large
    big = [threading.Thread(target=send, args=(gw.smtp_port, clean_mail(300, f"big {i}")))
           for i in range(2)]
    for t in big:
        t.start()
    time.sleep(0.5)  # both large scans have started
    started = time.monotonic()
    assert send(gw.smtp_port, clean_mail(2, "small"))[0] == 250
    waited = time.monotonic() - started
    for t in big:
        t.join()
    assert waited < 2.0, waited  # not stuck behind two 3-second scans


def test_full_disk_is_logged_once_not_per_mail(tmp_path):
    """A real write failure from the kernel: the file-size limit makes every spool
    write fail (EFBIG) as a full disk would (ENOSPC); both are storage failures."""
    import resource
    import signal

    from tests.conftest import free_port

    def limit_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

    port = free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'listen = "127.0.0.1:{port}"\nadmin_listen = "127.0.0.1:0"\n'
        f'upstream = "127.0.0.1:{free_port()}"\ndata_dir = "{tmp_path / "data"}"\n'
        "scan_workers = 1\n"
    )
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "dlp_gateway.cli", "serve", "--config",
                             str(config)], stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            preexec_fn=limit_files)
    try:
        assert _wait(lambda: _listening(port), 60), log.read_text()
        codes = [send(port, clean_mail(1200, f"big {i}"))[0] for i in range(6)]
        assert codes == [452] * 6, codes
        assert send(port, clean_mail(1, "small"))[0] == 250  # small mail still queues
    finally:
        proc.terminate()
        proc.wait(30)
    text = log.read_text(errors="replace")
    assert text.count("storage unavailable") == 1, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert text.count("storage available again") == 1
    assert list((tmp_path / "data" / "spool" / "tmp").iterdir()) == []  # no half files


def test_queue_drains_as_soon_as_upstream_takes_mail_again(tmp_path):
    from tests.conftest import GatewayThread

    sink = SmtpSink()  # down at first
    gw = GatewayThread(make_config(tmp_path, sink, queue_retry_base_seconds=120,
                                   queue_retry_max_seconds=600), web=False).start()
    try:
        queue = gw.gateway.queue
        for i in range(5):
            queue.enqueue(SENDER, [f"r{i}@care.example.com"], clean_mail(1, f"q{i}"), "release",
                          f"h{i}")
        assert _wait(lambda: all(i.attempts >= 1 and i.status == "due"
                                 for i in queue.items()), 15)
        sink.start()  # the upstream is back; the items are backing off for 120 s
        assert send(gw.smtp_port, clean_mail(1, "new"))[0] == 250  # delivered directly
        assert _wait(lambda: len(sink.messages) >= 6, 10), len(sink.messages)
    finally:
        gw.stop()
        sink.stop()


def test_smtputf8_addresses_go_to_upstreams_that_offer_it(running_gateway, upstream_sink):
    queue = running_gateway.gateway.queue
    queue.enqueue("山田@市役所.example.jp", ["佐藤@介護.example.jp"], clean_mail(1), "release", "u")
    [got] = upstream_sink.wait_for(1)
    assert got.rcpts == ["佐藤@介護.example.jp"] and got.mail_from == "山田@市役所.example.jp"


def test_hanging_upstream_does_not_stall_held_mail(tmp_path):
    import threading

    from tests.conftest import GatewayThread

    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(64)  # accepts, and never says a word
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        hang.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(hang.accept()[0])
            except OSError:
                continue

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    upstream = f"127.0.0.1:{hang.getsockname()[1]}"
    gw = GatewayThread(make_config(tmp_path, None, upstream=upstream,
                                   upstream_timeout_seconds=6), web=False).start()
    try:
        senders = [threading.Thread(target=send, args=(gw.smtp_port, clean_mail(1, f"c{i}")))
                   for i in range(10)]
        for t in senders:
            t.start()
        time.sleep(1.0)  # ten deliveries are now hanging on the upstream
        started = time.monotonic()
        code, reply = send(gw.smtp_port, roster_mail(30))
        waited = time.monotonic() - started
        assert code == 250 and "held for approval" in reply
        assert waited < 4.0, waited  # not behind the hanging upstream calls
        for t in senders:
            t.join()
    finally:
        gw.stop()
        stop.set()
        acceptor.join()
        for conn in accepted:
            conn.close()
        hang.close()
