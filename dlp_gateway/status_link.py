"""Signed links to a held mail's status page for its sender (no login).

A token names one held mail and the time it stops working (the hold's final
deadline), signed with HMAC-SHA256 under a key kept in the data directory
(``status-link.key``, created on first use, mode 0600). Anyone holding the link
can see that one mail's status and withdraw it, which is what the sender needs
and all a leaked link gives away.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEY_FILENAME = "status-link.key"


@dataclass(frozen=True, slots=True)
class LinkClaim:
    held_id: str
    expires: dt.datetime


class LinkError(ValueError):
    """A token that is malformed, forged or expired (``expired`` tells which)."""

    def __init__(self, message: str, expired: bool = False):
        super().__init__(message)
        self.expired = expired


def load_key(data_dir: Path, db: Any = None) -> bytes:
    """The signing key, created atomically (O_EXCL) the first time. With a database
    several nodes share, the key is kept there (a link signed on one node opens on all)."""
    if db is not None and getattr(db, "shared", False):
        from dlp_gateway.store.keys import shared_key

        return shared_key(db, "status_link")
    path = Path(data_dir) / KEY_FILENAME
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
        fh.flush()
        os.fsync(fh.fileno())
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, payload.encode("utf-8"), hashlib.sha256).digest())


def make_token(key: bytes, held_id: str, expires: dt.datetime) -> str:
    payload = _b64(f"{held_id}\n{int(expires.timestamp())}".encode())
    return f"{payload}.{_sign(key, payload)}"


def read_token(key: bytes, token: str, now: dt.datetime) -> LinkClaim:
    """The claim of a genuine, unexpired token; LinkError otherwise."""
    payload, _, signature = token.partition(".")
    if not payload or not signature or not hmac.compare_digest(
        signature.encode(), _sign(key, payload).encode()
    ):
        raise LinkError("リンクが正しくありません。")
    try:
        text = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode("utf-8")
        held_id, stamp = text.split("\n", 1)
        expires = dt.datetime.fromtimestamp(int(stamp), dt.UTC)
    except (ValueError, UnicodeDecodeError) as exc:
        raise LinkError("リンクが正しくありません。") from exc
    if now >= expires:
        raise LinkError("このリンクの有効期限（保留の期限）は過ぎています。", expired=True)
    return LinkClaim(held_id, expires)
