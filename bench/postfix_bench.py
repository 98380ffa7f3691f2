"""Throughput behind a real Postfix: Postfix alone vs Postfix -> dlp-gateway -> Postfix.

Private Postfix instances (own config, queue and data directories under a temp dir,
`postfix -c DIR`, OS-chosen loopback ports; the system Postfix is never touched) relay to
one aiosmtpd sink on loopback:

    alone:    clients -> Postfix A :PUB -> sink
    gateway:  clients -> Postfix B :PUB -> dlpscan -> dlp-gateway (serve, own process)
                                  -> Postfix B :REINJECT -> sink
    bare:     clients -> Postfix C :PUB -> dlpscan -> bare Python relay (own process)
                                  -> Postfix C :REINJECT -> sink
    bq:       clients -> Postfix D :PUB -(smtpd_proxy_filter)-> dlp-gateway (serve)
                                  -> Postfix D :REINJECT -> sink   (before-queue)

Postfix B and C get deploy/postfix/*.snippet appended as written, Postfix D
deploy/postfix/before-queue/*.snippet (only the ports are moved); all use Postfix's
default timers. In the before-queue chain (--no-before-queue leaves it out) the client
waits while smtpd hands the mail to the gateway, so each mail passes Postfix's cleanup,
qmgr and smtp once. The bare relay (--no-bare leaves it out) is the
floor of any Python after-queue filter: aiosmtpd in, the gateway's reused upstream
connections out, no scan, no database. Each round sends the same ordinary mail (2 KB by
default) from the same clients to each chain, in ``--slices`` turns (the chains take turns,
so a change of the machine's load hits all of them; each round another chain goes first)
and measures, per message, the time from the start of the client's submission to its
arrival at the sink, and the chain's throughput (messages / time from the first
submission to the last arrival, summed over the slices).

Per round it prints messages/s, median and p99 latency and the ratio to Postfix alone;
the CPU milliseconds per mail of every Postfix service (from /proc: each process's own
time, "exited" for processes that ended meanwhile), of the gateway and its scan
workers, of the bench's own clients and sink, and of everything else on the machine;
and the median Postfix delays=a/b/c/d of each hop (b: waiting in the active queue for
a delivery agent). At the end: the median ratio, the CPU ratio (the chains' own CPU per
mail, which is what decides throughput where the CPU runs out) and the ceiling with a
filter that costs no CPU at all.

Needs root and Debian's postfix (`make postfix`); otherwise it says why and exits 0.
A script, not a test:

    .venv/bin/python bench/postfix_bench.py [--messages 1200] [--slices 3] [--clients 4]
        [--kb 2] [--rounds 3] [--no-bare] [--no-before-queue] [--keep-logs DIR]
        [--profile-gateway FILE] [--profile-before-queue FILE]
        [--compare-snippets DIR] [--compare-pythonpath DIR]

With --compare-snippets (e.g. the snippets of an earlier commit: `git show
REV:deploy/postfix/master.cf.snippet > DIR/master.cf.snippet`, same for main.cf) and/or
--compare-pythonpath (another checkout's root), a fourth chain runs in the same rounds.
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
BEFORE_QUEUE = SNIPPETS / "before-queue"
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTCONF = shutil.which("postconf") or "/usr/sbin/postconf"
SENDER = "staff@city.example.lg.jp"
RECIPIENT = "partner@example.com"
SNIPPET_REINJECT = "127.0.0.1:10026"
SNIPPET_FILTER = "[127.0.0.1]:10025"
SNIPPET_PROXY = "127.0.0.1:10025"
STARTED: list[Postfix] = []


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


def start_postfix(sink_port: int, gateway_port: int | None, snippets: Path = SNIPPETS) -> Postfix:
    """Defaults everywhere except paths and ports; with ``gateway_port`` the snippets."""
    root = Path(tempfile.mkdtemp(prefix="dlp-postfix-bench-"))
    root.chmod(0o755)
    pf = Postfix(root)
    STARTED.append(pf)  # stopped at the end whatever happens after this
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
            fh.write("\n" + (snippets / "main.cf.snippet").read_text("utf-8"))
        with (pf.etc / "master.cf").open("a", encoding="utf-8") as fh:
            fh.write("\n" + (snippets / "master.cf.snippet").read_text("utf-8"))
        value = pf.postconf("-h", "content_filter").strip()
        pf.postconf("-e", "content_filter=" + value.replace(SNIPPET_FILTER,
                                                            f"[127.0.0.1]:{gateway_port}"))
        proxy = pf.postconf("-h", "smtpd_proxy_filter").strip()  # before-queue snippets
        if proxy:
            pf.postconf("-e", "smtpd_proxy_filter=" + proxy.replace(
                SNIPPET_PROXY, f"127.0.0.1:{gateway_port}"))
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
                  profile: str | None = None, pythonpath: str | None = None
                  ) -> subprocess.Popen:
    """``dlp-gateway serve``, the installed package (run in the temp dir), or the tree
    that ``pythonpath`` names (to compare two versions of the gateway)."""
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
        env = dict(os.environ, PYTHONPATH=str(Path(pythonpath).resolve())) if pythonpath \
            else None
        proc = subprocess.Popen(
            [sys.executable, *profiler, "-m", "dlp_gateway.cli", "serve", "--config",
             str(config), "--log-level", "WARNING"],
            cwd=root, stdout=subprocess.DEVNULL, stderr=log, env=env,
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
    mails: int = 0
    seconds: float = 0.0  # first submission to last arrival
    latencies: list[float] = field(default_factory=list)


def combined(parts: list[Result]) -> Result:
    """One chain's slices of a round as one result: mails over the summed time, the
    latencies together, CPU per mail and Postfix delays averaged over the slices."""
    latencies = sorted(x for p in parts for x in p.latencies)
    mails, seconds = sum(p.mails for p in parts), sum(p.seconds for p in parts)
    keys = {k for p in parts for k in p.cpu}
    cpu = {k: statistics.fmean(p.cpu.get(k, 0.0) for p in parts) for k in keys}
    hops = {h for p in parts for h in p.delays}
    delays = {h: [statistics.fmean(col) for col in zip(*(p.delays[h] for p in parts
                                                          if h in p.delays), strict=True)]
              for h in hops}
    return Result(mails / seconds, statistics.median(latencies),
                  latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], cpu, delays,
                  mails, seconds, latencies)


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
    return Result(len(tags) / elapsed, statistics.median(latencies), p99, mails=len(tags),
                  seconds=elapsed, latencies=latencies)


def measured(pf: Postfix, sink: ArrivalSink, prefix: str, args: argparse.Namespace,
             groups: dict[str, TreeCpu], hops: dict[int, str], messages: int) -> Result:
    """run_load, with the CPU per mail of each process group (and role within Postfix)
    and the median Postfix delays of each hop (``hops``: relay port -> name)."""
    port = pf.public_port
    mails = build_mails(prefix, messages, args.clients, args.kb)
    log_offset = pf.log.stat().st_size if pf.log.exists() else 0
    busy0, self0 = machine_busy(), resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.perf_counter()
    with Sampler(list(groups.values())):
        result = run_load(port, sink, prefix, messages, args.clients, args.kb, mails)
    self1, busy1 = resource.getrusage(resource.RUSAGE_SELF), machine_busy()
    wall = time.perf_counter() - wall0
    n = len(mails)
    cpu: dict[str, float] = {}
    for group, tree_cpu in groups.items():
        total, by_role = tree_cpu.stop()
        if os.environ.get("BENCH_DEBUG"):  # how many processes of each role ran
            print("   ", group, tree_cpu.processes())
        for role, seconds in by_role.items():
            cpu[f"{group} {role}"] = seconds * 1000 / n
        cpu[f"{group} total"] = total * 1000 / n
    harness = (self1.ru_utime + self1.ru_stime - self0.ru_utime - self0.ru_stime)
    cpu["bench clients + sink"] = harness * 1000 / n
    cpu["machine busy"] = (busy1 - busy0) * 1000 / n
    cpu["other processes"] = cpu["machine busy"] - ours(cpu)
    cpu["cpus busy"] = (busy1 - busy0) / wall  # not per mail: how loaded the machine was
    result.cpu = cpu
    time.sleep(0.5)  # Postfix logs a delivery just after the sink answered it
    found = delays_by_port(pf.log, log_offset)
    result.delays = {name: found[p] for p, name in hops.items() if p in found}
    return result


def show(name: str, r: Result) -> None:
    print(f"  {name:26} {r.rate:7.1f} msg/s   median {r.median * 1000:7.1f} ms   "
          f"p99 {r.p99 * 1000:7.1f} ms", flush=True)


COLUMNS = {"alone": "alone", "gateway": "gateway", "bare": "bare", "compare": "compared",
           "bq": "bq"}


def show_cpu(title: str, runs: dict[str, dict[str, float]]) -> None:
    """CPU ms per mail, by process group and Postfix service, the chains side by side."""
    print(f"  {title:34}" + "".join(f" {COLUMNS[c]:>8}" for c in runs))
    order = ["postfix smtpd :public", "postfix cleanup", "postfix qmgr", "postfix rewrite",
             "postfix dlpscan", "postfix smtpd :reinject", "postfix dlpcleanup",
             "postfix smtp"]
    keys = {k for cpu in runs.values() for k in cpu}
    rest = sorted(k for k in keys if k.startswith("postfix ") and k not in order
                  and not k.endswith(" total"))
    for key in [*order, *rest, "postfix total", "gateway gateway", "gateway scan workers",
                "gateway exited", "gateway total", "relay total", "bench clients + sink",
                "other processes", "machine busy", "cpus busy"]:
        values = [cpu.get(key) for cpu in runs.values()]
        if all((v or 0) < 0.005 for v in values):
            continue
        cells = "".join(f" {v:8.2f}" if v is not None else "        -" for v in values)
        print(f"    {key:32}{cells}")


def show_delays(results: list[Result]) -> None:
    print(f"  Postfix delays, median s{'':12} {'a':>6} {'b':>6} {'c':>6} {'d':>6}")
    for r in results:
        for hop, (a, b, c, d) in r.delays.items():
            print(f"    {hop:32} {a:6.2f} {b:6.2f} {c:6.2f} {d:6.2f}")


def median_cpu(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = {k for run in runs for k in run}
    return {k: statistics.median(run.get(k, 0.0) for run in runs) for k in keys}


def ours(cpu: dict[str, float]) -> float:
    """CPU ms per mail of the chain's own processes (Postfix, filter, clients + sink)."""
    return sum(v for k, v in cpu.items() if k.endswith(" total")) + cpu["bench clients + sink"]


