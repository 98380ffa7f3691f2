"""The relay's fast parse of MAIL/RCPT paths gives exactly aiosmtpd's answer.

Seeded inputs over what varies in a path: the local part's characters and dots (also
misplaced), the domain's labels, hyphens and literals, quoting, comments, blanks and
parameters after the path, non-ASCII, the local-part length limit."""

from __future__ import annotations

import os
import random
import string

import pytest
from aiosmtpd.smtp import SMTP

from dlp_gateway.relay.smtp import _SIMPLE_PATH, GatewaySMTP

N = int(os.environ.get("DLP_FUZZ_N", "0")) or 3000
ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
ODD = ATEXT + ".@<>()[]\" \t\\,;:é日"


def _local(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.6:
        return ".".join("".join(rng.choice(ATEXT) for _ in range(rng.randint(1, 8)))
                        for _ in range(rng.randint(1, 3)))
    if kind < 0.7:
        return '"' + "".join(rng.choice(ODD) for _ in range(rng.randint(0, 8))) + '"'
    return "".join(rng.choice(ODD) for _ in range(rng.randint(0, 10)))


def _domain(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.7:
        labels = ["".join(rng.choice(string.ascii_letters + string.digits + "-")
                          for _ in range(rng.randint(1, 8))) for _ in range(rng.randint(1, 4))]
        return ".".join(labels)
    if kind < 0.8:
        return f"[{rng.randint(0, 255)}.{rng.randint(0, 255)}.0.1]"
    return "".join(rng.choice(ODD) for _ in range(rng.randint(0, 10)))


def _tail(rng: random.Random) -> str:
    params = rng.choice(["", "SIZE=1000", "BODY=8BITMIME SIZE=12", "AUTH=<>", "(comment) x=1",
                         "SMTPUTF8", "NOTIFY=NEVER"])
    blanks = rng.choice(["", " ", "  ", "\t", " \t "])
    return blanks + params


def path(rng: random.Random) -> str:
    inner = f"{_local(rng)}@{_domain(rng)}" if rng.random() < 0.95 else _local(rng)
    text = f"<{inner}>{_tail(rng)}"
    if rng.random() < 0.05:
        text = " " + text
    if rng.random() < 0.03:
        text = inner
    return text


def _answer(parse, server, arg):  # type: ignore[no-untyped-def]
    """The parse, or the exception it raises (aiosmtpd's parser raises on some junk)."""
    try:
        return parse(server, arg)
    except Exception as exc:
        return type(exc).__name__


def _server(limit: int) -> GatewaySMTP:
    server = object.__new__(GatewaySMTP)
    server.local_part_limit = limit
    return server


@pytest.mark.parametrize("limit", [0, 64, 5])
def test_fast_path_answers_as_aiosmtpd(limit):
    rng = random.Random(1300 + limit)
    server = _server(limit)
    fast = 0
    for i in range(N):
        arg = path(rng)
        expected = _answer(SMTP._getaddr, server, arg)
        assert _answer(GatewaySMTP._getaddr, server, arg) == expected, \
            f"seed {1300 + limit} #{i}: {arg!r}"
        fast += bool(_SIMPLE_PATH.match(arg))
    assert fast > N // 4  # the sample exercises the fast path, not only the fallback


@pytest.mark.parametrize(("arg", "expected"), [
    ("<staff@city.example.lg.jp>", ("staff@city.example.lg.jp", "")),
    ("<a.b+tag@x-y.example.jp> SIZE=100 BODY=8BITMIME",
     ("a.b+tag@x-y.example.jp", "SIZE=100 BODY=8BITMIME")),
])
def test_common_paths(arg, expected):
    assert _SIMPLE_PATH.match(arg)
    assert GatewaySMTP._getaddr(_server(64), arg) == expected
