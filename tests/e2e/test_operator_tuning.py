"""Operator tuning on a running gateway: per-rule monitor, hot reload (directory change
and SIGHUP) without dropping a connection, a broken set refused, `serve` refusing to
start on a broken set, retention of passed mail."""

from __future__ import annotations

import os
import shutil
import signal
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest

from dlp_gateway.detect.patterns import DEFAULT_PATTERNS_DIR
from tests.conftest import RECIPIENT, SENDER, free_port, roster_mail, send, strip_dlp_headers

KISO = """
[[id_types]]
id = "kiso_nenkin"
label = "基礎年金番号"
regex = '(?<!\\d)\\d{4}-?\\d{6}(?!\\d)'
keywords = ["基礎年金番号", "年金番号"]
keyword_window = 20
headers = ["基礎年金番号"]
"""
KISO_RULE = """
[[rules]]
id = "kiso_nenkin"
metric = "kiso_nenkin"
min = 1
action = "hold"
approver_role = "section_head"
reason = "基礎年金番号 {n}件"
"""


def _mail(body: str, subject: str = "年金の件") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = SENDER, RECIPIENT, subject
    msg.set_content(body)
    return msg.as_bytes(policy=default_policy.clone(linesep="\r\n"))


@pytest.fixture
def patterns(tmp_path: Path) -> Path:
    target = tmp_path / "patterns"
    shutil.copytree(DEFAULT_PATTERNS_DIR, target)
    return target


def _wait(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_monitor_rule_passes_mail_and_audits_it(gateway_factory, upstream_sink, patterns):
    policy = patterns / "policy.toml"
    text = policy.read_text(encoding="utf-8")
    for rule in ("many_records", "records_in_attachments"):
        text = text.replace(f'id = "{rule}"\n', f'id = "{rule}"\nmonitor = true\n')
    policy.write_text(text, encoding="utf-8")
    gw = gateway_factory(patterns_dir=patterns)
    raw = roster_mail(30)
    code, _reply = send(gw.smtp_port, raw)
    assert code == 250
    [got] = upstream_sink.wait_for(1)
    assert strip_dlp_headers(got.data) == raw
    [entry] = gw.gateway.audit.entries(event="monitor")
    assert entry.details["would"] == "hold" and entry.details["verdict"] == "pass"
    assert entry.details["monitor_rules"] == ["many_records", "records_in_attachments"]
    assert gw.gateway.held.list() == []
    assert gw.gateway.patterns_status.monitor_rules == ("many_records", "records_in_attachments")
    # an enforced rule still holds, and the held record shows the monitor rules
    greeting = "お世話になっております。".encode()
    with_number = roster_mail(30, filename="a.xlsx").replace(
        greeting, "個人番号 123456789018 ".encode() + greeting)
    code, reply = send(gw.smtp_port, with_number)
    held = gw.gateway.held.get(reply.rsplit(" ", 1)[1])
    assert "my_number" in held.rules and "monitor:many_records" in held.rules
    assert any("monitor" in r for r in held.reasons)


def test_hot_reload_on_change_keeps_connection_and_refuses_broken_set(
    gateway_factory, upstream_sink, patterns
):
    gw = gateway_factory(patterns_dir=patterns, patterns_poll_seconds=0.1, web=False)
    status = gw.gateway.patterns_status
    first = status.digest
    body = "基礎年金番号：1234-567890 の件でご連絡します。"
    with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=60) as smtp:
        smtp.ehlo()
        smtp.sendmail(SENDER, [RECIPIENT], _mail(body))
        upstream_sink.wait_for(1)  # passes with the shipped set
        (patterns / "id_types.toml").write_text(KISO, encoding="utf-8")
        with (patterns / "policy.toml").open("a", encoding="utf-8") as fh:
            fh.write(KISO_RULE)
        _wait(lambda: status.digest != first and "kiso_nenkin" in status.rule_ids)
        smtp.noop()  # the same connection is still served after the reload
        reply = smtp.sendmail(SENDER, [RECIPIENT], _mail(body, "second"))
        assert reply == {}
    [held] = gw.gateway.held.list()
    assert "kiso_nenkin" in held.rules and held.counts["kiso_nenkin"] == 1
    assert any("基礎年金番号 1件" in r for r in held.reasons)
    assert held.findings[0]["masked"].endswith("7890") and "1234" not in held.findings[0]["masked"]
    good = status.digest
    # a broken edit is refused, logged on the status, and the last good set stays
    (patterns / "id_types.toml").write_text(KISO.replace("keyword_window = 20",
                                                         "keyword_windw = 20"), encoding="utf-8")
    _wait(lambda: bool(status.last_error))
    assert "id_types.toml:" in status.last_error and "keyword_windw" in status.last_error
    assert status.digest == good
    code, _ = send(gw.smtp_port, _mail(body, "third"))
    assert code == 250 and len(gw.gateway.held.list()) == 2


def test_retained_passed_mail_is_encrypted_and_capped(gateway_factory, upstream_sink):
    from dlp_gateway.store.retained import RetainedStore

    gw = gateway_factory(retain_passed_days=7, web=False)
    raw = _mail("ご確認ください。個人番号は不要です。", "会議")
    assert send(gw.smtp_port, raw)[0] == 250
    directory = gw.config.data_dir / "retained"
    _wait(lambda: any(directory.glob("*.bin")))
    [path] = list(directory.glob("*.bin"))
    assert "ご確認".encode() not in path.read_bytes() and b"Subject" not in path.read_bytes()
    key = gw.config.data_dir / "retain.key"
    assert key.stat().st_mode & 0o077 == 0
    [kept] = RetainedStore(gw.config.data_dir, 7, 10**9).entries()
    assert kept.raw == raw and kept.verdict == "pass" and kept.recipients == [RECIPIENT]


