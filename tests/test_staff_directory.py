"""The staff directory and approver departments (issue 9): `staff import|add|list`,
`users add --department/--deputy`, CSV in UTF-8 (with/without BOM) and cp932,
re-import, an old database gaining the new columns."""

from __future__ import annotations

import io
import json
import os
import random
import sqlite3
import unicodedata

import pytest
from argon2 import PasswordHasher

from dlp_gateway import cli
from dlp_gateway.store import users as users_module
from dlp_gateway.store.audit import AuditLog
from dlp_gateway.store.db import Database
from dlp_gateway.store.staff import StaffError, StaffStore, decode_csv, parse_csv
from dlp_gateway.store.users import UserError, UserStore

SEED = int(os.environ.get("DLP_SEED", random.randrange(1 << 30)))
SURNAMES = ["佐藤", "鈴木", "髙橋", "渡邉", "齋藤", "山﨑", "伊藤", "中村"]
GIVEN = ["花子", "太郎", "美咲", "健太", "陽子", "翔"]
DEPTS = ["介護保険課", "税務課", "市民課", "子育て支援課", "ｼｽﾃﾑ管理室"]


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch):
    monkeypatch.setattr(users_module, "_HASHER",
                        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def _directory(rng: random.Random, n: int) -> list[tuple[str, str, str]]:
    return [(f"user{i}@city.example.lg.jp", f"{rng.choice(SURNAMES)}　{rng.choice(GIVEN)}",
             rng.choice(DEPTS)) for i in range(n)]


def _csv(rows, header="email,name,department") -> str:
    lines = [header] + [",".join(r) for r in rows]
    return "\r\n".join(lines) + "\r\n"


def _encode(text: str, encoding: str) -> bytes:
    if encoding == "cp932+bom":  # re-saved by a tool that put a UTF-8 BOM before cp932
        return b"\xef\xbb\xbf" + text.encode("cp932")
    return text.encode(encoding)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp932", "cp932+bom"])
def test_import_any_encoding_then_reimport(tmp_path, capsys, encoding):
    rng = random.Random(SEED)
    rows = _directory(rng, rng.randint(5, 40))
    path = tmp_path / "staff.csv"
    path.write_bytes(_encode(_csv(rows), encoding))
    data = str(tmp_path / "data")
    assert cli.main(["staff", "import", str(path), "--data-dir", data]) == 0, f"seed={SEED}"
    assert f"{len(rows)} added" in capsys.readouterr().out
    db = Database.in_data_dir(tmp_path / "data")
    try:
        store = StaffStore(db)
        for email, name, dept in rows:
            member = store.get(email.upper())
            assert member is not None and member.name == name
            assert member.department == unicodedata.normalize("NFKC", dept)  # ｼｽﾃﾑ -> システム
    finally:
        db.close()

    # a newer export: one person moved, one left, one joined
    moved = (rows[0][0], rows[0][1], "情報政策課")
    new_rows = [moved, *rows[2:], ("new@city.example.lg.jp", "新人　一郎", "市民課")]
    path.write_bytes(_encode(_csv(new_rows), encoding))
    assert cli.main(["staff", "import", str(path), "--replace", "--data-dir", data]) == 0
    out = capsys.readouterr().out
    assert "1 added" in out and "1 updated" in out and "1 removed" in out, out
    assert cli.main(["staff", "list", "--format", "json", "--data-dir", data]) == 0
    listed = {d["email"]: d for d in map(json.loads, capsys.readouterr().out.splitlines())}
    assert listed[rows[0][0]]["department"] == "情報政策課"
    assert rows[1][0] not in listed and "new@city.example.lg.jp" in listed


def test_japanese_headers_and_bad_rows_are_reported():
    text = _csv([("a@city.example", "佐藤 花子", "市民課"), ("not-an-address", "x", "市民課"),
                 ("b@city.example", "鈴木 太郎", "")], header="メールアドレス,氏名,所属")
    members, skipped = parse_csv(text)
    assert [m.email for m in members] == ["a@city.example"]
    assert len(skipped) == 2 and "3行目" in skipped[0] and "4行目" in skipped[1]
    with pytest.raises(StaffError):
        parse_csv("mail,name\nx@y,z\n")  # no department column
    with pytest.raises(StaffError):
        decode_csv(b"\xff\xfe\xfa\xfb\x80\x81")


def test_staff_add_with_config_file(tmp_path, capsys):
    config = tmp_path / "gateway.toml"
    config.write_text(f'data_dir = "{tmp_path / "cfgdata"}"\n', encoding="utf-8")
    assert cli.main(["staff", "add", "Kaigo@City.Example", "--name", "介護 太郎",
                     "--department", "介護保険課", "--config", str(config)]) == 0
    assert cli.main(["staff", "add", "kaigo@city.example", "--name", "介護 太郎",
                     "--department", "介護保険課", "--config", str(config)]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("unchanged")
    db = Database.in_data_dir(tmp_path / "cfgdata")
    try:
        assert StaffStore(db).get("kaigo@city.example").department == "介護保険課"
        events = [e.event for e in AuditLog(db).entries()]
        assert events == ["staff_added", "staff_added"]
    finally:
        db.close()


def test_users_add_department_and_deputy(tmp_path, monkeypatch, capsys):
    data = str(tmp_path / "data")
    monkeypatch.setattr("sys.stdin", io.StringIO("kacho-password\n"))
    assert cli.main(["users", "add", "kacho@city.example", "--role", "section_head",
                     "--department", "介護保険課", "--data-dir", data]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("dairi-password\n"))
    assert cli.main(["users", "add", "dairi@city.example", "--role", "section_head",
                     "--department", "介護保険課", "--deputy", "--data-dir", data]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("nodept-password\n"))
    assert cli.main(["users", "add", "nodept@city.example", "--role", "section_head",
                     "--data-dir", data]) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("ciso-password\n"))
    assert cli.main(["users", "add", "ciso@city.example", "--role", "ciso", "--deputy",
                     "--data-dir", data]) == 1
    capsys.readouterr()
    assert cli.main(["users", "list", "--format", "json", "--data-dir", data]) == 0
    users = {u["email"]: u for u in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(users) == {"kacho@city.example", "dairi@city.example"}
    assert users["dairi@city.example"]["deputy"] is True
    assert users["kacho@city.example"]["department"] == "介護保険課"
    db = Database.in_data_dir(tmp_path / "data")
    try:
        heads = UserStore(db).section_heads("介護保険課")
        assert [(u.email, u.deputy) for u in heads] == [
            ("kacho@city.example", False), ("dairi@city.example", True)]
        assert UserStore(db).section_heads("税務課") == []
        UserStore(db).add("sys@city.example", "section_head", "password-s", " ｼｽﾃﾑ管理室　")
        assert [u.email for u in UserStore(db).section_heads("システム管理室")] == [
            "sys@city.example"]
        with pytest.raises(UserError):
            UserStore(db).add("x@city.example", "operator", "password-x", deputy=True)
    finally:
        db.close()


def test_old_database_gains_new_columns(tmp_path):
    """A data directory from before issue 9 opens, keeps its rows and gets the columns."""
    path = tmp_path / "data" / "gateway.db"
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE users (email TEXT PRIMARY KEY, role TEXT NOT NULL, department TEXT,"
        " password_hash TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 1,"
        " created_at TEXT NOT NULL);"
        "INSERT INTO users VALUES ('old@city.example', 'ciso', NULL, 'x', 1, '2025-01-01');"
    )
    conn.commit()
    conn.close()
    db = Database(path)
    try:
        user = UserStore(db).get("old@city.example")
        assert user is not None and user.role == "ciso" and user.deputy is False
    finally:
        db.close()
