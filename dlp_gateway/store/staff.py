"""The staff directory (職員名簿): who works in which department.

A hold that needs a section head goes to the heads of the *sender's* department,
so the gateway must know each sender's department. Cities export the directory
as CSV (``email,name,department``, UTF-8 or cp932); ``import_csv`` can be run
again with a newer export (rows are updated in place, ``replace`` also drops
people no longer in the file).
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dlp_gateway.store.db import Database, utc_now

# Table: dlp_gateway/store/schema.py (versioned migrations).

# Column names accepted in the CSV header (the English ones are the interface;
# the Japanese ones are what directory exports often carry).
COLUMN_ALIASES = {
    "email": ("email", "e-mail", "mail", "メールアドレス", "メール"),
    "name": ("name", "氏名", "名前"),
    "department": ("department", "dept", "所属", "部署", "課"),
}
MAX_FIELD = 200


class StaffError(ValueError):
    """A directory file or entry that cannot be used (message in Japanese)."""


@dataclass(frozen=True, slots=True)
class StaffMember:
    email: str
    name: str
    department: str


@dataclass(frozen=True, slots=True)
class ImportResult:
    added: int
    updated: int
    unchanged: int
    removed: int
    skipped: list[str]  # Japanese, one line per row not imported


def normalize_email(email: str) -> str:
    return email.strip().lower()


def normalize_department(value: str | None) -> str:
    """Departments compare after NFKC (half-width ｶﾅ from old systems, full-width
    digits) and trimming, so a head typed by hand matches the exported directory."""
    return unicodedata.normalize("NFKC", value or "").strip()


def decode_csv(data: bytes) -> str:
    """UTF-8 (with or without BOM) or cp932, whichever decodes cleanly.

    A UTF-8 BOM in front of cp932 text (a tool that added one on re-saving) is dropped.
    """
    data = data.removeprefix(b"\xef\xbb\xbf")
    for encoding in ("utf-8", "cp932"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise StaffError(
        "CSV の文字コードを判別できません（UTF-8 か Shift_JIS (cp932) で保存してください）"
    )


def parse_csv(text: str) -> tuple[list[StaffMember], list[str]]:
    """Rows of a directory CSV, and the Japanese reasons for rows left out."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise StaffError("CSV が空です")
    index = _column_index([h.strip().lower() for h in header])
    members: list[StaffMember] = []
    skipped: list[str] = []
    for line_no, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        values = {k: (row[i].strip() if i < len(row) else "") for k, i in index.items()}
        email = normalize_email(values["email"])
        department = normalize_department(values["department"])
        if "@" not in email or " " in email:
            skipped.append(f"{line_no}行目: メールアドレスが正しくありません")
        elif not department:
            skipped.append(f"{line_no}行目: 所属が空です")
        else:
            members.append(
                StaffMember(email, values["name"][:MAX_FIELD], department[:MAX_FIELD])
            )
    return members, skipped


def _column_index(header: list[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    for key, aliases in COLUMN_ALIASES.items():
        for i, name in enumerate(header):
            if name in aliases:
                index[key] = i
                break
        else:
            raise StaffError(
                f"CSV の1行目に列 {key} がありません（必要な列: email,name,department）"
            )
    return index


class StaffStore:
    def __init__(self, db: Database):
        self.db = db

    def get(self, email: str) -> StaffMember | None:
        rows = self.db.query("SELECT * FROM staff WHERE email = ?", (normalize_email(email),))
        return _member(rows[0]) if rows else None

    def list(self, department: str | None = None) -> list[StaffMember]:
        if department:
            rows = self.db.query(
                "SELECT * FROM staff WHERE department = ? ORDER BY email",
                (normalize_department(department),),
            )
        else:
            rows = self.db.query("SELECT * FROM staff ORDER BY department, email")
        return [_member(r) for r in rows]

    def departments(self) -> list[str]:
        rows = self.db.query("SELECT DISTINCT department FROM staff ORDER BY department")
        return [r["department"] for r in rows]

    def add(self, email: str, name: str, department: str) -> tuple[StaffMember, str]:
        """Add or update one person; returns the entry and ``added|updated|unchanged``."""
        email = normalize_email(email)
        department = normalize_department(department)
        if "@" not in email:
            raise StaffError(f"メールアドレスが正しくありません: {email}")
        if not department:
            raise StaffError("所属（--department）を指定してください")
        member = StaffMember(email, name.strip(), department)
        with self.db.transaction() as conn:
            outcome = _upsert(conn, member)
        return member, outcome

    def import_members(
        self, members: Iterable[StaffMember], replace: bool = False
    ) -> ImportResult:
        """Upsert every member in one transaction; ``replace`` drops the others."""
        counts = {"added": 0, "updated": 0, "unchanged": 0}
        seen: set[str] = set()
        removed = 0
        with self.db.transaction() as conn:
            for member in members:
                seen.add(member.email)
                counts[_upsert(conn, member)] += 1
            if replace:
                existing = [r["email"] for r in conn.execute("SELECT email FROM staff")]
                gone = [e for e in existing if e not in seen]
                for email in gone:
                    conn.execute("DELETE FROM staff WHERE email = ?", (email,))
                removed = len(gone)
        return ImportResult(counts["added"], counts["updated"], counts["unchanged"], removed, [])


def _upsert(conn: Any, member: StaffMember) -> str:
    row = conn.execute(
        "SELECT name, department FROM staff WHERE email = ?", (member.email,)
    ).fetchone()
    if row is not None and (row["name"], row["department"]) == (member.name, member.department):
        return "unchanged"
    conn.execute(
        "INSERT INTO staff (email, name, department, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT(email) DO UPDATE SET name = excluded.name,"
        " department = excluded.department, updated_at = excluded.updated_at",
        (member.email, member.name, member.department, utc_now()),
    )
    return "added" if row is None else "updated"


def _member(row: Any) -> StaffMember:
    return StaffMember(row["email"], row["name"], row["department"])
