"""Children die with their parent: PR_SET_PDEATHSIG through ctypes (Linux).

A SIGKILLed ``serve`` cannot clean up, so every helper process goes with it. Scan
workers ask the kernel (PR_SET_PDEATHSIG, from the pool initializer) for SIGKILL when
the forkserver that forked them goes. The forkserver itself (``lifeline_preload``,
imported by it at start) watches its parent pid instead: the kernel's signal fires
when the *thread* that started a process ends, and the gateway may start its pool
from any thread. The resource tracker exits by itself once every process holding
its pipe is gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int | None = None) -> bool:
    """Ask for SIGKILL when the parent exits; exit now if it already has. True if set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)  # the parent died before the request took effect
    return True


def watch_parent(interval: float = 0.25) -> None:
    """Exit this process as soon as its parent process is gone (a daemon thread)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()
