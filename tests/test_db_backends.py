"""Issue 12: one store code on two backends, versioned migrations, and two nodes
(two Database handles = two connections) on one real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
import threading
from pathlib import Path

import pytest

from dlp_gateway.cli import main as cli_main
from dlp_gateway.config import ConfigError, load_config
from dlp_gateway.gateway import Gateway, HeldStateError
from dlp_gateway.store.audit import AuditLog
from dlp_gateway.store.db import INTEGRITY_ERRORS, Database, StorageError
from dlp_gateway.store.postgres import translate
from dlp_gateway.store.schema import LATEST, MIGRATIONS
from dlp_gateway.store.users import UserStore
from dlp_gateway.web.auth import LoginThrottle, SessionStore
from tests.conftest import RECIPIENT, SENDER, db_args, roster_mail

# The tables as the release before schema versions wrote them, and as an even older
# build did (held/outbound/users without the columns added later).
OLD_SQLITE = """
CREATE TABLE held (
    id TEXT PRIMARY KEY, received TEXT NOT NULL, sender TEXT NOT NULL,
    recipients TEXT NOT NULL, subject TEXT NOT NULL, reasons TEXT NOT NULL,
    rules TEXT NOT NULL, approver_role TEXT, status TEXT NOT NULL, sha256 TEXT NOT NULL,
    size INTEGER NOT NULL, spool_name TEXT NOT NULL, scan_id TEXT NOT NULL DEFAULT '',
    counts TEXT NOT NULL DEFAULT '{}', findings TEXT NOT NULL DEFAULT '[]',
    unscannable TEXT NOT NULL DEFAULT '[]', decided_by TEXT, decided_at TEXT, comment TEXT,
    escalated_at TEXT
);
CREATE TABLE outbound (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL, kind TEXT NOT NULL,
    ref TEXT, mail_from TEXT NOT NULL, rcpts TEXT NOT NULL, spool_name TEXT NOT NULL,
    size INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL,
    status TEXT NOT NULL, last_error TEXT, sent_at TEXT
);
CREATE TABLE users (
    email TEXT PRIMARY KEY, role TEXT NOT NULL, department TEXT,
    password_hash TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 1, created_at TEXT NOT NULL
);
CREATE TABLE audit_log (
    seq INTEGER PRIMARY KEY, at TEXT NOT NULL, event TEXT NOT NULL, actor TEXT NOT NULL,
    held_id TEXT, details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
);
"""


# -- dialect ------------------------------------------------------------------------------
@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = %s AND b = %s"),
    ("INSERT INTO t (a) VALUES (:a)", "INSERT INTO t (a) VALUES (%(a)s)"),
    ("SELECT '?' AS q, 'a:b' AS c, x::text FROM t WHERE y LIKE '%z'",
     "SELECT '?' AS q, 'a:b' AS c, x::text FROM t WHERE y LIKE '%%z'"),
    ("SELECT 100 % 7", "SELECT 100 %% 7"),
])
def test_placeholders_are_translated_outside_literals(sql, expected):
    assert translate(sql) == expected


def test_database_url_config_key_env_and_flag(tmp_path, monkeypatch):
    assert load_config(None).database_url == ""
    path = tmp_path / "g.toml"
    path.write_text('database_url = "postgresql://gw@db1/dlp"\n')
    assert load_config(path).database_url == "postgresql://gw@db1/dlp"
    monkeypatch.setenv("DLP_GATEWAY_DATABASE_URL", "postgresql://gw:secret@db2/dlp")
    assert load_config(path).database_url == "postgresql://gw:secret@db2/dlp"  # env > file
    assert load_config(path, database_url="postgresql://x@db3/d").database_url.endswith("db3/d")
    with pytest.raises(ConfigError, match="database_url"):
        load_config(None, database_url="mysql://x@y/z")


def test_unreachable_server_is_a_storage_error_without_the_password(tmp_path):
    from tests.conftest import free_port

    url = f"postgresql://gw:hunter2@127.0.0.1:{free_port()}/dlp?connect_timeout=2"
    with pytest.raises(StorageError) as exc:
        Database.in_data_dir(tmp_path, url)
    assert "hunter2" not in str(exc.value) and "***" in str(exc.value)


# -- migrations ---------------------------------------------------------------------------
def test_sqlite_file_from_before_versions_is_upgraded_in_place(tmp_path):
    path = tmp_path / "gateway.db"
    conn = sqlite3.connect(path)
    conn.executescript(OLD_SQLITE)
    conn.execute("INSERT INTO held (id, received, sender, recipients, subject, reasons, rules,"
                 " approver_role, status, sha256, size, spool_name) VALUES ('hOld1',"
                 " '2025-01-01T00:00:00+00:00', 's@x', '[\"r@y\"]', 'old', '[]', '[]',"
                 " 'ciso', 'held', 'abc', 3, 'held/hOld1')")
    conn.execute("INSERT INTO users (email, role, password_hash, created_at) VALUES"
                 " ('a@x', 'ciso', 'h', '2025-01-01')")
    conn.commit()
    conn.close()
    db = Database(path)
    try:
        assert db.schema_version() == LATEST
        assert {"sender_name", "department", "release_mode", "sender_authenticated"} <= set(
            db.columns("held"))
        assert {"claimed_at", "xforward", "claimed_by"} <= set(db.columns("outbound"))
        assert db.has_table("web_sessions") and db.has_table("spool_blobs")
        row = db.query("SELECT * FROM held WHERE id = 'hOld1'")[0]
        assert row["subject"] == "old" and row["sender_authenticated"] == 0
        assert UserStore(db).get("a@x").deputy is False
        versions = [r["version"] for r in db.query("SELECT version FROM schema_version")]
        assert versions == [m.version for m in MIGRATIONS]
    finally:
        db.close()
    again = Database(path)  # a second open changes nothing
    assert len(again.query("SELECT * FROM schema_version")) == len(MIGRATIONS)
    again.close()


def test_newer_schema_is_refused(tmp_path, database_url):
    db = Database.in_data_dir(tmp_path, database_url)
    with db.transaction() as conn:
        conn.execute("INSERT INTO schema_version (version, applied_at, description)"
                     " VALUES (?, 'now', 'from the future')", (LATEST + 1,))
    db.close()
    with pytest.raises(StorageError, match="newer than this dlp-gateway"):
        Database.in_data_dir(tmp_path, database_url)


def test_db_migrate_and_status_commands(tmp_path, database_url, capsys):
    args = ["--data-dir", str(tmp_path / "data"), *db_args(database_url)]
    assert cli_main(["db", "status", *args]) == 3  # nothing applied yet: pending
    assert "pending" in capsys.readouterr().out
    assert cli_main(["db", "migrate", *args]) == 0
    assert f"-> {LATEST}" in capsys.readouterr().out
    assert cli_main(["db", "migrate", *args]) == 0
    assert "up to date" in capsys.readouterr().out
    assert cli_main(["db", "status", *args]) == 0
    out = capsys.readouterr().out
    assert f"schema version {LATEST} of {LATEST}" in out and "pending" not in out


def test_nodes_starting_together_migrate_once(tmp_path, pg_url):
    errors: list[BaseException] = []

    def node(i: int) -> None:
        try:
            Database.in_data_dir(tmp_path / f"n{i}", pg_url).close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=node, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    db = Database.in_data_dir(tmp_path, pg_url)
    assert [r["version"] for r in db.query("SELECT version FROM schema_version ORDER BY 1")] \
        == [m.version for m in MIGRATIONS]
    db.close()


def test_integrity_errors_are_one_family(tmp_path, database_url):
    db = Database.in_data_dir(tmp_path, database_url)
    try:
        UserStore(db).add("a@city.example", "ciso", "password-1")
        with pytest.raises(INTEGRITY_ERRORS), db.transaction() as conn:
            conn.execute("INSERT INTO users (email, role, password_hash, created_at)"
                         " VALUES ('a@city.example', 'ciso', 'x', 'now')")
        assert UserStore(db).get("a@city.example") is not None  # rolled back, still usable
    finally:
        db.close()


# -- two nodes on one PostgreSQL (two connections) ----------------------------------------
@pytest.fixture
def two_nodes(tmp_path, pg_url):
    """Two gateways sharing one database and one audit key (as the README says)."""
    key = tmp_path / "audit.key"
    nodes = [
        Gateway(load_config(None, data_dir=tmp_path / name, database_url=pg_url,
                            audit_key_file=key))
        for name in ("a", "b")
    ]
    yield nodes
    for node in nodes:
        node.close()


def _hold(gw: Gateway, rows: int = 20):
    raw = roster_mail(rows)
    return gw.held.add(raw, sender=SENDER, recipients=[RECIPIENT], subject="名簿",
                       reasons=["個人情報"], rules=["many_records"], approver_role="ciso")


def test_held_on_a_is_readable_and_released_once_from_b(two_nodes):
    a, b = two_nodes
    held = _hold(a)
    assert b.held.raw(held.id) == a.held.raw(held.id)  # the bytes are in the database
    assert not list((a.config.data_dir / "spool").glob("held/*"))
    b.release(held.id, "ciso@city.example", "as_is")
    with pytest.raises(HeldStateError):
        a.release(held.id, "ciso@city.example", "as_is")
    releases = [i for i in a.queue.items() if i.kind == "release"]
    assert len(releases) == 1 and a.queue.load(releases[0]).endswith(b.held.raw(held.id))


def test_concurrent_release_of_one_mail_from_both_nodes(two_nodes):
    a, b = two_nodes
    for _round in range(5):
        held = _hold(a, 10)
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def release(gw: Gateway, held_id: str = held.id, barrier: threading.Barrier = barrier,
                    outcomes: list[str] = outcomes) -> None:
            barrier.wait()
            try:
                gw.release(held_id, "ciso@city.example", "as_is")
                outcomes.append("released")
            except HeldStateError:
                outcomes.append("refused")

        threads = [threading.Thread(target=release, args=(gw,)) for gw in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(outcomes) == ["refused", "released"]
        assert len([i for i in a.queue.items(ref=held.id) if i.kind == "release"]) == 1
    # Each node checks the one chain against the heads it anchored (a node that won
    # no release wrote no audit row, hence has no anchor file of its own yet).
    writers = [gw for gw in two_nodes if gw.audit.anchor_file.exists()]
    assert writers and all(AuditLog(gw.db).verify() == [] for gw in writers)
    assert [e.event for e in a.audit.entries()] == ["release"] * 5


def test_both_nodes_claim_the_queue_without_duplicates(two_nodes):
    a, b = two_nodes
    ids = {a.queue.enqueue(SENDER, [f"r{i}@x.example"], b"Subject: q\r\n\r\nx\r\n")
           for i in range(60)}
    claimed: dict[str, list[int]] = {"a": [], "b": []}

    def drain(name: str, gw: Gateway) -> None:
        while items := gw.queue.claim_due(limit=3):
            for item in items:
                claimed[name].append(item.id)
                gw.queue.mark_sent(item.id)

    threads = [threading.Thread(target=drain, args=(n, gw))
               for n, gw in zip("ab", two_nodes, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    together = claimed["a"] + claimed["b"]
    assert sorted(together) == sorted(ids) and len(set(together)) == len(together)
    assert {i.status for i in b.queue.items()} == {"sent"}


def test_restart_takes_back_only_its_own_items(two_nodes):
    a, b = two_nodes
    first = a.queue.enqueue(SENDER, [RECIPIENT], b"Subject: 1\r\n\r\nx\r\n")
    second = a.queue.enqueue(SENDER, [RECIPIENT], b"Subject: 2\r\n\r\nx\r\n")
    [mine] = a.queue.claim_due(limit=1)
    [theirs] = b.queue.claim_due(limit=1)
    assert {mine.id, theirs.id} == {first, second}
    assert a.queue.recover() == 1  # node A restarts: B's delivery is still running
    assert {i.id: i.status for i in a.queue.items()} == {mine.id: "due", theirs.id: "sending"}


def test_audit_chain_stays_one_chain_with_both_nodes_appending(two_nodes, tmp_path):
    a, b = two_nodes
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    counts = [rng.randint(15, 30), rng.randint(15, 30)]

    def append(gw: Gateway, n: int) -> None:
        for i in range(n):
            gw.audit.append(rng.choice(["login", "hold", "release"]), f"n{i}@x", None, {"i": i})

    threads = [threading.Thread(target=append, args=(gw, n))
               for gw, n in zip(two_nodes, counts, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    entries = a.audit.entries()
    assert [e.seq for e in entries] == list(range(1, sum(counts) + 1)), seed
    for gw in two_nodes:  # each node's own anchor file checks against the one chain
        assert gw.audit.verify() == [], seed
    args = ["--data-dir", str(tmp_path / "b"), "--database-url", b.config.database_url]
    assert cli_main(["audit", "verify", "--config", _key_config(tmp_path), *args]) == 0


def _key_config(tmp_path: Path) -> str:
    path = tmp_path / "verify.toml"
    path.write_text(f'audit_key_file = "{tmp_path / "audit.key"}"\n')
    return str(path)


def test_sessions_and_lockout_are_shared(two_nodes):
    a, b = two_nodes
    now = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)
    token, session = SessionStore(a.db).create("ciso@city.example", now)
    seen = SessionStore(b.db).get(token, 30, now + dt.timedelta(minutes=5))
    assert seen is not None and seen.csrf_token == session.csrf_token
    SessionStore(b.db).delete(token)  # logout on B ends it on A
    assert SessionStore(a.db).get(token, 30, now + dt.timedelta(minutes=6)) is None

    throttles = [LoginThrottle(a.db), LoginThrottle(b.db)]
    results: list[object] = []
    barrier = threading.Barrier(10)

    def attempt(i: int) -> None:
        barrier.wait()
        results.append(throttles[i % 2].begin("x@city.example", 5, 15, now))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # Five attempts are counted (the fifth sets the lock); the other five, on either
    # node, find the address locked.
    assert sum(r is None for r in results) == 5 and sum(r is not None for r in results) == 5
    assert throttles[0].lock_end("x@city.example") == throttles[1].lock_end("x@city.example")


def test_status_link_signed_on_a_opens_on_b(two_nodes):
    from dlp_gateway.status_link import load_key, read_token

    a, b = two_nodes
    held = _hold(a)
    url = a.status_url(held)
    token = url.rsplit("/s/", 1)[1]
    claim = read_token(load_key(b.config.data_dir, b.db), token,
                       dt.datetime.now(dt.UTC))
    assert claim.held_id == held.id
    assert not (a.config.data_dir / "status-link.key").exists()  # not a node's file
    assert load_key(a.config.data_dir, a.db) == load_key(b.config.data_dir, b.db)


def test_node_reconnects_after_the_server_dropped_its_connection(tmp_path, pg_url):
    import psycopg

    db = Database.in_data_dir(tmp_path, pg_url)
    try:
        users = UserStore(db)
        users.add("a@city.example", "ciso", "password-1")
        admin = pg_url.rsplit("/", 1)[0] + "/postgres"
        for _round in range(2):  # a read first, then a write transaction
            with psycopg.connect(admin, autocommit=True) as conn:
                dropped = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    (pg_url.rsplit("/", 1)[1],)).fetchall()
            assert dropped
            if _round == 0:
                assert users.get("a@city.example") is not None
            else:
                users.disable("a@city.example")
        assert users.get("a@city.example").enabled is False
    finally:
        db.close()


def test_bytes_commit_and_roll_back_with_their_row(tmp_path, pg_url):
    gw = Gateway(load_config(None, data_dir=tmp_path / "data", database_url=pg_url))
    try:
        with pytest.raises(RuntimeError), gw.db.transaction() as conn:
            _hold_in(gw, conn)
            gw.queue.enqueue(SENDER, [RECIPIENT], b"Subject: q\r\n\r\nx\r\n", conn=conn)
            raise RuntimeError("the verdict's transaction fails after the rows")
        assert gw.held.list() == [] and gw.queue.items() == []
        assert gw.db.query("SELECT COUNT(*) AS n FROM spool_blobs")[0]["n"] == 0
        held = _hold_in(gw, None)
        item = gw.queue.enqueue(SENDER, [RECIPIENT], b"Subject: q\r\n\r\nx\r\n")
        names = {r["name"] for r in gw.db.query("SELECT name FROM spool_blobs")}
        assert names == {f"held/{held.id}", gw.queue.items()[0].spool_name}
        [claimed] = gw.queue.claim_due()
        assert claimed.id == item
        gw.queue.mark_sent(item)
        assert {r["name"] for r in gw.db.query("SELECT name FROM spool_blobs")} == {
            f"held/{held.id}"}
    finally:
        gw.close()


def _hold_in(gw: Gateway, conn):  # type: ignore[no-untyped-def]
    return gw.held.add(roster_mail(12), sender=SENDER, recipients=[RECIPIENT], subject="名簿",
                       reasons=["個人情報"], rules=["many_records"], approver_role="ciso",
                       conn=conn)


def test_ad_hoc_tables_still_work_on_both_backends(tmp_path, database_url):
    db = Database.in_data_dir(tmp_path, database_url)
    try:
        db.ensure_schema("extra", "CREATE TABLE IF NOT EXISTS extra (k TEXT PRIMARY KEY);"
                                  "CREATE INDEX IF NOT EXISTS extra_k ON extra (k)")
        db.ensure_columns("extra", (("v", "REAL"), ("n", "INTEGER NOT NULL DEFAULT 0")))
        db.ensure_columns("extra", (("v", "REAL"),))  # twice: nothing to do
        with db.transaction() as conn:
            conn.execute("INSERT INTO extra (k, v) VALUES (?, ?)", ("a", 1.5))
        assert dict(db.query("SELECT k, v, n FROM extra")[0]) == {"k": "a", "v": 1.5, "n": 0}
    finally:
        db.close()


def test_expiry_passes_of_both_nodes_act_once(two_nodes):
    from dlp_gateway.approval import run_expiry

    a, _b = two_nodes
    a.users.add("ciso@city.example", "ciso", "password-1")
    held = [_hold(a, 10) for _ in range(4)]
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=a.config.escalate_hours + 1)
    barrier = threading.Barrier(2)
    done: list[dict[str, list[str]]] = []

    def expiry(gw: Gateway, now: dt.datetime) -> None:
        barrier.wait()
        done.append(run_expiry(gw, now))

    for now in (later, later + dt.timedelta(hours=a.config.expire_hours)):
        threads = [threading.Thread(target=expiry, args=(gw, now)) for gw in two_nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        barrier.reset()
    ids = sorted(h.id for h in held)
    assert sorted(i for d in done for i in d["escalate"]) == ids  # each escalated once
    assert sorted(i for d in done for i in d["expire"]) == ids  # each expired once
    notices = [i for i in a.queue.items() if "ciso@city.example" in i.rcpts]
    assert len(notices) == len(ids)  # one escalation notice per mail, not one per node
    assert [e.event for e in a.audit.entries()].count("expire") == len(ids)
