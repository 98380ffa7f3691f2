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
import re
import resource
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
from proc_cpu import Sampler, TreeCpu, machine_busy, postfix_role

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

    @property
    def log(self) -> Path:
        return self.root / "maillog"

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

    def master_pid(self) -> int:
        return int((self.root / "queue" / "pid" / "master.pid").read_text().split()[0])

    def roles(self, pid: int) -> str:
        """Postfix service of a process, the smtpd listeners named by their role."""
        role = postfix_role(pid)
        return {f"127.0.0.1:{self.public_port}": "smtpd :public",
                f"127.0.0.1:{self.reinject_port}": "smtpd :reinject"}.get(role, role)

    def cpu(self) -> TreeCpu:
        return TreeCpu(self.master_pid, self.roles)

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
def start_gateway(root: Path, port: int, upstream_port: int,
                  profile: str | None = None) -> subprocess.Popen:
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
        # --profile-gateway: cProfile of the serving process (written when it stops)
        profiler = ["-m", "cProfile", "-o", str(Path(profile).resolve())] if profile else []
        proc = subprocess.Popen(
            [sys.executable, *profiler, "-m", "dlp_gateway.cli", "serve", "--config",
             str(config), "--log-level", "WARNING"],
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
    cpu: dict[str, float] = field(default_factory=dict)  # role -> CPU ms per mail
    delays: dict[str, list[float]] = field(default_factory=dict)  # hop -> median a/b/c/d


_DELIVERY = re.compile(r"relay=[^ ]*\]:(\d+), .*?delays=([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+),"
                       r".*status=sent")


def delays_by_port(log: Path, offset: int) -> dict[int, list[float]]:
    """Median Postfix delays=a/b/c/d (seconds) of the sent lines after ``offset``, by the
    relay's port: a = before the active queue (smtpd, cleanup, incoming), b = in the
    active queue waiting for a delivery agent, c = connection set-up, d = transmission."""
    with log.open("rb") as fh:
        fh.seek(offset)
        text = fh.read().decode("utf-8", "replace")
    found: dict[int, list[list[float]]] = {}
    for m in _DELIVERY.finditer(text):
        found.setdefault(int(m[1]), []).append([float(x) for x in m.groups()[1:]])
    return {port: [statistics.median(col) for col in zip(*rows, strict=True)]
            for port, rows in found.items()}


def build_mails(prefix: str, messages: int, clients: int, kb: int) -> dict[str, bytes]:
    """The same mail for every message but its X-Bench-Id, built before the clock starts."""
    per_client = max(1, messages // clients)
    return {f"{prefix}-{n}-{i}": ordinary_mail(f"{prefix}-{n}-{i}", kb)
            for n in range(clients) for i in range(per_client)}


def run_load(port: int, sink: ArrivalSink, prefix: str, messages: int, clients: int,
             kb: int, mails: dict[str, bytes] | None = None) -> Result:
    per_client = max(1, messages // clients)
    started: dict[str, float] = {}
    lock = threading.Lock()
    mails = mails or build_mails(prefix, messages, clients, kb)

    def client(n: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
            for i in range(per_client):
                tag = f"{prefix}-{n}-{i}"
                t0 = time.perf_counter()
                smtp.sendmail(SENDER, [RECIPIENT], mails[tag])
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


def measured(pf: Postfix, sink: ArrivalSink, prefix: str, args: argparse.Namespace,
             groups: dict[str, TreeCpu], hops: dict[int, str]) -> Result:
    """run_load, with the CPU per mail of each process group (and role within Postfix)
    and the median Postfix delays of each hop (``hops``: relay port -> name)."""
    port = pf.public_port
    mails = build_mails(prefix, args.messages, args.clients, args.kb)
    log_offset = pf.log.stat().st_size if pf.log.exists() else 0
    busy0, self0 = machine_busy(), resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.perf_counter()
    with Sampler(list(groups.values())):
        result = run_load(port, sink, prefix, args.messages, args.clients, args.kb, mails)
    self1, busy1 = resource.getrusage(resource.RUSAGE_SELF), machine_busy()
    wall = time.perf_counter() - wall0
    n = args.messages // args.clients * args.clients
    cpu: dict[str, float] = {}
    for group, tree_cpu in groups.items():
        total, by_role = tree_cpu.stop()
        if os.environ.get("BENCH_DEBUG"):
            print("   ", group, tree_cpu.processes())
        for role, seconds in by_role.items():
            cpu[f"{group} {role}"] = seconds * 1000 / n
        cpu[f"{group} total"] = total * 1000 / n
    harness = (self1.ru_utime + self1.ru_stime - self0.ru_utime - self0.ru_stime)
    cpu["bench clients + sink"] = harness * 1000 / n
    ours = sum(v for k, v in cpu.items() if k.endswith(" total")) + cpu["bench clients + sink"]
    cpu["machine busy"] = (busy1 - busy0) * 1000 / n
    cpu["other processes"] = cpu["machine busy"] - ours
    cpu["cpus busy"] = (busy1 - busy0) / wall  # not per mail: how loaded the machine was
    result.cpu = cpu
    time.sleep(0.5)  # Postfix logs a delivery just after the sink answered it
    found = delays_by_port(pf.log, log_offset)
    result.delays = {name: found[p] for p, name in hops.items() if p in found}
    return result


def show(name: str, r: Result) -> None:
    print(f"  {name:26} {r.rate:7.1f} msg/s   median {r.median * 1000:7.1f} ms   "
          f"p99 {r.p99 * 1000:7.1f} ms", flush=True)


def show_cpu(title: str, base: dict[str, float], gw: dict[str, float]) -> None:
    """CPU ms per mail, by process group and Postfix service, both chains side by side."""
    print(f"  {title:34} {'alone':>7} {'gateway':>8}")
    order = ["postfix smtpd :public", "postfix cleanup", "postfix qmgr", "postfix rewrite",
             "postfix dlpscan", "postfix smtpd :reinject", "postfix dlpcleanup",
             "postfix smtp"]
    rest = sorted(k for k in {*base, *gw} if k.startswith("postfix ") and k not in order
                  and not k.endswith(" total"))
    for key in [*order, *rest, "postfix total", "gateway gateway",
                "gateway scan workers", "gateway exited", "gateway total",
                "bench clients + sink", "other processes", "machine busy", "cpus busy"]:
        a, g = base.get(key), gw.get(key)
        if (a or 0) < 0.005 and (g or 0) < 0.005:
            continue
        cell = [f"{v:7.2f}" if v is not None else "      -" for v in (a, g)]
        print(f"    {key:32} {cell[0]} {cell[1]:>8}")


def show_delays(results: list[Result]) -> None:
    print(f"  Postfix delays, median s{'':12} {'a':>6} {'b':>6} {'c':>6} {'d':>6}")
    for r in results:
        for hop, (a, b, c, d) in r.delays.items():
            print(f"    {hop:32} {a:6.2f} {b:6.2f} {c:6.2f} {d:6.2f}")


def median_cpu(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = {k for run in runs for k in run}
    return {k: statistics.median(run.get(k, 0.0) for run in runs) for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--kb", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm-up", type=int, default=100)
    parser.add_argument("--profile-gateway", metavar="FILE",
                        help="run the gateway under cProfile, stats to FILE (pstats)")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy both maillogs and the "
                        "gateway's log here at the end")
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
    gateway = start_gateway(gw_root, gateway_port, filtered.reinject_port,
                            args.profile_gateway)
    gw_pid = gateway.pid
    gw_cpu = TreeCpu(lambda: gw_pid, lambda pid: "gateway" if pid == gw_pid else "scan workers")
    alone_hops = {sink_ctl.port: "alone: -> sink"}
    chain_hops = {gateway_port: "chain: -> gateway (dlpscan)",
                  sink_ctl.port: "chain: reinjected -> sink"}
    ratios: list[float] = []
    cpus: tuple[list[dict[str, float]], list[dict[str, float]]] = ([], [])
    try:
        run_load(alone.public_port, sink, "warm-a", args.warm_up, args.clients, args.kb)
        run_load(filtered.public_port, sink, "warm-g", args.warm_up, args.clients, args.kb)
        print(f"{args.messages} mails of {args.kb} KB per chain per round, "
              f"{args.clients} clients, cpus: {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
        for n in range(args.rounds):
            runs = {
                "alone": lambda n=n: measured(alone, sink, f"a{n}", args,
                                              {"postfix": alone.cpu()}, alone_hops),
                "gateway": lambda n=n: measured(filtered, sink, f"g{n}", args,
                                                {"postfix": filtered.cpu(), "gateway": gw_cpu},
                                                chain_hops),
            }
            order = ["alone", "gateway"] if n % 2 == 0 else ["gateway", "alone"]
            done = {name: runs[name]() for name in order}  # each chain first in turn
            base, gw = done["alone"], done["gateway"]
            print(f"round {n + 1} ({order[0]} first): ratio {gw.rate / base.rate:.2f}")
            show("Postfix alone", base)
            show("Postfix + dlp-gateway", gw)
            show_cpu("CPU ms per mail", base.cpu, gw.cpu)
            show_delays([base, gw])
            ratios.append(gw.rate / base.rate)
            cpus[0].append(base.cpu)
            cpus[1].append(gw.cpu)
        print(f"throughput ratio (median of {len(ratios)}): {statistics.median(ratios):.2f}"
              f" (rounds: {', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.6 for 2 KB)")
        show_cpu("CPU ms per mail, median of rounds", median_cpu(cpus[0]), median_cpu(cpus[1]))
    finally:
        gateway.terminate()
        try:
            gateway.wait(30)
        except subprocess.TimeoutExpired:
            gateway.kill()
        if args.keep_logs:
            keep = Path(args.keep_logs)
            keep.mkdir(parents=True, exist_ok=True)
            for name, pf in (("alone", alone), ("gateway-chain", filtered)):
                if pf.log.exists():
                    shutil.copy(pf.log, keep / f"maillog.{name}")
            shutil.copy(gw_root / "gateway.log", keep / "gateway.log")
        alone.stop()
        filtered.stop()
        sink_ctl.stop()
        shutil.rmtree(gw_root, ignore_errors=True)


if __name__ == "__main__":
    main()
