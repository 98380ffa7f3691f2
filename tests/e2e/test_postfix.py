"""The gateway behind a real Postfix, configured with deploy/postfix/ as written.

A private Postfix instance (its own config_directory, queue_directory and
data_directory under a temp dir, `postfix -c DIR`) listens only on OS-chosen free
loopback ports, so it cannot clash with anything else on the machine; the system
Postfix (if any) is never touched. The snippets are appended verbatim; only the
ports are changed afterwards with postconf (-e for main.cf, -M for master.cf).
Test-harness settings (paths, relayhost = the sink, short retry timers, logging
to a file, no chroot, always_bcc for the no_address_mappings check) go into the
base main.cf written below, never into the snippets.

    swaks -> Postfix :PUBLIC -> dlpscan -> gateway :GW -> Postfix :REINJECT -> sink

Needs root and Debian's postfix + swaks (`make postfix`, called by `make test`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest

from dlp_gateway.detect.numbers import is_valid_my_number
from dlp_gateway.gateway import Gateway
from tests.conftest import (
    RECIPIENT,
    SENDER,
    GatewayThread,
    SmtpSink,
    free_port,
    make_config,
    roster_mail,
)

REPO = Path(__file__).resolve().parents[2]
SNIPPETS = REPO / "deploy" / "postfix"
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTCONF = shutil.which("postconf") or "/usr/sbin/postconf"
POSTQUEUE = shutil.which("postqueue") or "/usr/sbin/postqueue"
SWAKS = shutil.which("swaks")
POSTFIX_CISO = "ciso-postfix@city.example.lg.jp"
ARCHIVE = "archive@city.example.lg.jp"  # internal: the gateway passes it as is
SNIPPET_REINJECT = "127.0.0.1:10026"
SNIPPET_FILTER = "dlpscan:[127.0.0.1]:10025"


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to run a private Postfix instance (mail_owner postfix)"
    if not (os.path.exists(POSTFIX) and os.path.exists(POSTCONF)):
        return "Debian's postfix is not installed (`make postfix` installs it as root)"
    if SWAKS is None:
        return "swaks is not installed (`make postfix` installs it as root)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


# -- the private Postfix instance --------------------------------------------------------
@dataclass
class PostfixInstance:
    root: Path
    public_port: int
    reinject_port: int

    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    @property
    def log(self) -> Path:
        return self.root / "maillog"

    def postconf(self, *args: str) -> str:
        out = subprocess.run([POSTCONF, "-c", str(self.config_dir), *args],
                             capture_output=True, text=True, check=True, timeout=30)
        return out.stdout

    def postfix(self, *args: str) -> None:
        # postfix(1) reports errors only to the log (or to a tty): show the log on failure
        done = subprocess.run([POSTFIX, "-c", str(self.config_dir), *args],
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"postfix {' '.join(args)} failed: {done.stderr}\n"
                               f"{self.log_text()[-3000:]}")

    def flush(self) -> None:
        """`postqueue -f`: retry deferred mail now (the harness's backoff is 1-2 s, but
        a loaded CI machine should not decide the outcome)."""
        subprocess.run([POSTQUEUE, "-c", str(self.config_dir), "-f"], check=True, timeout=30)

    def log_text(self) -> str:
        try:
            return self.log.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, pattern: str, timeout: float = 20.0, after: int = 0) -> re.Match[str]:
        """Wait for a log line (searched from byte offset ``after``) matching ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = regex.search(self.log_text()[after:])
            if match:
                return match
            time.sleep(0.1)
        raise AssertionError(f"no Postfix log line matching {pattern!r}:\n"
                             f"{self.log_text()[after:][-4000:]}")

    def log_size(self) -> int:
        return len(self.log_text())


def _base_main_cf(root: Path, sink_port: int) -> str:
    """Harness settings; the site's own main.cf in a real deployment."""
    return "\n".join([
        "compatibility_level = 3.6",
        f"queue_directory = {root / 'queue'}",
        f"data_directory = {root / 'data'}",
        f"maillog_file = {root / 'maillog'}",
        f"maillog_file_prefixes = {root}",
        "inet_interfaces = 127.0.0.1",
        "inet_protocols = ipv4",
        "myhostname = mx.city.example.lg.jp",
        "mydomain = city.example.lg.jp",
        "myorigin = $mydomain",
        "mydestination =",
        "mynetworks = 127.0.0.0/8",
        f"relayhost = [127.0.0.1]:{sink_port}",
        "smtp_dns_support_level = disabled",
        "smtputf8_enable = yes",
        f"always_bcc = {ARCHIVE}",
        "message_size_limit = 400000",
        # quick retries, so deferral tests finish in seconds
        "queue_run_delay = 1s",
        "minimal_backoff_time = 1s",
        "maximal_backoff_time = 2s",
        "smtp_connect_timeout = 5s",
        "",
    ])