def ceiling(alone: dict[str, float], chain: dict[str, float]) -> float:
    """The ratio with a filter that costs no CPU at all, on a machine where CPU is what
    runs out: the alone chain's CPU per mail over the filtered chain's without the filter."""
    return ours(alone) / (chain["postfix total"] + chain["bench clients + sink"])


# -- the bare relay: the floor of any Python after-queue filter -----------------------------
class BareRelay:
    """aiosmtpd in, the gateway's own reused upstream connections out (SmtpUpstream, in a
    thread as the gateway does), 250 after the upstream's 250; no scan, no database."""

    def __init__(self, upstream_port: int):
        from dlp_gateway.relay.upstream import SmtpUpstream

        self.upstream = SmtpUpstream("127.0.0.1", upstream_port, max_idle=10)

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        import asyncio

        await asyncio.to_thread(self.upstream.deliver, envelope.mail_from,
                                list(envelope.rcpt_tos), envelope.original_content)
        return "250 2.0.0 OK"


def serve_bare(port: int, upstream_port: int) -> None:
    """``--serve-bare PORT UPSTREAM``: the bare relay as a process of its own."""
    relay = Controller(BareRelay(upstream_port), hostname="127.0.0.1", port=port)
    relay.start()
    threading.Event().wait()


def start_bare(root: Path, port: int, upstream_port: int) -> subprocess.Popen:
    with (root / "bare.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, __file__, "--serve-bare", str(port),
                                 str(upstream_port)], stdout=subprocess.DEVNULL, stderr=log)
    wait_port(port, 60)
    return proc


