"""A scan function for the worker that dies on a marker, as a crashing parser would."""

from __future__ import annotations

import os

from dlp_gateway.relay.scanpool import _scan

MARKER = b"X-Crash-The-Scanner: yes"


def crash_on_marker(raw: bytes, envelope=None):  # type: ignore[no-untyped-def]
    if MARKER in raw:
        os._exit(70)  # the worker process dies mid-scan
    return _scan(raw, envelope)


def slow_if_large(raw: bytes, envelope=None):  # type: ignore[no-untyped-def]
    """A scan that takes 3 s for a large message (a big spreadsheet, say)."""
    import time

    if len(raw) > 100_000:
        time.sleep(3)
    return _scan(raw, envelope)
