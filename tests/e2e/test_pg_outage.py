"""Issue 12: a node whose PostgreSQL goes away fails closed and visibly, then recovers.

A private PostgreSQL server just for this test is stopped under a running gateway:
mail is answered 452 (the client keeps it and retries; nothing is passed unscanned or
dropped), /healthz says the database is failing, and once the server is back the
same gateway takes mail again without a restart.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import clean_mail, roster_mail, send
from tests.pgcluster import SKIP_REASON, PgCluster, find_bindir


@pytest.fixture
def own_cluster():
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(SKIP_REASON)
    cluster = PgCluster(bindir).start()
    yield cluster
    cluster.stop()


def _until(predicate, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_database_outage_answers_452_then_recovers(own_cluster, gateway_factory,
                                                    upstream_sink):
    url = own_cluster.database()
    gw = gateway_factory(database_url=url)
    assert send(gw.smtp_port, roster_mail(20))[0] == 250  # held, in PostgreSQL
    held_before = len(gw.gateway.held.list())
    assert held_before == 1
    own_cluster.pause()
    try:
        code, _text = send(gw.smtp_port, roster_mail(20))
        assert code == 452, _text  # temporary: the client keeps the mail and retries
        health = httpx.get(f"{gw.admin_url}/healthz", timeout=30)
        assert health.status_code == 503
        assert health.json()["checks"]["database"] != "ok"
    finally:
        own_cluster.resume()
    assert _until(lambda: httpx.get(f"{gw.admin_url}/healthz", timeout=30)
                  .json()["checks"]["database"] == "ok")
    assert send(gw.smtp_port, roster_mail(20))[0] == 250
    assert len(gw.gateway.held.list()) == held_before + 1  # the 452'd copy was not kept
    assert send(gw.smtp_port, clean_mail(2))[0] == 250
    assert upstream_sink.wait_for(1, timeout=30)
