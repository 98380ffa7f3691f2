"""A careless administrator's mistakes, driven through the real `dlp-gateway` process.

A mistyped --data-dir must not create an empty database and answer "nothing held" or
"the audit log is intact"; `held release` from the shell follows the admin page's
rules (encrypted by default when there are attachments; as is only with a
confirmation and a reason).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pyzipper

from tests.conftest import RECIPIENT, SENDER, roster_mail, send

HELD_RE = re.compile(r"2\.6\.0 held for approval (\S+)")


def cli(*args: str, stdin: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dlp_gateway.cli", *args], input=stdin, capture_output=True,
        text=True, timeout=120, cwd=cwd,
    )


@pytest.mark.parametrize("command", [
    ["held", "list"], ["held", "list", "--status", "withdrawn", "--format", "json"],
    ["held", "show", "abc"], ["audit", "verify"], ["audit", "list"], ["replay"],
    ["users", "list"], ["users", "disable", "x@city.example.lg.jp"], ["staff", "list"],
])
def test_a_mistyped_data_dir_is_an_error_not_an_empty_answer(
    tmp_path: Path, command: list[str]
) -> None:
    typo = tmp_path / "dat"
    done = cli(*command, "--data-dir", str(typo))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "gateway.db" in done.stderr and str(typo) in done.stderr
    assert done.stdout == ""
    assert not typo.exists()  # nothing created behind the administrator's back


def test_first_steps_still_create_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = cli("users", "add", "ciso@city.example.lg.jp", "--role", "ciso",
               "--data-dir", str(data), stdin="ciso-password-1\n")
    assert done.returncode == 0, done.stderr
    assert "created a new database" in done.stderr and str(data) in done.stderr  # visible
    again = cli("users", "add", "joho@city.example.lg.jp", "--role", "operator",
                "--data-dir", str(data), stdin="joho-password-1\n")
    assert again.returncode == 0 and "created a new database" not in again.stderr
    listed = cli("users", "list", "--data-dir", str(data))
    assert listed.returncode == 0 and "ciso@city.example.lg.jp" in listed.stdout
    assert cli("audit", "verify", "--data-dir", str(data)).returncode == 0


def _hold_roster(gw, upstream_sink) -> str:  # type: ignore[no-untyped-def]
    code, reply = send(gw.smtp_port, roster_mail(30))
    assert code == 250, reply
    match = HELD_RE.search(reply)
    assert match, reply
    upstream_sink.wait_for(1)  # the sender's notice
    return match.group(1)


def _released(upstream_sink, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = [m for m in upstream_sink.to(RECIPIENT)]
        if got:
            return got
        time.sleep(0.05)
    return []


# The sender is in no department, so the hold is the CISO's; one approver per command.
CISO_ACTOR = "ciso-cli@city.example.lg.jp"


def _ciso(gw) -> list[str]:  # type: ignore[no-untyped-def]
    gw.gateway.users.add(CISO_ACTOR, "ciso", "correct horse battery staple 7")
    return ["--actor", CISO_ACTOR]


def test_cli_release_of_a_roster_is_encrypted_by_default(
    gateway_factory, upstream_sink, tmp_path: Path
) -> None:
    gw = gateway_factory()
    held_id = _hold_roster(gw, upstream_sink)
    data = str(gw.gateway.config.data_dir)
    actor = _ciso(gw)

    done = cli("held", "release", "--data-dir", data, *actor, "--", held_id)
    assert done.returncode == 0, done.stderr
    assert "(encrypted)" in done.stdout
    [delivered] = _released(upstream_sink)
    assert delivered.data.startswith(b"X-DLP-Verdict: released-encrypted\r\n")
    [attachment] = list(delivered.message.iter_attachments())
    with pyzipper.AESZipFile(io.BytesIO(attachment.get_content())) as zf:
        assert all(info.flag_bits & 0x1 for info in zf.infolist())  # encrypted members
    assert any(SENDER in m.rcpts for m in upstream_sink.messages)  # password to the sender


@pytest.mark.parametrize("extra", [
    [], ["--comment", "急ぎ"], ["--confirm"], ["--confirm", "--comment", "   "],
])
def test_cli_as_is_release_needs_confirm_and_a_reason(
    gateway_factory, upstream_sink, extra: list[str]
) -> None:
    gw = gateway_factory()
    held_id = _hold_roster(gw, upstream_sink)
    data = str(gw.gateway.config.data_dir)
    actor = _ciso(gw)

    done = cli("held", "release", "--data-dir", data, *actor, "--mode", "as_is", *extra, "--",
               held_id)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "30人分" in done.stderr and RECIPIENT in done.stderr
    assert gw.gateway.held.get(held_id).status == "held"
    time.sleep(0.5)
    assert upstream_sink.to(RECIPIENT) == []

    done = cli("held", "release", "--data-dir", data, *actor, "--mode", "as_is", "--confirm",
               "--comment", "先方と確認済み", "--", held_id)
    assert done.returncode == 0, done.stderr
    [delivered] = _released(upstream_sink)
    assert delivered.data.startswith(b"X-DLP-Verdict: released-as-is\r\n")
    assert gw.gateway.held.get(held_id).comment == "先方と確認済み"


def test_allow_add_value_never_writes_into_the_bundled_patterns(tmp_path: Path) -> None:
    from dlp_gateway.detect.allow import ValueFilter
    from dlp_gateway.detect.patterns import DEFAULT_PATTERNS_DIR, load_patterns

    bundled = DEFAULT_PATTERNS_DIR / "allow.toml"
    before = bundled.read_bytes()
    try:
        done = cli("allow", "add-value", "123456789018", "--reason", "見本", cwd=tmp_path)
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert "--patterns" in done.stderr
        assert bundled.read_bytes() == before
    finally:  # a failing run must not leave the checkout edited
        bundled.write_bytes(before)

    # the configured patterns_dir is where it goes (the set the gateway runs)
    copy = tmp_path / "patterns"
    shutil.copytree(DEFAULT_PATTERNS_DIR, copy)
    config = tmp_path / "gateway.toml"
    config.write_text(f'[gateway]\npatterns_dir = "{copy}"\n', encoding="utf-8")
    done = cli("allow", "add-value", "123456789018", "--reason", "見本",
               "--config", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert bundled.read_bytes() == before
    assert "123456789018" not in (copy / "allow.toml").read_text(encoding="utf-8")
    allow = load_patterns(copy).allow
    assert ValueFilter(allow.salt, allow.hashes).allowed("123456789018")
    listed = cli("allow", "list", "--config", str(config), cwd=tmp_path)
    assert listed.returncode == 0 and "見本" in listed.stdout


def test_a_head_of_a_mistyped_department_is_warned_with_the_similar_one(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    staff = tmp_path / "staff.csv"
    staff.write_bytes("email,name,department\r\nkaigo@city.example.lg.jp,介護 花子,介護保険課\r\n"
                      "zeimu@city.example.lg.jp,税務 太郎,税務課\r\n".encode("cp932"))
    assert cli("staff", "import", str(staff), "--data-dir", data).returncode == 0
    typo = cli("users", "add", "kacho@city.example.lg.jp", "--role", "section_head",
               "--department", "介護保健課", "--data-dir", data, stdin="kacho-password-1\n")
    assert typo.returncode == 0, typo.stderr  # added (the directory may come later) ...
    assert "介護保健課" in typo.stderr and "似た所属: 介護保険課" in typo.stderr  # ... but warned
    right = cli("users", "add", "kacho2@city.example.lg.jp", "--role", "section_head",
                "--department", "介護保険課", "--data-dir", data, stdin="kacho-password-1\n")
    assert right.returncode == 0 and "warning" not in right.stderr


def test_held_list_says_who_decides_now(gateway_factory, upstream_sink) -> None:
    """A section-head hold from a sender outside the staff directory waits for the CISO:
    the list says so instead of the policy's 'section_head'."""
    import json

    gw = gateway_factory()
    gw.gateway.users.add("ciso@city.example.lg.jp", "ciso", "ciso-password-1")
    held_id = _hold_roster(gw, upstream_sink)  # SENDER is not in the directory
    assert gw.gateway.held.get(held_id).approver_role == "section_head"
    data = str(gw.gateway.config.data_dir)

    done = cli("held", "list", "--format", "json", "--data-dir", data)
    [row] = [json.loads(line) for line in done.stdout.splitlines()]
    assert row["id"] == held_id and row["routed_to"] == "ciso"
    text = cli("held", "list", "--data-dir", data).stdout
    assert re.search(rf"{held_id}\s.*\sheld\s+ciso\s", text), text


