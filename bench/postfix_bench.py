"""Throughput behind a real Postfix: Postfix alone vs Postfix -> dlp-gateway -> Postfix.

Two private Postfix instances (own config, queue and data directories under a temp dir,
`postfix -c DIR`, OS-chosen loopback ports; the system Postfix is never touched) relay to
one aiosmtpd sink on loopback:

    alone:    clients -> Postfix A :PUB -> sink
    gateway:  clients -> Postfix B :PUB -> dlpscan -> dlp-gateway (serve, own process)
                                  -> Postfix B :REINJECT -> sink

Postfix B gets deploy/postfix/*.snippet appended as written (only the ports are moved);
both use Postfix's default timers. Each round sends the same ordinary mail (2 KB by
default) from several clients to each chain in turn and measures, per message, the time
from the start of the client's submission to the message's arrival at the sink, and the
chain's throughput (messages / time from the first submission to the last arrival).
Prints messages/s, median and p99 latency and the ratio per round, then the median ratio.

Needs root and Debian's postfix (`make postfix`); otherwise it says why and exits 0.
A script, not a test:

    .venv/bin/python bench/postfix_bench.py [--messages 200] [--clients 4] [--kb 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from aiosmtpd.controller import Controller

REPO = Path(__file__).resolve().parent.parent
SNIPPETS = REPO / "deploy" / "postfix"
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTCONF = shutil.which("postconf") or "/usr/sbin/postconf"
SENDER = "staff@city.example.lg.jp"
RECIPIENT = "partner@example.com"
SNIPPET_REINJECT = "127.0.0.1:10026"
SNIPPET_FILTER = "[127.0.0.1]:10025"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to run a private Postfix instance"
    if not (os.path.exists(POSTFIX) and os.path.exists(POSTCONF)):
        return "Debian's postfix is not installed (`make postfix` installs it as root)"
    return None


def ordinary_mail(tag: str, kb: int) -> bytes:
    line = "来週の定例会議は第二会議室で午後二時から開催します。資料は当日配布します。\n"
    body = "各位\n\n" + line * max(1, (kb * 1024 - 600) // len(line.encode())) + "\n総務課\n"
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = RECIPIENT
    msg["Subject"] = "定例会議のお知らせ"
    msg["X-Bench-Id"] = tag
    msg.set_content(body)
    return msg.as_bytes(policy=SMTP)


# -- the sink ----------------------------------------------------------------------------
class ArrivalSink:
    """Records when each X-Bench-Id arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        now = time.perf_counter()
        data: bytes = envelope.original_content or b""
        head = data.split(b"\r\n\r\n", 1)[0]
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"x-bench-id:"):
                with self.changed:
                    self.arrived.setdefault(line.split(b":", 1)[1].strip().decode(), now)
                    self.changed.notify_all()
        return "250 2.0.0 OK"

    def wait_for(self, tags: list[str], timeout: float) -> list[float]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not all(t in self.arrived for t in tags):
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = [t for t in tags if t not in self.arrived]
                    raise TimeoutError(f"{len(missing)} message(s) never arrived")
                self.changed.wait(min(left, 0.5))
            return [self.arrived[t] for t in tags]


