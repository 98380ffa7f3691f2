"""The gateway as a before-queue filter of a real Postfix (deploy/postfix/before-queue/).

Same harness as test_postfix.py (a private Postfix instance on OS-chosen loopback ports,
its own directories, stopped and removed at the end); the before-queue snippets are
appended verbatim and only the ports are moved with postconf afterwards.

    swaks -> Postfix smtpd :PUBLIC -(smtpd_proxy_filter)-> gateway :GW
          -> Postfix smtpd :REINJECT -> cleanup -> queue -> sink
    sendmail -> pickup -> dlpscan -> gateway :GW -> :REINJECT -> sink (after-queue route)

The client talks to Postfix while Postfix talks to the gateway: the gateway's answer
(250 after a hold is stored or Postfix took the mail, 451 on its errors) is the
client's answer, and with the gateway down the client gets a 4xx and keeps the mail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dlp_gateway.gateway import Gateway
from tests.conftest import (
    RECIPIENT,
    SENDER,
    free_port,
    roster_mail,
)
from tests.e2e.test_postfix import (
    POSTQUEUE,
    SWAKS,
    Chain,
    PostfixInstance,
    _base_main_cf,
    _skip_reason,
    _subject_mail,
    _valid_my_number,
    run_chain,
    stop_postfix,
)

REPO = Path(__file__).resolve().parents[2]
SNIPPETS = REPO / "deploy" / "postfix" / "before-queue"
SNIPPET_REINJECT = "127.0.0.1:10026"
SNIPPET_PROXY = "127.0.0.1:10025"
SNIPPET_FILTER = "dlpscan:[127.0.0.1]:10025"
CISO = "ciso-postfix-bq@city.example.lg.jp"
SENDMAIL = shutil.which("sendmail") or "/usr/sbin/sendmail"

pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=_skip_reason() or "")


def _apply_snippets(pf: PostfixInstance, gateway_port: int) -> None:
    """Append deploy/postfix/before-queue/*.snippet as written; then move only the ports."""
    etc = pf.config_dir
    main_snippet = (SNIPPETS / "main.cf.snippet").read_text("utf-8")
    master_snippet = (SNIPPETS / "master.cf.snippet").read_text("utf-8")
    assert f"smtpd_proxy_filter = {SNIPPET_PROXY}" in main_snippet
    assert SNIPPET_FILTER in main_snippet and SNIPPET_REINJECT in master_snippet
    with (etc / "main.cf").open("a", encoding="utf-8") as fh:
        fh.write("\n" + main_snippet)
    with (etc / "master.cf").open("a", encoding="utf-8") as fh:
        fh.write("\n" + master_snippet)
    pf.postconf("-e", f"smtpd_proxy_filter=127.0.0.1:{gateway_port}")
    pf.postconf("-e", f"content_filter=dlpscan:[127.0.0.1]:{gateway_port}")
    entry = " ".join(pf.postconf("-M", f"{SNIPPET_REINJECT}/inet").split())
    new_name = f"127.0.0.1:{pf.reinject_port}"
    pf.postconf("-M#", f"{SNIPPET_REINJECT}/inet")
    pf.postconf("-Me", f"{new_name}/inet = {entry.replace(SNIPPET_REINJECT, new_name, 1)}")
    public = " ".join(pf.postconf("-M", "smtp/inet").split())
    pf.postconf("-M#", "smtp/inet")
    public_name = f"127.0.0.1:{pf.public_port}"
    pf.postconf("-Me", f"{public_name}/inet = {public.replace('smtp', public_name, 1)}")


def start_postfix(sink_port: int, gateway_port: int) -> PostfixInstance:
    root = Path(tempfile.mkdtemp(prefix="dlp-postfix-bq-"))
    root.chmod(0o755)
    pf = PostfixInstance(root, free_port(), free_port())
    for sub in ("etc", "queue", "data"):
        (root / sub).mkdir()
    shutil.chown(root / "data", "postfix")
    shutil.copy("/etc/postfix/master.cf", root / "etc" / "master.cf")
    if Path("/etc/postfix/dynamicmaps.cf").exists():
        shutil.copy("/etc/postfix/dynamicmaps.cf", root / "etc")
    (root / "etc" / "main.cf").write_text(_base_main_cf(root, sink_port), "utf-8")
    pf.postconf("-F", "*/*/chroot = n")
    try:
        _apply_snippets(pf, gateway_port)
        pf.postfix("start")
        pf.wait_log(r"postfix/master\[\d+\]: daemon started")
    except BaseException:
        stop_postfix(pf)
        raise
    return pf


