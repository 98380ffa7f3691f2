"""/healthz and /metrics on a running gateway (real SMTP, sink, scan workers, SQLite)."""

from __future__ import annotations

import os
import re
import signal
import time
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RECIPIENT, SENDER, clean_mail, roster_mail, send


def _health(gw: Any) -> tuple[int, dict[str, Any]]:
    response = httpx.get(gw.admin_url + "/healthz", timeout=30)
    return response.status_code, response.json()


def _metrics(gw: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(gw.admin_url + "/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def _value(values: dict, name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


def _wait_health(gw: Any, status: int, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        code, body = _health(gw)
        if code == status or time.monotonic() > deadline:
            assert code == status, body
            return body
        time.sleep(0.2)


def test_healthz_ok_then_upstream_down_then_ok(running_gateway, upstream_sink) -> None:
    code, body = _health(running_gateway)
    assert code == 200, body
    assert body == {"status": "ok", "checks": {"smtp": "ok", "scan_workers": "ok",
                                               "database": "ok", "upstream": "ok"}}
    upstream_sink.stop()
    try:
        body = _wait_health(running_gateway, 503)
        assert body["status"] == "fail"
        assert "unreachable" in body["checks"]["upstream"]
        assert body["checks"]["smtp"] == "ok"
    finally:
        upstream_sink.start()
    _wait_health(running_gateway, 200)


def test_healthz_reports_dead_scan_workers_until_they_restart(running_gateway) -> None:
    scanner = running_gateway.running.scanner
    pids = list(scanner.pool._processes)
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    body = _wait_health(running_gateway, 503)
    assert "broken" in body["checks"]["scan_workers"]
    # the pool restarts: the mail is retried in a fresh pool (250) or deferred (451),
    # never lost or bounced
    code, reply = send(running_gateway.smtp_port, clean_mail(2))
    assert code in (250, 451), reply
    body = _wait_health(running_gateway, 200, timeout=60)
    assert body["checks"]["scan_workers"] == "ok"
    code, reply = send(running_gateway.smtp_port, clean_mail(2))
    assert code == 250, reply


def test_healthz_reports_smtp_listener_and_database(gateway_factory) -> None:
    gw = gateway_factory()
    gw.call(gw.running.smtp_server.close)
    body = _wait_health(gw, 503)
    assert body["checks"]["smtp"] == "listener closed"
    gw2 = gateway_factory(data_dir=gw.config.data_dir.parent / "data2")
    gw2.gateway.db.close()
    body = _wait_health(gw2, 503)
    assert body["checks"]["database"].startswith("error:")


def test_metrics_count_verdicts_scans_queue_and_held(running_gateway, upstream_sink) -> None:
    before = _metrics(running_gateway)
    assert send(running_gateway.smtp_port, clean_mail(5))[0] == 250
    code, reply = send(running_gateway.smtp_port, roster_mail(15, subject="名簿 metrics"))
    assert code == 250 and "held" in reply
    after = _metrics(running_gateway)
    assert _value(after, "dlp_messages_total", verdict="pass") == \
        _value(before, "dlp_messages_total", verdict="pass") + 1
    assert _value(after, "dlp_messages_total", verdict="hold") == \
        _value(before, "dlp_messages_total", verdict="hold") + 1
    assert _value(after, "dlp_scan_seconds_count") == _value(before, "dlp_scan_seconds_count") + 2
    assert _value(after, "dlp_scan_seconds_sum") > _value(before, "dlp_scan_seconds_sum")
    assert _value(after, "dlp_held_messages", age="lt_1h") == 1
    assert _value(after, "dlp_held_messages", age="ge_72h") == 0

    upstream_sink.stop()  # the next pass is queued; the attempt counts as an upstream error
    try:
        assert send(running_gateway.smtp_port, clean_mail(3))[0] == 250
        down = _metrics(running_gateway)
        assert _value(down, "dlp_upstream_errors_total", kind="temporary") >= \
            _value(after, "dlp_upstream_errors_total", kind="temporary") + 1
        assert _value(down, "dlp_queue_depth") >= 1
        assert _value(down, "dlp_queue_oldest_age_seconds") >= 0
    finally:
        upstream_sink.start()
    deadline = time.monotonic() + 20
    while _value(_metrics(running_gateway), "dlp_queue_depth") > 0:
        assert time.monotonic() < deadline, "queue never drained"
        time.sleep(0.3)


def test_metrics_and_healthz_carry_no_personal_data(running_gateway) -> None:
    send(running_gateway.smtp_port, roster_mail(12, subject="名簿 privacy"))
    for path in ("/metrics", "/healthz"):
        text = httpx.get(running_gateway.admin_url + path, timeout=30).text
        assert "@" not in text
        assert SENDER not in text and RECIPIENT not in text
        assert "名簿" not in text
        assert not re.search(r"(?<![\d.])\d{10,}", text)  # floats aside, no long numbers
