"""Several-nodes benchmark: one node on SQLite, one node and two nodes on PostgreSQL.

Each node is a real `dlp-gateway serve` process; the PostgreSQL server is a private
throwaway cluster (tests/pgcluster.py; needs Debian's postgresql). Three loads, each
from ``--clients`` SMTP clients spread over the nodes:

- pass:  ordinary 2 KB mail, relayed upstream before the 250 (one audit-free path);
- hold:  a 20-person roster, held (spool bytes + row + notices + audit row committed);
- queue: ``--messages`` items put in the outbound queue at once (by another process),
  rate from the first delivery to the last (the nodes' workers drain one queue together).

Prints messages/s per setup. A script, not a test:

    .venv/bin/python bench/nodes_bench.py [--messages 200] [--clients 4]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import smtplib
import socket
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dlp_gateway.config import load_config  # noqa: E402
from dlp_gateway.gateway import Gateway  # noqa: E402
from tests.conftest import roster_mail  # noqa: E402
from tests.pgcluster import PgCluster, find_bindir  # noqa: E402

SENDER = "staff@city.example.lg.jp"
RECIPIENT = "partner@example.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def small_mail(i: int, kb: int = 2) -> bytes:
    line = "来週の定例会議は第二会議室で午後二時から開催します。\n"
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = SENDER, RECIPIENT, f"定例会議 {i}"
    msg.set_content("各位\n\n" + line * ((kb * 1024) // len(line.encode())))
    return msg.as_bytes(policy=SMTP)


class CountingSink:
    """Counts the queue-drain items (recipients drain-N@...) apart from everything else
    (notices of earlier holds may still be arriving)."""

    def __init__(self) -> None:
        self.count = 0
        self.drained = 0
        self.first = self.last = 0.0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        with self.lock:
            self.count += 1
            if envelope.rcpt_tos[0].startswith("drain-"):
                self.drained += 1
                self.first = self.first or time.perf_counter()
                self.last = time.perf_counter()
        return "250 OK"


class Node:
    def __init__(self, root: Path, name: str, upstream: int, url: str, workers: int):
        self.smtp_port = free_port()
        self.data_dir = root / name
        self.config = root / f"{name}.toml"
        self.config.write_text(
            f'listen = "127.0.0.1:{self.smtp_port}"\nadmin_listen = "127.0.0.1:{free_port()}"\n'
            f'upstream = "127.0.0.1:{upstream}"\ndata_dir = "{self.data_dir}"\n'
            f'database_url = "{url}"\naudit_key_file = "{root / "audit.key"}"\n'
            f"scan_workers = {workers}\n"
        )
        self.log = root / f"{name}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dlp_gateway.cli", "serve", "--config", str(self.config)],
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
            cwd=ROOT,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(self.log.read_text())
            with contextlib.suppress(OSError), \
                    socket.create_connection(("127.0.0.1", self.smtp_port), timeout=0.5):
                return
            time.sleep(0.1)
        raise SystemExit(f"node did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def run_load(ports: list[int], payloads: list[bytes], clients: int) -> float:
    """Send every payload from ``clients`` connections spread over ``ports``; msg/s."""
    chunks = [payloads[i::clients] for i in range(clients)]

    def client(n: int) -> None:
        with smtplib.SMTP("127.0.0.1", ports[n % len(ports)], timeout=300) as smtp:
            for raw in chunks[n]:
                smtp.sendmail(SENDER, [RECIPIENT], raw)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return len(payloads) / (time.perf_counter() - started)


def drain_rate(root: Path, url: str, sink: CountingSink, messages: int) -> float:
    """Queue ``messages`` items at once; msg/s until the upstream has them all. (SQLite:
    the writer opens the node's own data directory, as the operators' CLI does.)"""
    data_dir = root / ("writer" if url else "n0")
    writer = Gateway(load_config(None, data_dir=data_dir, database_url=url,
                                 audit_key_file=root / "audit.key"))
    try:
        sink.drained, sink.first = 0, 0.0
        raw = small_mail(0)
        with writer.db.transaction() as conn:
            for i in range(messages):
                writer.queue.enqueue(SENDER, [f"drain-{i}@example.com"], raw, conn=conn)
        started = time.perf_counter()
        while sink.drained < messages:
            if time.perf_counter() - started > 300:
                raise SystemExit("queue not drained in 300 s")
            time.sleep(0.01)
        # From the first delivery to the last: the nodes find new items by polling the
        # queue once a second, and that first wait is not throughput.
        return (messages - 1) / max(1e-6, sink.last - sink.first)
    finally:
        writer.close()


def _keep(tmp: str, args: argparse.Namespace) -> str:
    """With ``--keep``, the nodes' logs and data go to a directory that stays."""
    return tempfile.mkdtemp(prefix="dlp-nodes-bench-") if args.keep else tmp


def measure(name: str, url: str, nodes_n: int, args: argparse.Namespace,
            sink: CountingSink, sink_port: int) -> None:
    with tempfile.TemporaryDirectory(prefix="dlp-nodes-bench-") as tmp:  # logs: --keep
        tmp = _keep(tmp, args)
        root = Path(tmp)
        nodes = [Node(root, f"n{i}", sink_port, url, args.workers) for i in range(nodes_n)]
        try:
            for node in nodes:
                node.wait_ready()
            ports = [n.smtp_port for n in nodes]
            run_load(ports, [small_mail(i) for i in range(20)], args.clients)  # warm-up
            passed = run_load(ports, [small_mail(i) for i in range(args.messages)], args.clients)
            held = run_load(ports, [roster_mail(20) for _ in range(args.messages // 4)],
                            args.clients)
            drained = drain_rate(root, url, sink, args.messages)
            if args.keep:
                print(f"  logs: {root}")
            print(f"{name:24} pass {passed:7.1f} msg/s   hold {held:6.1f} msg/s   "
                  f"queue drain {drained:7.1f} msg/s")
        finally:
            for node in nodes:
                node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="scan workers per node")
    parser.add_argument("--keep", action="store_true", help="keep the nodes' logs (printed)")
    args = parser.parse_args()

    sink = CountingSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        measure("1 node, SQLite", "", 1, args, sink, controller.port)
        bindir = find_bindir()
        if bindir is None:
            print("PostgreSQL not installed (make postgresql): PostgreSQL rows skipped")
            return
        cluster = PgCluster(bindir, durable=True).start()  # fsync on, like SQLite's FULL
        try:
            measure("1 node, PostgreSQL", cluster.database("bench"), 1, args, sink,
                    controller.port)
            measure("2 nodes, one PostgreSQL", cluster.database("bench"), 2, args, sink,
                    controller.port)
        finally:
            cluster.stop()
    finally:
        controller.stop()
    print(f"cpus: {os.cpu_count()}, clients: {args.clients}, scan workers per node: "
          f"{args.workers}")


if __name__ == "__main__":
    main()
