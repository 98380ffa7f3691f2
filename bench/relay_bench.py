"""Relay benchmark: dlp-gateway (scanning on) vs a bare aiosmtpd relay, ordinary 20 KB mail.

Both relays forward each message to the same upstream sink over SMTP before
answering 250 (one upstream connection per message, smtplib in a thread), so
the difference is what the gateway adds: scanning in a worker process, the
verdict, header insertion. Prints messages/s and per-message latency (median,
p99) seen by the sending clients. A script, not a test: run it once.

    .venv/bin/python bench/relay_bench.py [--messages 300] [--clients 4]
"""

from __future__ import annotations

import argparse
import asyncio
import smtplib
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dlp_gateway.config import load_config
from dlp_gateway.server import start

SENDER = "staff@city.example.lg.jp"
RECIPIENT = "partner@example.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ordinary_mail(i: int, kb: int = 20) -> bytes:
    line = "来週の定例会議は第二会議室で午後二時から開催します。資料は当日配布します。\n"
    body = "各位\n\n" + line * ((kb * 1024) // len(line.encode())) + "\n総務課 山田\n"
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = RECIPIENT
    msg["Subject"] = f"定例会議のお知らせ {i}"
    msg.set_content(body)
    return msg.as_bytes(policy=SMTP)


class CountingSink:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        self.count += 1
        return "250 OK"


class BareRelay:
    """What a minimal aiosmtpd relay does: forward, then answer 250."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port

    def _forward(self, mail_from: str, rcpts: list[str], data: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", self.upstream_port, timeout=30) as smtp:
            smtp.sendmail(mail_from, rcpts, data)

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        await asyncio.to_thread(
            self._forward, envelope.mail_from, envelope.rcpt_tos, envelope.original_content
        )
        return "250 OK"


def run_load(port: int, messages: int, clients: int) -> tuple[float, list[float]]:
    """Send ``messages`` from ``clients`` threads (one connection each)."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = messages // clients
    payloads = [ordinary_mail(i) for i in range(per_client)]

    def client(_n: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
            for raw in payloads:
                t0 = time.perf_counter()
                smtp.sendmail(SENDER, [RECIPIENT], raw)
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return time.perf_counter() - started, latencies


def report(name: str, elapsed: float, latencies: list[float]) -> float:
    lat = sorted(latencies)
    rate = len(lat) / elapsed
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(f"{name:12} {rate:8.1f} msg/s   median {statistics.median(lat) * 1000:7.1f} ms   "
          f"p99 {p99 * 1000:7.1f} ms   ({len(lat)} messages)")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=0, help="scan workers (0: per CPU)")
    args = parser.parse_args()

    sink_handler = CountingSink()
    sink = Controller(sink_handler, hostname="127.0.0.1", port=free_port())
    sink.start()
    bare = Controller(BareRelay(sink.port), hostname="127.0.0.1", port=free_port())
    bare.start()

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(
            None, listen="127.0.0.1:0", upstream=f"127.0.0.1:{sink.port}",
            data_dir=Path(tmp), scan_workers=args.workers,
        )
        running = asyncio.run_coroutine_threadsafe(start(config, web=False), loop).result(120)
        try:
            run_load(bare.port, 40, args.clients)  # warm-up both
            run_load(running.smtp_port, 40, args.clients)
            base = report("bare relay", *run_load(bare.port, args.messages, args.clients))
            gw = report("dlp-gateway", *run_load(running.smtp_port, args.messages, args.clients))
            print(f"throughput ratio: {gw / base:.2f} (target >= 0.5), "
                  f"scan workers: {config.workers}, cpus: {__import__('os').cpu_count()}")
        finally:
            asyncio.run_coroutine_threadsafe(running.stop(), loop).result(60)
            loop.call_soon_threadsafe(loop.stop)
            bare.stop()
            sink.stop()


if __name__ == "__main__":
    main()
