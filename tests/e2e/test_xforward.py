"""Issue 12, XFORWARD: the original client (NAME, ADDR, PROTO, HELO, SOURCE) accepted from
``xforward_hosts`` (default loopback), recorded in the scan log and the audit, and passed on
to an upstream that advertises XFORWARD, also when the mail waited in the queue.

Real sockets: the gateway on loopback, an aiosmtpd upstream that advertises XFORWARD and
records what it was told per transaction."""

from __future__ import annotations

import logging
import random
import smtplib
import string
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from dlp_gateway.relay.upstream import xtext_encode
from tests.conftest import (
    RECIPIENT,
    SENDER,
    GatewayThread,
    SmtpSink,
    clean_mail,
    make_config,
    roster_mail,
)

ATTRIBUTES = ("NAME", "ADDR", "PROTO", "HELO", "SOURCE")


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpts: list[str]
    data: bytes
    xforward: dict[str, str]


class _XforwardSMTP(SMTP):
    """An upstream that speaks XFORWARD the way Postfix's smtpd does (attributes xtext)."""

    async def smtp_XFORWARD(self, arg: str | None) -> None:
        attrs: dict[str, str] = getattr(self.session, "xforward", {})
        for word in (arg or "").split():
            name, _, value = word.partition("=")
            if name.upper() not in ATTRIBUTES:
                await self.push("501 5.5.4 Bad XFORWARD attribute name")
                return
            attrs[name.upper()] = _xtext_decode(value)
        self.session.xforward = attrs
        self.session.xforward_commands = getattr(self.session, "xforward_commands", 0) + 1
        await self.push("250 2.0.0 Ok")


def _xtext_decode(value: str) -> str:
    out = bytearray()
    i = 0
    while i < len(value):
        if value[i] == "+":
            out.append(int(value[i + 1:i + 3], 16))
            i += 3
        else:
            out.append(ord(value[i]))
            i += 1
    return out.decode("utf-8")


class _Handler:
    def __init__(self, sink: XforwardSink):
        self.sink = sink

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        session.xforward = {}
        responses.insert(-1, "250-XFORWARD " + " ".join(ATTRIBUTES))
        return responses

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.sink.lock:
            self.sink.messages.append(Received(
                envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content,
                dict(getattr(session, "xforward", {}))))
        session.xforward = {}
        return "250 2.0.0 accepted by xforward sink"


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _XforwardSMTP(self.handler, **self.SMTP_kwargs)


class XforwardSink(SmtpSink):
    """The sink, speaking XFORWARD; its messages are ``Received`` (with the attributes)."""

    def _new_controller(self) -> Controller:
        return _Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                           data_size_limit=None, enable_SMTPUTF8=True)

    def wait_to(self, rcpt: str, timeout: float = 15.0) -> Received:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [m for m in self.messages if rcpt in m.rcpts]
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"nothing reached the upstream for {rcpt}")


@pytest.fixture
def sink() -> Iterator[XforwardSink]:
    started = XforwardSink().start()
    yield started
    started.stop()


@pytest.fixture
def gateway(tmp_path: Path, sink: XforwardSink) -> Iterator[GatewayThread]:
    gw = GatewayThread(make_config(tmp_path, sink), web=False).start()  # type: ignore[arg-type]
    yield gw
    gw.stop()


def _attributes(rng: random.Random) -> dict[str, str]:
    """A client as Postfix would describe it; HELO and NAME carry characters xtext must
    escape ('+', '=', non-ASCII is never sent by Postfix, so printable ASCII here)."""
    alphabet = string.ascii_letters + string.digits + "-.+=_[]"
    name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
    addr = (f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
            if rng.random() < 0.7 else f"2001:db8::{rng.randint(1, 0xffff):x}")
    helo = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60)))
    return {"NAME": name, "ADDR": addr, "PROTO": rng.choice(["SMTP", "ESMTP"]),
            "HELO": helo, "SOURCE": rng.choice(["LOCAL", "REMOTE"])}


def _send(port: int, raw: bytes, rcpt: str, xforward: dict[str, str] | None,
          helo: str = "gw-client.test") -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, local_hostname=helo, timeout=60) as smtp:
        smtp.ehlo()
        if xforward is not None:
            assert smtp.has_extn("xforward")
            line = " ".join(f"{k}={xtext_encode(v)}" for k, v in xforward.items())
            assert smtp.docmd("XFORWARD", line)[0] == 250
        smtp.mail(SENDER)
        smtp.rcpt(rcpt)
        return smtp.data(raw)