class ProxyChain(Chain):
    """The after-queue test's chain; submissions return swaks' exit code as well, since
    behind the proxy the client itself sees the gateway's 4xx."""

    def swaks(self, raw: bytes, helo: str = "pc01.city.example.lg.jp") -> tuple[int, str]:
        """Submit to Postfix's public smtpd; swaks' exit code and transcript."""
        done = subprocess.run(
            [SWAKS or "swaks", "--server", f"127.0.0.1:{self.postfix.public_port}",
             "--from", SENDER, "--to", RECIPIENT, "--helo", helo, "--data", "-",
             "--timeout", "60", "--hide-informational"],
            input=raw, capture_output=True, timeout=120,
        )
        return done.returncode, (done.stdout + done.stderr).decode("utf-8", "replace")



@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyChain]:
    yield from run_chain(tmp_path_factory, start_postfix, ProxyChain)  # type: ignore[misc]


def _arrived(chain: ProxyChain, subject: str, timeout: float = 20.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in chain.sink.to(RECIPIENT) if m.message["Subject"] == subject]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _held_for(chain: ProxyChain, subject: str) -> Any:
    rows = [r for r in chain.held_rows() if r.subject == subject]
    assert len(rows) == 1, rows
    return rows[0]


def _final_reply(transcript: str) -> str:
    """The server's last reply before QUIT (swaks marks server lines `<-`, errors `<**`)."""
    replies = re.findall(r"^ *<(?:-|\*\*)\s+(\d{3}[ -].*)$", transcript, re.M)
    assert replies, transcript
    return replies[-2] if replies[-1].startswith("221") else replies[-1]


# -- tests -------------------------------------------------------------------------------
def test_snippets_applied_as_written(chain: ProxyChain) -> None:
    pf = chain.postfix
    assert pf.postconf("-h", "smtpd_proxy_filter").strip() == f"127.0.0.1:{chain.gateway_port}"
    assert pf.postconf("-h", "smtpd_proxy_options").strip() == "speed_adjust"
    reinject = f"127.0.0.1:{pf.reinject_port}/inet"
    for name in ("smtpd_proxy_filter", "content_filter"):
        assert pf.postconf("-P", f"{reinject}/{name}").strip() == f"{reinject}/{name} ="


def test_clean_mail_passes_once_with_dlp_headers(chain: ProxyChain) -> None:
    subject = "会議の日程 bq-clean-1"
    code, transcript = chain.swaks(_subject_mail(subject))
    assert code == 0, transcript
    # the client's 250 is the gateway's (passed through smtpd), given after the
    # reinjection listener queued the mail (not "queued" in the gateway's own queue)
    reply = _final_reply(transcript)
    assert re.fullmatch(r"250 2\.0\.0 OK \(scan id ([0-9a-f]{16})\)", reply), reply
    [delivered] = _arrived(chain, subject)
    msg = delivered.message
    assert msg.get_all("X-DLP-Verdict") == ["pass"]
    assert msg["X-DLP-Scan-Id"] in reply
    assert delivered.mail_from == SENDER
    time.sleep(1.0)
    assert len(_arrived(chain, subject, timeout=0)) == 1
    received = msg.get_all("Received", [])
    queue_ids = [m.group(1) for r in received if (m := re.search(r"with E?SMTPS? id (\w+)", r))]
    # one queue pass (after-queue: two): the only queue id is the reinjection smtpd's
    assert len(set(queue_ids)) == 1, received


def test_roster_held_client_gets_250_delivered_when_released(chain: ProxyChain) -> None:
    subject = "名簿の送付 bq-roster-1"
    code, transcript = chain.swaks(roster_mail(30, subject=subject))
    assert code == 0, transcript
    held = _held_for(chain, subject)
    assert _final_reply(transcript).startswith(f"250 2.6.0 held for approval {held.id}")
    assert held.status == "held"
    assert held.recipients == [RECIPIENT]
    time.sleep(1.0)
    assert _arrived(chain, subject, timeout=0) == []
    # Postfix passed the gateway's answer on and queued nothing: the gateway owns it
    assert f"proxy-accept: END-OF-MESSAGE: 250 2.6.0 held for approval {held.id}" in \
        chain.postfix.log_text()
    queue = subprocess.run([POSTQUEUE, "-c", str(chain.postfix.config_dir), "-p"],
                           capture_output=True, text=True, timeout=30, check=True).stdout
    assert "Mail queue is empty" in queue, queue
    # released: the gateway hands it to the after-filter smtpd, which queues it once
    gw = Gateway(chain.config)  # the sender is in no department: the CISO decides
    try:
        gw.users.add(CISO, "ciso", "correct horse battery staple 7")
    finally:
        gw.close()
    cli = [sys.executable, "-m", "dlp_gateway.cli", "held", "release",
           "--data-dir", str(chain.config.data_dir), "--actor", CISO, "--mode", "as_is",
           "--confirm", "--comment", "テスト", "--", held.id]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    [delivered] = _arrived(chain, subject, timeout=30)
    assert delivered.message.get_all("X-DLP-Verdict") == ["released-as-is"]
    time.sleep(1.0)  # not proxied again: no second hold, no duplicate
    assert len(_arrived(chain, subject, timeout=0)) == 1
    assert len([r for r in chain.held_rows() if r.subject == subject]) == 1


