"""Scanning off the event loop: a process pool whose workers each build one Scanner.

SudachiPy's dictionary cannot be shared between processes, and loading it is
the expensive part, so each worker builds its ``Scanner`` once (initializer)
and keeps it. The worker returns a compact, picklable ``ScanOutcome`` (masked
findings only) instead of the full ScanResult.

A scan that overruns ``scan_timeout_seconds`` becomes a ``hold`` with reason
timeout; its worker may still be busy, so the pool is replaced (the old workers
are terminated) to keep a stuck parser from eating the pool. Each worker's memory
is capped (``scan_max_memory_mb`` over what it holds once loaded, as ``scan
--max-memory`` does in the CLI): a message whose scan kills its worker is scanned
once more in a fresh pool (the crash may have been another message's), and if it
kills that one too it is held as ``corrupt`` instead of being answered 451 forever.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("dlp_gateway.relay.scan")

MAX_STORED_FINDINGS = 5000
TIMEOUT_REASON = "スキャンが制限時間内に終わらなかったため保留しました（timeout）"
CRASH_REASON = "検査中に読み取り処理が異常終了したため保留しました（corrupt）"


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

    @classmethod
    def crashed(cls) -> ScanOutcome:
        return cls(
            action="hold",
            reasons=(CRASH_REASON,),
            rules=("unscannable",),
            approver_role="section_head",
            unscannable=({"part": "message", "reason": "corrupt"},),
        )

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


# -- worker side ---------------------------------------------------------------------
_scanner: Any = None


def _init_worker(patterns_dir: str | None, timeout_seconds: float,
                 max_memory_bytes: int = 0) -> None:
    global _scanner
    from dlp_gateway.extract.isolate import limit_memory
    from dlp_gateway.extract.units import Limits
    from dlp_gateway.scan import Scanner

    # The worker stops itself a little before the relay gives up on it.
    limits = Limits(timeout_seconds=max(0.5, timeout_seconds * 0.9))
    if max_memory_bytes:
        limits.max_parser_memory_bytes = max_memory_bytes
    _scanner = Scanner(patterns_dir, limits)
    limit_memory(max_memory_bytes)


def _scan(raw: bytes) -> ScanOutcome:
    result = _scanner.scan_message(raw)
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
        total_findings=len(result.findings),
        unscannable=tuple({"part": u.part, "reason": u.reason} for u in result.unscannable),
        parts_with_findings=frozenset(result.parts_with_findings()),
        seconds=result.seconds,
    )


# -- relay side ----------------------------------------------------------------------
class ScanPool:
    def __init__(self, patterns_dir: Path | None, workers: int, timeout_seconds: float,
                 max_memory_bytes: int = 0):
        self.patterns_dir = str(patterns_dir) if patterns_dir else None
        self.workers = workers
        self.timeout_seconds = timeout_seconds
        self.max_memory_bytes = max_memory_bytes
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self) -> ProcessPoolExecutor:
        # forkserver: never fork the threaded, event-loop-running server process itself.
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=_init_worker,
            initargs=(self.patterns_dir, self.timeout_seconds, self.max_memory_bytes),
        )

    @property
    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = self._new_pool()
        return self._pool

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
        return True

    async def scan(self, raw: bytes) -> ScanOutcome:
        """Scan in a worker; a timeout or a scan that kills its worker twice gives a
        hold outcome; a pool whose workers cannot even start raises."""
        try:
            return await self._scan_once(raw)
        except BrokenProcessPool:
            log.warning("a scan worker died; scanning the message again in a fresh pool")
            self._reset()
        try:
            return await self._scan_once(raw)
        except BrokenProcessPool:
            self._reset()
            if not await self.warm_up():
                raise
            log.error("the message killed its scan worker twice; held as corrupt")
            return ScanOutcome.crashed()

    async def _scan_once(self, raw: bytes) -> ScanOutcome:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.pool, _scan, raw)
        try:
            return await asyncio.wait_for(future, self.timeout_seconds)
        except TimeoutError:
            log.warning("scan timed out after %.0fs; recycling scan workers", self.timeout_seconds)
            self._reset(terminate=True)
            return ScanOutcome.timeout(self.timeout_seconds)

    def _reset(self, terminate: bool = False) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if terminate:
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
