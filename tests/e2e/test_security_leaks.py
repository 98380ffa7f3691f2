"""Issue 10, leaks: forged senders, SMTP smuggling, AUTH/XFORWARD identity, one actor
per CLI decision, login lock-out races and login CSRF. Real sockets, real SQLite."""

from __future__ import annotations

import os
import random
import re
import smtplib
import socket
import socketserver
import threading
import time
from pathlib import Path

import httpx
import pytest

from dlp_gateway.gateway import Gateway, ReleaseError
from dlp_gateway.mail.addresses import header_addresses, is_mailbox
from dlp_gateway.store.staff import StaffStore
from tests.conftest import (
    APPROVER,
    RECIPIENT,
    SENDER,
    make_config,
    roster_mail,
)
from tests.e2e.test_smtp_auth import cert  # noqa: F401  (fixture)

DOMAIN = "city.example.lg.jp"
FORGED = '"attacker@evil.example,"@city.example.lg.jp'


def malformed_senders(seed: int, n: int = 40) -> list[str]:
    """Envelope senders that are not one well-formed address of the allowed domain."""
    rng = random.Random(seed)
    evil = ["attacker@evil.example", "x@evil.example", "a@b.example"]
    forms = [
        lambda e: f'"{e},"@{DOMAIN}',
        lambda e: f'"{e}"@{DOMAIN}',
        lambda e: f'"{e}, "@{DOMAIN}',
        lambda e: f'"a b"@{DOMAIN}',
        lambda e: f"{e},staff@{DOMAIN}",
        lambda e: f"staff@{DOMAIN},{e}",
        lambda e: f"{e}",  # a domain that is not ours
        lambda e: f"staff@{DOMAIN}.{e.split('@')[1]}",
        lambda e: f"staff@evil.{DOMAIN}x",
        lambda e: f".staff@{DOMAIN}",
        lambda e: f"staff..x@{DOMAIN}",
        lambda e: "staff@[127.0.0.1]",
        lambda e: f"@{DOMAIN}",
    ]
    out = [FORGED]
    for _ in range(n):
        form = rng.choice(forms)
        out.append(form(rng.choice(evil)))
    return out


def _mail_from(port: int, address: str, host: str = "127.0.0.1") -> int:
    with smtplib.SMTP(host, port, timeout=30) as smtp:
        smtp.ehlo()
        code, _ = smtp.docmd("MAIL", f"FROM:<{address}>")
        return code


def _spooled(data_dir: Path) -> list[Path]:
    spool = data_dir / "spool"
    return [p for p in spool.rglob("*") if p.is_file()] if spool.exists() else []


def test_malformed_and_forged_senders_get_5xx_and_nothing_is_written(gateway_factory,
                                                                    upstream_sink):
    seed = random.randrange(1 << 30)
    gw = gateway_factory(web=False, sender_domains=[DOMAIN])
    data_dir = gw.config.data_dir
    for address in dict.fromkeys(malformed_senders(seed, int(os.environ.get("DLP_FUZZ_N", "40")))):
        code = _mail_from(gw.smtp_port, address)
        assert 500 <= code < 600, f"seed={seed} {address!r} got {code}"
    # the attack of the trial: a 3-person roster from the forged sender
    with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=30) as smtp:
        smtp.ehlo()
        assert smtp.docmd("MAIL", f"FROM:<{FORGED}>")[0] == 553
        assert smtp.docmd("RCPT", f"TO:<{RECIPIENT}>")[0] == 503  # no transaction
    assert _spooled(data_dir) == [] and gw.gateway.queue.items() == []
    # the right sender still works, and its password goes to exactly that one address
    assert _mail_from(gw.smtp_port, SENDER) == 250
    with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=60) as smtp:
        smtp.sendmail(SENDER, [RECIPIENT], roster_mail(3))
    upstream_sink.wait_for(2)
    notices = [m for m in upstream_sink.messages if m.rcpts != [RECIPIENT]]
    assert notices and all(m.rcpts == [SENDER] for m in notices), notices


