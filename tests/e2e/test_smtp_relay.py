"""End-to-end relay tests: a real gateway and a real upstream sink on loopback."""

from __future__ import annotations

import io
import json
import re
import time
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY

import pytest
import pyzipper

from dlp_gateway.cli import main as cli_main
from dlp_gateway.store.staff import StaffStore
from tests.conftest import (
    APPROVER,
    RECIPIENT,
    SENDER,
    Delivered,
    clean_mail,
    roster_mail,
    send,
    strip_dlp_headers,
)

HELD_RE = re.compile(r"2\.6\.0 held for approval (\S+)")


def _held_id(reply: str) -> str:
    match = HELD_RE.search(reply)
    assert match, reply
    return match.group(1)


def _notice_text(delivered: Delivered) -> str:
    return delivered.message.get_body(preferencelist=("plain",)).get_content()


def test_clean_mail_arrives_unchanged_but_for_two_headers(running_gateway, upstream_sink):
    raw = clean_mail(20)
    code, reply = send(running_gateway.smtp_port, raw)
    assert code == 250, reply
    [got] = upstream_sink.wait_for(1)
    assert got.rcpts == [RECIPIENT] and got.mail_from == SENDER
    assert got.data.startswith(b"X-DLP-Verdict: pass\r\nX-DLP-Scan-Id: ")
    assert strip_dlp_headers(got.data) == raw


