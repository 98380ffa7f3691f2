"""Issue 13, relay row: the fast paths give the same answers as the slow ones.

- The inline lane (tiny single-part text/plain mail scanned in the relay's own process)
  gives the same outcome as a scan worker, on a seeded sample of mails (clean text,
  My Numbers, name + birth date records, insured numbers, several charsets and transfer
  encodings), and the same replies and X-DLP headers through a whole gateway.
- A pass mail's 250 comes only after the upstream accepted it (reused upstream
  connections included), so a kill -9 right after a 250 loses nothing; its retry record
  (group commit after the reply) answers a retry at once, survives a clean restart, and
  after a kill -9 the records committed before it still answer retries.

Real sockets, real scan workers, a real `dlp-gateway serve` process for the kill.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import signal
import smtplib
import time
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest

from dlp_gateway.relay.scanpool import InlineLane, ScanPool, inline_eligible
from tests.conftest import (
    RECIPIENT,
    SENDER,
    GatewayThread,
    SmtpSink,
    free_port,
    make_config,
    send,
    serve_process,
)
from tests.roster import FILLER, people, roster_prose

SAMPLE = int(os.environ.get("DLP_FUZZ_N", "0")) or 24
ENVELOPE = (SENDER, [RECIPIENT])


# -- a seeded sample of tiny text-only mail -----------------------------------------------
def _insured(rng: random.Random) -> str:
    return f"被保険者番号 {rng.randrange(10**7, 10**8)}"


def _body(rng: random.Random) -> str:
    kind = rng.choice(["clean", "prose", "one_number", "records", "insured", "names"])
    if kind == "clean":
        return "\n".join(rng.choice(FILLER) for _ in range(rng.randint(1, 8))) + "\n"
    persons = people(rng, rng.randint(1, 12))
    if kind == "prose":
        return roster_prose(persons)
    if kind == "one_number":
        return f"{FILLER[0]}\nマイナンバーは {persons[0].my_number} です。\n"
    if kind == "records":  # name + birth date, no number
        return "\n".join(f"{p.name}様 生年月日 {p.birth_text}" for p in persons) + "\n"
    if kind == "insured":
        return "\n".join(f"{p.name} {_insured(rng)}" for p in persons) + "\n"
    return "\n".join(f"{p.name}さんへ" for p in persons) + "\n" + FILLER[1] + "\n"


def tiny_text_mail(seed: int) -> bytes:
    """One single-part text/plain mail; charset, transfer encoding and headers vary."""
    rng = random.Random(seed)
    body = _body(rng)
    charset = rng.choice(["utf-8", "iso-2022-jp", "shift_jis"])
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = RECIPIENT
    msg["Subject"] = rng.choice(["ご連絡", "名簿の件", f"会議 {seed}"])
    msg["Message-ID"] = f"<tiny-{seed}@city.example.lg.jp>"
    cte = "7bit" if charset == "iso-2022-jp" else rng.choice(["base64", "quoted-printable",
                                                              "8bit"])
    msg.set_content(body, charset=charset, cte=cte)
    raw = msg.as_bytes(policy=default_policy.clone(linesep="\r\n"))
    if rng.random() < 0.2:  # no MIME headers at all: text/plain by default (RFC 2045)
        head, _, _ = raw.partition(b"\r\n\r\n")
        kept = [h for h in head.split(b"\r\n") if not h.lower().startswith(
            (b"content-", b"mime-version"))]
        raw = b"\r\n".join(kept) + b"\r\n\r\n" + body.encode("utf-8").replace(b"\n", b"\r\n")
    return raw


def _same(outcome):  # type: ignore[no-untyped-def]
    return dataclasses.replace(outcome, seconds=0.0)


# -- eligibility --------------------------------------------------------------------------
def _mail(headers: list[str], body: bytes = b"hello\r\n") -> bytes:
    return ("\r\n".join(["From: a@city.example.lg.jp", "To: b@example.com", *headers])
            .encode() + b"\r\n\r\n" + body)


@pytest.mark.parametrize(("headers", "eligible"), [
    ([], True),
    (["Content-Type: text/plain; charset=utf-8"], True),
    (["Content-Type: TEXT/PLAIN", "Content-Transfer-Encoding: base64"], True),
    (["Content-Type: text/html; charset=utf-8"], False),
    (["Content-Type: multipart/mixed; boundary=x"], False),
    (["Content-Type: application/octet-stream"], False),
    (["Content-Type: message/rfc822"], False),
    (["Content-Type: text/plain; name=roster.csv"], False),
    (["Content-Type: text/plain", "Content-Disposition: attachment; filename=a.txt"], False),
    (["Content-Type: text/plain", "Content-Disposition: inline"], False),
    (["Content-Type: text/plain", "Content-Type: text/html"], False),
    (["Content-Type: text/plain", "Content-Transfer-Encoding: x-uuencode"], False),
])
def test_inline_lane_takes_only_single_part_text_plain(headers, eligible):
    assert inline_eligible(_mail(headers), 16384) is eligible
    assert not inline_eligible(_mail(headers, b"x" * 20000), 16384)  # over the size
    assert not inline_eligible(_mail(headers), 0)  # lane off


def test_inline_lane_gives_the_pool_outcome_on_a_seeded_sample():
    """Same outcome (verdict, reasons, rules, counts, masked findings, unscannable parts)
    from the inline lane and from a scan worker, mail by mail."""

    async def run() -> None:
        pool = ScanPool(None, workers=1, timeout_seconds=60)  # no inline lane
        lane = InlineLane(None, 60)
        try:
            assert await pool.warm_up() and await lane.start()
            actions = set()
            for seed in range(SAMPLE):
                raw = tiny_text_mail(seed)
                assert inline_eligible(raw, 16384), f"seed {seed}"
                by_worker = await pool.scan(raw, ENVELOPE)
                inline = await lane.scan(raw, ENVELOPE)
                assert _same(inline) == _same(by_worker), f"seed {seed}"
                actions.add(inline.action)
            assert lane.scanned == SAMPLE
            assert {"pass", "hold"} <= actions  # the sample holds and passes
        finally:
            lane.close()
            await asyncio.to_thread(pool.close)

    asyncio.run(run())


def test_inline_and_pool_gateways_answer_alike(tmp_path: Path):
    """Through whole gateways: the same replies (pass / held), the same X-DLP-Verdict,
    the same held counts, whether the inline lane or the pool scanned the mail."""
    sink = SmtpSink().start()
    inline = GatewayThread(make_config(tmp_path / "i", sink), web=False).start()
    pooled = GatewayThread(make_config(tmp_path / "p", sink, inline_scan_bytes=0),
                           web=False).start()
    try:
        results: dict[str, list[tuple[str, str]]] = {"inline": [], "pool": []}
        for seed in range(0, SAMPLE, 2):
            raw = tiny_text_mail(seed)
            for name, gw in (("inline", inline), ("pool", pooled)):
                rcpt = f"{name}-{seed}@care.example.com"
                code, reply = send(gw.smtp_port, raw, rcpts=[rcpt])
                assert code == 250, (seed, reply)
                kind = "held" if "held for approval" in reply else "sent"
                verdict = ""
                if kind == "sent":
                    [delivered] = _wait_to(sink, rcpt)
                    verdict = str(delivered.message["X-DLP-Verdict"])
                results[name].append((kind, verdict))
        assert results["inline"] == results["pool"]
        assert inline.running.scanner.inline.scanned >= SAMPLE // 2
        assert pooled.running.scanner.inline is None
        held = [sorted((h.counts.get("my_number", 0), h.counts.get("records", 0),
                        tuple(h.rules)) for h in gw.gateway.held.list(None))
                for gw in (inline, pooled)]
        assert held[0] == held[1] and held[0]
    finally:
        inline.stop()
        pooled.stop()
        sink.stop()


def _wait_to(sink: SmtpSink, rcpt: str, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sink.to(rcpt)
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"nothing delivered to {rcpt}")


# -- the retry record of pass mail --------------------------------------------------------
def _clean(i: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = RECIPIENT
    msg["Subject"] = f"定例会議 {i}"
    msg["Message-ID"] = f"<fast-{i}@city.example.lg.jp>"
    msg.set_content("来週の定例会議は第二会議室で開催します。\n" * 20)
    return msg.as_bytes(policy=default_policy.clone(linesep="\r\n"))


def test_a_retry_right_after_250_and_after_a_restart_is_answered_as_before(tmp_path: Path):
    sink = SmtpSink().start()
    config = make_config(tmp_path, sink)
    gw = GatewayThread(config, web=False).start()
    try:
        first = send(gw.smtp_port, _clean(1))
        assert first[0] == 250
        assert send(gw.smtp_port, _clean(1)) == first  # at once: from the pending batch
        assert len(sink.to(RECIPIENT)) == 1
    finally:
        gw.stop()  # flushes what is pending
    gw = GatewayThread(config, web=False).start()
    try:
        assert send(gw.smtp_port, _clean(1)) == first
        time.sleep(0.3)
        assert len(sink.to(RECIPIENT)) == 1
        assert send(gw.smtp_port, _clean(2))[0] == 250  # another message is relayed
        assert len(_wait_to(sink, RECIPIENT)) >= 1 and len(sink.to(RECIPIENT)) == 2
    finally:
        gw.stop()
        sink.stop()



def test_kill_9_after_250_loses_no_pass_mail_and_keeps_committed_retry_records(
        tmp_path: Path):
    """Every 250 of a pass mail means the upstream already has it (checked at the
    moment of the 250, over reused upstream connections); after kill -9, retries of
    mail accepted well before the kill are still recognised (their records were
    group-committed), so nothing is delivered twice."""
    sink = SmtpSink().start()
    port = free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'listen = "127.0.0.1:{port}"\nadmin_listen = "127.0.0.1:{free_port()}"\n'
        f'upstream = "{sink.address}"\ndata_dir = "{tmp_path / "data"}"\nscan_workers = 1\n')
    log = tmp_path / "gateway.log"
    proc = serve_process(config, port, log)
    accepted: list[int] = []
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            for i in range(100, 130):
                assert smtp.sendmail(SENDER, [RECIPIENT], _clean(i)) == {}  # 250
                subjects = {str(m.message["Subject"]) for m in sink.to(RECIPIENT)}
                assert f"定例会議 {i}" in subjects, f"250 before the upstream had mail {i}"
                accepted.append(i)
        time.sleep(1.0)  # the group commit of these records is long done
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc = serve_process(config, port, log)
        before = len(sink.to(RECIPIENT))
        for i in accepted:
            code, reply = send(port, _clean(i))
            assert code == 250, reply
        time.sleep(0.5)
        assert len(sink.to(RECIPIENT)) == before, "a retry was delivered again"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        sink.stop()


def test_upstream_connections_are_reused_and_a_dead_one_is_replaced(tmp_path: Path):
    """Through the gateway: consecutive pass mails share one upstream connection; when
    the upstream drops it while idle, the next mail goes on a new one (still 250)."""
    sink = SmtpSink().start()
    gw = GatewayThread(make_config(tmp_path, sink), web=False).start()
    try:
        for i in range(5):
            assert send(gw.smtp_port, _clean(200 + i))[0] == 250
        upstream = gw.running.handler.upstream
        assert upstream.idle_connections == 1
        sink.stop()  # the upstream goes away and comes back: the cached connection is dead
        sink.start()
        assert send(gw.smtp_port, _clean(300))[0] == 250
        assert {str(m.message["Subject"]) for m in sink.to(RECIPIENT)} >= {"定例会議 300"}
    finally:
        gw.stop()
        sink.stop()
