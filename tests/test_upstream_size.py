"""The gateway's X-DLP-* headers never push a mail over the upstream's advertised SIZE.

A real aiosmtpd sink on a free loopback port advertises ``SIZE limit`` (and
enforces it); messages of every size around the limit are relayed through
``SmtpUpstream`` with the headers the gateway prepends.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from dlp_gateway.relay.headers import prepend_headers, strip_dlp_headers
from dlp_gateway.relay.upstream import DeliveryError, SmtpUpstream
from tests.conftest import free_port

LIMIT = 20_000


class _Sink:
    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append(envelope.original_content)
        return "250 2.0.0 ok"


@pytest.fixture
def sized_sink() -> Iterator[tuple[_Sink, int]]:
    sink = _Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, data_size_limit=LIMIT)
    controller.start()
    yield sink, port
    controller.stop()


def _mail(size: int, rng: random.Random) -> bytes:
    head = b"From: a@city.example.lg.jp\r\nTo: b@example.com\r\nSubject: size\r\n\r\n"
    line = bytes(rng.choice(b"abcdefghij ") for _ in range(70)) + b"\r\n"
    body = (line * (size // len(line) + 1))[: max(0, size - len(head) - 2)] + b"\r\n"
    return head + body


def _headed(raw: bytes) -> bytes:
    return prepend_headers(raw, [("X-DLP-Verdict", "pass"), ("X-DLP-Scan-Id", "0123456789abcdef")])


def test_strip_dlp_headers_removes_only_the_leading_ones() -> None:
    raw = b"Subject: x\r\nX-DLP-Verdict: spoofed\r\n\r\nbody\r\n"
    assert strip_dlp_headers(_headed(raw)) == raw
    assert strip_dlp_headers(raw) == raw


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_headers_never_exceed_advertised_size(sized_sink: tuple[_Sink, int], seed: int) -> None:
    sink, port = sized_sink
    rng = random.Random(seed)
    upstream = SmtpUpstream("127.0.0.1", port, timeout=10)
    overhead = len(_headed(b""))
    # around both edges: fits with headers / fits only without / does not fit at all
    sizes = [LIMIT - overhead - rng.randint(0, 40), LIMIT - rng.randint(0, overhead - 1),
             LIMIT, LIMIT + rng.randint(1, 500)]
    for size in sizes:
        raw = _mail(size, rng)
        assert len(raw) == size, f"seed={seed}"
        before = len(sink.messages)
        if size > LIMIT:
            with pytest.raises(DeliveryError) as info:
                upstream.deliver("a@city.example.lg.jp", ["b@example.com"], _headed(raw))
            assert info.value.permanent and info.value.code == 552, f"seed={seed}"
            assert len(sink.messages) == before
            continue
        upstream.deliver("a@city.example.lg.jp", ["b@example.com"], _headed(raw))
        got = sink.messages[-1]
        assert len(got) <= LIMIT, f"seed={seed} size={size}"
        if size + overhead <= LIMIT:
            assert got == _headed(raw), f"seed={seed} size={size}"
        else:
            assert got == raw, f"seed={seed} size={size}: headers left off, body intact"


def test_no_size_extension_means_no_change() -> None:
    from dlp_gateway.relay.upstream import fit_advertised_size

    data = _headed(b"Subject: x\r\n\r\n" + b"y" * 50_000)
    assert fit_advertised_size(data, "") is data
    assert fit_advertised_size(data, "0") is data
