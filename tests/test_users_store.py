"""UserStore (Argon2id accounts, lock-out) and the `dlp-gateway users` command."""

from __future__ import annotations

import datetime as dt
import io
import sys

import pytest

from dlp_gateway import cli
from dlp_gateway.store.audit import AuditLog
from dlp_gateway.store.db import Database
from dlp_gateway.store.users import UserError, UserStore
from tests.conftest import db_args

T0 = dt.datetime(2025, 4, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def db(tmp_path, database_url):
    database = Database.in_data_dir(tmp_path, database_url)
    yield database
    database.close()


@pytest.fixture
def users(db):
    return UserStore(db)


def test_add_stores_argon2id_hash_not_password(users, db):
    users.add("Head@City.Example", "section_head", "correct horse", "介護保険課")
    row = db.query("SELECT * FROM users")[0]
    assert row["email"] == "head@city.example"
    assert row["password_hash"].startswith("$argon2id$")
    assert "correct horse" not in row["password_hash"]
    user = users.get("HEAD@city.example")
    assert user is not None and user.role == "section_head" and user.department == "介護保険課"


def test_verify_password(users):
    users.add("ciso@city.example", "ciso", "s3cret-pass")
    assert users.verify_password("ciso@city.example", "s3cret-pass")
    assert users.verify_password(" CISO@city.example ", "s3cret-pass")
    assert not users.verify_password("ciso@city.example", "wrong-pass")
    assert not users.verify_password("nobody@city.example", "s3cret-pass")


def test_disabled_user_cannot_log_in_nor_be_notified(users):
    users.add("a@city.example", "ciso", "password-a")
    users.add("b@city.example", "ciso", "password-b")
    users.add("c@city.example", "section_head", "password-c")
    assert users.emails_for_role("ciso") == ["a@city.example", "b@city.example"]
    assert users.disable("a@city.example")
    assert not users.verify_password("a@city.example", "password-a")
    assert users.emails_for_role("ciso") == ["b@city.example"]
    assert not users.disable("zzz@city.example")
    assert [u.email for u in users.list() if not u.enabled] == ["a@city.example"]


@pytest.mark.parametrize(
    ("email", "role", "password"),
    [("x@city.example", "mayor", "long-enough"), ("no-at-sign", "ciso", "long-enough"),
     ("x@city.example", "ciso", "short")],
)
def test_add_refuses_bad_input(users, email, role, password):
    with pytest.raises(UserError):
        users.add(email, role, password)


def test_add_refuses_duplicate(users):
    users.add("x@city.example", "operator", "long-enough")
    with pytest.raises(UserError):
        users.add("X@city.example", "ciso", "long-enough")


def test_lockout_after_failures_then_expires(users):
    assert users.record_failure("x@city.example", 3, 15, T0) is None
    assert users.record_failure("x@city.example", 3, 15, T0) is None
    until = users.record_failure("x@city.example", 3, 15, T0)
    assert until == T0 + dt.timedelta(minutes=15)
    assert users.locked_until("x@city.example", T0 + dt.timedelta(minutes=14)) == until
    assert users.locked_until("x@city.example", T0 + dt.timedelta(minutes=16)) is None
    # after the lock, counting starts afresh: one failure does not lock again
    later = T0 + dt.timedelta(minutes=20)
    assert users.record_failure("x@city.example", 3, 15, later) is None


def test_reset_failures_clears_count(users):
    users.record_failure("x@city.example", 3, 15, T0)
    users.record_failure("x@city.example", 3, 15, T0)
    users.reset_failures("x@city.example")
    assert users.record_failure("x@city.example", 3, 15, T0) is None


def test_cli_users_add_list_disable(tmp_path, monkeypatch, capsys, database_url):
    data, *more = [str(tmp_path / "data"), *db_args(database_url)]
    monkeypatch.setattr(sys, "stdin", io.StringIO("pass-from-stdin\n"))
    assert cli.main(["users", "add", "boss@city.example", "--role", "ciso",
                     "--department", "企画部", "--data-dir", data, *more]) == 0
    assert cli.main(["users", "list", "--data-dir", data, *more]) == 0
    out = capsys.readouterr().out
    assert "boss@city.example\tciso\t企画部\tenabled" in out
    assert cli.main(["users", "disable", "boss@city.example", "--data-dir", data, *more]) == 0
    assert cli.main(["users", "disable", "ghost@city.example", "--data-dir", data, *more]) == 1

    db = Database.in_data_dir(data, database_url)
    try:
        store = UserStore(db)
        assert store.get("boss@city.example").enabled is False
        assert not store.verify_password("boss@city.example", "pass-from-stdin")
        assert [e.event for e in AuditLog(db).entries()] == ["user_added", "user_disabled"]
    finally:
        db.close()


def test_cli_users_add_bad_role_is_usage_error(tmp_path):
    with pytest.raises(SystemExit) as exc:
        cli.main(["users", "add", "x@city.example", "--role", "mayor",
                  "--data-dir", str(tmp_path)])
    assert exc.value.code == 2
