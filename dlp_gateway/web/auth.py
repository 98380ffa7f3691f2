"""Server-side sessions for the admin page.

The cookie holds a random token; the database holds only its SHA-256, with the
user, a per-session CSRF token and the last time it was used. A session ends on
logout (row deleted), after ``idle_minutes`` without a request, or when its
account is disabled.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from dlp_gateway.store.db import Database

COOKIE_NAME = "dlp_session"
LOGIN_CSRF_COOKIE = "dlp_login_csrf"

# Table: dlp_gateway/store/schema.py (versioned migrations).


@dataclass(frozen=True, slots=True)
class Session:
    email: str
    csrf_token: str
    created_at: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def tokens_match(expected: str, given: str | None) -> bool:
    """Constant-time comparison; an empty or missing token never matches."""
    return bool(expected) and bool(given) and hmac.compare_digest(expected, given or "")


class LoginThrottle:
    """Lock-out with check-and-count in one transaction (``BEGIN IMMEDIATE`` on SQLite,
    an advisory lock per address on PostgreSQL, so every node counts the same attempts).

    Every attempt is counted *before* its password is checked, so concurrent
    guesses cannot all slip past the check: the attempt that reaches
    ``max_failures`` sets the lock and every later one is refused unverified.
    A lock is never shortened (a new lock ends no earlier than the current one)
    and only a correct password clears the count. Uses the ``login_failures``
    table of ``store/users.py``.
    """

    def __init__(self, db: Database):
        self.db = db

    def begin(
        self, email: str, max_failures: int, lock_minutes: float, now: dt.datetime
    ) -> dt.datetime | None:
        """Count one attempt; return the end of the lock if the address is locked (the
        attempt must then be refused without checking the password)."""
        with self.db.transaction() as conn:
            self.db.lock(conn, "login:" + email)
            row = conn.execute(
                "SELECT failures, locked_until FROM login_failures WHERE email = ?", (email,)
            ).fetchone()
            failures = row["failures"] if row else 0
            until = _aware(row["locked_until"]) if row and row["locked_until"] else None
            if until is not None and until > now:
                return until
            if until is not None:
                failures = 0  # the previous lock has run out: count afresh
            failures += 1
            new_until = None
            if failures >= max_failures:
                new_until = now + dt.timedelta(minutes=lock_minutes)
                failures = 0
            conn.execute(
                "INSERT INTO login_failures (email, failures, locked_until) VALUES (?, ?, ?)"
                " ON CONFLICT(email) DO UPDATE SET failures = excluded.failures,"
                " locked_until = excluded.locked_until",
                (email, failures, new_until.isoformat() if new_until else None),
            )
        return None

    def succeeded(self, email: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM login_failures WHERE email = ?", (email,))

    def lock_end(self, email: str) -> dt.datetime | None:
        rows = self.db.query(
            "SELECT locked_until FROM login_failures WHERE email = ?", (email,)
        )
        return _aware(rows[0]["locked_until"]) if rows and rows[0]["locked_until"] else None


def _aware(value: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


class SessionStore:
    def __init__(self, db: Database):
        self.db = db

    def create(self, email: str, now: dt.datetime) -> tuple[str, Session]:
        """Start a session; returns the cookie token (never stored) and the session."""
        token = secrets.token_urlsafe(32)
        session = Session(email, secrets.token_urlsafe(32), now.isoformat(timespec="seconds"))
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO web_sessions (token_hash, email, csrf_token, created_at, last_seen)"
                " VALUES (?, ?, ?, ?, ?)",
                (_hash(token), email, session.csrf_token, session.created_at,
                 now.isoformat(timespec="seconds")),
            )
        return token, session

    def get(self, token: str | None, idle_minutes: float, now: dt.datetime) -> Session | None:
        """The live session for this cookie token, touched; None if absent or idle too long."""
        if not token:
            return None
        key = _hash(token)
        with self.db.transaction() as conn:
            row = conn.execute("SELECT * FROM web_sessions WHERE token_hash = ?", (key,)).fetchone()
            if row is None:
                return None
            idle = now - dt.datetime.fromisoformat(row["last_seen"])
            if idle > dt.timedelta(minutes=idle_minutes):
                conn.execute("DELETE FROM web_sessions WHERE token_hash = ?", (key,))
                return None
            conn.execute(
                "UPDATE web_sessions SET last_seen = ? WHERE token_hash = ?",
                (now.isoformat(timespec="seconds"), key),
            )
        return Session(row["email"], row["csrf_token"], row["created_at"])

    def delete(self, token: str | None) -> None:
        if token:
            with self.db.transaction() as conn:
                conn.execute("DELETE FROM web_sessions WHERE token_hash = ?", (_hash(token),))

    def delete_for_user(self, email: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM web_sessions WHERE email = ?", (email,))

    def purge_idle(self, idle_minutes: float, now: dt.datetime) -> None:
        cutoff = (now - dt.timedelta(minutes=idle_minutes)).isoformat(timespec="seconds")
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM web_sessions WHERE last_seen < ?", (cutoff,))
