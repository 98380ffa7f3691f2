"""CPU time of process trees from /proc (Linux), for the benchmarks.

A tree's CPU over an interval = the change of the sum, over the root and its live
descendants, of each one's own time plus the time of its reaped children (utime +
stime + cutime + cstime): a process that exits in between is counted once, in its
parent's cutime. A sampler thread also follows each live process so the CPU can be
split by role (for Postfix: the service name after ``-n`` in its command line); what
processes did between their last sample and their exit shows up as "exited".
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float, float] | None:
    """(ppid, own CPU seconds, reaped children's CPU seconds) or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    own = (int(fields[11]) + int(fields[12])) / TICK
    children = (int(fields[13]) + int(fields[14])) / TICK
    return int(fields[1]), own, children


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace").split("\0")
    except OSError:
        return []


def machine_busy() -> float:
    """CPU seconds all CPUs spent not idle since boot (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / TICK


def children_map() -> dict[int, list[int]]:
    """ppid -> pids, of every process now."""
    parents: dict[int, list[int]] = defaultdict(list)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                parents[st[0]].append(int(entry.name))
    return parents


def tree(root: int, parents: dict[int, list[int]] | None = None) -> list[int]:
    """The root pid and its live descendants."""
    parents = children_map() if parents is None else parents
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, ()))
    return found


def postfix_role(pid: int) -> str:
    """A Postfix process's service name (``-n NAME`` in its command line), else comm."""
    args = _cmdline(pid)
    if "-n" in args[:-1]:
        return args[args.index("-n") + 1]
    return args[0].rsplit("/", 1)[-1] if args and args[0] else "?"


class TreeCpu:
    """Follows the CPU of one process tree between ``start()`` and ``stop()``."""

    def __init__(self, root: Callable[[], int], role: Callable[[int], str]):
        self.root = root  # a callable: Postfix's master pid is read when sampled
        self.role = role
        self.first: dict[int, float] = {}  # pid -> own+children at first sight
        self.last: dict[int, float] = {}
        self.roles: dict[int, str] = {}
        self.total0 = 0.0

    def _sample(self, parents: dict[int, list[int]] | None = None) -> float:
        total = 0.0
        for pid in tree(self.root(), parents):
            st = _stat(pid)
            if st is None:
                continue
            total += st[1] + st[2]
            value = st[1]  # its own: reaped children's time is in the "exited" rest
            if pid not in self.roles:
                self.roles[pid] = self.role(pid)
            self.last[pid] = value
        return total

    def start(self) -> None:
        self.first, self.last, self.roles = {}, {}, {}
        self.total0 = self._sample()
        self.first = dict(self.last)  # born later: from 0

    def sample(self, parents: dict[int, list[int]] | None = None) -> None:
        self._sample(parents)

    def stop(self) -> tuple[float, dict[str, float]]:
        """Total CPU seconds since start(), and its split by role."""
        total = self._sample() - self.total0
        by_role: dict[str, float] = defaultdict(float)
        for pid, value in self.last.items():
            by_role[self.roles[pid]] += value - self.first.get(pid, 0.0)
        by_role["exited"] += total - sum(by_role.values())
        return total, dict(by_role)

    def processes(self) -> dict[str, int]:
        """How many processes of each role were seen since start()."""
        counts: dict[str, int] = defaultdict(int)
        for role in self.roles.values():
            counts[role] += 1
        return dict(counts)


class Sampler:
    """Samples some TreeCpu every ``interval`` seconds in a thread while running."""

    def __init__(self, trees: list[TreeCpu], interval: float = 0.5):
        self.trees = trees
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            parents = children_map()  # one pass over /proc for every tree
            for t in self.trees:
                t.sample(parents)

    def __enter__(self) -> Sampler:
        for t in self.trees:
            t.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

