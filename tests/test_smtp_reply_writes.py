"""Multi-line replies go out in one write (Postfix's before-queue proxy opens a
connection, and sends EHLO, for every mail: deploy/postfix/before-queue/)."""

from __future__ import annotations

import smtplib
import threading
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP

from tests.conftest import GatewayThread, send


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every write aiosmtpd's push makes (one ``transport.write`` each)."""
    seen: list[bytes] = []
    lock = threading.Lock()
    real = SMTP.push

    async def counting(self: Any, status: Any) -> None:
        with lock:
            seen.append(status if isinstance(status, bytes) else status.encode())
        await real(self, status)

    monkeypatch.setattr(SMTP, "push", counting)
    return seen


def test_ehlo_reply_is_one_write_and_intact(writes: list[bytes],
                                            running_gateway: GatewayThread) -> None:
    with smtplib.SMTP("127.0.0.1", running_gateway.smtp_port, timeout=30) as smtp:
        before = len(writes)
        code, text = smtp.ehlo("mx.city.example.lg.jp")
        assert code == 250
        assert {"size", "8bitmime", "smtputf8", "xforward", "pipelining"} <= set(
            smtp.esmtp_features), smtp.esmtp_features
        [reply] = writes[before:]  # the whole multi-line reply, one write
        lines = reply.split(b"\r\n")
        assert len(lines) >= 5 and all(line[:4] == b"250-" for line in lines[:-1])
        assert lines[-1][:4] == b"250 "
        assert text.decode().splitlines()[0] == running_gateway.config.hostname


def test_single_line_replies_unchanged(writes: list[bytes],
                                       running_gateway: GatewayThread) -> None:
    raw = b"From: a@city.example.lg.jp\r\nSubject: x\r\n\r\nhello\r\n"
    code, text = send(running_gateway.smtp_port, raw)
    assert code == 250, text
    assert all(b"\r\n" not in w for w in writes if not w.startswith(b"250-"))