def _apply_snippets(pf: PostfixInstance, gateway_port: int) -> None:
    """Append deploy/postfix/*.snippet as written; then move only the ports."""
    etc = pf.config_dir
    main_snippet = (SNIPPETS / "main.cf.snippet").read_text("utf-8")
    master_snippet = (SNIPPETS / "master.cf.snippet").read_text("utf-8")
    assert SNIPPET_FILTER in main_snippet and SNIPPET_REINJECT in master_snippet
    with (etc / "main.cf").open("a", encoding="utf-8") as fh:
        fh.write("\n" + main_snippet)
    with (etc / "master.cf").open("a", encoding="utf-8") as fh:
        fh.write("\n" + master_snippet)
    filter_value = pf.postconf("-h", "content_filter").strip()
    pf.postconf("-e", "content_filter=" + filter_value.replace(
        "[127.0.0.1]:10025", f"[127.0.0.1]:{gateway_port}"))
    # move the reinjection listener: same entry, another service name (address)
    entry = " ".join(pf.postconf("-M", f"{SNIPPET_REINJECT}/inet").split())
    new_name = f"127.0.0.1:{pf.reinject_port}"
    pf.postconf("-M#", f"{SNIPPET_REINJECT}/inet")
    pf.postconf("-Me", f"{new_name}/inet = {entry.replace(SNIPPET_REINJECT, new_name, 1)}")
    # the public listener (Debian's "smtp inet") on a free port instead of :25
    public = " ".join(pf.postconf("-M", "smtp/inet").split())
    pf.postconf("-M#", "smtp/inet")
    public_name = f"127.0.0.1:{pf.public_port}"
    pf.postconf("-Me", f"{public_name}/inet = {public.replace('smtp', public_name, 1)}")


def start_postfix(sink_port: int, gateway_port: int) -> PostfixInstance:
    root = Path(tempfile.mkdtemp(prefix="dlp-postfix-"))
    root.chmod(0o755)  # the postfix user must reach its queue under it
    pf = PostfixInstance(root, free_port(), free_port())
    for sub in ("etc", "queue", "data"):
        (root / sub).mkdir()
    shutil.chown(root / "data", "postfix")
    shutil.copy("/etc/postfix/master.cf", root / "etc" / "master.cf")
    if Path("/etc/postfix/dynamicmaps.cf").exists():
        shutil.copy("/etc/postfix/dynamicmaps.cf", root / "etc")
    (root / "etc" / "main.cf").write_text(_base_main_cf(root, sink_port), "utf-8")
    pf.postconf("-F", "*/*/chroot = n")  # a chroot would need a copy of /etc files
    try:
        _apply_snippets(pf, gateway_port)
        pf.postfix("start")
        pf.wait_log(r"postfix/master\[\d+\]: daemon started")
    except BaseException:
        stop_postfix(pf)
        raise
    return pf


def stop_postfix(pf: PostfixInstance) -> None:
    try:
        pf.postfix("stop")
    except Exception:
        subprocess.run([POSTFIX, "-c", str(pf.config_dir), "abort"], timeout=30)
    shutil.rmtree(pf.root, ignore_errors=True)


