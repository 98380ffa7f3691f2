"""The active patterns set of a running gateway, and its hot reload.

The operator's directory is copied to ``<data_dir>/patterns-active/<hash>/``,
the copy is checked and loaded, and only then do new scan workers start on it:
a half-edited or broken directory is refused and logged, and the last good set
keeps scanning. Reloads happen on SIGHUP and when the directory's content hash
changes (polled). The SMTP listener is never touched, so no connection drops.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlp_gateway.detect.patterns import PatternError, load_patterns, resolve_dir
from dlp_gateway.detect.schema import set_digest

log = logging.getLogger("dlp_gateway.patterns")
ACTIVE_DIR = "patterns-active"


@dataclass
class PatternsStatus:
    """What the admin page shows about the active set."""

    source: str
    digest: str = ""
    loaded_at: str = ""
    rules: int = 0
    rule_ids: tuple[str, ...] = ()
    monitor_rules: tuple[str, ...] = ()
    last_error: str = ""
    last_error_at: str = ""


class PatternsManager:
    def __init__(self, source: Path | None, data_dir: Path):
        self.source = resolve_dir(source)
        self.root = data_dir / ACTIVE_DIR
        self.status = PatternsStatus(str(self.source))
        self.active: Path | None = None
        self._refused: str = ""  # digest of the last refused source (logged once)

    def source_digest(self) -> str:
        try:
            return set_digest(self.source)
        except OSError:
            return ""

    def snapshot(self) -> Path:
        """Copy, check and load the source; return the checked copy. Raises PatternError."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.root))
        try:
            for path in sorted(self.source.glob("*.toml")):
                shutil.copy2(path, tmp / path.name)
            try:
                patterns = load_patterns(tmp)
            except PatternError as exc:  # name the operator's directory, not the copy
                raise PatternError(str(exc).replace(str(tmp), str(self.source)),
                                   exc.problems) from exc
            final = self.root / patterns.digest[:16]
            if not final.exists():
                tmp.rename(final)
            patterns = load_patterns(final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.status.rules = len(patterns.policy.rules)
        self.status.rule_ids = tuple(r.id for r in patterns.policy.rules)
        self.status.monitor_rules = tuple(r.id for r in patterns.policy.rules if r.monitor)
        return final

    def activated(self, path: Path) -> None:
        self.active = path
        self.status.digest = set_digest(path)
        self.status.loaded_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.status.last_error = ""
        self._refused = ""
        log.info("patterns set %s active (from %s)", self.status.digest[:12], self.source)
        for old in self.root.glob("*"):
            if old.is_dir() and old != path and not old.name.startswith("."):
                shutil.rmtree(old, ignore_errors=True)

    def refused(self, error: Exception, digest: str) -> None:
        self.status.last_error = str(error)
        self.status.last_error_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        if digest != self._refused:
            log.error("patterns change refused; set %s stays active:\n%s",
                      self.status.digest[:12], error)
        self._refused = digest


class Reloader:
    """Swaps the relay's scan pool for one on a new set, without touching connections."""

    def __init__(self, manager: PatternsManager, running: Any, make_pool: Any):
        self.manager, self.running, self.make_pool = manager, running, make_pool
        self._lock = asyncio.Lock()

    async def reload(self, why: str) -> bool:
        async with self._lock:
            digest = self.manager.source_digest()
            if digest and self.manager.active and digest == set_digest(self.manager.active):
                return False
            try:
                path = await asyncio.to_thread(self.manager.snapshot)
            except (PatternError, OSError) as exc:
                self.manager.refused(exc, digest)
                return False
            pool = self.make_pool(path)
            if not await pool.warm_up():
                self.manager.refused(PatternError("scan workers failed to start"), digest)
                await asyncio.to_thread(pool.close)
                return False
            old = self.running.handler.scanner
            self.running.handler.scanner = pool
            self.running.scanner = pool
            self.manager.activated(path)
            log.info("patterns reloaded (%s)", why)
            await asyncio.to_thread(old.retire)
            return True

    async def watch(self, every: float) -> None:
        """Poll the source directory's hash; reload when it changes."""
        while True:
            await asyncio.sleep(every)
            digest = await asyncio.to_thread(self.manager.source_digest)
            active = self.manager.status.digest
            if digest and digest != active and digest != self.manager._refused:
                await self.reload("patterns directory changed")
