"""Scanning off the event loop: a process pool whose workers each build one Scanner.

SudachiPy's dictionary cannot be shared between processes, and loading it is
the expensive part, so each worker builds its ``Scanner`` once (initializer)
and keeps it. The worker returns a compact, picklable ``ScanOutcome`` (masked
findings only) instead of the full ScanResult.

A scan that overruns ``scan_timeout_seconds`` becomes a ``hold`` with reason
timeout; its worker may still be busy, so the pool is replaced (the old workers
are terminated) to keep a stuck parser from eating the pool. Each worker's memory
is capped (``scan_max_memory_mb`` over what it holds once loaded, as ``scan
--max-memory`` does in the CLI). A message whose scan kills its worker is retried by
the relay in a fresh pool, then held as ``corrupt`` (``scan_max_attempts``).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any

from dlp_gateway.mail.headers import header_bytes

log = logging.getLogger("dlp_gateway.relay.scan")

MAX_STORED_FINDINGS = 5000
CORRUPT_REASON = "スキャン中に処理が異常終了したため保留しました（corrupt）"
TIMEOUT_REASON = "スキャンが制限時間内に終わらなかったため保留しました（timeout）"


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    action: str  # pass | hold | encrypt
    reasons: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    approver_role: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    findings: tuple[dict[str, Any], ...] = ()  # masked (Finding.to_json + in_body)
    total_findings: int = 0
    unscannable: tuple[dict[str, str], ...] = ()
    parts_with_findings: frozenset[str] = frozenset()
    seconds: float = 0.0
    monitor: tuple[str, ...] = ()  # monitor-mode rules that fired (not enforced)
    monitor_action: str = "pass"
    monitor_reasons: tuple[str, ...] = ()

    @classmethod
    def timeout(cls, seconds: float) -> ScanOutcome:
        return cls(
            action="hold",
            reasons=(TIMEOUT_REASON,),
            rules=("timeout",),
            approver_role="section_head",
            unscannable=({"part": "message", "reason": "timeout"},),
            seconds=seconds,
        )


    @classmethod
    def corrupt(cls) -> ScanOutcome:
        """The scan kept killing its worker: held, never retried forever."""
        return cls(
            action="hold",
            reasons=(CORRUPT_REASON,),
            rules=("corrupt",),
            approver_role="section_head",
            unscannable=({"part": "message", "reason": "corrupt"},),
        )


# -- worker side ---------------------------------------------------------------------
_scanner: Any = None


def _init_worker(patterns_dir: str | None, timeout_seconds: float,
                 max_memory_bytes: int = 0) -> None:
    global _scanner
    from dlp_gateway.extract.isolate import limit_memory
    from dlp_gateway.extract.units import Limits
    from dlp_gateway.relay.lifeline import die_with_parent
    from dlp_gateway.scan import Scanner

    die_with_parent()  # a SIGKILLed forkserver/serve takes this worker with it

    # The worker stops itself a little before the relay gives up on it.
    limits = Limits(timeout_seconds=max(0.5, timeout_seconds * 0.9))
    if max_memory_bytes:
        limits.max_parser_memory_bytes = max_memory_bytes
    _scanner = Scanner(patterns_dir, limits)
    _scanner.engine.names.load()  # now: a broken dictionary fails warm-up, not a mail
    _preload_readers()
    limit_memory(max_memory_bytes)


def _preload_readers() -> None:
    """Import the readers the CLI imports only on demand, so no mail waits for them."""
    import charset_normalizer  # noqa: F401
    import python_calamine  # noqa: F401
    import pyzipper  # noqa: F401


def _scan(raw: bytes, envelope: tuple[str, list[str]] | None = None) -> ScanOutcome:
    result = _scanner.scan_message(raw, envelope)
    return outcome_from_result(result)


def _ping(hold_seconds: float = 0.0) -> int:
    time.sleep(hold_seconds)  # keeps this worker busy so the next ping starts another
    return os.getpid()


def outcome_from_result(result: Any) -> ScanOutcome:
    """ScanResult -> ScanOutcome (masked values only, findings capped)."""
    verdict = result.verdict
    findings = []
    for finding in result.findings[:MAX_STORED_FINDINGS]:
        item = finding.to_json()
        item["in_body"] = finding.in_body
        findings.append(item)
    return ScanOutcome(
        action=verdict.action,
        reasons=tuple(verdict.reasons),
        rules=tuple(verdict.rules),
        approver_role=verdict.approver_role,
        counts=dict(result.counts),
        findings=tuple(findings),
        total_findings=result.findings_total,  # also those past the evidence bound
        unscannable=tuple({"part": u.part, "reason": u.reason} for u in result.unscannable),
        parts_with_findings=frozenset(result.parts_with_findings()),
        seconds=result.seconds,
        monitor=tuple(getattr(verdict, "monitor", ())),
        monitor_action=getattr(verdict, "monitor_action", "pass"),
        monitor_reasons=tuple(getattr(verdict, "monitor_reasons", ())),
    )


# -- the inline lane ------------------------------------------------------------------
_INLINE_TYPES = ("text/plain",)


def inline_eligible(raw: bytes, limit: int) -> bool:
    """A tiny single-part text/plain mail (no attachment, nothing a native reader would
    open): what the inline lane may scan in the relay's own process. Anything else, or
    anything unclear, goes to the worker pool."""
    if limit <= 0 or len(raw) > limit:
        return False
    try:
        head = BytesHeaderParser(policy=compat32).parsebytes(header_bytes(raw))
        types = head.get_all("Content-Type") or []
        if len(types) > 1 or head.get_all("Content-Disposition"):
            return False
        if types:
            ctype = str(types[0]).split(";", 1)[0].strip().lower()
            params = str(types[0]).lower()
            if ctype not in _INLINE_TYPES or "name=" in params:
                return False
        encodings = head.get_all("Content-Transfer-Encoding") or []
        return len(encodings) <= 1 and all(
            str(e).strip().lower() in ("7bit", "8bit", "quoted-printable", "base64")
            for e in encodings)
    except Exception:
        return False


class InlineLane:
    """Scans tiny text-only mail in one thread of the relay's process with its own
    ``Scanner`` (same patterns, same limits, same code as a worker): no process round
    trip. One scan at a time, and only while no worker is scanning (under load the
    workers, in processes of their own, do not fight the event loop for the GIL);
    when it is busy, or broken, mail goes to the pool. A scan
    that overruns the timeout is a ``timeout`` hold, and the lane is shut for good
    (a thread cannot be killed; the pool carries on)."""

    def __init__(self, patterns_dir: str | None, timeout_seconds: float):
        self.patterns_dir = patterns_dir
        self.timeout_seconds = timeout_seconds
        self.busy = False
        self.ready = False
        self.scanned = 0  # mails scanned here (the admin's and the tests' view of the lane)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="inline-scan")
        self._scanner: Any = None

    def _build(self) -> None:
        from dlp_gateway.extract.units import Limits
        from dlp_gateway.scan import Scanner

        limits = Limits(timeout_seconds=max(0.5, self.timeout_seconds * 0.9))
        self._scanner = Scanner(self.patterns_dir, limits)
        self._scanner.engine.names.load()

    async def start(self) -> bool:
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._build)
        except Exception as exc:
            log.error("inline scan lane not started (%s); the pool scans everything", exc)
            return False
        self.ready = True
        return True

    def _scan(self, raw: bytes, envelope: tuple[str, list[str]] | None) -> ScanOutcome:
        self.scanned += 1
        return outcome_from_result(self._scanner.scan_message(raw, envelope))

    async def scan(self, raw: bytes, envelope: tuple[str, list[str]] | None) -> ScanOutcome:
        loop = asyncio.get_running_loop()
        self.busy = True
        try:
            future = loop.run_in_executor(self._executor, self._scan, raw, envelope)
            return await asyncio.wait_for(asyncio.shield(future), self.timeout_seconds)
        except TimeoutError:
            log.error("inline scan overran %.0fs; inline lane shut", self.timeout_seconds)
            self.ready = False
            return ScanOutcome.timeout(self.timeout_seconds)
        finally:
            self.busy = False

    def close(self) -> None:
        self.ready = False
        self._executor.shutdown(wait=False, cancel_futures=True)


# -- relay side ----------------------------------------------------------------------
class ScanPool:
    """``small_bytes``: messages up to this size have a lane of their own; larger ones
    may occupy at most ``workers - 1`` workers at a time, so two big scans never
    make every small mail wait (with one worker there is no lane). ``max_memory_bytes``
    caps each worker's address space above its start-up size (0: no cap)."""

    def __init__(self, patterns_dir: Path | None, workers: int, timeout_seconds: float,
                 small_bytes: int = 0, max_memory_bytes: int = 0, inline_bytes: int = 0):
        self.patterns_dir = str(patterns_dir) if patterns_dir else None
        self.workers = workers
        self.timeout_seconds = timeout_seconds
        self.small_bytes = small_bytes
        self.max_memory_bytes = max_memory_bytes
        self._large_slots: asyncio.Semaphore | None = None
        self._pool: ProcessPoolExecutor | None = None
        self.scan_fn: Any = _scan  # a picklable module-level function run in the worker
        self.inline_bytes = inline_bytes
        self._pool_scans = 0  # in the workers now: then the inline lane stands aside
        self.inline: InlineLane | None = (
            InlineLane(self.patterns_dir, timeout_seconds) if inline_bytes > 0 else None)

    def _new_pool(self) -> ProcessPoolExecutor:
        # forkserver: never fork the threaded, event-loop-running server process itself.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["dlp_gateway.relay.lifeline_preload"])
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(self.patterns_dir, self.timeout_seconds, self.max_memory_bytes),
        )

    @property
    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = self._new_pool()
        return self._pool

    @property
    def pool_healthy(self) -> bool:
        """False once a worker died: the next mail goes to the pool, which restarts it
        (the inline lane must not hide a broken pool)."""
        pool = self._pool
        return pool is not None and not getattr(pool, "_broken", False)

    async def warm_up(self) -> bool:
        """Start every worker (loading patterns and dictionaries) before the first mail."""
        loop = asyncio.get_running_loop()
        try:
            pids = await asyncio.gather(
                *[loop.run_in_executor(self.pool, _ping, 0.2) for _ in range(self.workers)]
            )
        except BrokenProcessPool:
            log.error("scan workers failed to start (patterns or dictionary broken?); "
                      "mail will be answered 451 until this is fixed")
            self._reset()
            return False
        log.info("scan workers ready: %d process(es)", len(set(pids)))
        if self.inline is not None and not self.inline.ready:
            await self.inline.start()
        return True

    async def scan(
        self, raw: bytes, envelope: tuple[str, list[str]] | None = None
    ) -> ScanOutcome:
        """Scan in a worker (tiny text-only mail inline); a timeout gives a hold outcome,
        a dead pool raises."""
        lane = self.inline
        if (lane is not None and lane.ready and not lane.busy and not self._pool_scans
                and self.scan_fn is _scan and self.pool_healthy
                and inline_eligible(raw, self.inline_bytes)):
            return await lane.scan(raw, envelope)
        self._pool_scans += 1
        try:
            return await self._pooled(raw, envelope)
        finally:
            self._pool_scans -= 1

    async def _pooled(
        self, raw: bytes, envelope: tuple[str, list[str]] | None = None
    ) -> ScanOutcome:
        if self.small_bytes and self.workers > 1 and len(raw) > self.small_bytes:
            if self._large_slots is None:
                self._large_slots = asyncio.Semaphore(self.workers - 1)
            async with self._large_slots:
                return await self._scan_now(raw, envelope)
        return await self._scan_now(raw, envelope)

    async def _scan_now(
        self, raw: bytes, envelope: tuple[str, list[str]] | None = None
    ) -> ScanOutcome:
        loop = asyncio.get_running_loop()
        try:  # submit inside: a pool broken while idle (worker killed) raises here
            future = loop.run_in_executor(self.pool, self.scan_fn, raw, envelope)
            return await asyncio.wait_for(future, self.timeout_seconds)
        except TimeoutError:
            log.warning("scan timed out after %.0fs; recycling scan workers", self.timeout_seconds)
            self._reset(terminate=True)
            return ScanOutcome.timeout(self.timeout_seconds)
        except BrokenProcessPool:
            self._reset()
            raise

    def _reset(self, terminate: bool = False) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if terminate:
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)

    def retire(self) -> None:
        """Stop taking work but let queued and running scans finish (hot reload)."""
        if self.inline is not None:
            self.inline.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=False)

    def close(self) -> None:
        if self.inline is not None:
            self.inline.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
