"""`dlp-gateway replay`: held and retained mail re-scanned with the active and a candidate set."""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
from email.message import EmailMessage
from pathlib import Path

import pytest

from dlp_gateway.cli import main
from dlp_gateway.commands.replay import parse_since
from dlp_gateway.config import load_config
from dlp_gateway.detect.patterns import DEFAULT_PATTERNS_DIR
from dlp_gateway.gateway import Gateway
from dlp_gateway.store.retained import RetainedStore

KISO = """
[[id_types]]
id = "kiso_nenkin"
label = "基礎年金番号"
regex = '(?<!\\d)\\d{4}-?\\d{6}(?!\\d)'
keywords = ["基礎年金番号", "年金番号"]
keyword_window = 20
headers = ["基礎年金番号"]

[[examples]]
type = "kiso_nenkin"
text = "基礎年金番号：1234-567890"
count = 1
"""
RULE = """
[[rules]]
id = "kiso_nenkin"
metric = "kiso_nenkin"
min = 1
action = "hold"
approver_role = "section_head"
reason = "基礎年金番号 {n}件"
"""


def _mail(body: str, subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@city.example.lg.jp", "b@example.com", subject
    msg.set_content(body)
    return msg.as_bytes()


@pytest.fixture
def setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    config = load_config(None, data_dir=data, retain_passed_days=30)
    gw = Gateway(config)
    rng = random.Random(11)
    expected = {"held": 0, "pension": 0, "plain": 0}
    # held mail (a My Number): stays hold under both sets
    for i in range(3):
        raw = _mail(f"個人番号：123456789018 その{i}", f"保留{i}")
        gw.held.add(raw, sender="a@city.example.lg.jp", recipients=["b@example.com"],
                    subject=f"保留{i}", reasons=["r"], rules=["my_number"],
                    approver_role="ciso", scan_id=f"h{i}", counts={}, findings=[],
                    unscannable=[])
        expected["held"] += 1
    store = RetainedStore(data, 30, 10**9)
    now = dt.datetime.now(dt.UTC)
    for i in range(rng.randint(4, 9)):
        pension = rng.random() < 0.5
        office, serial = rng.randint(1000, 9999), rng.randint(0, 999999)
        body = (f"基礎年金番号 {office}-{serial:06d} の件" if pension
                else f"会議は{rng.randint(1, 28)}日です")
        store.add(f"p{i}", "a@city.example.lg.jp", ["b@example.com"], _mail(body, f"件名{i}"),
                  "pass", now=now - dt.timedelta(hours=rng.randint(1, 100)))
        expected["pension" if pension else "plain"] += 1
    old = now - dt.timedelta(days=20)
    store.add("old", "a@city.example.lg.jp", ["b@example.com"],
              _mail("基礎年金番号 1234-567890", "古い"), "pass", now=old)
    gw.close()
    candidate = tmp_path / "candidate"
    shutil.copytree(DEFAULT_PATTERNS_DIR, candidate)
    (candidate / "id_types.toml").write_text(KISO, encoding="utf-8")
    with (candidate / "policy.toml").open("a", encoding="utf-8") as fh:
        fh.write(RULE)
    return data, candidate, expected


def test_replay_reports_each_mail_and_a_summary(setup, capsys) -> None:  # type: ignore[no-untyped-def]
    data, candidate, expected = setup
    assert main(["replay", "--since", "7d", "--patterns", str(candidate), "--data-dir",
                 str(data), "--format", "json"]) == 0
    lines = [json.loads(ln) for ln in capsys.readouterr().out.splitlines()]
    summary = lines.pop()["summary"]
    assert len(lines) == sum(expected.values())  # the 20-day-old mail is outside --since
    held = [r for r in lines if r["source"] == "held"]
    assert all(r["now"] == r["candidate"] == "hold" for r in held)
    passed = [r for r in lines if r["source"] == "passed"]
    changed = [r for r in passed if r["changed"]]
    assert len(changed) == expected["pension"]
    assert all(r["now"] == "pass" and r["candidate"] == "hold" and "kiso_nenkin"
               in r["candidate_rules"] for r in changed)
    assert summary == {"total": len(lines), "unchanged": len(lines) - expected["pension"],
                       "stricter": expected["pension"], "looser": 0,
                       "changes": {"pass->hold": expected["pension"]} if expected["pension"]
                       else {}}
    assert main(["replay", "--since", "30d", "--patterns", str(candidate), "--data-dir",
                 str(data)]) == 0
    out = capsys.readouterr().out
    assert "old\tpassed" in out
    assert "123456789018" not in out
    assert f"pass->hold: {expected['pension'] + 1}" in out


def test_replay_refuses_a_broken_candidate(setup, capsys) -> None:  # type: ignore[no-untyped-def]
    data, candidate, _ = setup
    (candidate / "policy.toml").write_text("[[rules]]\nid = 1\n", encoding="utf-8")
    assert main(["replay", "--patterns", str(candidate), "--data-dir", str(data)]) == 2
    assert "policy.toml:" in capsys.readouterr().err


def test_parse_since() -> None:
    now = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
    assert parse_since("7d", now) == now - dt.timedelta(days=7)
    assert parse_since("12h", now) == now - dt.timedelta(hours=12)
    assert parse_since("2026-11-01", now) == dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    with pytest.raises(ValueError):
        parse_since("soon", now)
