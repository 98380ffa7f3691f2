"""The throwaway PostgreSQL of the tests never outlives them: when the test process is
killed (SIGKILL, or a timeout's SIGTERM) before it can stop the server, a watchdog stops
it and removes its directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.pgcluster import SKIP_REASON, find_bindir

ROOT = Path(__file__).resolve().parent.parent
CHILD = """
import sys, time
from pathlib import Path
from tests.pgcluster import PgCluster
cluster = PgCluster(Path(sys.argv[1])).start()
print(cluster.root, flush=True)
time.sleep(120)
"""


def _postgres_running(root: str) -> bool:
    out = subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True).stdout
    return any("postgres" in line and root in line for line in out.splitlines())


@pytest.mark.skipif(find_bindir() is None, reason=SKIP_REASON)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_test_process_leaves_no_server(sig: signal.Signals) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(find_bindir())], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    root = child.stdout.readline().strip()
    assert root and _postgres_running(root)
    os.kill(child.pid, sig)
    child.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (Path(root).exists() or _postgres_running(root)):
        time.sleep(0.2)
    assert not _postgres_running(root), root
    assert not Path(root).exists(), root