def stop_process(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


@dataclass
class Chain:
    name: str
    title: str
    postfix: Postfix
    groups: dict[str, TreeCpu]
    hops: dict[int, str]
    results: list[Result] = field(default_factory=list)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1200)
    parser.add_argument("--slices", type=int, default=3,
                        help="each round runs the chains in turn this many times")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--kb", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm-up", type=int, default=100)
    parser.add_argument("--no-bare", action="store_true",
                        help="leave out the chain through a bare Python relay")
    parser.add_argument("--no-before-queue", action="store_true",
                        help="leave out the chain with the gateway as a before-queue filter")
    parser.add_argument("--profile-before-queue", metavar="FILE",
                        help="run the before-queue chain's gateway under cProfile")
    parser.add_argument("--profile-gateway", metavar="FILE",
                        help="run the gateway under cProfile, stats to FILE (pstats)")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy the maillogs and the "
                        "gateway's log here at the end")
    parser.add_argument("--compare-snippets", metavar="DIR", help="add a gateway chain "
                        "whose Postfix gets DIR/main.cf.snippet and DIR/master.cf.snippet")
    parser.add_argument("--compare-pythonpath", metavar="DIR", help="add a gateway chain "
                        "running the dlp_gateway package found in DIR (another checkout)")
    parser.add_argument("--serve-bare", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(*args.serve_bare)
        return
    reason = skip_reason()
    if reason:
        print(f"postfix bench skipped: {reason}")
        return

    sink = ArrivalSink()
    sink_ctl = Controller(sink, hostname="127.0.0.1", port=free_port())
    sink_ctl.start()
    gw_root = Path(tempfile.mkdtemp(prefix="dlp-gw-bench-"))
    processes: list[subprocess.Popen] = []
    chains: list[Chain] = []
    try:
        alone = start_postfix(sink_ctl.port, None)
        chains.append(Chain("alone", "Postfix alone", alone, {"postfix": alone.cpu()},
                            {sink_ctl.port: "alone: -> sink"}))
        port = free_port()
        filtered = start_postfix(sink_ctl.port, port)
        gateway = start_gateway(gw_root, port, filtered.reinject_port, args.profile_gateway)
        processes.append(gateway)
        gw_pid = gateway.pid
        gw_cpu = TreeCpu(lambda: gw_pid,
                         lambda pid: "gateway" if pid == gw_pid else "scan workers")
        chains.append(Chain("gateway", "Postfix + dlp-gateway", filtered,
                            {"postfix": filtered.cpu(), "gateway": gw_cpu},
                            {port: "gateway: -> gateway (dlpscan)",
                             sink_ctl.port: "gateway: reinjected -> sink"}))
        if args.compare_snippets or args.compare_pythonpath:
            chains.append(compare_chain(args, sink_ctl.port, gw_root / "compare", processes))
        if not args.no_before_queue:
            chains.append(before_queue_chain(sink_ctl.port, gw_root / "bq", processes,
                                             args.profile_before_queue))
        if not args.no_bare:
            port = free_port()
            bare_pf = start_postfix(sink_ctl.port, port)
            bare = start_bare(gw_root, port, bare_pf.reinject_port)
            processes.append(bare)
            bare_pid = bare.pid
            chains.append(Chain("bare", "Postfix + bare relay", bare_pf,
                                {"postfix": bare_pf.cpu(),
                                 "relay": TreeCpu(lambda: bare_pid, lambda _pid: "relay")},
                                {port: "bare: -> relay (dlpscan)",
                                 sink_ctl.port: "bare: reinjected -> sink"}))
        run_rounds(chains, sink, args)
    finally:
        for proc in processes:
            stop_process(proc)
        if args.keep_logs:
            keep = Path(args.keep_logs)
            keep.mkdir(parents=True, exist_ok=True)
            for chain in chains:
                if chain.postfix.log.exists():
                    shutil.copy(chain.postfix.log, keep / f"maillog.{chain.name}")
            if (gw_root / "gateway.log").exists():
                shutil.copy(gw_root / "gateway.log", keep / "gateway.log")
        for pf in STARTED:
            pf.stop()
        sink_ctl.stop()
        shutil.rmtree(gw_root, ignore_errors=True)


def compare_chain(args: argparse.Namespace, sink_port: int, root: Path,
                  processes: list[subprocess.Popen]) -> Chain:
    """A second gateway chain, with other snippets and/or another gateway tree, measured
    in the same rounds (a change measured against the machine's load of the moment)."""
    root.mkdir()
    port = free_port()
    snippets = Path(args.compare_snippets) if args.compare_snippets else SNIPPETS
    pf = start_postfix(sink_port, port, snippets)
    gateway = start_gateway(root, port, pf.reinject_port, pythonpath=args.compare_pythonpath)
    processes.append(gateway)
    pid = gateway.pid
    cpu = TreeCpu(lambda: pid, lambda p: "gateway" if p == pid else "scan workers")
    return Chain("compare", "Postfix + compared", pf, {"postfix": pf.cpu(), "gateway": cpu},
                 {port: "compare: -> gateway (dlpscan)",
                  sink_port: "compare: reinjected -> sink"})


def before_queue_chain(sink_port: int, root: Path, processes: list[subprocess.Popen],
                       profile: str | None = None) -> Chain:
    """Postfix with deploy/postfix/before-queue/ and its own gateway process: smtpd
    proxies each mail to the gateway, which hands it to the reinjection smtpd."""
    root.mkdir()
    port = free_port()
    pf = start_postfix(sink_port, port, BEFORE_QUEUE)
    gateway = start_gateway(root, port, pf.reinject_port, profile)
    processes.append(gateway)
    pid = gateway.pid
    cpu = TreeCpu(lambda: pid, lambda p: "gateway" if p == pid else "scan workers")
    return Chain("bq", "Postfix + gateway before-queue", pf,
                 {"postfix": pf.cpu(), "gateway": cpu}, {sink_port: "bq: -> sink"})


def run_rounds(chains: list[Chain], sink: ArrivalSink, args: argparse.Namespace) -> None:
    """Each round runs every chain once with the same load, each chain first in turn."""
    for chain in chains:
        run_load(chain.postfix.public_port, sink, f"warm-{chain.name}", args.warm_up,
                 args.clients, args.kb)
    print(f"{args.messages} mails of {args.kb} KB per chain per round in {args.slices} "
          f"slices, {args.clients} clients, cpus: {os.cpu_count()}, "
          f"load {os.getloadavg()[0]:.1f}")
    per_slice = max(args.clients, args.messages // args.slices)
    for n in range(args.rounds):
        order = chains[n % len(chains):] + chains[:n % len(chains)]
        parts: dict[str, list[Result]] = {c.name: [] for c in chains}
        for k in range(args.slices):  # the chains take turns: a load change hits all
            for chain in order:
                parts[chain.name].append(measured(chain.postfix, sink, f"{chain.name}{n}.{k}",
                                                  args, chain.groups, chain.hops, per_slice))
        for chain in chains:
            chain.results.append(combined(parts[chain.name]))
        base = chains[0].results[-1]
        print(f"round {n + 1} ({order[0].name} first): " + ", ".join(
            f"{c.name} ratio {c.results[-1].rate / base.rate:.2f}" for c in chains[1:]))
        for chain in chains:
            show(chain.title, chain.results[-1])
        show_cpu("CPU ms per mail", {c.name: c.results[-1].cpu for c in chains})
        show_delays([c.results[-1] for c in chains])
    alone = chains[0]
    for chain in chains[1:]:
        ratios = [c.rate / a.rate for c, a in zip(chain.results, alone.results, strict=True)]
        cpu_ratios = [ours(a.cpu) / ours(c.cpu)
                      for c, a in zip(chain.results, alone.results, strict=True)]
        ceilings = [ceiling(a.cpu, c.cpu)
                    for c, a in zip(chain.results, alone.results, strict=True)]
        print(f"{chain.title}: throughput ratio (median of {len(ratios)}) "
              f"{statistics.median(ratios):.2f} (rounds: {', '.join(f'{r:.2f}' for r in ratios)}"
              f"); CPU ratio {statistics.median(cpu_ratios):.2f}; ceiling with a filter of "
              f"zero CPU {statistics.median(ceilings):.2f}")
    print("(target: gateway >= 0.6 for 2 KB mail)")
    show_cpu("CPU ms per mail, median of rounds",
             {c.name: median_cpu([r.cpu for r in c.results]) for c in chains})


if __name__ == "__main__":
    main()