# -- a private Postfix instance ----------------------------------------------------------
@dataclass
class Postfix:
    root: Path
    public_port: int = field(default_factory=free_port)
    reinject_port: int = field(default_factory=free_port)

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    def postconf(self, *args: str) -> str:
        return subprocess.run([POSTCONF, "-c", str(self.etc), *args], capture_output=True,
                              text=True, check=True, timeout=30).stdout

    def postfix(self, *args: str) -> None:
        done = subprocess.run([POSTFIX, "-c", str(self.etc), *args], capture_output=True,
                              text=True, timeout=60)
        if done.returncode != 0:
            log = (self.root / "maillog")
            tail = log.read_text("utf-8", "replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"postfix {' '.join(args)}: {done.stderr}\n{tail}")

    def stop(self) -> None:
        try:
            self.postfix("stop")
        except Exception:
            subprocess.run([POSTFIX, "-c", str(self.etc), "abort"], timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


def start_postfix(sink_port: int, gateway_port: int | None) -> Postfix:
    """Defaults everywhere except paths and ports; with ``gateway_port`` the snippets."""
    root = Path(tempfile.mkdtemp(prefix="dlp-postfix-bench-"))
    root.chmod(0o755)
    pf = Postfix(root)
    for sub in ("etc", "queue", "data"):
        (root / sub).mkdir()
    shutil.chown(root / "data", "postfix")
    shutil.copy("/etc/postfix/master.cf", pf.etc / "master.cf")
    if Path("/etc/postfix/dynamicmaps.cf").exists():
        shutil.copy("/etc/postfix/dynamicmaps.cf", pf.etc)
    (pf.etc / "main.cf").write_text("\n".join([
        "compatibility_level = 3.6",
        f"queue_directory = {root / 'queue'}",
        f"data_directory = {root / 'data'}",
        f"maillog_file = {root / 'maillog'}",
        f"maillog_file_prefixes = {root}",
        "inet_interfaces = 127.0.0.1",
        "inet_protocols = ipv4",
        "myhostname = mx.city.example.lg.jp",
        "mydomain = city.example.lg.jp",
        "mydestination =",
        "mynetworks = 127.0.0.0/8",
        f"relayhost = [127.0.0.1]:{sink_port}",
        "smtp_dns_support_level = disabled",
        "smtputf8_enable = yes",
        "",
    ]), "utf-8")
    pf.postconf("-F", "*/*/chroot = n")
    if gateway_port is not None:
        with (pf.etc / "main.cf").open("a", encoding="utf-8") as fh:
            fh.write("\n" + (SNIPPETS / "main.cf.snippet").read_text("utf-8"))
        with (pf.etc / "master.cf").open("a", encoding="utf-8") as fh:
            fh.write("\n" + (SNIPPETS / "master.cf.snippet").read_text("utf-8"))
        value = pf.postconf("-h", "content_filter").strip()
        pf.postconf("-e", "content_filter=" + value.replace(SNIPPET_FILTER,
                                                            f"[127.0.0.1]:{gateway_port}"))
        entry = " ".join(pf.postconf("-M", f"{SNIPPET_REINJECT}/inet").split())
        name = f"127.0.0.1:{pf.reinject_port}"
        pf.postconf("-M#", f"{SNIPPET_REINJECT}/inet")
        pf.postconf("-Me", f"{name}/inet = {entry.replace(SNIPPET_REINJECT, name, 1)}")
    public = " ".join(pf.postconf("-M", "smtp/inet").split())
    pf.postconf("-M#", "smtp/inet")
    name = f"127.0.0.1:{pf.public_port}"
    pf.postconf("-Me", f"{name}/inet = {public.replace('smtp', name, 1)}")
    pf.postfix("start")
    wait_port(pf.public_port)
    return pf


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                if sock.recv(3) == b"220":
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"nothing answers on port {port}")


# -- the gateway, in its own process as deployed -----------------------------------------
def start_gateway(root: Path, port: int, upstream_port: int) -> subprocess.Popen:
    config = root / "gateway.toml"
    config.write_text("\n".join([
        "[gateway]",
        f'listen = "127.0.0.1:{port}"',
        f'upstream = "127.0.0.1:{upstream_port}"',
        f'admin_listen = "127.0.0.1:{free_port()}"',
        f'data_dir = "{root / "data"}"',
        'internal_domains = ["city.example.lg.jp"]',
        'hostname = "dlp-gateway.city.example.lg.jp"',
        "",
    ]), "utf-8")
    with (root / "gateway.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dlp_gateway.cli", "serve", "--config", str(config),
             "--log-level", "WARNING"],
            cwd=root, stdout=subprocess.DEVNULL, stderr=log,  # the installed package
        )
    wait_port(port, 120)
    return proc


# -- load ---------------------------------------------------------------------------------
@dataclass
class Result:
    rate: float
    median: float
    p99: float


def run_load(port: int, sink: ArrivalSink, prefix: str, messages: int, clients: int,
             kb: int) -> Result:
    per_client = max(1, messages // clients)
    started: dict[str, float] = {}
    lock = threading.Lock()

    def client(n: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
            for i in range(per_client):
                tag = f"{prefix}-{n}-{i}"
                raw = ordinary_mail(tag, kb)
                t0 = time.perf_counter()
                smtp.sendmail(SENDER, [RECIPIENT], raw)
                with lock:
                    started[tag] = t0

    first = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    tags = sorted(started)
    arrivals = sink.wait_for(tags, timeout=300)
    latencies = sorted(a - started[t] for t, a in zip(tags, arrivals, strict=True))
    elapsed = max(arrivals) - first
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return Result(len(tags) / elapsed, statistics.median(latencies), p99)


def show(name: str, r: Result) -> None:
    print(f"  {name:26} {r.rate:7.1f} msg/s   median {r.median * 1000:7.1f} ms   "
          f"p99 {r.p99 * 1000:7.1f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--kb", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    reason = skip_reason()
    if reason:
        print(f"postfix bench skipped: {reason}")
        return

    sink = ArrivalSink()
    sink_ctl = Controller(sink, hostname="127.0.0.1", port=free_port())
    sink_ctl.start()
    gateway_port = free_port()
    alone = start_postfix(sink_ctl.port, None)
    filtered = start_postfix(sink_ctl.port, gateway_port)
    gw_root = Path(tempfile.mkdtemp(prefix="dlp-gw-bench-"))
    gateway = start_gateway(gw_root, gateway_port, filtered.reinject_port)
    ratios = []
    try:
        run_load(alone.public_port, sink, "warm-a", 20, args.clients, args.kb)
        run_load(filtered.public_port, sink, "warm-g", 20, args.clients, args.kb)
        print(f"{args.messages} mails of {args.kb} KB per chain per round, "
              f"{args.clients} clients, cpus: {os.cpu_count()}")
        for n in range(args.rounds):
            base = run_load(alone.public_port, sink, f"a{n}", args.messages, args.clients,
                            args.kb)
            gw = run_load(filtered.public_port, sink, f"g{n}", args.messages, args.clients,
                          args.kb)
            print(f"round {n + 1}: ratio {gw.rate / base.rate:.2f}")
            show("Postfix alone", base)
            show("Postfix + dlp-gateway", gw)
            ratios.append(gw.rate / base.rate)
        print(f"throughput ratio (median of {len(ratios)}): {statistics.median(ratios):.2f}"
              " (target >= 0.6 for 2 KB mail)")
    finally:
        gateway.terminate()
        try:
            gateway.wait(30)
        except subprocess.TimeoutExpired:
            gateway.kill()
        alone.stop()
        filtered.stop()
        sink_ctl.stop()
        shutil.rmtree(gw_root, ignore_errors=True)


if __name__ == "__main__":
    main()
