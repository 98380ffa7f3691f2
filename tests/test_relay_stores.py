"""Config, spool, held store, outbound queue and the gateway's release/reject actions."""

from __future__ import annotations

import io
import re
from email import message_from_bytes
from email.policy import default

import pytest
import pyzipper

from dlp_gateway.config import ConfigError, load_config
from dlp_gateway.gateway import Gateway, HeldStateError, ReleaseError
from dlp_gateway.relay.headers import decoded_subject, mask_numbers_in_text, prepend_headers
from dlp_gateway.store.held import HeldIntegrityError
from tests.conftest import RECIPIENT, SENDER, db_args, roster_mail


@pytest.fixture
def gateway(tmp_path, database_url):
    gw = Gateway(load_config(None, data_dir=tmp_path / "data", database_url=database_url))
    yield gw
    gw.close()


def _hold(gw: Gateway, rows: int = 30, subject: str = "名簿の送付"):
    raw = roster_mail(rows, subject=subject)
    findings = [{"type": "insured_number", "part": "介護名簿.xlsx", "location":
                 "介護名簿.xlsx!名簿!A2", "masked": "******0001", "confidence": 0.9,
                 "in_body": False}]
    return raw, gw.held.add(
        raw, sender=SENDER, recipients=[RECIPIENT], subject=decoded_subject(raw),
        reasons=["個人情報 30人分（10人分以上）"], rules=["many_records"],
        approver_role="section_head", scan_id="abc", counts={"records": rows},
        findings=findings,
    )


