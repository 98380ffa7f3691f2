"""``/healthz`` and ``/metrics`` on the admin listener (mounted by web/app.py).

Both are unauthenticated so that a load balancer and Prometheus can read them
without an approver account; they expose no data beyond states, counts, ages and
durations (no address, subject, id or number). Keep the admin listener on a
trusted network (README "Observability").

/healthz: 200 ``{"status": "ok", "checks": {...}}`` when the SMTP listener is
serving, the scan workers answer, the database answers and the data directory is
writable, and the upstream is reachable; otherwise 503 with ``"status": "fail"``
and the reason in each failing check.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dlp_gateway import metrics

PROBE_TIMEOUT_SECONDS = 5.0
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def ops_routes(gateway: Any) -> list[Route]:
    async def healthz(request: Request) -> Response:
        checks = await health_checks(gateway)
        ok = all(value == "ok" for value in checks.values())
        return JSONResponse({"status": "ok" if ok else "fail", "checks": checks},
                            status_code=200 if ok else 503,
                            headers={"Cache-Control": "no-store"})

    async def metrics_page(request: Request) -> Response:
        body = await asyncio.to_thread(metrics.render, gateway)
        return Response(body, media_type=METRICS_CONTENT_TYPE,
                        headers={"Cache-Control": "no-store"})

    return [Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics_page, methods=["GET"])]


async def health_checks(gateway: Any) -> dict[str, str]:
    runtime = getattr(gateway, "runtime", None)  # server.RunningServer, set by server.start
    checks = await asyncio.gather(
        _check_smtp(runtime), _check_scan_workers(runtime), _check_database(gateway),
        _check_upstream(runtime), return_exceptions=True,
    )
    names = ("smtp", "scan_workers", "database", "upstream")
    return {name: (f"error: {type(r).__name__}: {r}" if isinstance(r, BaseException) else r)
            for name, r in zip(names, checks, strict=True)}


async def _check_smtp(runtime: Any) -> str:
    if runtime is None:
        return "not running in this process"
    return "ok" if runtime.smtp_server.is_serving() else "listener closed"


async def _check_scan_workers(runtime: Any) -> str:
    scanner = getattr(runtime, "scanner", None)
    if scanner is None:
        return "no scan pool"
    pool = scanner._pool
    if pool is not None and getattr(pool, "_broken", False):
        return f"scan pool broken: {pool._broken}"
    processes = list((getattr(pool, "_processes", None) or {}).values()) if pool else []
    if processes and all(p.is_alive() for p in processes):
        return "ok"
    from dlp_gateway.relay.scanpool import _ping  # start (or restart) the workers

    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.run_in_executor(scanner.pool, _ping, 0.0),
                               PROBE_TIMEOUT_SECONDS * 4)
    except TimeoutError:
        return "scan workers do not answer"
    except Exception as exc:
        return f"scan workers cannot start: {type(exc).__name__}"
    return "ok"


async def _check_database(gateway: Any) -> str:
    await asyncio.to_thread(gateway.db.query, "SELECT 1")
    data_dir = gateway.config.data_dir
    if not os.access(data_dir, os.W_OK | os.X_OK):
        return f"data directory not writable: {data_dir}"
    return "ok"


async def _check_upstream(runtime: Any) -> str:
    handler = getattr(runtime, "handler", None)
    if handler is None:
        return "no relay"
    if time.monotonic() < handler.upstream_down_until:
        return "last delivery attempt failed; mail is queued and retried"
    upstream = handler.upstream
    if hasattr(upstream, "maildir"):
        path = upstream.path
        return "ok" if os.access(path, os.W_OK) else f"maildir not writable: {path}"
    return await asyncio.to_thread(_probe_smtp, upstream.host, upstream.port)


def _probe_smtp(host: str, port: int) -> str:
    try:
        with smtplib.SMTP(host, port, timeout=PROBE_TIMEOUT_SECONDS) as smtp:
            code, _ = smtp.noop()
    except (OSError, smtplib.SMTPException) as exc:
        return f"upstream {host}:{port} unreachable: {type(exc).__name__}"
    return "ok" if code == 250 else f"upstream {host}:{port} answered {code}"
