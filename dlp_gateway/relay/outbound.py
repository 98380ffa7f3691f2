"""The outbound queue worker: delivers due items, retries with backoff, gives up on 5xx.

Runs in the server's event loop; each delivery runs in a thread. Items other
than gateway notices that fail permanently produce a Japanese failure notice
to their sender (a failing notice never produces another notice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from dlp_gateway import metrics
from dlp_gateway.actions import notify
from dlp_gateway.gateway import Gateway
from dlp_gateway.mail.headers import decoded_subject
from dlp_gateway.relay.upstream import DeliveryError, Upstream, deliver_async
from dlp_gateway.store.db import is_storage_error
from dlp_gateway.store.queue import QueueItem

log = logging.getLogger("dlp_gateway.relay.outbound")

IDLE_POLL_SECONDS = 1.0  # the CLI (another process) may enqueue at any time


class QueueWorker:
    def __init__(self, gateway: Gateway, upstream: Upstream):
        self.gateway = gateway
        self.queue = gateway.queue
        self.upstream = upstream
        self.config = gateway.config
        self._wake = asyncio.Event()
        self.queue.listeners.append(self.wake)
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Safe to call from any thread (enqueues happen in worker threads)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def backoff(self, attempts: int) -> float:
        base = self.config.queue_retry_base_seconds
        return min(self.config.queue_retry_max_seconds, base * (2 ** max(0, attempts - 1)))

    @property
    def stuck_after(self) -> float:
        """An item ``sending`` for longer than this was lost by its delivery attempt."""
        return max(60.0, self.config.upstream_timeout_seconds * 4)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        recovered = await asyncio.to_thread(self.queue.recover)
        if recovered:
            log.info("outbound queue: %d item(s) interrupted by a crash are due again", recovered)
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                stuck = await asyncio.to_thread(self.queue.recover, self.stuck_after)
                if stuck:
                    log.warning("outbound queue: %d item(s) stuck in sending are due again", stuck)
                sent = await self.run_once()
            except Exception as exc:
                if is_storage_error(exc):
                    self.gateway.storage.failed(exc)
                else:
                    log.exception("outbound queue pass failed")
                sent = 0
            if sent:
                continue
            await self._close_idle_connections()
            self._wake.clear()
            idle = await self._idle_seconds()  # first: a cancel here leaves no coroutine behind
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), idle)

    async def _close_idle_connections(self) -> None:
        """Upstream connections kept for reuse are closed once they have waited long
        enough (each holds an smtpd process of the upstream)."""
        if getattr(self.upstream, "idle_connections", 0):
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.upstream.close_idle)  # type: ignore[attr-defined]

    async def _idle_seconds(self) -> float:
        due = await asyncio.to_thread(self.queue.next_due_at)
        if due is None:
            return IDLE_POLL_SECONDS
        return max(0.05, min(IDLE_POLL_SECONDS, due - time.time()))

    async def run_once(self) -> int:
        """Deliver every item due now (concurrently, each on its own); return how many
        were sent."""
        items = await asyncio.to_thread(self.queue.claim_due)
        results = await asyncio.gather(*(self.deliver(item) for item in items))
        sent = sum(1 for ok in results if ok)
        if sent and len(items) and await asyncio.to_thread(self.queue.expedite):
            log.info("outbound queue: upstream is taking mail again; deferred items are due")
        return sent

    async def deliver(self, item: QueueItem) -> bool:
        """One item, whatever happens: any exception is a failure of this item alone."""
        try:
            return await self._deliver(item)
        except Exception as exc:
            log.exception("outbound %d: unexpected error; treated as a delivery failure", item.id)
            error = DeliveryError(f"{type(exc).__name__}: {exc}", permanent=False)
            try:
                data = await asyncio.to_thread(self.queue.load, item)
            except OSError:
                data = b""
            await asyncio.to_thread(self._failed, item, data, error)
            return False

    async def _deliver(self, item: QueueItem) -> bool:
        try:
            data = await asyncio.to_thread(self.queue.load, item)
        except OSError as exc:
            log.error("outbound %d: spool file unreadable: %s", item.id, exc)
            await asyncio.to_thread(self.queue.mark_failed, item.id, f"spool: {exc}")
            return False
        try:
            refused = await deliver_async(self.upstream, item.mail_from, item.rcpts, data,
                                          item.xforward)
        except DeliveryError as exc:
            metrics.upstream_error(exc.permanent)
            await asyncio.to_thread(self._failed, item, data, exc)
            return False
        await asyncio.to_thread(self.queue.mark_sent, item.id)
        log.info("outbound %d (%s): delivered to %d recipient(s) after %d attempt(s)",
                 item.id, item.kind, len(item.rcpts) - len(refused), item.attempts)
        if refused:
            await asyncio.to_thread(self._partly_refused, item, data, refused)
        return True

    def _failed(self, item: QueueItem, data: bytes, exc: DeliveryError) -> None:
        if not exc.permanent and item.attempts < self.config.queue_max_attempts:
            delay = self.backoff(item.attempts)
            log.info("outbound %d: temporary failure (%s); retry in %.0fs", item.id, exc, delay)
            self.queue.mark_retry(item.id, str(exc), delay)
            return
        log.warning("outbound %d: giving up after %d attempt(s): %s", item.id, item.attempts, exc)
        self.queue.mark_failed(item.id, str(exc))
        self._tell_sender(item, item.rcpts, data, str(exc))

    def _partly_refused(
        self, item: QueueItem, data: bytes, refused: dict[str, tuple[int, str]]
    ) -> None:
        temporary = [r for r, (code, _m) in refused.items() if code < 500]
        permanent = [r for r, (code, _m) in refused.items() if code >= 500]
        if temporary:
            self.queue.enqueue(item.mail_from, temporary, data, kind=item.kind, ref=item.ref,
                               delay=self.backoff(item.attempts))
        if permanent:
            error = "; ".join(f"{r}: {refused[r][0]} {refused[r][1]}" for r in permanent)
            self._tell_sender(item, permanent, data, error)

    def _tell_sender(self, item: QueueItem, rcpts: list[str], data: bytes, error: str) -> None:
        if item.kind == "notice" or not item.mail_from:
            # Nobody can be mailed about this one: operators see it on the admin page.
            subject = decoded_subject(data) if data else ""
            log.error("outbound %d (%s): undeliverable and nobody can be told by mail: %s"
                      " -> %s: %s", item.id, item.kind, item.mail_from or "<>",
                      ", ".join(rcpts), error)
            self.queue.record_undeliverable(item.kind, item.ref, item.mail_from, rcpts, error,
                                            subject)
            return
        notice = notify.delivery_failure_notice(
            self.config, item.mail_from, rcpts, decoded_subject(data), error
        )
        self.gateway.enqueue_notice(notice, item.ref)