# -- the whole chain ---------------------------------------------------------------------
@dataclass
class Chain:
    postfix: PostfixInstance
    sink: SmtpSink
    gateway: GatewayThread | None
    gateway_port: int
    config: Any

    def start_gateway(self) -> GatewayThread:
        self.gateway = GatewayThread(self.config, web=False).start()
        return self.gateway

    def stop_gateway(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None

    def swaks(self, raw: bytes, rcpt: str = RECIPIENT, helo: str = "pc01.city.example.lg.jp"
              ) -> str:
        """Submit to Postfix's public listener; return swaks' transcript."""
        done = subprocess.run(
            [SWAKS or "swaks", "--server", f"127.0.0.1:{self.postfix.public_port}",
             "--from", SENDER, "--to", rcpt, "--helo", helo, "--data", "-",
             "--timeout", "30", "--hide-informational"],
            input=raw, capture_output=True, timeout=60,
        )
        transcript = done.stdout.decode("utf-8", "replace")
        assert done.returncode == 0, transcript + done.stderr.decode("utf-8", "replace")
        assert re.search(r"<-\s+250 2\.0\.0 Ok: queued as", transcript), transcript
        return transcript

    def held_rows(self) -> list[Any]:
        assert self.gateway is not None
        return list(self.gateway.gateway.held.list(None))

    def audit_rows(self) -> list[dict[str, Any]]:
        assert self.gateway is not None
        return [dict(r) for r in self.gateway.gateway.db.query("SELECT * FROM audit_log")]


def run_chain(
    tmp_path_factory: pytest.TempPathFactory,
    start: Callable[[int, int], PostfixInstance] = start_postfix,
    chain_class: type[Chain] = Chain,
) -> Iterator[Chain]:
    """Sink, Postfix (set up by ``start``) and a gateway between them, torn down after."""
    sink = SmtpSink().start()
    gateway_port = free_port()
    pf = start(sink.port, gateway_port)
    config = make_config(
        tmp_path_factory.mktemp("gw"), None, listen=f"127.0.0.1:{gateway_port}",
        upstream=f"127.0.0.1:{pf.reinject_port}", hostname="dlp-gateway.city.example.lg.jp",
        internal_domains=["city.example.lg.jp"],
    )
    chain = chain_class(pf, sink, None, gateway_port, config)
    try:
        chain.start_gateway()
        yield chain
    finally:
        chain.stop_gateway()
        stop_postfix(pf)
        sink.stop()


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    yield from run_chain(tmp_path_factory)


def _subject_mail(subject: str, body: str = "会議の資料をお送りします。\n") -> bytes:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = RECIPIENT
    msg["Subject"] = subject
    msg.set_content(body)
    return msg.as_bytes(policy=default_policy.clone(linesep="\r\n"))


def _valid_my_number(seed: int) -> str:
    base = f"{(seed * 7919 + 12345) % 10**11:011d}"
    return next(base + str(d) for d in range(10) if is_valid_my_number(base + str(d)))


def _arrived(chain: Chain, subject: str, rcpt: str = RECIPIENT, count: int = 1,
             timeout: float = 20.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in chain.sink.to(rcpt) if m.message["Subject"] == subject]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _held_for(chain: Chain, subject: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = [r for r in chain.held_rows() if r.subject == subject]
        if rows:
            return rows[0]
        time.sleep(0.1)
    raise AssertionError(f"no held message with subject {subject!r}")


# -- tests -------------------------------------------------------------------------------
def test_snippets_applied_as_written(chain: Chain) -> None:
    pf = chain.postfix
    assert pf.postconf("-h", "receive_override_options").strip() == "no_address_mappings"
    reinject = f"127.0.0.1:{pf.reinject_port}/inet"
    assert pf.postconf("-P", f"{reinject}/content_filter").strip() == f"{reinject}/content_filter ="
    overrides = pf.postconf("-P", f"{reinject}/receive_override_options")
    assert "no_address_mappings" not in overrides


def test_clean_mail_delivered_once_with_dlp_headers(chain: Chain) -> None:
    subject = "会議の日程 clean-1"
    chain.swaks(_subject_mail(subject))
    [delivered] = _arrived(chain, subject)
    msg = delivered.message
    assert msg.get_all("X-DLP-Verdict") == ["pass"]  # scanned exactly once: no loop
    assert re.fullmatch(r"[0-9a-f]{16}", msg["X-DLP-Scan-Id"])
    assert delivered.mail_from == SENDER
    # both Postfix passes are visible: before the filter and on the reinjection listener
    assert len(msg.get_all("Received", [])) >= 2
    time.sleep(1.0)
    assert len(_arrived(chain, subject, timeout=0)) == 1


def test_always_bcc_archive_gets_one_copy(chain: Chain) -> None:
    """receive_override_options = no_address_mappings before the filter (FILTER_README)."""
    subject = "アーカイブ確認 bcc-1"
    chain.swaks(_subject_mail(subject))
    assert len(_arrived(chain, subject)) == 1
    archived = _arrived(chain, subject, rcpt=ARCHIVE)
    time.sleep(1.0)
    archived = _arrived(chain, subject, rcpt=ARCHIVE, timeout=0)
    assert len(archived) == 1, [m.rcpts for m in archived]
    assert archived[0].message.get_all("X-DLP-Verdict") == ["pass"]


def test_roster_held_then_released_through_postfix(chain: Chain) -> None:
    subject = "名簿の送付 roster-1"
    raw = roster_mail(30, subject=subject)
    chain.swaks(raw)
    held = _held_for(chain, subject)
    assert held.status == "held"
    # always_bcc is applied after the filter only: the gateway never sees the archive
    # as a recipient, and the archive never gets the held mail before its release
    assert held.recipients == [RECIPIENT]
    time.sleep(0.5)
    assert _arrived(chain, subject, timeout=0) == []
    assert _arrived(chain, subject, rcpt=ARCHIVE, timeout=0) == []
    gw = Gateway(chain.config)  # the sender is in no department: the CISO decides
    try:
        gw.users.add(POSTFIX_CISO, "ciso", "correct horse battery staple 7")
    finally:
        gw.close()
    cli = [sys.executable, "-m", "dlp_gateway.cli", "held", "release",
           "--data-dir", str(chain.config.data_dir), "--actor", POSTFIX_CISO, "--mode", "as_is",
           "--confirm", "--comment", "テスト", "--", held.id]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    [delivered] = _arrived(chain, subject, timeout=30)
    msg = delivered.message
    assert msg.get_all("X-DLP-Verdict") == ["released-as-is"]
    attachment = next(iter(msg.iter_attachments()))
    original = next(iter(message_from_bytes(raw, policy=default_policy).iter_attachments()))
    assert attachment.get_content() == original.get_content()
    time.sleep(1.0)  # released mail is not filtered again (no second hold, no duplicate)
    assert len(_arrived(chain, subject, timeout=0)) == 1
    assert len([r for r in chain.held_rows() if r.subject == subject]) == 1
    [archived] = _arrived(chain, subject, rcpt=ARCHIVE, timeout=0)
    assert archived.message.get_all("X-DLP-Verdict") == ["released-as-is"]


def test_my_number_mail_held(chain: Chain) -> None:
    subject = "住民情報の照会 mynumber-1"
    number = _valid_my_number(3)
    body = f"照会の件です。\n個人番号: {number[:4]} {number[4:8]} {number[8:]}\n山田 太郎\n"
    chain.swaks(_subject_mail(subject, body))
    held = _held_for(chain, subject)
    assert held.status == "held"
    assert "my_number" in held.rules
    time.sleep(1.0)
    assert _arrived(chain, subject, timeout=0) == []
    assert number not in chain.postfix.log_text()


def test_gateway_down_postfix_defers_then_redelivers(chain: Chain) -> None:
    subject = "停止中の送信 down-1"
    chain.stop_gateway()
    try:
        start = chain.postfix.log_size()
        chain.swaks(_subject_mail(subject))
        # "connect to ...: Connection refused" (or, on a cached connection, "lost connection")
        chain.postfix.wait_log(rf"to=<{re.escape(RECIPIENT)}>.*status=deferred \(", after=start)
        time.sleep(0.5)
        assert _arrived(chain, subject, timeout=0) == []
    finally:
        chain.start_gateway()
    chain.postfix.flush()
    delivered = _arrived(chain, subject, timeout=45)
    assert len(delivered) == 1
    assert delivered[0].message.get_all("X-DLP-Verdict") == ["pass"]


def test_gateway_451_means_postfix_retries(chain: Chain) -> None:
    """An internal error (here: the scan pool failing once) is 451; Postfix retries."""
    subject = "一時エラー retry-1"
    assert chain.gateway is not None
    handler = chain.gateway.running.handler
    scanner = handler.scanner
    real_scan = scanner.scan
    failures = {"left": 1}

    async def failing_once(raw: bytes, *args: Any) -> Any:
        if b"retry-1" in raw and failures["left"] > 0:
            failures["left"] -= 1
            raise RuntimeError("injected scan failure")
        return await real_scan(raw, *args)

    scanner.scan = failing_once
    try:
        start = chain.postfix.log_size()
        chain.swaks(_subject_mail(subject))
        chain.postfix.wait_log(r"status=deferred \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: "
                               r"451 4\.3\.0", after=start)
        assert failures["left"] == 0
        chain.postfix.flush()
        delivered = _arrived(chain, subject, timeout=45)
    finally:
        scanner.scan = real_scan
    assert len(delivered) == 1
    assert delivered[0].message.get_all("X-DLP-Verdict") == ["pass"]


def _gateway_speaks_xforward(port: int) -> bool:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.ehlo()
        return smtp.has_extn("xforward")


def test_xforward_reaches_audit(chain: Chain) -> None:
    assert chain.gateway is not None
    if not _gateway_speaks_xforward(chain.gateway_port):
        pytest.skip("the gateway does not advertise XFORWARD yet (relay/smtp.py, issue 12): "
                    "Postfix sends XFORWARD only to servers that advertise it")
    subject = "転送元の記録 xforward-1"
    helo = "xfwd-probe-7f3a.city.example.lg.jp"
    number = _valid_my_number(11)
    chain.swaks(_subject_mail(subject, f"個人番号 {number}\n"), helo=helo)
    held = _held_for(chain, subject)
    rows = [r for r in chain.audit_rows()
            if held.id in json.dumps(r, ensure_ascii=False, default=str)]
    text = json.dumps(rows, ensure_ascii=False, default=str)
    assert helo in text, text
    [hold] = [r for r in rows if r["event"] == "hold"]
    client = json.loads(hold["details"])["client"]
    assert client["helo"] == helo and client["addr"] == "127.0.0.1"
    assert client["source"] in ("LOCAL", "REMOTE")  # Postfix: LOCAL for mynetworks


def test_xforward_reaches_the_reinjection_smtpd(chain: Chain) -> None:
    """The gateway passes the original client on: the reinjection listener takes it as
    XFORWARD (Postfix logs ``orig_client=`` for that queue id; its Received header still
    names the real peer, the gateway, by design)."""
    subject = "転送元の引き継ぎ xforward-2"
    helo = "xfwd-pass-91c2.city.example.lg.jp"
    chain.swaks(_subject_mail(subject), helo=helo)
    [delivered] = _arrived(chain, subject, timeout=30)
    reinjection_hop = delivered.message.get_all("Received")[0]
    queue_id = re.search(r"with E?SMTP id (\w+)", reinjection_hop)
    assert queue_id, reinjection_hop
    log = chain.postfix.log_text()
    assert re.search(rf"{queue_id.group(1)}: client=\S+, orig_client=localhost\[127\.0\.0\.1\]",
                     log), log[-2000:]


def _sized_mail(subject: str, pad: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = RECIPIENT
    msg["Subject"] = subject
    msg.set_content("資料を添付します。\n")
    line = b"meeting room booking list, no personal data\n"
    msg.add_attachment((line * (pad // len(line) + 1))[:pad], maintype="text",
                       subtype="plain", filename="notes.txt")
    return msg.as_bytes(policy=default_policy.clone(linesep="\r\n"))


def _submit(port: int, raw: bytes) -> bool:
    """True when Postfix's public listener took the mail, False on 552 (too big)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        try:
            smtp.sendmail(SENDER, [RECIPIENT], raw)
        except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
            assert exc.smtp_code == 552, exc  # SIZE= at MAIL, or the queue file at DATA
            return False
    return True


def test_mail_at_message_size_limit_is_not_bounced_after_the_filter(chain: Chain) -> None:
    """The largest mail Postfix accepts on its public listener grows on its way back
    (Received:, X-DLP-* headers); the reinjection listener must still take it.

    Bisects the attachment size against the real message_size_limit (Postfix counts
    its queue file, not the SMTP bytes), then checks every accepted probe arrives."""
    limit = int(chain.postfix.postconf("-h", "message_size_limit"))
    lo, hi = (limit * 3 // 4) * 9 // 10, limit * 3 // 4  # attachment bytes: fits / too big
    accepted: list[str] = []
    probe = 0
    while hi - lo > 60:
        mid = (lo + hi) // 2
        subject = f"大きな添付 size-probe-{probe}"
        probe += 1
        if _submit(chain.postfix.public_port, _sized_mail(subject, mid)):
            lo = mid
            accepted.append(subject)
        else:
            hi = mid
    assert accepted, "no probe fitted under message_size_limit"
    start = time.monotonic()
    for subject in accepted:
        delivered = _arrived(chain, subject, timeout=max(1.0, 30 - (time.monotonic() - start)))
        assert len(delivered) == 1, (subject, chain.postfix.log_text()[-3000:])
        assert delivered[0].message.get_all("X-DLP-Verdict") == ["pass"]
    assert "status=bounced" not in chain.postfix.log_text()


def _lf_size(data: bytes) -> int:
    return len(data.replace(b"\r\n", b"\n"))