def test_my_number_mail_held(chain: ProxyChain) -> None:
    subject = "住民情報の照会 bq-mynumber-1"
    number = _valid_my_number(5)
    body = f"照会の件です。\n個人番号: {number[:4]} {number[4:8]} {number[8:]}\n山田 太郎\n"
    code, transcript = chain.swaks(_subject_mail(subject, body))
    assert code == 0, transcript
    assert _final_reply(transcript).startswith("250 2.6.0 held for approval")
    held = _held_for(chain, subject)
    assert "my_number" in held.rules
    time.sleep(1.0)
    assert _arrived(chain, subject, timeout=0) == []
    assert number not in chain.postfix.log_text()


def test_xforward_client_reaches_audit(chain: ProxyChain) -> None:
    """The public smtpd sends XFORWARD to the gateway (it advertises it): the hold's
    audit row names the original client and its HELO, not Postfix."""
    subject = "転送元の記録 bq-xforward-1"
    helo = "xfwd-bq-5d1e.city.example.lg.jp"
    number = _valid_my_number(17)
    code, transcript = chain.swaks(_subject_mail(subject, f"個人番号 {number}\n"), helo=helo)
    assert code == 0, transcript
    held = _held_for(chain, subject)
    rows = [r for r in chain.audit_rows()
            if held.id in json.dumps(r, ensure_ascii=False, default=str)]
    [hold] = [r for r in rows if r["event"] == "hold"]
    client = json.loads(hold["details"])["client"]
    assert client["helo"] == helo and client["addr"] == "127.0.0.1"
    assert client["proto"] == "ESMTP"


def test_gateway_451_reaches_the_client(chain: ProxyChain) -> None:
    """An internal error (the scan failing) is the client's 4xx, never a 250."""
    assert chain.gateway is not None
    scanner = chain.gateway.running.handler.scanner
    real_scan = scanner.scan

    async def failing(raw: bytes, *args: Any) -> Any:
        if b"bq-retry-1" in raw:
            raise RuntimeError("injected scan failure")
        return await real_scan(raw, *args)

    scanner.scan = failing
    try:
        code, transcript = chain.swaks(_subject_mail("一時エラー bq-retry-1"))
    finally:
        scanner.scan = real_scan
    assert code != 0
    assert _final_reply(transcript).startswith("451 4.3.0"), transcript
    time.sleep(1.0)
    assert _arrived(chain, "一時エラー bq-retry-1", timeout=0) == []


def test_gateway_down_client_gets_4xx_then_succeeds(chain: ProxyChain) -> None:
    subject = "停止中の送信 bq-down-1"
    chain.stop_gateway()
    try:
        code, transcript = chain.swaks(_subject_mail(subject))
        assert code != 0, transcript
        reply = _final_reply(transcript)
        # a 4xx: not a 5xx (no bounce), not a 250 (the client keeps the mail, retries)
        assert reply.startswith("451 4.3.0"), transcript
        log = chain.postfix.log_text()
        assert f"connect to proxy filter 127.0.0.1:{chain.gateway_port}: Connection refused" \
            in log
        assert re.search(r"proxy-reject: END-OF-MESSAGE: 451 4\.3\.0 .*helo=<pc01\.", log)
        time.sleep(0.5)
        assert _arrived(chain, subject, timeout=0) == []
    finally:
        chain.start_gateway()
    code, transcript = chain.swaks(_subject_mail(subject))  # the client's retry
    assert code == 0, transcript
    [delivered] = _arrived(chain, subject)
    assert delivered.message.get_all("X-DLP-Verdict") == ["pass"]


def test_local_sendmail_takes_the_after_queue_route(chain: ProxyChain) -> None:
    """pickup cannot be proxied: content_filter sends it to the gateway after the queue."""
    subject = "ローカル送信 bq-pickup-1"
    done = subprocess.run(
        [SENDMAIL, "-C", str(chain.postfix.config_dir), "-f", SENDER, "-i", RECIPIENT],
        input=_subject_mail(subject).replace(b"\r\n", b"\n"), capture_output=True,
        timeout=60)
    assert done.returncode == 0, done.stderr
    [delivered] = _arrived(chain, subject, timeout=30)
    assert delivered.message.get_all("X-DLP-Verdict") == ["pass"]