def test_a_head_registered_in_the_wrong_department_can_be_corrected(tmp_path: Path) -> None:
    """users add --update: a typo, a transfer (人事異動) or a password reset, without a new
    address; the old sessions end, the audit log says 利用者の変更."""
    import json

    data = str(tmp_path / "data")
    email = "kacho@city.example.lg.jp"
    first = cli("users", "add", email, "--role", "section_head", "--department", "介護保健課",
                "--data-dir", data, stdin="kacho-password-1\n")
    assert first.returncode == 0, first.stderr
    again = cli("users", "add", email, "--role", "section_head", "--department", "介護保険課",
                "--data-dir", data, stdin="kacho-password-2\n")
    assert again.returncode == 1 and "--update" in again.stderr
    assert cli("users", "disable", email, "--data-dir", data).returncode == 0
    fixed = cli("users", "add", email, "--role", "section_head", "--department", "介護保険課",
                "--deputy", "--update", "--data-dir", data, stdin="kacho-password-2\n")
    assert fixed.returncode == 0, fixed.stderr
    [user] = [json.loads(line) for line in
              cli("users", "list", "--format", "json", "--data-dir", data).stdout.splitlines()]
    assert (user["department"], user["deputy"], user["enabled"]) == ("介護保険課", True, True)
    events = [json.loads(line)["event"] for line in cli(
        "audit", "list", "--format", "json", "--data-dir", data).stdout.splitlines()]
    assert "user_updated" in events
    assert cli("users", "add", "nobody@city.example.lg.jp", "--role", "ciso", "--update",
               "--data-dir", data, stdin="kacho-password-2\n").returncode == 1

    from dlp_gateway.store.db import Database
    from dlp_gateway.store.users import UserStore

    db = Database.in_data_dir(tmp_path / "data")
    try:
        users = UserStore(db)
        assert users.verify_password(email, "kacho-password-2")
        assert not users.verify_password(email, "kacho-password-1")
    finally:
        db.close()


