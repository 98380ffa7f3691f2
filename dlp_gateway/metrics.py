"""Prometheus counters the relay updates, and the gauges read from the stores at scrape.

The relay calls ``scanned`` (once per DATA, with the verdict taken), and
``upstream_error`` (each failed delivery attempt). ``render(gateway)`` produces the
text exposition for ``/metrics`` (dlp_gateway.web.ops): these counters plus the
outbound-queue and held-mail gauges computed from the database at that moment.
Only counts, ages and durations: never an address, a subject or a number.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

disable_created_metrics()  # no *_created series: they only add noise here
REGISTRY = CollectorRegistry(auto_describe=True)

MESSAGES = Counter(
    "dlp_messages", "Messages scanned, by the verdict taken (pass, hold, encrypt, tempfail).",
    ["verdict"], registry=REGISTRY,
)
SCAN_SECONDS = Histogram(
    "dlp_scan_seconds", "Wall time of one message scan (extraction + detection).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=REGISTRY,
)
UPSTREAM_ERRORS = Counter(
    "dlp_upstream_errors", "Failed delivery attempts to the upstream, by kind.",
    ["kind"], registry=REGISTRY,
)
HELD_AGE_BUCKETS = (("lt_1h", 3600.0), ("1h_24h", 86400.0), ("24h_72h", 259200.0),
                    ("ge_72h", float("inf")))

for _verdict in ("pass", "hold", "encrypt", "tempfail"):
    MESSAGES.labels(_verdict)
for _kind in ("temporary", "permanent"):
    UPSTREAM_ERRORS.labels(_kind)


def scanned(verdict: str, seconds: float | None) -> None:
    """One message scanned: ``verdict`` is the action taken (monitor mode: pass)."""
    MESSAGES.labels(verdict).inc()
    if seconds is not None:
        SCAN_SECONDS.observe(seconds)


def upstream_error(permanent: bool) -> None:
    UPSTREAM_ERRORS.labels("permanent" if permanent else "temporary").inc()


class StoreCollector:
    """Gauges from the database, computed at each scrape."""

    def __init__(self, gateway: Any):
        self.gateway = gateway

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = dt.datetime.now(dt.UTC)
        db = self.gateway.db
        rows = db.query("SELECT created FROM outbound WHERE status IN ('due', 'sending')")
        depth = GaugeMetricFamily("dlp_queue_depth", "Outbound messages not yet delivered.")
        depth.add_metric([], len(rows))
        yield depth
        oldest = GaugeMetricFamily("dlp_queue_oldest_age_seconds",
                                   "Age of the oldest undelivered outbound message (0: none).")
        oldest.add_metric([], max((_age(now, r["created"]) for r in rows), default=0.0))
        yield oldest
        held = GaugeMetricFamily("dlp_held_messages", "Messages waiting for approval, by age.",
                                 labels=["age"])
        counts = dict.fromkeys((name for name, _ in HELD_AGE_BUCKETS), 0)
        for row in db.query("SELECT received FROM held WHERE status = 'held'"):
            age = _age(now, row["received"])
            name = next(n for n, upper in HELD_AGE_BUCKETS if age < upper)
            counts[name] += 1
        for name, count in counts.items():
            held.add_metric([name], count)
        yield held


def render(gateway: Any) -> bytes:
    """The Prometheus text exposition: relay counters + store gauges."""
    stores = CollectorRegistry(auto_describe=False)
    stores.register(StoreCollector(gateway))  # type: ignore[arg-type]
    return generate_latest(REGISTRY) + generate_latest(stores)


def _age(now: dt.datetime, iso: str) -> float:
    try:
        then = dt.datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return 0.0
    if then.tzinfo is None:
        then = then.replace(tzinfo=dt.UTC)
    return max(0.0, (now - then).total_seconds())
