"""The gateway's block-wise DATA reader against aiosmtpd's own line-by-line one.

Two real SMTP servers on loopback sockets, stock aiosmtpd and aiosmtpd with the gateway's
``smtp_DATA``, get the same generated DATA (dot-stuffed lines, bare CR and LF, lines
near and over the length limit, sizes around the size limit, sent in random pieces): the
replies and the content the handler sees must be the same. Seeds print on failure.
"""

from __future__ import annotations

import os
import random
import socket
import time

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from dlp_gateway.relay.smtp import GatewaySMTP
from tests.conftest import free_port

SIZE_LIMIT = 6000
SEEDS = int(os.environ.get("DLP_FUZZ_N", "0")) or 120


class BlockSMTP(SMTP):
    smtp_DATA = GatewaySMTP.smtp_DATA


class Keep:
    def __init__(self) -> None:
        self.got: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        self.got.append(envelope.original_content)
        return "250 OK kept"


class Server(Controller):
    def __init__(self, protocol: type[SMTP]):
        self.keep = Keep()
        self.protocol = protocol
        super().__init__(self.keep, hostname="127.0.0.1", port=free_port())

    def factory(self) -> SMTP:
        return self.protocol(self.handler, data_size_limit=SIZE_LIMIT, decode_data=False)


@pytest.fixture(scope="module")
def servers():  # type: ignore[no-untyped-def]
    pair = (Server(SMTP), Server(BlockSMTP))
    for server in pair:
        server.start()
    yield pair
    for server in pair:
        server.stop()


def body(rng: random.Random) -> bytes:
    lines = []
    for _ in range(rng.randint(0, 25)):
        kind = rng.random()
        if kind < 0.05:
            length = rng.choice([997, 998, 999, 1000, 1500])  # around the 1001-octet limit
            lines.append(b"x" * length)
        else:
            piece = bytes(rng.choice(b"ab.\r\n ") for _ in range(rng.randint(0, 60)))
            while b"\r\n" in piece:  # no line end inside a generated line
                piece = piece.replace(b"\r\n", b"\r")
            lines.append(rng.choice([b"", b".", b".."]) + piece)
    lines = [line for line in lines if line != b"."]  # a lone dot ends DATA
    data = b"".join(line + b"\r\n" for line in lines)
    if rng.random() < 0.3:  # ordinary lines up to around the size limit
        target = rng.randint(SIZE_LIMIT - 300, SIZE_LIMIT + 300)
        while len(data) < target:
            data += b"y" * rng.randint(0, 90) + b"\r\n"
    return data


def exchange(port: int, data: bytes, rng: random.Random) -> tuple[bytes, bytes]:
    """Send one transaction; (reply to the end of DATA, reply to a NOOP after it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(b"HELO client\r\n")
        reader.readline()
        sock.sendall(b"MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
        for _ in range(3):
            reader.readline()
        stream = data + b".\r\n"
        position = 0
        while position < len(stream):
            step = rng.choice([1, 2, 3, 5, 64, 700, 1500, 4096])
            sock.sendall(stream[position : position + step])
            position += step
            if rng.random() < 0.05:
                time.sleep(0.001)
        reply = reader.readline()
        sock.sendall(b"NOOP\r\n")
        return reply, reader.readline()


@pytest.mark.parametrize("seed", range(SEEDS))
def test_block_reader_answers_as_aiosmtpd(servers, seed: int) -> None:  # type: ignore[no-untyped-def]
    stock, block = servers
    data = body(random.Random(seed))
    answers = []
    for server in (stock, block):
        server.keep.got.clear()
        answers.append((*exchange(server.port, data, random.Random(seed)), server.keep.got[:]))
    assert answers[1] == answers[0], f"seed {seed}: {data[:200]!r}"


def test_an_empty_message_and_a_dot_line_right_after_data(servers) -> None:  # type: ignore[no-untyped-def]
    for data in (b"", b"..\r\n", b".a\r\n..b\r\n"):
        stock, block = servers
        got = []
        for server in (stock, block):
            server.keep.got.clear()
            got.append((exchange(server.port, data, random.Random(0)), server.keep.got[:]))
        assert got[0] == got[1]
        assert got[1][1] == [data.replace(b"\r\n.", b"\r\n").removeprefix(b".")]