def test_config_file_then_flags_override(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text('[gateway]\nlisten = "0.0.0.0:2525"\ninternal_domains = ["@City.lg.jp"]\n'
                    'upstream = "maildir:/tmp/md"\n')
    cfg = load_config(path, listen="127.0.0.1:9999", data_dir=str(tmp_path))
    assert cfg.listen_host_port == ("127.0.0.1", 9999)
    assert cfg.internal_domains == ["city.lg.jp"]
    assert str(cfg.upstream_maildir) == "/tmp/md"
    assert cfg.admin_base_url == "http://127.0.0.1:8025"
    with pytest.raises(ConfigError, match="unknown"):
        load_config(None, lisen="x")
    with pytest.raises(ConfigError, match="HOST:PORT"):
        load_config(None, upstream="nowhere")
    with pytest.raises(ConfigError, match="STARTTLS"):
        load_config(None, require_auth=True)


def test_held_round_trip_and_integrity(gateway):
    raw, held = _hold(gateway)
    assert gateway.held.raw(held.id) == raw
    assert len(held.id) >= 12 and re.fullmatch(r"[A-Za-z0-9_-]+", held.id)
    assert gateway.held.list("held")[0].id == held.id and gateway.held.list("released") == []
    _tamper_spool(gateway, f"held/{held.id}", raw.replace(b"Subject", b"Subjekt"))
    with pytest.raises(HeldIntegrityError):
        gateway.held.raw(held.id)


def _tamper_spool(gw: Gateway, relname: str, data: bytes) -> None:
    """Change stored bytes behind the gateway's back: the file, or the database row."""
    if gw.db.shared:
        with gw.db.transaction() as conn:
            conn.execute("UPDATE spool_blobs SET data = ? WHERE name = ?", (data, relname))
    else:
        gw.spool.path(relname).write_bytes(data)


def test_release_enqueues_mail_and_notices_once(gateway):
    raw, held = _hold(gateway)
    gateway.release(held.id, "kacho@city.example.lg.jp", "as_is", "確認済み")
    items = gateway.queue.items(ref=held.id)
    assert [i.kind for i in items] == ["release", "notice"]
    assert items[0].rcpts == [RECIPIENT] and items[0].mail_from == SENDER
    assert gateway.queue.load(items[0]).endswith(raw)
    [entry] = gateway.audit.entries(event="release")
    assert entry.details["sha256"] == held.sha256 and entry.actor == "kacho@city.example.lg.jp"
    with pytest.raises(HeldStateError):
        gateway.release(held.id, "someone", "as_is")
    with pytest.raises(HeldStateError):
        gateway.reject(held.id, "someone", "no")
    assert len(gateway.queue.items()) == 2


def test_release_encrypted_sends_password_to_sender_only(gateway):
    _raw, held = _hold(gateway, rows=12)
    with pytest.raises(ReleaseError):
        gateway.release(held.id, "x", "zipped")
    gateway.release(held.id, "ciso@city.example.lg.jp", "encrypted")
    release, password_mail, notice = gateway.queue.items(ref=held.id)
    assert release.rcpts == [RECIPIENT]
    assert password_mail.rcpts == [SENDER] and notice.rcpts == [SENDER]
    text = message_from_bytes(gateway.queue.load(password_mail), policy=default)
    password = re.search(r"パスワード: (\S+)", text.get_body().get_content()).group(1)
    out = message_from_bytes(gateway.queue.load(release), policy=default)
    [zipped] = list(out.iter_attachments())
    with pyzipper.AESZipFile(io.BytesIO(zipped.get_content())) as zf:
        assert zf.read("介護名簿.xlsx", pwd=password.encode()).startswith(b"PK")
    assert password.encode() not in gateway.queue.load(release)


def test_reject_notifies_sender_with_comment(gateway):
    _raw, held = _hold(gateway)
    gateway.reject(held.id, "kacho@city.example.lg.jp", "宛先が誤っています")
    assert gateway.held.get(held.id).status == "rejected"
    [notice] = gateway.queue.items(ref=held.id)
    body = message_from_bytes(gateway.queue.load(notice), policy=default).get_body().get_content()
    assert notice.rcpts == [SENDER] and "宛先が誤っています" in body
    assert [e.event for e in gateway.audit.entries()] == ["reject"]


def test_expire_and_escalate(gateway):
    gateway.users.add("ciso@city.example.lg.jp", "ciso", "ciso-password")
    _raw, held = _hold(gateway)
    gateway.escalate(held.id)
    assert gateway.held.get(held.id).escalated_at
    assert gateway.queue.items(ref=held.id)[0].rcpts == ["ciso@city.example.lg.jp"]
    gateway.expire(held.id)
    assert gateway.held.get(held.id).status == "expired"
    assert [i.kind for i in gateway.queue.items(ref=held.id)] == ["notice", "notice"]
    assert not [i for i in gateway.queue.items() if i.rcpts == [RECIPIENT]]


def test_queue_recovers_items_a_crash_left_sending(gateway):
    first = gateway.queue.enqueue(SENDER, [RECIPIENT], b"Subject: a\r\n\r\nx\r\n")
    [claimed] = gateway.queue.claim_due()
    assert claimed.id == first and gateway.queue.claim_due() == []
    assert gateway.queue.recover() == 1  # as on restart after kill -9
    [again] = gateway.queue.claim_due()
    assert again.attempts == 2
    gateway.queue.mark_sent(again.id)
    assert gateway.queue.items()[0].status == "sent"
    with pytest.raises(FileNotFoundError):  # the bytes are gone (file or database row)
        gateway.spool.read(again.spool_name)


def test_subject_numbers_masked_and_headers_prepended():
    raw = b"Subject: =?utf-8?b?" + __import__("base64").b64encode(
        "個人番号 1234 5678 9018 の件".encode()) + b"?=\r\n\r\nbody\r\n"
    assert decoded_subject(raw) == "個人番号 ********9018 の件"
    assert mask_numbers_in_text("電話 03-1234-5678") == "電話 ******5678"
    out = prepend_headers(raw, [("X-DLP-Verdict", "pass")])
    assert out == b"X-DLP-Verdict: pass\r\n" + raw


def test_sample_deploy_config_loads():
    from pathlib import Path

    sample = Path(__file__).resolve().parent.parent / "deploy" / "gateway.toml"
    cfg = load_config(sample)
    assert cfg.listen == "127.0.0.1:10025" and cfg.upstream_host_port == ("127.0.0.1", 10026)
    assert cfg.admin_base_url == "https://dlp.city.example.lg.jp"


def test_cli_show_and_reject(gateway, tmp_path, capsys, database_url):
    from dlp_gateway.cli import main as cli_main

    _raw, held = _hold(gateway)
    data_dir, *more = [str(tmp_path / "data"), *db_args(database_url)]
    assert cli_main(["held", "show", held.id, "--data-dir", data_dir, *more]) == 0
    shown = __import__("json").loads(capsys.readouterr().out)
    assert shown["findings"][0]["masked"] == "******0001" and shown["sha256"] == held.sha256
    # issue 10: --actor is one existing account with a deciding role (was: any string)
    assert cli_main(["held", "reject", held.id, "--comment", "不要", "--actor", "cli:op",
                     "--data-dir", data_dir, *more]) == 1
    # the sender is in no department, so the hold is the CISO's (issue 9 routing)
    gateway.users.add("kacho@city.example.lg.jp", "ciso", "password-123")
    assert cli_main(["held", "reject", held.id, "--comment", "不要", "--actor",
                     "kacho@city.example.lg.jp", "--data-dir", data_dir, *more]) == 0
    assert gateway.held.get(held.id).status == "rejected"
    assert gateway.held.get(held.id).decided_by == "kacho@city.example.lg.jp"
    assert cli_main(["held", "show", "nope", "--data-dir", data_dir, *more]) == 1