def _expected_client(attrs: dict[str, str]) -> dict[str, str]:
    return {**{k.lower(): v for k, v in attrs.items()}, "peer": "127.0.0.1"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_forwarded_client_reaches_log_and_upstream(gateway, sink, caplog, seed):
    rng = random.Random(seed)
    attrs = _attributes(rng)
    rcpt = f"pass{seed}@care.example.com"
    with caplog.at_level(logging.INFO, logger="dlp_gateway"):
        code, reply = _send(gateway.smtp_port, clean_mail(2), rcpt, attrs)
    assert code == 250, (seed, reply)
    received = sink.wait_to(rcpt)
    assert received.xforward == attrs, f"seed {seed}"
    assert f"{attrs['NAME']}[{attrs['ADDR']}]/{attrs['HELO']} via=127.0.0.1" in caplog.text


def test_hold_and_encrypt_audit_rows_record_the_forwarded_client(gateway, sink):
    rng = random.Random(12)
    held_attrs, enc_attrs = _attributes(rng), _attributes(rng)
    assert b"held" in _send(gateway.smtp_port, roster_mail(30), RECIPIENT, held_attrs)[1]
    assert _send(gateway.smtp_port, roster_mail(3), "enc@care.example.com", enc_attrs)[0] == 250
    [hold] = gateway.gateway.audit.entries(event="hold")
    assert hold.details["client"] == _expected_client(held_attrs)
    [enc] = gateway.gateway.audit.entries(event="encrypt")
    assert enc.details["client"] == _expected_client(enc_attrs)
    # the encrypted mail went through the queue: the attributes travelled with it
    assert sink.wait_to("enc@care.example.com").xforward == enc_attrs
    assert not [m for m in sink.messages if RECIPIENT in m.rcpts]  # the held one stays


def test_without_xforward_the_direct_peer_and_helo_are_recorded(gateway, sink):
    helo = "pc-direct-42.city.example.lg.jp"
    assert b"held" in _send(gateway.smtp_port, roster_mail(30), RECIPIENT, None, helo)[1]
    _send(gateway.smtp_port, clean_mail(2), "direct@care.example.com", None, helo)
    [hold] = gateway.gateway.audit.entries(event="hold")
    assert hold.details["client"] == {"addr": "127.0.0.1", "proto": "ESMTP", "helo": helo,
                                      "peer": "127.0.0.1"}
    assert sink.wait_to("direct@care.example.com").xforward == {
        "ADDR": "127.0.0.1", "PROTO": "ESMTP", "HELO": helo}


def test_xforward_describes_one_transaction_only(gateway, sink):
    attrs = _attributes(random.Random(5))
    with smtplib.SMTP("127.0.0.1", gateway.smtp_port, local_hostname="second.test",
                      timeout=60) as smtp:
        smtp.ehlo()
        line = " ".join(f"{k}={xtext_encode(v)}" for k, v in attrs.items())
        assert smtp.docmd("XFORWARD", line)[0] == 250
        smtp.sendmail(SENDER, ["one@care.example.com"], clean_mail(2))
        smtp.sendmail(SENDER, ["two@care.example.com"], clean_mail(2))
    assert sink.wait_to("one@care.example.com").xforward == attrs
    assert sink.wait_to("two@care.example.com").xforward == {
        "ADDR": "127.0.0.1", "PROTO": "ESMTP", "HELO": "second.test"}


def test_queued_mail_carries_the_attributes_to_the_upstream(gateway, sink):
    attrs = _attributes(random.Random(7))
    sink.stop()
    code, reply = _send(gateway.smtp_port, clean_mail(2), "queued@care.example.com", attrs)
    assert code == 250 and b"queued" in reply
    [item] = [i for i in gateway.gateway.queue.items() if "queued@care.example.com" in i.rcpts]
    assert item.status in ("due", "sending")  # the worker may be retrying it right now
    assert item.xforward == attrs
    sink.start()
    assert sink.wait_to("queued@care.example.com", timeout=30).xforward == attrs


def test_xforward_refused_from_hosts_not_configured(tmp_path, sink):
    gw = GatewayThread(make_config(tmp_path, sink, xforward_hosts=["192.0.2.0/24"]),  # type: ignore[arg-type]
                       web=False).start()
    try:
        with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=30) as smtp:
            smtp.ehlo()
            assert not smtp.has_extn("xforward")
            assert smtp.docmd("XFORWARD", "ADDR=10.1.1.1 HELO=spoofed")[0] == 550
            smtp.sendmail(SENDER, ["plain@care.example.com"], clean_mail(2))
        assert sink.wait_to("plain@care.example.com").xforward["ADDR"] == "127.0.0.1"
    finally:
        gw.stop()


