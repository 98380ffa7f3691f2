"""RFC 2920 PIPELINING: the gateway offers it (Postfix's dlpscan then sends XFORWARD..DATA
in one write) and answers pipelined commands one by one, in order, whatever TCP segments
they arrive in. Real SMTP over a loopback socket, a real gateway and upstream sink."""

from __future__ import annotations

import random
import smtplib
import socket
import time

import pytest

from tests.conftest import RECIPIENT, SENDER, clean_mail, roster_mail

SEEDS = list(range(1201, 1205))  # how the batches are cut into TCP sends


class Client:
    """A raw SMTP client that writes a batch of commands in arbitrary pieces."""

    def __init__(self, port: int, rng: random.Random):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.file = self.sock.makefile("rb")
        self.rng = rng
        assert self.reply()[0] == 220

    def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            line = self.file.readline().decode()
            assert line, "connection closed"
            lines.append(line[4:].rstrip())
            if line[3:4] != "-":
                return int(line[:3]), "\n".join(lines)

    def write(self, data: bytes) -> None:
        """In random pieces (1 byte to all of it), each its own send()."""
        while data:
            cut = self.rng.randint(1, len(data))
            self.sock.sendall(data[:cut])
            data = data[cut:]
            time.sleep(self.rng.choice([0, 0, 0.001]))

    def batch(self, *commands: str) -> list[int]:
        self.write(b"".join(c.encode() + b"\r\n" for c in commands))
        return [self.reply()[0] for _ in commands]

    def body(self, raw: bytes) -> tuple[int, str]:
        data = raw.replace(b"\r\n.", b"\r\n..")
        self.write(data + (b"" if data.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        return self.reply()

    def close(self) -> None:
        self.write(b"QUIT\r\n")
        self.reply()
        self.file.close()
        self.sock.close()


def test_pipelining_is_offered(running_gateway):
    with smtplib.SMTP("127.0.0.1", running_gateway.smtp_port, timeout=30) as smtp:
        smtp.ehlo("mx.city.example.lg.jp")
        assert smtp.has_extn("pipelining")
        assert smtp.has_extn("xforward")  # loopback: the default xforward_hosts


@pytest.mark.parametrize("seed", SEEDS)
def test_pipelined_transactions_are_answered_in_order(seed, running_gateway, upstream_sink):
    """Postfix's batch (XFORWARD, MAIL, RCPT..., DATA), a refused recipient among good
    ones, a transaction whose recipients were all refused (DATA refused, nothing relayed)
    and a held roster, on one connection: every reply in order, every outcome right."""
    print(f"seed {seed}")
    rng = random.Random(seed)
    other = f"other{seed}@example.com"
    client = Client(running_gateway.smtp_port, rng)
    try:
        ehlo = client.batch("EHLO mx.city.example.lg.jp")
        assert ehlo == [250]
        # 1: a clean mail, one bad recipient between two good ones
        codes = client.batch("XFORWARD NAME=pc7.city.example.lg.jp ADDR=10.7.7.7",
                             "XFORWARD PROTO=ESMTP HELO=pc7 SOURCE=REMOTE",
                             f"MAIL FROM:<{SENDER}>", f"RCPT TO:<{RECIPIENT}>",
                             "RCPT TO:<no domain>", f"RCPT TO:<{other}>", "DATA")
        assert codes[:4] == [250, 250, 250, 250] and codes[4] >= 500 and codes[5:] == [250, 354]
        code, text = client.body(clean_mail(2, subject=f"定例会議 {seed}"))
        assert code == 250, text
        # 2: all recipients refused: DATA is refused, the client resets and goes on
        codes = client.batch(f"MAIL FROM:<{SENDER}>", "RCPT TO:<no domain>", "DATA", "RSET")
        assert codes[0] == 250 and codes[1] >= 500 and codes[2] >= 500 and codes[3] == 250
        # 3: a roster is held, not relayed
        codes = client.batch(f"MAIL FROM:<{SENDER}>", f"RCPT TO:<{RECIPIENT}>", "DATA")
        assert codes == [250, 250, 354]
        code, text = client.body(roster_mail(20 + seed % 7))
        assert code == 250 and "held" in text, text
    finally:
        client.close()
    upstream_sink.wait_for(1)
    time.sleep(0.3)
    [delivered] = upstream_sink.to(RECIPIENT)  # the held roster never went out
    assert sorted(delivered.rcpts) == sorted([RECIPIENT, other])
    assert all(SENDER in m.rcpts for m in upstream_sink.messages if m is not delivered)
    assert b"X-DLP-Verdict: pass" in delivered.data
    assert delivered.message["Subject"] == f"定例会議 {seed}"
    [held] = running_gateway.gateway.held.list("held")
    assert held.sender == SENDER
