"""Run a risky function in a forked child with a memory cap and a time limit.

A native parser that aborts the process (a Rust allocation failure asking for
512 GiB, a segfault) or runs without bound must not take the scan down: in a
child, a crash becomes an ``IsolatedFailure`` the caller turns into an
``Unscannable`` part (``corrupt``, ``too_large`` or ``timeout``).

The child is forked, so it starts at once with everything already loaded (the
dictionary, the patterns); its result comes back pickled through a pipe.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import resource
import signal
import tempfile
import time
from collections.abc import Callable
from typing import Any, Literal

FailureReason = Literal["corrupt", "too_large", "timeout"]
DEFAULT_MEMORY_BYTES = 2 << 30  # address space a child may add to what it inherits
_MEMORY_MARKERS = (b"memory allocation of", b"MemoryError", b"Cannot allocate memory",
                   b"out of memory", b"std::bad_alloc")


class IsolatedFailure(Exception):
    """The child crashed, ran out of memory or out of time."""

    def __init__(self, reason: FailureReason, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def address_space_now() -> int:
    """This process's virtual size in bytes (the baseline a memory cap adds to)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def limit_memory(extra_bytes: int) -> None:
    """Cap this process's address space at its current size plus ``extra_bytes``."""
    if extra_bytes <= 0:
        return
    cap = address_space_now() + extra_bytes
    with contextlib.suppress(ValueError, OSError):
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def outside_cap(build: Callable[[], Any]) -> Any:
    """Run ``build`` (loading something every scan shares, like the SudachiPy dictionary)
    as if it had run before ``limit_memory``: the cap is lifted for it and then moved up
    by what it mapped, so a lazily loaded dictionary costs no scan its memory allowance."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    except (ValueError, OSError):
        return build()
    if soft == resource.RLIM_INFINITY:
        return build()
    before = address_space_now()
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
    try:
        return build()
    finally:
        grown = max(0, address_space_now() - before)
        cap = soft + grown if hard == resource.RLIM_INFINITY else min(soft + grown, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (cap, hard))


def _child(fn: Callable[..., Any], args: tuple[Any, ...], extra_bytes: int,
           conn: Any, err_fd: int) -> None:
    os.dup2(err_fd, 2)  # what a native abort prints tells memory from other crashes
    limit_memory(extra_bytes)
    try:
        result: tuple[str, Any] = ("ok", fn(*args))
    except MemoryError:
        result = ("too_large", "MemoryError")
    except BaseException as exc:  # reported to the parent, which decides
        result = ("error", f"{type(exc).__name__}: {exc}")
    try:
        conn.send_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    except MemoryError:
        conn.send_bytes(pickle.dumps(("too_large", "MemoryError")))
    conn.close()


def run_isolated(fn: Callable[..., Any], *args: Any,
                 memory_bytes: int = DEFAULT_MEMORY_BYTES, timeout: float = 60.0) -> Any:
    """``fn(*args)`` in a forked child; its return value, or IsolatedFailure.

    An exception raised by ``fn`` in the child is re-raised here as
    ``IsolatedFailure("corrupt", ...)``.
    """
    ctx = multiprocessing.get_context("fork")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    with tempfile.TemporaryFile() as err:
        # not daemonic: a child may isolate a reader of its own (scan --timeout, then PDF)
        proc = ctx.Process(target=_child, args=(fn, args, memory_bytes, child_conn,
                                                 err.fileno()), daemon=False)

        proc.start()
        child_conn.close()
        try:
            payload = _receive(parent_conn, proc, timeout)
        finally:
            parent_conn.close()
            if proc.is_alive():
                proc.kill()
            proc.join()
        if payload is None:
            err.seek(0)
            raise _crash(proc.exitcode, err.read(1 << 16))
    status, value = pickle.loads(payload)
    if status == "ok":
        return value
    if status == "too_large":
        raise IsolatedFailure("too_large", f"memory limit: {value}")
    raise IsolatedFailure("corrupt", str(value))


def _receive(conn: Any, proc: Any, timeout: float) -> bytes | None:
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            proc.kill()
            raise IsolatedFailure("timeout", f"over {timeout:g} s")
        if conn.poll(min(remaining, 0.5)):
            try:
                return conn.recv_bytes()
            except EOFError:
                return None
        if not proc.is_alive() and not conn.poll(0):
            return None


def _crash(exitcode: int | None, stderr: bytes) -> IsolatedFailure:
    if any(marker in stderr for marker in _MEMORY_MARKERS):
        return IsolatedFailure("too_large", "memory limit: the reader ran out of memory")
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name if -exitcode in signal.valid_signals() \
            else str(-exitcode)
        return IsolatedFailure("corrupt", f"reader crashed ({name})")
    return IsolatedFailure("corrupt", f"reader exited with status {exitcode}")
