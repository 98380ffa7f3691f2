"""SmtpUpstream's connection cache against a real aiosmtpd server on loopback: reuse,
a dead cached connection noticed (NOOP) before it carries mail, no reuse after a
failure, a 421 at MAIL retried on a new connection, idle connections closed.
(XFORWARD on reused connections: tests/e2e/test_xforward.py.)"""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from dlp_gateway.relay.upstream import DeliveryError, SmtpUpstream
from tests.conftest import free_port

DATA = b"From: a@city.example.lg.jp\r\nTo: b@example.com\r\nSubject: t\r\n\r\nhello\r\n"


class Handler:
    """Counts connections (EHLO) and deliveries; refuses bad@; can say 421 at the
    second MAIL of a connection (a server done with it)."""

    def __init__(self) -> None:
        self.ehlos = 0
        self.delivered: list[str] = []
        self.tired_after = 0  # >0: 421 at MAIL once a connection carried this many

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        self.ehlos += 1
        session.host_name = hostname
        session.carried = 0
        return responses

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list) -> str:
        if self.tired_after and session.carried >= self.tired_after:
            return "421 4.7.0 enough for this connection"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list) -> str:
        if address.startswith("bad@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        session.carried += 1
        self.delivered.append(envelope.rcpt_tos[0])
        return "250 2.0.0 OK"


@pytest.fixture
def server():  # type: ignore[no-untyped-def]
    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller
    controller.stop()


def _deliver(up: SmtpUpstream, rcpt: str = "ok@example.com") -> Any:
    return up.deliver("a@city.example.lg.jp", [rcpt], DATA)


def test_consecutive_deliveries_share_one_connection(server):
    handler, ctl = server
    up = SmtpUpstream("127.0.0.1", ctl.port, timeout=10)
    for i in range(8):
        assert _deliver(up, f"r{i}@example.com") == {}
    assert handler.ehlos == 1 and len(handler.delivered) == 8
    assert up.idle_connections == 1
    assert up.close_idle(everything=True) == 1 and up.idle_connections == 0
    _deliver(up)
    assert handler.ehlos == 2


def test_reuse_off_opens_a_connection_per_mail(server):
    handler, ctl = server
    up = SmtpUpstream("127.0.0.1", ctl.port, timeout=10, reuse_seconds=0)
    for _ in range(3):
        _deliver(up)
    assert handler.ehlos == 3 and up.idle_connections == 0


def test_a_failed_transaction_never_leaves_its_connection_for_reuse(server):
    handler, ctl = server
    up = SmtpUpstream("127.0.0.1", ctl.port, timeout=10)
    _deliver(up)
    with pytest.raises(DeliveryError) as refused:
        _deliver(up, "bad@example.com")
    assert refused.value.permanent
    assert up.idle_connections == 0  # closed, not cached
    _deliver(up)
    assert handler.ehlos == 2


def test_a_connection_the_server_is_done_with_is_replaced(server):
    """421 at MAIL on a cached connection: nothing of the mail was taken; it goes again
    on a new connection and is delivered once."""
    handler, ctl = server
    handler.tired_after = 2
    up = SmtpUpstream("127.0.0.1", ctl.port, timeout=10)
    for i in range(5):
        assert _deliver(up, f"r{i}@example.com") == {}
    assert handler.delivered == [f"r{i}@example.com" for i in range(5)]
    assert handler.ehlos == 3


def test_a_dead_cached_connection_is_noticed_before_it_carries_mail():
    handler = Handler()
    port = free_port()
    ctl = Controller(handler, hostname="127.0.0.1", port=port)
    ctl.start()
    up = SmtpUpstream("127.0.0.1", port, timeout=10)
    _deliver(up)
    ctl.stop()  # the upstream restarts: the cached connection is gone
    ctl = Controller(handler, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        assert _deliver(up, "after@example.com") == {}
        assert handler.delivered[-1] == "after@example.com"
    finally:
        ctl.stop()


def test_idle_connections_expire(server):
    handler, ctl = server
    up = SmtpUpstream("127.0.0.1", ctl.port, timeout=10, reuse_seconds=0.2)
    _deliver(up)
    assert up.close_idle() == 0  # still fresh
    time.sleep(0.3)
    assert up.close_idle() == 1 and up.idle_connections == 0
    _deliver(up)  # and an expired one found at checkout is not used either
    time.sleep(0.3)
    _deliver(up)
    assert handler.ehlos == 3


def test_at_most_max_idle_connections_wait(server):
    import threading

    handler, ctl = server
    up = SmtpUpstream("127.0.0.1", ctl.port, timeout=10, max_idle=2)
    threads = [threading.Thread(target=_deliver, args=(up, f"p{i}@example.com"))
               for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(handler.delivered) == 6
    assert up.idle_connections <= 2