def test_roster_is_held_survives_restart_and_is_listed(
    gateway_factory, upstream_sink, capsys, tmp_path
):
    gw = gateway_factory()
    gw.gateway.users.add(APPROVER, "section_head", "approver-password", "介護保険課")
    StaffStore(gw.gateway.db).add(SENDER, "職員 一郎", "介護保険課")
    code, reply = send(gw.smtp_port, roster_mail(30))
    assert code == 250
    held_id = _held_id(reply)
    # approver and sender are told; the recipient gets nothing
    messages = upstream_sink.wait_for(2)
    assert {tuple(m.rcpts) for m in messages} == {(APPROVER,), (SENDER,)}
    approver_text = _notice_text(upstream_sink.to(APPROVER)[0])
    assert f"/held/{held_id}" in approver_text and "所属長" in approver_text
    gw.stop()

    gw2 = gateway_factory()  # same data dir
    held = gw2.gateway.held.get(held_id)
    assert held.status == "held" and held.recipients == [RECIPIENT]
    assert held.counts["records"] == 30
    assert gw2.gateway.held.raw(held_id) == roster_mail_bytes_check(gw2, held_id)

    assert cli_main(["held", "list", "--format", "json", "--data-dir", str(tmp_path / "data")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 1
    assert set(lines[0]) == {"id", "received", "sender", "recipients", "subject", "reasons",
                             "approver_role", "status", "routed_to"}
    assert lines[0]["routed_to"] == "section_head"  # the sender's department has a head
    assert lines[0]["id"] == held_id and lines[0]["status"] == "held"
    assert lines[0]["subject"] == "名簿の送付" and lines[0]["approver_role"] == "section_head"
    assert time.time() and upstream_sink.to(RECIPIENT) == []

    # an approver releases it from the shell; the running gateway's worker delivers it
    # (issue 10: --actor is one account with a deciding role; "cli:tester" was accepted)
    assert cli_main(["held", "release", held_id, "--actor", "cli:tester",
                     "--data-dir", str(tmp_path / "data")]) == 1
    assert cli_main(["held", "release", held_id, "--actor", APPROVER, "--mode", "as_is",
                     "--data-dir", str(tmp_path / "data")]) == 1  # as is needs --confirm
    assert cli_main(["held", "release", held_id, "--actor", APPROVER, "--mode", "as_is",
                     "--confirm", "--comment", "先方確認済み",
                     "--data-dir", str(tmp_path / "data")]) == 0
    deadline = time.monotonic() + 10
    while not upstream_sink.to(RECIPIENT) and time.monotonic() < deadline:
        time.sleep(0.05)
    [released] = upstream_sink.to(RECIPIENT)
    assert released.data.startswith(b"X-DLP-Verdict: released-as-is\r\n")
    assert gw2.gateway.held.get(held_id).decided_by == APPROVER
    assert [e.actor for e in gw2.gateway.audit.entries(event="release")] == [APPROVER]
    # a second release is refused
    assert cli_main(["held", "release", held_id, "--actor", APPROVER,
                     "--data-dir", str(tmp_path / "data")]) == 1


def roster_mail_bytes_check(gw, held_id):
    """The stored bytes hash to the recorded sha256 (raw() verifies it)."""
    import hashlib

    data = gw.gateway.held.raw(held_id)
    assert hashlib.sha256(data).hexdigest() == gw.gateway.held.get(held_id).sha256
    return data


def test_small_record_set_is_sent_as_aes_zip_password_to_sender_only(running_gateway,
                                                                    upstream_sink):
    code, reply = send(running_gateway.smtp_port, roster_mail(3, filename="利用者一覧.xlsx"))
    assert code == 250, reply
    upstream_sink.wait_for(2)
    [to_recipient] = upstream_sink.to(RECIPIENT)
    [to_sender] = upstream_sink.to(SENDER)
    msg = to_recipient.message
    assert msg["X-DLP-Verdict"] == "encrypt"
    attachments = list(msg.iter_attachments())
    assert [a.get_filename() for a in attachments] == ["利用者一覧.xlsx.zip"]
    assert "暗号化" in msg.get_body(preferencelist=("plain",)).get_content()

    password = re.search(r"パスワード: (\S+)", _notice_text(to_sender)).group(1)
    assert len(password) >= 12
    with pyzipper.AESZipFile(io.BytesIO(attachments[0].get_content())) as zf:
        assert zf.namelist() == ["利用者一覧.xlsx"]
        with pytest.raises(RuntimeError):
            zf.read("利用者一覧.xlsx", pwd=b"wrong-password")
        data = zf.read("利用者一覧.xlsx", pwd=password.encode())
    assert data.startswith(b"PK")  # the original xlsx
    # the password never reaches the recipient, in any message
    for delivered in upstream_sink.to(RECIPIENT):
        assert password.encode() not in delivered.data
    assert [e.event for e in running_gateway.gateway.audit.entries()] == ["encrypt"]
    assert password not in json.dumps([e.details for e in running_gateway.gateway.audit.entries()])


def test_upstream_down_retries_then_delivers_once(running_gateway, upstream_sink):
    upstream_sink.stop()
    raw = clean_mail(5)
    code, reply = send(running_gateway.smtp_port, raw)
    assert code == 250 and "queued" in reply
    queue = running_gateway.gateway.queue
    deadline = time.monotonic() + 10
    while not any(i.attempts >= 2 for i in queue.items()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(i.attempts >= 2 for i in queue.items()), "the worker should have retried"
    upstream_sink.start()
    [got] = upstream_sink.wait_for(1)
    assert strip_dlp_headers(got.data) == raw
    time.sleep(1.0)  # no second copy shows up
    assert len(upstream_sink.messages) == 1
    assert [i.status for i in queue.items()] == ["sent"]


def test_relay_from_non_allowed_network_is_refused(gateway_factory, upstream_sink):
    gw = gateway_factory(allowed_networks=["10.0.0.0/8"])
    code, reply = send(gw.smtp_port, clean_mail(1))
    assert code == 554 and "5.7.1" in reply
    time.sleep(0.2)
    assert upstream_sink.messages == []


def test_oversized_mail_gets_552(gateway_factory, upstream_sink):
    gw = gateway_factory(max_message_bytes=50_000)
    code, reply = send(gw.smtp_port, clean_mail(100))
    assert code == 552 and reply.startswith("5.3.4")
    # a message within the limit still goes through on the same gateway
    assert send(gw.smtp_port, clean_mail(10))[0] == 250


def test_malformed_mime_is_held_not_crashed(running_gateway, upstream_sink):
    raw = (
        b"From: staff@city.example.lg.jp\r\nTo: center@care.example.com\r\n"
        b"Subject: broken\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="XYZ"\r\n\r\n'
        b"--XYZ\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n"
        b"--XYZ\r\nContent-Type: application/vnd.openxmlformats-officedocument"
        b'.spreadsheetml.sheet; name="a.xlsx"\r\nContent-Transfer-Encoding: base64\r\n'
        b'Content-Disposition: attachment; filename="a.xlsx"\r\n\r\n'
        b"UEsDBBQAAAAIAAAAIQD//////////w==\r\n"  # a truncated zip, no closing boundary
    )
    code, reply = send(running_gateway.smtp_port, raw)
    assert code == 250
    held = running_gateway.gateway.held.get(_held_id(reply))
    assert held.unscannable and held.status == "held"
    # and the gateway still serves the next message
    assert send(running_gateway.smtp_port, clean_mail(1))[0] == 250


def test_internal_error_answers_451(gateway_factory, upstream_sink, tmp_path):
    from dlp_gateway.relay.scanpool import ScanPool

    broken = tmp_path / "no-patterns"
    broken.mkdir()
    gw = gateway_factory()
    # scan workers that cannot start (a start-up with this set is refused, so swap it in)
    gw.running.handler.scanner = ScanPool(broken, 1, 20)
    code, reply = send(gw.smtp_port, clean_mail(1))
    assert code == 451 and reply.startswith("4.3.0") and "scan id" in reply
    assert upstream_sink.messages == []


def test_mixed_recipients_internal_get_original_external_held(gateway_factory, upstream_sink):
    gw = gateway_factory(internal_domains=["city.example.lg.jp"])
    colleague = "jinji@city.example.lg.jp"
    raw = roster_mail(30)
    code, reply = send(gw.smtp_port, raw, rcpts=[colleague, RECIPIENT])
    assert code == 250
    held = gw.gateway.held.get(_held_id(reply))
    assert held.recipients == [RECIPIENT]
    deadline = time.monotonic() + 10
    while not upstream_sink.to(colleague) and time.monotonic() < deadline:
        time.sleep(0.05)
    [internal] = upstream_sink.to(colleague)
    assert internal.rcpts == [colleague] and strip_dlp_headers(internal.data) == raw
    assert upstream_sink.to(RECIPIENT) == []


def test_monitor_mode_passes_and_audits_the_verdict(gateway_factory, upstream_sink):
    gw = gateway_factory(monitor_mode=True)
    raw = roster_mail(30)
    assert send(gw.smtp_port, raw)[0] == 250
    [got] = upstream_sink.wait_for(1)
    assert strip_dlp_headers(got.data) == raw
    [entry] = gw.gateway.audit.entries(event="pass")
    assert entry.details["would"] == "hold" and entry.details["monitor_mode"] is True
    assert gw.gateway.held.list() == []


@pytest.mark.parametrize("lane", ["pool", "inline"])
def test_scan_over_time_limit_is_held_as_timeout(gateway_factory, upstream_sink, lane):
    # the mail's scan must take far over 1 ms, or a loaded machine's event loop sees the
    # inline scan done before its timer: 100 KB of text in one paragraph with a name
    # label (氏名), so SudachiPy reads all of it
    inline = lane == "inline"
    gw = gateway_factory(scan_timeout_seconds=0.001, web=False,
                         inline_scan_bytes=262144 if inline else 0)
    line = "来週の定例会議は第二会議室で午後二時から開催します。資料は当日配布します。\n"
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = SENDER, RECIPIENT, "会議の日程について"
    msg.set_content("各位\n氏名 山田太郎\n" + line * (100 * 1024 // len(line.encode())))
    code, reply = send(gw.smtp_port, msg.as_bytes(policy=SMTP_POLICY))
    assert code == 250
    held = gw.gateway.held.get(_held_id(reply))
    assert "timeout" in held.rules and any("timeout" in r for r in held.reasons)
    assert upstream_sink.to(RECIPIENT) == []
    if inline:  # it was the inline lane that ran over, and it is shut now
        assert gw.running.scanner.inline.scanned == 1
        assert not gw.running.scanner.inline.ready