def test_retention_prunes_by_age_and_size(tmp_path):
    import datetime as dt
    import random

    from dlp_gateway.store.retained import RetainedStore

    rng = random.Random(7)
    cap = 60_000
    store = RetainedStore(tmp_path, days=3, max_bytes=cap)
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    for i in range(80):
        at = start + dt.timedelta(hours=i * 2, minutes=rng.choice([0, 0, 0, 30]))
        store.add(f"s{i:03d}", "a@b.jp", ["c@d.jp"], rng.randbytes(rng.randint(500, 3000)),
                  "pass", now=at)
        total = sum(p.stat().st_size for p in (tmp_path / "retained").glob("*.bin"))
        assert total <= cap, i
    kept = list(store.entries())
    newest = start + dt.timedelta(hours=79 * 2)
    assert kept[-1].id == "s079"
    assert all(dt.datetime.fromisoformat(k.received) >= newest - dt.timedelta(days=3)
               for k in kept)
    since = newest - dt.timedelta(hours=5)
    assert [k.id for k in store.entries(since)] == ["s077", "s078", "s079"]


def _serve(config: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dlp_gateway.cli", "serve", "--config", str(config)],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=config.parent,
    )


def _config(tmp_path: Path, patterns: Path, port: int, sink_address: str) -> Path:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'listen = "127.0.0.1:{port}"\nadmin_listen = "127.0.0.1:{free_port()}"\n'
        f'upstream = "{sink_address}"\ndata_dir = "{tmp_path / "data"}"\n'
        f'patterns_dir = "{patterns}"\nscan_workers = 1\npatterns_poll_seconds = 0\n'
    )
    return config


def test_serve_refuses_to_start_with_a_broken_set(tmp_path, patterns):
    (patterns / "my_number.toml").write_text(
        (patterns / "my_number.toml").read_text(encoding="utf-8").replace(
            "label_window = 20", "label_window = 20\nallow_numbers = [1]"), encoding="utf-8")
    port = free_port()
    log = tmp_path / "serve.log"
    proc = _serve(_config(tmp_path, patterns, port, "127.0.0.1:1"), log)
    assert proc.wait(timeout=60) != 0
    out = log.read_text()
    assert "my_number.toml:" in out and "allow_numbers" in out and "listening" not in out


def test_sighup_reloads(tmp_path, patterns, upstream_sink):
    port = free_port()
    log = tmp_path / "serve.log"
    proc = _serve(_config(tmp_path, patterns, port, upstream_sink.address), log)
    try:
        _wait(lambda: "listening" in log.read_text() or proc.poll() is not None, 60)
        assert proc.poll() is None, log.read_text()
        body = "基礎年金番号：1234-567890"
        code, reply = send(port, _mail(body))
        assert code == 250 and "held" not in reply
        # a broken edit is refused; the log names the operator's directory, not a copy
        (patterns / "id_types.toml").write_text(KISO + "typo_key = 1\n", encoding="utf-8")
        os.kill(proc.pid, signal.SIGHUP)
        _wait(lambda: "patterns change refused" in log.read_text(), 60)
        refused = log.read_text().split("patterns change refused", 1)[1]
        assert f"in {patterns}:" in refused and "id_types.toml:" in refused
        assert ".incoming-" not in refused
        (patterns / "id_types.toml").write_text(KISO, encoding="utf-8")
        with (patterns / "policy.toml").open("a", encoding="utf-8") as fh:
            fh.write(KISO_RULE)
        time.sleep(0.3)
        code, reply = send(port, _mail(body))
        assert "held" not in reply  # polling is off: nothing changes before SIGHUP
        os.kill(proc.pid, signal.SIGHUP)
        _wait(lambda: "patterns reloaded (SIGHUP)" in log.read_text(), 60)
        code, reply = send(port, _mail(body))
        assert code == 250 and "held for approval" in reply
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_admin_page_shows_active_set_hash_and_load_time(gateway_factory, patterns):
    import re

    import httpx

    gw = gateway_factory(patterns_dir=patterns, patterns_poll_seconds=0.1)
    gw.gateway.users.add("kacho@city.example.lg.jp", "section_head", "kacho-password-1")
    status = gw.gateway.patterns_status
    with httpx.Client(base_url=gw.admin_url, follow_redirects=True, timeout=30) as client:
        page = client.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        client.post("/login", data={"email": "kacho@city.example.lg.jp",
                                    "password": "kacho-password-1", "csrf_token": token})
        held = client.get("/held").text
        shown = re.search(r'id="patterns-hash" title="([0-9a-f]{64})"', held)
        assert shown and shown.group(1) == status.digest
        first = status.digest
        policy = patterns / "policy.toml"
        policy.write_text(policy.read_text(encoding="utf-8").replace(
            'id = "many_records"\n', 'id = "many_records"\nmonitor = true\n'), encoding="utf-8")
        _wait(lambda: status.digest != first)
        held = client.get("/held").text
        assert status.digest in held and "監視モード (monitor): many_records" in held
