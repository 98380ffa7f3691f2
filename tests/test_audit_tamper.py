"""Issue 10: every tampering of the audit log is detected by `dlp-gateway audit verify`.

The database is edited with plain sqlite3, as an attacker with write access to the
data directory's database (but not to the key file) would."""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from dlp_gateway import cli
from dlp_gateway.store.audit import _row_hash
from dlp_gateway.store.db import Database

ROWS = 40


# Data directories whose audit log is in PostgreSQL (the same tamperings, issue 12).
_PG_URLS: dict[Path, str] = {}


def _build(path: Path, seed: int, url: str = "") -> None:
    from dlp_gateway.store.audit import AuditLog

    rng = random.Random(seed)
    if url:
        _PG_URLS[path] = url
    db = Database.in_data_dir(path, url)
    log = AuditLog(db)
    for i in range(ROWS):
        event = rng.choice(["hold", "release", "reject", "login", "login_failed", "approve"])
        log.append(event, rng.choice(["a@city.example", "b@city.example", "system"]),
                   rng.choice([None, f"id{i}"]), {"n": i, "note": rng.choice(["x", "承認"])})
    db.close()


def _sql(path: Path, *statements: tuple[str, tuple]) -> None:
    if path in _PG_URLS:
        import psycopg

        with psycopg.connect(_PG_URLS[path]) as pg, pg.transaction():
            for sql, params in statements:
                pg.execute(sql.replace("?", "%s"), params)
        return
    conn = sqlite3.connect(path / "gateway.db")
    with conn:
        for sql, params in statements:
            conn.execute(sql, params)
    conn.close()


def _rows(path: Path) -> list[tuple]:
    if path in _PG_URLS:
        import psycopg

        with psycopg.connect(_PG_URLS[path]) as pg:
            return pg.execute("SELECT seq, at, event, actor, held_id, details, prev_hash, hash"
                              " FROM audit_log ORDER BY seq").fetchall()
    conn = sqlite3.connect(path / "gateway.db")
    rows = conn.execute("SELECT seq, at, event, actor, held_id, details, prev_hash, hash"
                        " FROM audit_log ORDER BY seq").fetchall()
    conn.close()
    return rows


def _rechain(path: Path, from_seq: int, key: bytes | None = None) -> None:
    """Recompute every MAC from ``from_seq`` on (an attacker's cover-up)."""
    rows = _rows(path)
    prev = rows[from_seq - 2][7] if from_seq > 1 else "0" * 64
    updates = []
    for seq, at, event, actor, held_id, details, _p, _h in rows[from_seq - 1:]:
        digest = _row_hash(prev, seq, at, event, actor, held_id, details, key)
        updates.append(("UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?",
                        (prev, digest, seq)))
        prev = digest
    _sql(path, *updates)


def delete_last(p: Path) -> None:
    _sql(p, ("DELETE FROM audit_log WHERE seq = ?", (ROWS,)))


def delete_last_20(p: Path) -> None:
    _sql(p, ("DELETE FROM audit_log WHERE seq > ?", (ROWS - 20,)))


def truncate(p: Path) -> None:
    _sql(p, ("DELETE FROM audit_log", ()))


def drop_table(p: Path) -> None:
    _sql(p, ("DROP TABLE audit_log", ()))


def append_forged(p: Path) -> None:
    last = _rows(p)[-1]
    details = json.dumps({"mode": "as_is"})
    for digest in (_row_hash(last[7], ROWS + 1, last[1], "release", "ciso@city.example",
                             "x", details),
                   "h1:" + "0" * 64):
        _sql(p, ("DELETE FROM audit_log WHERE seq = ?", (ROWS + 1,)),
             ("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
              (ROWS + 1, last[1], "release", "ciso@city.example", "x", details, last[7],
               digest)))


def edit_and_rechain(p: Path) -> None:
    _sql(p, ("UPDATE audit_log SET actor = 'forger' WHERE seq = 10", ()))
    _rechain(p, 10)


def edit_and_rechain_with_stolen_key(p: Path) -> None:
    key = bytes.fromhex((p / "audit.key").read_text().strip())
    _sql(p, ("UPDATE audit_log SET actor = 'forger' WHERE seq = 10", ()))
    _rechain(p, 10, key)


def delete_last_and_rechain_with_stolen_key(p: Path) -> None:
    delete_last(p)  # the key does not help: the anchor still names row 40


def edit_middle(p: Path) -> None:
    _sql(p, ("UPDATE audit_log SET details = '{}' WHERE seq = 20", ()))


def delete_middle(p: Path) -> None:
    _sql(p, ("DELETE FROM audit_log WHERE seq = 20", ()))


def edit_first(p: Path) -> None:
    _sql(p, ("UPDATE audit_log SET actor = 'x' WHERE seq = 1", ()))


def delete_first(p: Path) -> None:
    _sql(p, ("DELETE FROM audit_log WHERE seq = 1", ()))


def delete_anchor(p: Path) -> None:
    (p / "audit.anchor").unlink()


TAMPERINGS: list[Callable[[Path], None]] = [
    delete_last, delete_last_20, truncate, drop_table, append_forged, edit_and_rechain,
    edit_and_rechain_with_stolen_key, delete_last_and_rechain_with_stolen_key, edit_middle,
    delete_middle, edit_first, delete_first, delete_anchor,
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    seed = random.randrange(1 << 30)
    path = tmp_path_factory.mktemp("audit") / "data"
    _build(path, seed)
    return path


def _copy(pristine: Path, tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(pristine, target)
    return target


def test_untampered_log_verifies_and_key_is_private(pristine, tmp_path, capsys):
    data = _copy(pristine, tmp_path)
    assert cli.main(["audit", "verify", "--data-dir", str(data)]) == 0
    mode = stat.S_IMODE(os.stat(pristine / "audit.key").st_mode)
    assert mode & 0o600 == 0o600 and mode & 0o037 == 0  # owner, at most group-read
    anchors = (pristine / "audit.anchor").read_text().splitlines()
    assert len(anchors) == ROWS and anchors[-1].startswith(f"{ROWS} h1:")
    assert "h1:" in _rows(pristine)[-1][7]


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=lambda f: f.__name__)
def test_every_tampering_is_detected(pristine, tmp_path, tamper, capsys):
    data = _copy(pristine, tmp_path)
    tamper(data)
    assert cli.main(["audit", "verify", "--data-dir", str(data)]) == 1
    out = capsys.readouterr().out
    assert "問題" in out, out


def test_anchor_given_by_path(pristine, tmp_path, capsys):
    data = _copy(pristine, tmp_path)
    kept = tmp_path / "offsite.anchor"
    shutil.copy(data / "audit.anchor", kept)
    delete_last_20(data)
    (data / "audit.anchor").write_text("")  # the attacker wiped the local anchor too
    assert cli.main(["audit", "verify", "--data-dir", str(data)]) == 1  # empty anchor
    assert cli.main(["audit", "verify", "--anchor", str(kept), "--data-dir", str(data)]) == 1


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=lambda f: f.__name__)
def test_every_tampering_is_detected_on_postgresql(pg_url, tmp_path, tamper, capsys):
    data = tmp_path / "data"
    _build(data, random.randrange(1 << 30), pg_url)
    try:
        args = ["--data-dir", str(data), "--database-url", pg_url]
        assert cli.main(["audit", "verify", *args]) == 0
        capsys.readouterr()
        tamper(data)
        assert cli.main(["audit", "verify", *args]) == 1
        assert "問題" in capsys.readouterr().out
    finally:
        _PG_URLS.pop(data, None)