def test_notice_recipients_come_from_a_real_parser_never_a_comma_split(tmp_path):
    from dlp_gateway.actions import notify

    gw = Gateway(make_config(tmp_path, None))
    try:
        forged = notify.delivery_failure_notice(gw.config, FORGED, [RECIPIENT], "件名", "550")
        assert gw.enqueue_notice(forged) == 0  # refused: not one plain mailbox
        assert gw.enqueue_notice(forged, rcpts=[FORGED]) == 0
        queued = [r for i in gw.queue.items() for r in i.rcpts]
        assert not any("evil" in r for r in queued) and queued == []
        failures = gw.queue.undeliverable()
        assert len(failures) == 2 and all("invalid recipient" in f["error"] for f in failures)
        two = notify.delivery_failure_notice(gw.config, SENDER, [RECIPIENT], "件名", "550")
        del two["To"]
        two["To"] = f"{SENDER}, {APPROVER}"
        gw.enqueue_notice(two)
        assert [i.rcpts for i in gw.queue.items()] == [[SENDER], [APPROVER]]  # one each
    finally:
        gw.close()
    assert header_addresses(f"{SENDER}, {APPROVER}") == [SENDER, APPROVER]
    assert not is_mailbox(FORGED) and is_mailbox("山田@市役所.example.jp")


# -- SMTP smuggling -----------------------------------------------------------------------
END_OF_DATA_LENIENT = re.compile(rb"(?:\r\n|\r|\n)\.(?:\r\n|\r|\n)")


