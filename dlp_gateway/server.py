"""One asyncio process: the SMTP listener, the outbound queue worker, the admin web
app (uvicorn) and the expiry task. SIGTERM/SIGINT stop it cleanly.

Logs carry verdicts, counts, ids and addresses; never a full My Number, a
password or a message body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import ssl
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from dlp_gateway.config import Config
from dlp_gateway.gateway import Gateway
from dlp_gateway.relay.outbound import QueueWorker
from dlp_gateway.relay.scanpool import ScanPool
from dlp_gateway.relay.smtp import ConnectionLimiter, RelayHandler, smtp_factory
from dlp_gateway.relay.upstream import Upstream, make_upstream

log = logging.getLogger("dlp_gateway.server")


def build_tls_context(config: Config) -> ssl.SSLContext | None:
    if not config.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    return context


@dataclass
class RunningServer:
    """What ``start`` returns: enough to find the ports and stop everything."""

    gateway: Gateway
    handler: RelayHandler
    smtp_server: asyncio.base_events.Server
    tasks: list[asyncio.Task] = field(default_factory=list)
    web: Any = None
    scanner: ScanPool | None = None
    reloader: Any = None  # dlp_gateway.reload.Reloader

    @property
    def smtp_port(self) -> int:
        return int(self.smtp_server.sockets[0].getsockname()[1])

    @property
    def admin_port(self) -> int | None:
        if self.web is None or not getattr(self.web, "servers", None):
            return None
        return int(self.web.servers[0].sockets[0].getsockname()[1])

    async def stop(self) -> None:
        self.smtp_server.close()
        if self.web is not None:
            self.web.should_exit = True
        for task in self.tasks:
            if task.get_name() != "admin-web":
                task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.smtp_server.wait_closed(), 5)
        with contextlib.suppress(Exception):  # retry records of mail relayed just now
            await self.handler.replies.flush()
        if self.scanner is not None:
            await asyncio.to_thread(self.scanner.close)
        close_idle = getattr(self.handler.upstream, "close_idle", None)
        if close_idle is not None:  # QUIT the upstream connections kept for reuse
            with contextlib.suppress(Exception):
                await asyncio.to_thread(close_idle, True)
        self.gateway.close()
        log.info("dlp-gateway stopped")


async def start(
    config: Config, upstream: Upstream | None = None, web: bool = True
) -> RunningServer:
    """Open the data dir, start scan workers, listen for SMTP, run worker/web/expiry."""
    from dlp_gateway.reload import PatternsManager, Reloader

    loop = asyncio.get_running_loop()
    gateway = Gateway(config)  # first: a read-only data dir is one clear StorageError
    try:
        patterns = PatternsManager(config.patterns_dir, config.data_dir)
        active = await asyncio.to_thread(patterns.snapshot)  # PatternError: refuse to start
    except BaseException:
        gateway.close()
        raise
    gateway.spool.clean_tmp()
    _warn_missing_approvers(gateway)
    upstream = upstream or make_upstream(config)

    def make_pool(path: Any) -> ScanPool:
        return ScanPool(path, config.workers, config.scan_timeout_seconds,
                        config.small_mail_bytes, config.scan_max_memory_mb << 20,
                        config.inline_scan_bytes)

    scanner = make_pool(active)
    await scanner.warm_up()
    patterns.activated(active)
    gateway.patterns_status = patterns.status  # type: ignore[attr-defined]  # admin page
    handler = RelayHandler(gateway, scanner, upstream)
    handler.retain = _retention(config)
    limiter = ConnectionLimiter(config.max_connections, config.max_connections_per_client)
    host, port = config.listen_host_port
    smtp_server = await loop.create_server(
        smtp_factory(handler, loop, build_tls_context(config), limiter), host, port
    )
    running = RunningServer(gateway, handler, smtp_server, scanner=scanner)
    gateway.runtime = running  # type: ignore[attr-defined]  # for /healthz (web/ops.py)
    running.reloader = Reloader(patterns, running, make_pool)
    if config.patterns_poll_seconds > 0:
        running.tasks.append(asyncio.create_task(
            running.reloader.watch(config.patterns_poll_seconds), name="patterns-watch"))
    worker = QueueWorker(gateway, upstream)
    running.tasks.append(asyncio.create_task(worker.run(), name="outbound-queue"))
    if web:
        running.web = await _start_web(gateway, running)
    _start_expiry(gateway, running)
    log.info("dlp-gateway listening on %s:%d (smtp), upstream %r, data %s",
             host, running.smtp_port, upstream, config.data_dir)
    return running


def _retention(config: Config) -> Callable[..., None] | None:
    """The relay's hook that keeps passed mail for replay (None when not enabled)."""
    if config.retain_passed_days <= 0:
        return None
    from dlp_gateway.store.retained import RetainedStore

    store = RetainedStore(config.data_dir, config.retain_passed_days,
                          config.retain_max_mb * 1024 * 1024)

    def retain(scan_id: str, sender: str, rcpts: list[str], raw: bytes, verdict: str) -> None:
        try:
            store.add(scan_id, sender, rcpts, raw, verdict)
        except Exception:  # retention must never affect delivery
            log.exception("scan %s: could not retain passed mail", scan_id)

    return retain


def _uvicorn_server(app: Any, host: str, port: int) -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            yield  # the gateway owns SIGTERM/SIGINT for the whole process

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="auto",
                            access_log=False)
    return Server(config)


async def _start_web(gateway: Gateway, running: RunningServer) -> Any:
    try:
        from dlp_gateway.web.app import create_app
    except ImportError as exc:
        log.error("admin web app unavailable (%s); serving SMTP only", exc)
        return None
    host, port = gateway.config.admin_host_port
    # Bind here, so a port in use is an OSError for `serve` to report (one line, exit 1),
    # not a SystemExit with a traceback from inside uvicorn's task.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family)
    server = _uvicorn_server(create_app(gateway), host, port)
    running.tasks.append(asyncio.create_task(server.serve(sockets=[sock]), name="admin-web"))
    for _ in range(200):  # wait until it listens (or failed)
        if server.started or running.tasks[-1].done():
            break
        await asyncio.sleep(0.02)
    if server.started:
        log.info("admin page on http://%s:%d/", host, int(server.servers[0].sockets[0]
                                                           .getsockname()[1]))
    else:
        log.error("admin web server did not start on %s:%d", host, port)
    return server


def _warn_missing_approvers(gateway: Gateway) -> None:
    """Say at start-up when some holds could not be approved by anyone."""
    from dlp_gateway.approval import missing_approvers

    for warning in missing_approvers(gateway):
        log.warning("%s", warning)


def _start_expiry(gateway: Gateway, running: RunningServer) -> None:
    try:
        from dlp_gateway.approval import expiry_loop
    except ImportError as exc:
        log.error("expiry task unavailable (%s): held mail will not escalate/expire", exc)
        return
    running.tasks.append(asyncio.create_task(expiry_loop(gateway), name="expiry"))


async def serve_forever(config: Config, on_ready: Callable[[RunningServer], None] | None = None
                        ) -> None:
    """``dlp-gateway serve``: run until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    running = await start(config)
    loop.add_signal_handler(
        signal.SIGHUP, lambda: loop.create_task(running.reloader.reload("SIGHUP"))
    )
    if on_ready is not None:
        on_ready(running)
    await stop.wait()
    log.info("signal received; shutting down")
    await running.stop()


def configure_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiosmtpd logs every command line at INFO (addresses only, but noisy) and
    # DEBUG would log data lines: keep it at WARNING.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
