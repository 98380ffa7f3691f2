"""Run a risky native parser (PDFium, libarchive) in a forked child process.

A crash there (a segfault on a hostile PDF) or an allocation without bound must
not take the scan down: in the child it becomes an ``IsolatedError`` for that one
part, which the reader reports as ``corrupt`` (or ``too_large`` / ``timeout``).
The child gets an address-space limit and the parent a deadline; the result
comes back pickled through a pipe, so it must be plain data.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import resource
import select
import signal
import time
from collections.abc import Callable
from typing import Any

CHILD_MEMORY_HEADROOM = 2 << 30  # address space the child may add to what it inherits


class IsolatedError(Exception):
    """The isolated call failed; ``reason`` is an Unscannable reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def _address_space() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _child(fn: Callable[..., Any], args: tuple[Any, ...], write_fd: int) -> None:
    try:
        with contextlib.suppress(OSError, ValueError):
            limit = _address_space() + CHILD_MEMORY_HEADROOM
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            payload = pickle.dumps(("ok", fn(*args)))
        except MemoryError:
            payload = pickle.dumps(("too_large", "parser ran out of its memory limit"))
        except BaseException as exc:  # the parser's own error: the part is corrupt
            payload = pickle.dumps(("corrupt", f"{type(exc).__name__}: {exc}"))
        view = memoryview(payload)
        while view:
            view = view[os.write(write_fd, view[: 1 << 20]) :]
    finally:
        os._exit(0)


def _read_all(read_fd: int, pid: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            os.kill(pid, signal.SIGKILL)
            raise IsolatedError("timeout", "parser exceeded the scan time limit")
        ready, _, _ = select.select([read_fd], [], [], remaining)
        if ready:
            chunk = os.read(read_fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def run_isolated(fn: Callable[..., Any], *args: Any, timeout: float = 60.0) -> Any:
    """``fn(*args)`` in a forked child; its return value, or IsolatedError."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        os.close(read_fd)
        _child(fn, args, write_fd)
    os.close(write_fd)
    try:
        data = _read_all(read_fd, pid, time.monotonic() + timeout)
    finally:
        os.close(read_fd)
        _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        raise IsolatedError("corrupt", f"parser crashed (signal {os.WTERMSIG(status)})")
    if not data:
        raise IsolatedError("corrupt", "parser exited without a result")
    outcome, value = pickle.loads(data)
    if outcome != "ok":
        raise IsolatedError(outcome, value)
    return value
