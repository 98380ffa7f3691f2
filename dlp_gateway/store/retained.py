"""Opt-in retention of passed mail, for `dlp-gateway replay` (``retain_passed_days``).

Each message is one file under ``<data_dir>/retained/``, encrypted at rest with
AES-256-GCM under a key kept in ``<data_dir>/retain.key`` (created 0600 on first
use). Files older than the retention period are deleted, and the oldest go first
when the directory grows past ``retain_max_mb``. A failure here never affects
delivery: the relay logs it and carries on.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from Cryptodome.Cipher import AES

KEY_FILE = "retain.key"
DIRECTORY = "retained"
_NONCE = 12
_TAG = 16


@dataclass(frozen=True, slots=True)
class RetainedMail:
    id: str
    received: str  # ISO 8601 UTC
    sender: str
    recipients: list[str]
    verdict: str
    raw: bytes


class RetainedStore:
    def __init__(self, data_dir: Path, days: int, max_bytes: int):
        self.dir = data_dir / DIRECTORY
        self.key_path = data_dir / KEY_FILE
        self.days, self.max_bytes = days, max_bytes
        # Running size and last full prune, so a busy relay does not list the
        # directory for every message: a full prune runs when the cap is passed
        # or at most once an hour (for age).
        self._total: int | None = None
        self._pruned_at: dt.datetime | None = None

    def _key(self, create: bool) -> bytes | None:
        try:
            return self.key_path.read_bytes()
        except FileNotFoundError:
            if not create:
                return None
        key = secrets.token_bytes(32)
        fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        return key

    def add(self, scan_id: str, sender: str, rcpts: list[str], raw: bytes, verdict: str,
            now: dt.datetime | None = None) -> Path:
        """Encrypt and store one passed message, then prune by age and size."""
        now = now or dt.datetime.now(dt.UTC)
        key = self._key(create=True)
        assert key is not None
        self.dir.mkdir(parents=True, exist_ok=True)
        head = json.dumps({"id": scan_id, "received": now.isoformat(timespec="seconds"),
                           "sender": sender, "recipients": rcpts, "verdict": verdict},
                          ensure_ascii=False).encode()
        nonce = secrets.token_bytes(_NONCE)
        cipher = AES.new(key, AES.MODE_GCM, nonce=nonce)
        body, tag = cipher.encrypt_and_digest(head + b"\n" + raw)
        name = f"{now.strftime('%Y%m%dT%H%M%S')}-{scan_id}.bin"
        tmp = self.dir / (name + ".tmp")
        tmp.write_bytes(nonce + tag + body)
        os.replace(tmp, self.dir / name)
        if self._total is not None:
            self._total += _NONCE + _TAG + len(body)
        due = self._pruned_at is None or now - self._pruned_at >= dt.timedelta(hours=1)
        if due or self._total is None or self._total > self.max_bytes:
            self.prune(now)
        return self.dir / name

    def prune(self, now: dt.datetime | None = None) -> int:
        """Delete files past the retention period, then the oldest beyond the size cap."""
        now = now or dt.datetime.now(dt.UTC)
        cutoff = (now - dt.timedelta(days=self.days)).strftime("%Y%m%dT%H%M%S")
        files = sorted(self.dir.glob("*.bin")) if self.dir.is_dir() else []
        removed = 0
        keep = []
        for path in files:
            if path.name[:15] < cutoff:
                path.unlink(missing_ok=True)
                removed += 1
            else:
                keep.append(path)
        total = sum(p.stat().st_size for p in keep)
        while keep and total > self.max_bytes:
            oldest = keep.pop(0)
            total -= oldest.stat().st_size
            oldest.unlink(missing_ok=True)
            removed += 1
        self._total, self._pruned_at = total, now
        return removed

    def entries(self, since: dt.datetime | None = None) -> Iterator[RetainedMail]:
        """Decrypted messages, oldest first (unreadable files are skipped)."""
        key = self._key(create=False)
        if key is None or not self.dir.is_dir():
            return
        stamp = since.strftime("%Y%m%dT%H%M%S") if since else ""
        for path in sorted(self.dir.glob("*.bin")):
            if path.name[:15] < stamp:
                continue
            data = path.read_bytes()
            cipher = AES.new(key, AES.MODE_GCM, nonce=data[:_NONCE])
            try:
                plain = cipher.decrypt_and_verify(data[_NONCE + _TAG:], data[_NONCE:_NONCE + _TAG])
            except ValueError:
                continue
            head, _, raw = plain.partition(b"\n")
            meta = json.loads(head)
            yield RetainedMail(meta["id"], meta["received"], meta["sender"],
                               meta["recipients"], meta["verdict"], raw)
