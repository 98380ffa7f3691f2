"""The hash-chained audit log: tamper detection, filters, `dlp-gateway audit`."""

from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path

import pytest

from dlp_gateway import cli
from dlp_gateway.store.audit import AuditLog
from dlp_gateway.store.db import Database
from tests.conftest import db_args


class DataDir(type(Path())):  # type: ignore[misc]
    """The data directory, knowing the test's database URL ("" for SQLite)."""

    url = ""

    def args(self) -> list[str]:
        return ["--data-dir", str(self), *db_args(self.url)]


@pytest.fixture
def data_dir(tmp_path, database_url):
    path = DataDir(tmp_path / "data")
    path.url = database_url
    db = Database.in_data_dir(path, database_url)
    log = AuditLog(db)
    log.append("login", "head@city.example", None, {"ip": "127.0.0.1"})
    log.append("hold", "system", "abc", {"sender": "staff@city.example"})
    log.append("release", "ciso@city.example", "abc", {"mode": "encrypted"})
    log.append("logout", "head@city.example")
    db.close()
    return path


def _raw_sql(data_dir, sql, params=()):
    """Edit the table behind the gateway's back, with the backend's own driver."""
    if data_dir.url:
        import psycopg

        with psycopg.connect(data_dir.url, autocommit=True) as conn:
            conn.execute(sql.replace("?", "%s"), params)
        return
    conn = sqlite3.connect(data_dir / "gateway.db")
    with conn:
        conn.execute(sql, params)
    conn.close()


def _verify(data_dir):
    db = Database.in_data_dir(data_dir, data_dir.url)
    try:
        return AuditLog(db).verify()
    finally:
        db.close()


def test_intact_chain_verifies(data_dir, capsys):
    assert _verify(data_dir) == []
    assert cli.main(["audit", "verify", *data_dir.args()]) == 0
    assert "改ざんされていません（4件）" in capsys.readouterr().out


def test_edited_row_detected(data_dir, capsys):
    _raw_sql(data_dir, "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 3")
    problems = _verify(data_dir)
    assert any("row 3" in p and "edited" in p for p in problems)
    assert cli.main(["audit", "verify", *data_dir.args()]) == 1
    assert "row 3" in capsys.readouterr().out


def test_edited_details_detected(data_dir):
    _raw_sql(data_dir, "UPDATE audit_log SET details = '{\"mode\": \"as_is\"}' WHERE seq = 3")
    assert _verify(data_dir)


def test_deleted_row_detected(data_dir):
    _raw_sql(data_dir, "DELETE FROM audit_log WHERE seq = 2")
    problems = _verify(data_dir)
    assert any("missing" in p for p in problems)


def test_rewritten_hash_still_breaks_next_link(data_dir):
    # Recomputing an edited row's own hash is not enough: the next row links to the old one.
    from dlp_gateway.store.audit import _row_hash

    db = Database.in_data_dir(data_dir, data_dir.url)
    row = db.query("SELECT prev_hash, seq, at, event, held_id, details FROM audit_log"
                   " WHERE seq = 2")[0]
    db.close()
    forged = _row_hash(row[0], row[1], row[2], row[3], "forger", row[4], row[5])
    _raw_sql(data_dir, "UPDATE audit_log SET actor = 'forger', hash = ? WHERE seq = 2", (forged,))
    problems = _verify(data_dir)
    # issue 10: the chain is keyed now, so the forged row itself is caught as well
    assert "row 3: previous-hash link broken" in problems
    assert any(p.startswith("row 2:") for p in problems)


def test_entries_filters(data_dir):
    db = Database.in_data_dir(data_dir, data_dir.url)
    try:
        log = AuditLog(db)
        assert [e.event for e in log.entries(held_id="abc")] == ["hold", "release"]
        assert [e.event for e in log.entries(actor="head@city.example")] == ["login", "logout"]
        assert [e.seq for e in log.entries(newest_first=True, limit=2)] == [4, 3]
        today = log.entries()[0].at[:10]
        assert len(log.entries(since=today, until=today)) == 4
        assert log.entries(until="2000-01-01") == []
    finally:
        db.close()


def test_cli_list_and_export_csv_with_bom(data_dir, tmp_path, capsys):
    assert cli.main(["audit", "list", "--event", "release", "--format", "json",
                     *data_dir.args()]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and '"ciso@city.example"' in out[0]

    target = tmp_path / "audit.csv"
    assert cli.main(["audit", "export", "--csv", str(target), *data_dir.args()]) == 0
    data = target.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][:4] == ["連番", "日時", "イベント", "実行者"]
    assert [r[2] for r in rows[1:]] == ["ログイン", "保留", "送信（承認済み）", "ログアウト"]
    assert [r[-1] for r in rows[1:]] == ["login", "hold", "release", "logout"]
    assert all(r[1].endswith("+09:00") for r in rows[1:])  # one time zone: Asia/Tokyo
    assert b"\r\n" in data
