"""Relay benchmark: dlp-gateway (scanning on) vs a bare aiosmtpd relay, ordinary 20 KB mail.

Both relays run in a process of their own, as deployed (the gateway is `dlp-gateway
serve`), and forward each message to the same upstream sink (in this process, with the
sending clients) over SMTP before answering 250: the bare relay opens one upstream
connection per message (smtplib in a thread), the gateway reuses its upstream
connections. The difference is what the gateway adds: scanning (in a worker process,
or inline for tiny text-only mail), the verdict, header insertion, the retry record.
Bare and gateway are measured in turn, ``--rounds`` times, each round in ``--slices``
alternating slices (the machine may be shared: compare the ratio of one round),
printing messages/s and per-message latency (median, p99) seen by the sending clients,
the ratio and the p99 the gateway adds, each relay's CPU per message, the verdict and
how many messages the sink got. A script, not a test.

    .venv/bin/python bench/relay_bench.py [--messages 300] [--clients 4] [--kb 20]
                                          [--rounds 3] [--slices 6] [--inline-bytes N]
                                          [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from aiosmtpd.controller import Controller

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


def run_load(port: int, messages: int, clients: int, kb: int = 20
             ) -> tuple[float, list[float]]:
    """Send ``messages`` from ``clients`` threads (one connection each)."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_client = messages // clients
    payloads = [ordinary_mail(i, kb) for i in range(per_client)]

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


def report(name: str, elapsed: float, latencies: list[float]) -> tuple[float, float]:
    """Print one measurement; return (messages/s, p99 in ms)."""
    lat = sorted(latencies)
    rate = len(lat) / elapsed
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(f"  {name:12} {rate:8.1f} msg/s   median {statistics.median(lat) * 1000:7.1f} ms   "
          f"p99 {p99 * 1000:7.1f} ms   ({len(lat)} messages)")
    return rate, p99 * 1000


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and all its descendants, from /proc (the
    gateway's scan workers are its grandchildren, under the forkserver)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += stats.get(current, (0, 0.0))[1]
        todo += [child for child, (parent, _cpu) in stats.items() if parent == current]
    return total


def measured_pair(relays: list[tuple[str, int, subprocess.Popen]], args: argparse.Namespace
                  ) -> tuple[list[tuple[float, float, float]], int]:
    """One round: ``args.messages`` per relay, sent in ``args.slices`` slices that
    alternate between the relays (a shared machine's load then weighs on both alike).
    Per relay: (messages/s, p99 ms, relay CPU ms per message); and how many were sent."""
    per_slice = max(args.clients, args.messages // args.slices)
    elapsed = [0.0] * len(relays)
    latencies: list[list[float]] = [[] for _ in relays]
    cpu = [0.0] * len(relays)
    for _ in range(args.slices):
        for i, (_name, port, proc) in enumerate(relays):
            before = tree_cpu_seconds(proc.pid)
            seconds, lat = run_load(port, per_slice, args.clients, args.kb)
            cpu[i] += tree_cpu_seconds(proc.pid) - before
            elapsed[i] += seconds
            latencies[i] += lat
    out = []
    for i, (name, _port, _proc) in enumerate(relays):
        rate, p99 = report(name, elapsed[i], latencies[i])
        per_mail = cpu[i] * 1000 / len(latencies[i])
        print(f"  {'':12} relay process CPU {per_mail:6.2f} ms per message")
        out.append((rate, p99, per_mail))
    return out, sum(len(lat) for lat in latencies)


def serve_bare(port: int, upstream_port: int) -> None:
    """``--serve-bare``: the bare relay as a process of its own."""
    relay = Controller(BareRelay(upstream_port), hostname="127.0.0.1", port=port)
    relay.start()
    threading.Event().wait()


def spawn(args: list[str], port: int, log: Path) -> subprocess.Popen:
    """Run in the temp dir: ``-m dlp_gateway.cli`` is the installed package (or whatever
    PYTHONPATH names, to compare two trees), not the checkout the bench sits in."""
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL,
                                stderr=out, cwd=log.parent)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text("utf-8", "replace"))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(3) == b"220":
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise TimeoutError(f"nothing answers on port {port}")


def start_gateway(tmp: Path, port: int, upstream_port: int, args: argparse.Namespace
                  ) -> subprocess.Popen:
    lines = ["[gateway]", f'listen = "127.0.0.1:{port}"',
             f'upstream = "127.0.0.1:{upstream_port}"',
             f'admin_listen = "127.0.0.1:{free_port()}"', f'data_dir = "{tmp / "data"}"',
             f"scan_workers = {args.workers}"]
    if args.inline_bytes is not None:
        lines.append(f"inline_scan_bytes = {args.inline_bytes}")
    (tmp / "gateway.toml").write_text("\n".join(lines) + "\n", "utf-8")
    return spawn(["-m", "dlp_gateway.cli", "serve", "--config", str(tmp / "gateway.toml"),
                  "--log-level", "WARNING"], port, tmp / "gateway.log")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--kb", type=int, default=20, help="mail size (20: ordinary mail)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="bare and gateway measured in turn this many times")
    parser.add_argument("--slices", type=int, default=6,
                        help="per round, the relays take turns this many times")
    parser.add_argument("--workers", type=int, default=0, help="scan workers (0: per CPU)")
    parser.add_argument("--inline-bytes", type=int, default=None,
                        help="inline_scan_bytes (default: the gateway's default; 0: off)")
    parser.add_argument("--serve-bare", nargs=2, type=int, metavar=("PORT", "UPSTREAM"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(*args.serve_bare)
        return

    sink_handler = CountingSink()
    sink = Controller(sink_handler, hostname="127.0.0.1", port=free_port())
    sink.start()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bare_port, gw_port = free_port(), free_port()
        bare = spawn([__file__, "--serve-bare", str(bare_port), str(sink.port)], bare_port,
                     tmp / "bare.log")
        gateway = start_gateway(tmp, gw_port, sink.port, args)
        try:
            run_load(bare_port, 40, args.clients, args.kb)  # warm-up both
            run_load(gw_port, 40, args.clients, args.kb)
            print(f"{args.messages} mails of {args.kb} KB per relay per round, {args.clients}"
                  f" clients, scan workers {args.workers or 'per CPU'}, inline lane "
                  f"{'default' if args.inline_bytes is None else args.inline_bytes}, "
                  f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
            ratios, added, cpu_ratios = [], [], []
            for n in range(args.rounds):
                before = sink_handler.count
                [(base, base_p99, base_cpu), (gw, gw_p99, gw_cpu)], sent = measured_pair(
                    [("bare relay", bare_port, bare), ("dlp-gateway", gw_port, gateway)], args)
                delivered = sink_handler.count - before
                ratios.append(gw / base)
                added.append(gw_p99 - base_p99)
                cpu_ratios.append(gw_cpu / base_cpu if base_cpu else 0.0)
                print(f"round {n + 1}: ratio {gw / base:.2f}, p99 added {added[-1]:.1f} ms, "
                      f"CPU per mail {cpu_ratios[-1]:.1f}x the bare relay's, verdict pass, "
                      f"{delivered} delivered of {sent}")
            print(f"throughput ratio (median of {len(ratios)}): {statistics.median(ratios):.2f}"
                  f" (target >= 0.8), p99 added: {statistics.median(added):.1f} ms "
                  f"(target <= 10), relay CPU per mail: {statistics.median(cpu_ratios):.1f}x")
        finally:
            stop(gateway)
            stop(bare)
            sink.stop()


if __name__ == "__main__":
    main()