@pytest.mark.parametrize("busy", ["admin", "smtp"])
def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path, busy: str) -> None:
    """`make run` twice: a clear error and exit 1, no traceback, nothing left running."""
    import socket

    from tests.conftest import free_port

    with socket.create_server(("127.0.0.1", 0)) as taken:
        taken_port = taken.getsockname()[1]
        smtp = taken_port if busy == "smtp" else free_port()
        admin = taken_port if busy == "admin" else free_port()
        proc = subprocess.run(
            [sys.executable, "-m", "dlp_gateway.cli", "serve", "--listen", f"127.0.0.1:{smtp}",
             "--admin-listen", f"127.0.0.1:{admin}", "--data-dir", str(tmp_path / "data"),
             "--upstream", f"maildir:{tmp_path / 'maildir'}"],
            capture_output=True, text=True, timeout=120,
        )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "dlp-gateway serve: [Errno 98]" in proc.stderr and str(taken_port) in proc.stderr


def test_scan_explain_text_groups_a_big_roster_by_reason(tmp_path: Path) -> None:
    """--explain on a 300-row roster: one entry per distinct reason with a count, not
    900 entries; --format json still explains every finding."""
    import json

    from tests.conftest import roster_xlsx

    path = tmp_path / "roster.xlsx"
    path.write_bytes(roster_xlsx(300))
    text = cli("scan", "--explain", str(path))
    assert text.returncode == 0, text.stderr
    section = text.stdout.split("検出の理由", 1)[1]
    entries = [line for line in section.splitlines() if line.startswith("    ") and
               not line.startswith("      ")]
    assert 1 <= len(entries) <= 10, section[:2000]
    alike = [int(m.replace(",", "")) for m in re.findall(r"\+([\d,]+) alike", section)]
    doc = json.loads(cli("scan", "--explain", "--format", "json", str(path)).stdout)
    explained = [f for f in doc["findings"] if f.get("explain")]
    assert len(explained) == len(doc["findings"]) >= 600
    assert sum(alike) + len(entries) == len(explained)