class LenientSink(socketserver.ThreadingTCPServer):
    """An upstream that (wrongly) ends DATA on any <EOL>.<EOL>, bare CR/LF included,
    and keeps reading commands after it: what a smuggled second mail needs."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _LenientHandler)
        self.transactions: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _LenientHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(10)
        sock.sendall(b"220 lenient ESMTP\r\n")
        buf, in_data, current = b"", False, None
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while True:
                if in_data:
                    found = END_OF_DATA_LENIENT.search(b"\r\n" + buf)
                    if not found:
                        break
                    buf = buf[max(0, found.end() - 2):]
                    in_data = False
                    with self.server.lock:  # type: ignore[attr-defined]
                        self.server.transactions.append(current)  # type: ignore[attr-defined]
                    sock.sendall(b"250 ok\r\n")
                    continue
                m = re.search(rb"\r\n|\n|\r", buf)
                if not m:
                    break
                line, buf = buf[:m.start()], buf[m.end():]
                verb = line[:4].upper()
                if verb == b"EHLO":
                    sock.sendall(b"250-lenient\r\n250 8BITMIME\r\n")
                elif verb == b"MAIL":
                    current = (line.decode("latin-1"), [])
                    sock.sendall(b"250 ok\r\n")
                elif verb == b"RCPT" and current is not None:
                    current[1].append(line.decode("latin-1"))
                    sock.sendall(b"250 ok\r\n")
                elif verb == b"DATA":
                    in_data = True
                    sock.sendall(b"354 go\r\n")
                elif verb == b"QUIT":
                    sock.sendall(b"221 bye\r\n")
                    return
                elif line:
                    sock.sendall(b"250 ok\r\n")


SMUGGLE_VARIANTS = [b"\r.\r\n", b"\r.\n", b"\r.\r", b"\n.\n", b"\n.\r\n"]


def _raw_send(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(b"EHLO client\r\n")
        while not reader.readline().startswith(b"250 "):
            pass
        for cmd in (f"MAIL FROM:<{SENDER}>", f"RCPT TO:<{RECIPIENT}>", "DATA"):
            sock.sendall(cmd.encode() + b"\r\n")
            reader.readline()
        sock.sendall(data + b"\r\n.\r\n")
        reply = reader.readline()
        sock.sendall(b"QUIT\r\n")
        return reply


@pytest.mark.parametrize("variant", SMUGGLE_VARIANTS, ids=repr)
def test_smuggled_second_transaction_never_reaches_upstream(tmp_path, variant):
    from tests.conftest import GatewayThread

    sink = LenientSink()
    gw = GatewayThread(make_config(tmp_path, None, upstream=sink.address), web=False).start()
    try:
        inner = (
            b"MAIL FROM:<" + SENDER.encode() + b">\r\nRCPT TO:<outside@evil.example>\r\n"
            b"DATA\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n.\r\n"
        )
        data = (b"From: " + SENDER.encode() + b"\r\nTo: " + RECIPIENT.encode()
                + b"\r\nSubject: hello\r\n\r\nhello" + variant + inner + b"tail")
        reply = _raw_send(gw.smtp_port, data)
        assert reply[:1] in (b"2", b"5"), reply
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not sink.transactions:
            time.sleep(0.05)
        time.sleep(0.3)
        with sink.lock:
            seen = list(sink.transactions)
        assert all("evil.example" not in " ".join(rcpts) for _m, rcpts in seen), seen
        assert len(seen) <= 1, seen
    finally:
        gw.stop()
        sink.close()


def test_bare_line_endings_can_be_refused(gateway_factory, upstream_sink):
    gw = gateway_factory(web=False, bare_line_endings="reject")
    reply = _raw_send(gw.smtp_port, b"Subject: x\r\n\r\nline one\nline two\r")
    assert reply.startswith(b"550"), reply
    assert _raw_send(gw.smtp_port, b"Subject: x\r\n\r\nfine\r\n").startswith(b"250")
    assert len(upstream_sink.wait_for(1)) == 1


# -- identity: AUTH, XFORWARD, holds marked, release policy -----------------------------
def _tls() -> object:
    import ssl

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def test_auth_login_must_own_the_sender_address(gateway_factory, upstream_sink, cert):  # noqa: F811
    crt, key = cert
    gw = gateway_factory(tls_cert=crt, tls_key=key, require_auth=True, web=False,
                         allowed_networks=["10.0.0.0/8"])
    gw.gateway.users.add(SENDER, "operator", "correct-horse-battery")
    with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=_tls())
        smtp.ehlo()
        smtp.login(SENDER, "correct-horse-battery")
        code, _ = smtp.docmd("MAIL", f"FROM:<{APPROVER}>")  # a colleague's address
        assert code == 553
        assert smtp.docmd("MAIL", "FROM:<>")[0] == 553  # nor the null sender
        assert smtp.docmd("MAIL", f"FROM:<{SENDER.upper()}>")[0] == 250
        assert smtp.docmd("RCPT", f"TO:<{RECIPIENT}>")[0] == 250
        code, reply = smtp.data(roster_mail(30))
    assert code == 250 and b"held" in reply
    [held] = gw.gateway.held.list("held")
    assert held.sender_authenticated is True


def test_xforward_login_trusted_only_from_configured_relays(gateway_factory, upstream_sink,
                                                           tmp_path):
    untrusted = gateway_factory(web=False, xforward_hosts=[])
    with smtplib.SMTP("127.0.0.1", untrusted.smtp_port, timeout=30) as smtp:
        smtp.ehlo()
        assert "xforward" not in smtp.esmtp_features
        assert smtp.docmd("XFORWARD", f"LOGIN={APPROVER}")[0] == 550
        assert smtp.docmd("XFORWARD", "NAME=pc1 ADDR=10.1.2.3")[0] == 550
        assert smtp.docmd("MAIL", f"FROM:<{SENDER}> AUTH=<{APPROVER}>")[0] == 250
        smtp.docmd("RSET")
    # Issue 12: loopback (the default xforward_hosts) may forward the client's attributes,
    # never an identity: LOGIN is not offered, and a command carrying it is refused whole.
    forwarder = gateway_factory(web=False, data_dir=tmp_path / "forwarder")
    with smtplib.SMTP("127.0.0.1", forwarder.smtp_port, timeout=30) as smtp:
        smtp.ehlo()
        offered = smtp.esmtp_features["xforward"].upper().split()
        assert "ADDR" in offered and "LOGIN" not in offered
        assert smtp.docmd("XFORWARD", f"ADDR=10.9.9.9 LOGIN={APPROVER}")[0] == 501
        assert smtp.docmd("XFORWARD", f"login={APPROVER}")[0] == 501
        assert smtp.docmd("MAIL", f"FROM:<{SENDER}> AUTH=<{APPROVER}>")[0] == 250
        smtp.rcpt(RECIPIENT)
        assert smtp.data(roster_mail(30))[0] == 250
    [held] = forwarder.gateway.held.list("held")
    assert held.sender_authenticated is False
    [row] = forwarder.gateway.audit.entries(event="hold")
    assert row.details["login"] is None
    assert row.details["client"]["addr"] == "127.0.0.1"  # the refused ADDR was not applied
    trusted = gateway_factory(web=False, trusted_relays=["127.0.0.0/8"],
                              require_auth_for_release=True)
    with smtplib.SMTP("127.0.0.1", trusted.smtp_port, timeout=30) as smtp:
        smtp.ehlo()
        assert "xforward" in smtp.esmtp_features
        assert smtp.docmd("XFORWARD", f"NAME=pc1 ADDR=10.1.2.3 LOGIN={SENDER}")[0] == 250
        assert smtp.docmd("MAIL", f"FROM:<{APPROVER}>")[0] == 553  # not the login's
        assert smtp.docmd("MAIL", f"FROM:<{SENDER}>")[0] == 250
        smtp.rcpt(RECIPIENT)
        assert smtp.data(roster_mail(30))[0] == 250
        smtp.rset()
        # an explicit AUTH= from the relay counts too; AUTH=<> is "not authenticated"
        smtp.docmd("XFORWARD", "LOGIN=[UNAVAILABLE]")
        assert smtp.docmd("MAIL", f"FROM:<{APPROVER}> AUTH=<>")[0] == 250
        smtp.rcpt(RECIPIENT)
        assert smtp.data(roster_mail(30))[0] == 250
    helds = {h.sender: h for h in trusted.gateway.held.list("held")}
    assert helds[SENDER].sender_authenticated is True
    assert helds[APPROVER].sender_authenticated is False
    with pytest.raises(ReleaseError):
        trusted.gateway.release(helds[APPROVER].id, "ciso@city.example.lg.jp")
    assert trusted.gateway.held.get(helds[APPROVER].id).status == "held"
    trusted.gateway.release(helds[SENDER].id, "ciso@city.example.lg.jp")


# -- held release --actor: one actor --------------------------------------------------------
def test_cli_release_takes_exactly_one_existing_approver(tmp_path, capsys):
    from dlp_gateway.cli import main as cli_main

    config = make_config(tmp_path, None)
    gw = Gateway(config)
    try:
        # the sender's department heads (issue 9 routing: only they may release)
        StaffStore(gw.db).add(SENDER, "送信 太郎", "介護保険課")
        gw.users.add("a@city.example.lg.jp", "section_head", "password-123", "介護保険課")
        gw.users.add("b@city.example.lg.jp", "section_head", "password-123", "介護保険課")
        gw.users.add("op@city.example.lg.jp", "operator", "password-123")
        raw = roster_mail(30)
        held = gw.held.add(raw, sender=SENDER, recipients=[RECIPIENT], subject="名簿",
                           reasons=["r"], rules=["many_records"], approver_role="section_head")
    finally:
        gw.close()
    data_dir = str(config.data_dir)
    for actor in ("a@city.example.lg.jp, b@city.example.lg.jp",
                  "a@city.example.lg.jp,b@city.example.lg.jp", "nobody@city.example.lg.jp",
                  "op@city.example.lg.jp", "cli:root", SENDER):
        assert cli_main(["held", "release", held.id, "--actor", actor,
                         "--data-dir", data_dir]) == 1, actor
    gw = Gateway(config)
    try:
        assert gw.held.get(held.id).status == "held"
        assert gw.audit.entries(event="approve") == []
    finally:
        gw.close()
    assert cli_main(["held", "release", held.id, "--actor", "a@city.example.lg.jp",
                     "--data-dir", data_dir]) == 0
    gw = Gateway(config)
    try:
        [approval] = gw.audit.entries(event="approve")
        assert approval.actor == "a@city.example.lg.jp"
    finally:
        gw.close()


# -- admin login: lock-out atomic, login CSRF --------------------------------------------
PASSWORD = "correct-horse-battery"


def _login(base: str, email: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=base, timeout=60) as client:
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        return client.post("/login", data={"email": email, "password": password,
                                           "csrf_token": token})


def test_concurrent_guesses_never_exceed_the_lockout_limit(gateway_factory):
    gw = gateway_factory(lockout_failures=5, lockout_minutes=15)
    gw.gateway.users.add(APPROVER, "section_head", PASSWORD)
    barrier = threading.Barrier(32)
    codes: list[int] = []

    def guess(i: int) -> None:
        barrier.wait()
        codes.append(_login(gw.admin_url, APPROVER, f"wrong-{i}").status_code)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    checked = [e for e in gw.gateway.audit.entries(event="login_failed")
               if e.details.get("reason") == "bad_credentials"]
    assert len(checked) == 5, len(checked)
    assert codes.count(429) == 27 and codes.count(401) == 5
    lock_end = gw.gateway.db.query("SELECT locked_until FROM login_failures")[0][0]
    # more failures and even the right password during the lock: refused, lock unchanged
    for password in ("wrong-again", PASSWORD):
        assert _login(gw.admin_url, APPROVER, password).status_code == 429
    assert gw.gateway.db.query("SELECT locked_until FROM login_failures")[0][0] == lock_end


def test_login_post_without_token_and_cookie_gets_no_session(gateway_factory):
    gw = gateway_factory()
    gw.gateway.users.add(APPROVER, "section_head", PASSWORD)
    with httpx.Client(base_url=gw.admin_url, timeout=30) as client:
        r = client.post("/login", data={"email": APPROVER, "password": PASSWORD})
        assert r.status_code == 403 and "dlp_session" not in r.cookies
        r = client.post("/login", data={"email": APPROVER, "password": PASSWORD,
                                        "csrf_token": "made-up"})
        assert r.status_code == 403 and "dlp_session" not in r.cookies
    assert _login(gw.admin_url, APPROVER, PASSWORD).status_code == 303


def test_held_page_marks_unauthenticated_senders(gateway_factory):
    gw = gateway_factory()
    StaffStore(gw.gateway.db).add(SENDER, "送信 太郎", "介護保険課")  # APPROVER heads it
    gw.gateway.users.add(APPROVER, "section_head", PASSWORD, "介護保険課")
    ids = {}
    for authenticated in (False, True):
        ids[authenticated] = gw.gateway.held.add(
            roster_mail(30), sender=SENDER, recipients=[RECIPIENT], subject="名簿",
            reasons=["r"], rules=["many_records"], approver_role="section_head",
            sender_authenticated=authenticated,
        ).id
    with httpx.Client(base_url=gw.admin_url, timeout=30) as client:
        page = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        client.post("/login", data={"email": APPROVER, "password": PASSWORD,
                                    "csrf_token": token})
        unauthenticated = client.get(f"/held/{ids[False]}").text
        authenticated = client.get(f"/held/{ids[True]}").text
    assert "送信者未認証" in unauthenticated and "送信者未認証" not in authenticated
