"""Approver and operator accounts: Argon2id password hashes, roles, lock-out.

Failed logins are tracked per (lower-cased) e-mail address, whether or not the
account exists, so lock-out behaves the same for unknown addresses and does not
reveal which accounts exist.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from dlp_gateway.mail.addresses import is_mailbox
from dlp_gateway.store.db import Database
from dlp_gateway.store.staff import normalize_department

ROLES: tuple[str, ...] = ("section_head", "ciso", "operator")
ROLE_LABELS: dict[str, str] = {
    "section_head": "所属長",
    "ciso": "統括情報セキュリティ責任者",
    "operator": "運用担当者",
}

# Tables: dlp_gateway/store/schema.py (versioned migrations).

_HASHER = PasswordHasher()  # argon2-cffi defaults: Argon2id, RFC 9106 low-memory profile


@functools.cache
def _dummy_hash() -> str:
    """Verified against unknown/disabled accounts so they take as long as real ones.
    Made on first use (UserStore() makes it), not at import: one Argon2 hash costs about
    0.15 s, which every CLI command would otherwise pay."""
    return _HASHER.hash("dlp-gateway: no such user")


class UserError(ValueError):
    """A user-management request that cannot be carried out (message in Japanese)."""


@dataclass(frozen=True, slots=True)
class User:
    email: str
    role: str
    department: str | None
    enabled: bool
    created_at: str
    deputy: bool = False

    @property
    def role_label(self) -> str:
        label = ROLE_LABELS.get(self.role, self.role)
        return f"{label}（代理）" if self.deputy else label


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UserStore:
    def __init__(self, db: Database):
        self.db = db
        _dummy_hash()  # now, so the first failed login is not slower than the others

    # -- accounts -------------------------------------------------------------------------

    def add(
        self, email: str, role: str, password: str, department: str | None = None,
        deputy: bool = False, update: bool = False,
    ) -> User:
        """A new account; with ``update`` an existing one gets the new role, department,
        deputy flag and password and is enabled again (a move, a typo, a reset)."""
        email = normalize_email(email)
        department = normalize_department(department) or None
        if deputy and role != "section_head":
            raise UserError("代理（--deputy）は所属長（section_head）にだけ指定できます")
        if role not in ROLES:
            raise UserError(f"不明な役割です: {role}（{', '.join(ROLES)} のいずれか）")
        if not is_mailbox(email):  # one plain mailbox: notices and logins key on it
            raise UserError(f"メールアドレスが正しくありません: {email}")
        if len(password) < 8:
            raise UserError("パスワードは8文字以上にしてください")
        existing = self.get(email)
        if existing is not None and not update:
            raise UserError(f"既に登録されています: {email}（変更するには --update）")
        if existing is None and update:
            raise UserError(f"登録されていません: {email}")
        if existing is not None:
            with self.db.transaction() as conn:
                conn.execute(
                    "UPDATE users SET role = ?, department = ?, password_hash = ?, enabled = 1,"
                    " deputy = ? WHERE email = ?",
                    (role, department, _HASHER.hash(password), int(deputy), email),
                )
            return User(email, role, department, True, existing.created_at, deputy)
        created = _now().isoformat(timespec="seconds")
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO users (email, role, department, password_hash, enabled, created_at,"
                " deputy) VALUES (?, ?, ?, ?, 1, ?, ?)",
                (email, role, department, _HASHER.hash(password), created, int(deputy)),
            )
        return User(email, role, department, True, created, deputy)

    def get(self, email: str) -> User | None:
        rows = self.db.query("SELECT * FROM users WHERE email = ?", (normalize_email(email),))
        return _user(rows[0]) if rows else None

    def list(self) -> list[User]:
        return [_user(r) for r in self.db.query("SELECT * FROM users ORDER BY role, email")]

    def disable(self, email: str) -> bool:
        """Disable an account; returns False if it does not exist."""
        with self.db.transaction() as conn:
            cur = conn.execute(
                "UPDATE users SET enabled = 0 WHERE email = ?", (normalize_email(email),)
            )
        return cur.rowcount > 0

    def section_heads(self, department: str) -> list[User]:
        """Enabled heads and deputies of ``department``."""
        rows = self.db.query(
            "SELECT * FROM users WHERE role = 'section_head' AND enabled = 1"
            " AND department = ? ORDER BY deputy, email",
            (normalize_department(department),),
        )
        return [_user(r) for r in rows]

    def emails_for_role(self, role: str) -> list[str]:
        rows = self.db.query(
            "SELECT email FROM users WHERE role = ? AND enabled = 1 ORDER BY email", (role,)
        )
        return [r["email"] for r in rows]

    def verify_password(self, email: str, password: str) -> bool:
        """True only for an enabled account with this password.

        Unknown and disabled accounts still pay for one Argon2 verification.
        """
        rows = self.db.query(
            "SELECT password_hash, enabled FROM users WHERE email = ?", (normalize_email(email),)
        )
        stored = rows[0]["password_hash"] if rows else _dummy_hash()
        try:
            ok = _HASHER.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        return bool(ok and rows and rows[0]["enabled"])

    # -- lock-out -------------------------------------------------------------------------

    def locked_until(self, email: str, now: dt.datetime | None = None) -> dt.datetime | None:
        """When the address is locked, the time the lock ends; else None."""
        now = now or _now()
        rows = self.db.query(
            "SELECT locked_until FROM login_failures WHERE email = ?", (normalize_email(email),)
        )
        if not rows or not rows[0]["locked_until"]:
            return None
        until = _time(rows[0]["locked_until"])
        return until if until > now else None

    def record_failure(
        self,
        email: str,
        max_failures: int,
        lock_minutes: float,
        now: dt.datetime | None = None,
    ) -> dt.datetime | None:
        """Count one failed login; lock the address once ``max_failures`` is reached.

        Returns the end of the lock if this failure caused one.
        """
        now = now or _now()
        email = normalize_email(email)
        with self.db.transaction() as conn:
            self.db.lock(conn, "login:" + email)  # one count per attempt on every node
            row = conn.execute(
                "SELECT failures, locked_until FROM login_failures WHERE email = ?", (email,)
            ).fetchone()
            failures = row["failures"] if row else 0
            if row and row["locked_until"] and _time(row["locked_until"]) <= now:
                failures = 0  # the previous lock has run out: start counting afresh
            failures += 1
            until = None
            if failures >= max_failures:
                until = now + dt.timedelta(minutes=lock_minutes)
            conn.execute(
                "INSERT INTO login_failures (email, failures, locked_until) VALUES (?, ?, ?)"
                " ON CONFLICT(email) DO UPDATE SET failures = excluded.failures,"
                " locked_until = excluded.locked_until",
                (email, 0 if until else failures, until.isoformat() if until else None),
            )
        return until

    def reset_failures(self, email: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM login_failures WHERE email = ?", (normalize_email(email),))


def _time(value: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _user(row) -> User:  # type: ignore[no-untyped-def]
    return User(
        email=row["email"],
        role=row["role"],
        department=row["department"],
        enabled=bool(row["enabled"]),
        created_at=row["created_at"],
        deputy=bool(row["deputy"]),
    )