def test_xforward_hosts_must_be_networks(tmp_path):
    from dlp_gateway.config import ConfigError

    with pytest.raises(ConfigError, match="xforward_hosts"):
        make_config(tmp_path, None, xforward_hosts=["loopback"])
    assert make_config(tmp_path, None).xforward_hosts == ["127.0.0.0/8", "::1/128"]


# -- released mail and the gateway's own notices (issue 12 leftover) ---------------------
def _held_id(reply: bytes) -> str:
    text = reply.decode()
    assert "held for approval" in text, text
    return text.rsplit(" ", 1)[-1]


def _notices(sink: XforwardSink, gateway_address: str) -> list[Received]:
    with sink.lock:
        return [m for m in sink.messages if m.mail_from == gateway_address]


@pytest.mark.parametrize("seed", [21, 22])
@pytest.mark.parametrize("mode", ["as_is", "encrypted"])
def test_released_mail_carries_the_original_clients_attributes(gateway, sink, seed, mode):
    """A held mail released (as is or encrypted) reaches the upstream with the XFORWARD
    attributes of the client that sent it, not the gateway's own connection."""
    attrs = _attributes(random.Random(seed))
    rcpt = f"held{seed}-{mode.replace('_', '')}@care.example.com"
    held_id = _held_id(_send(gateway.smtp_port, roster_mail(30), rcpt, attrs)[1])
    gateway.gateway.release(held_id, "ciso@city.example.lg.jp", mode)
    released = sink.wait_to(rcpt, timeout=30)
    assert released.data.startswith(f"X-DLP-Verdict: released-{mode.replace('_', '-')}"
                                    .encode()), f"seed {seed}"
    assert released.xforward == attrs, f"seed {seed}"


def test_release_of_mail_from_a_direct_client_names_that_client(gateway, sink):
    helo = "pc-held-7.city.example.lg.jp"
    held_id = _held_id(_send(gateway.smtp_port, roster_mail(30), "direct-held@care.example.com",
                             None, helo)[1])
    gateway.gateway.release(held_id, "ciso@city.example.lg.jp", "as_is")
    assert sink.wait_to("direct-held@care.example.com", timeout=30).xforward == {
        "ADDR": "127.0.0.1", "PROTO": "ESMTP", "HELO": helo}


def test_release_from_the_cli_in_another_process_carries_the_attributes(gateway, sink):
    import subprocess
    import sys

    attrs = _attributes(random.Random(31))
    gateway.gateway.users.add("ciso@city.example.lg.jp", "ciso", "password-ciso-31")
    held_id = _held_id(_send(gateway.smtp_port, roster_mail(30), "cli-held@care.example.com",
                             attrs)[1])
    done = subprocess.run(
        [sys.executable, "-m", "dlp_gateway.cli", "held", "release", held_id, "--actor",
         "ciso@city.example.lg.jp", "--mode", "as_is", "--confirm", "--comment", "先方確認済み",
         "--data-dir", str(gateway.config.data_dir)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert sink.wait_to("cli-held@care.example.com", timeout=30).xforward == attrs


def test_notices_are_the_gateways_own_mail_without_a_clients_xforward(gateway, sink):
    """Hold, release and password notices come from the gateway itself: no client's
    attributes are passed on with them (the upstream sees the gateway's connection)."""
    attrs = _attributes(random.Random(41))
    held_id = _held_id(_send(gateway.smtp_port, roster_mail(30), "notice-held@care.example.com",
                             attrs)[1])
    gateway.gateway.release(held_id, "ciso@city.example.lg.jp", "encrypted")  # + password
    assert _send(gateway.smtp_port, roster_mail(3), "enc-n@care.example.com", attrs)[0] == 250
    sink.wait_to("notice-held@care.example.com", timeout=30)
    sink.wait_to("enc-n@care.example.com", timeout=30)
    address = gateway.config.gateway_address
    deadline = time.monotonic() + 15
    while len(_notices(sink, address)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    notices = _notices(sink, address)
    subjects = [_subject(m.data) for m in notices]
    assert len(notices) >= 3, subjects  # hold notice, release notice, passwords (x2)
    for notice in notices:
        assert notice.xforward == {}, _subject(notice.data)
    assert not any(attrs["HELO"] in m.xforward.values() for m in notices)


def _subject(data: bytes) -> str:
    from email import message_from_bytes
    from email.policy import default

    return str(message_from_bytes(data, policy=default)["Subject"])
