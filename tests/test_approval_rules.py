"""The approval rules (pure functions) and escalation/expiry against a real Gateway."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from email.message import EmailMessage

import pytest

from dlp_gateway.approval import (
    ApprovalRefused,
    Approvals,
    due_action,
    load_requirements,
    refusal,
    release_mode,
    required_approvals,
    run_expiry,
)
from dlp_gateway.config import load_config
from dlp_gateway.gateway import Gateway
from dlp_gateway.store.staff import StaffStore


@dataclass
class FakeHeld:
    """Plain values for the pure rules (no gateway needed)."""

    sender: str = "staff@city.example"
    recipients: list[str] = field(default_factory=lambda: ["center@care.example"])
    approver_role: str | None = "section_head"
    status: str = "held"
    id: str = "h1"
    sha256: str = "0" * 64
    rules: list[str] = field(default_factory=lambda: ["many_records"])


def test_section_head_may_approve_section_head_hold():
    assert refusal("head@city.example", "section_head", FakeHeld()) is None


def test_ciso_may_approve_section_head_hold():
    assert refusal("ciso@city.example", "ciso", FakeHeld()) is None


def test_self_approval_refused_case_insensitive():
    reason = refusal("Staff@City.Example", "section_head", FakeHeld())
    assert reason and "自分が送信" in reason


def test_approving_mail_addressed_to_self_refused():
    held = FakeHeld(recipients=["a@care.example", "HEAD@city.example"])
    reason = refusal("head@city.example", "section_head", held)
    assert reason and "自分宛て" in reason


def test_section_head_cannot_decide_ciso_hold():
    reason = refusal("head@city.example", "section_head", FakeHeld(approver_role="ciso"))
    assert reason and "統括情報セキュリティ責任者" in reason
    assert refusal("ciso@city.example", "ciso", FakeHeld(approver_role="ciso")) is None


def test_operator_may_not_decide():
    reason = refusal("ops@city.example", "operator", FakeHeld())
    assert reason and "運用担当者" in reason


def test_decided_message_refused():
    assert refusal("ciso@city.example", "ciso", FakeHeld(status="released"))


def test_required_approvals_takes_strictest_rule():
    table = {"many_records": 2, "my_number": 1}
    assert required_approvals(["my_number"], table) == 1
    assert required_approvals(["my_number", "many_records"], table) == 2
    assert required_approvals([], table) == 1
    assert required_approvals(["unknown"], {}) == 1


def test_release_mode_safer_wins():
    assert release_mode(["as_is", "as_is"]) == "as_is"
    assert release_mode(["as_is", "encrypted"]) == "encrypted"


def test_load_requirements_reads_policy_rules(tmp_path):
    (tmp_path / "policy.toml").write_text(
        '[[rules]]\nid = "many_records"\nmetric = "records"\nmin = 10\naction = "hold"\n'
        "approvals_required = 2\n\n"
        '[[rules]]\nid = "my_number"\nmetric = "my_number"\nmin = 1\naction = "hold"\n',
        encoding="utf-8",
    )
    assert load_requirements(tmp_path) == {"many_records": 2}
    assert load_requirements(tmp_path / "missing") == {}


def test_bundled_policy_loads():
    assert load_requirements(None).get("my_number", 1) >= 1


T0 = dt.datetime(2025, 4, 1, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("hours", "escalated", "expected"),
    [(1, False, None), (24, False, "escalate"), (30, True, None), (72, True, "expire"),
     (80, False, "expire")],
)
def test_due_action(hours, escalated, expected):
    now = T0 + dt.timedelta(hours=hours)
    assert due_action(T0.isoformat(), escalated, now, 24, 72) == expected


# -- against a real gateway (SQLite + spool in tmp_path) --------------------------------


def _roster_mail(sender: str, to: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = "名簿送付"
    msg.set_content("名簿を送ります。")
    msg.add_attachment(b"PK-not-really", maintype="application", subtype="octet-stream",
                       filename="名簿.xlsx")
    return msg.as_bytes()


@pytest.fixture
def gateway(tmp_path, database_url):
    gw = Gateway(load_config(data_dir=tmp_path / "data", escalate_hours=24, expire_hours=72,
                             database_url=database_url))
    gw.users.add("ciso@city.example", "ciso", "ciso-password")
    gw.users.add("head@city.example", "section_head", "head-password", "介護保険課")
    gw.users.add("head2@city.example", "section_head", "head2-password", "介護保険課",
                 deputy=True)
    StaffStore(gw.db).add("staff@city.example", "職員 一郎", "介護保険課")
    yield gw
    gw.close()


def _hold(gw, role="section_head", rules=("many_records",)):
    raw = _roster_mail("staff@city.example", "center@care.example")
    return gw.held.add(
        raw, sender="staff@city.example", recipients=["center@care.example"], subject="名簿送付",
        reasons=["個人情報 12人分"], rules=list(rules), approver_role=role,
        counts={"insured_number": 12, "records": 12},
        findings=[{"type": "insured_number", "part": "名簿.xlsx",
                   "location": "名簿.xlsx!Sheet1!B2", "masked": "****5678", "confidence": 0.9}],
    )


def _queue_kinds(gw):
    return [(i.kind, tuple(i.rcpts)) for i in gw.queue.items()]


def test_run_expiry_escalates_then_expires(gateway):
    held = _hold(gateway)
    received = dt.datetime.fromisoformat(held.received)
    assert run_expiry(gateway, received + dt.timedelta(hours=1)) == {"escalate": [], "expire": []}

    done = run_expiry(gateway, received + dt.timedelta(hours=25))
    assert done["escalate"] == [held.id]
    assert gateway.held.get(held.id).escalated_at
    assert gateway.held.get(held.id).status == "held"
    assert ("notice", ("ciso@city.example",)) in _queue_kinds(gateway)
    # escalation happens once
    assert run_expiry(gateway, received + dt.timedelta(hours=26))["escalate"] == []

    done = run_expiry(gateway, received + dt.timedelta(hours=73))
    assert done["expire"] == [held.id]
    expired = gateway.held.get(held.id)
    assert expired.status == "expired"
    events = [e.event for e in gateway.audit.entries(held_id=held.id)]
    assert events == ["escalate", "expire"]
    kinds = _queue_kinds(gateway)
    assert ("notice", ("staff@city.example",)) in kinds
    assert not [k for k in kinds if k[0] == "release"], "expired mail must never be delivered"
    # an expired message can no longer be approved
    with pytest.raises(ApprovalRefused):
        Approvals(gateway).approve("ciso@city.example", "ciso", held.id, "as_is")


def test_two_distinct_approvers_release(gateway):
    held = _hold(gateway)
    approvals = Approvals(gateway, requirements={"many_records": 2})
    first = approvals.approve("head@city.example", "section_head", held.id, "as_is", "ok",
                              confirm=True)
    assert not first.released and first.count == 1 and first.required == 2
    assert gateway.held.get(held.id).status == "held"
    with pytest.raises(ApprovalRefused) as again:
        approvals.approve("HEAD@city.example", "section_head", held.id, "as_is", "ok",
                          confirm=True)
    assert again.value.status == 409
    second = approvals.approve("head2@city.example", "section_head", held.id, "encrypted")
    assert second.released and second.mode == "encrypted"
    released = gateway.held.get(held.id)
    assert released.status == "released"
    assert "head@city.example" in released.decided_by
    assert "head2@city.example" in released.decided_by
    stored = approvals.store.for_message(held.id)
    assert {a.sha256 for a in stored} == {held.sha256}


def test_changed_message_cannot_be_approved(gateway):
    held = _hold(gateway)
    name = f"held/{held.id}"
    changed = gateway.spool.read(name).replace("名簿".encode(), "名前".encode())
    if gateway.db.shared:  # PostgreSQL: the bytes are a row
        with gateway.db.transaction() as conn:
            conn.execute("UPDATE spool_blobs SET data = ? WHERE name = ?", (changed, name))
    else:
        gateway.spool.path(name).write_bytes(changed)
    with pytest.raises(ApprovalRefused) as refused:
        Approvals(gateway).approve("head@city.example", "section_head", held.id, "as_is")
    assert refused.value.status == 409 and "SHA-256" in refused.value.message
    assert gateway.held.get(held.id).status == "held"


def test_reject_requires_comment_and_authority(gateway):
    held = _hold(gateway, role="ciso", rules=("my_number",))
    approvals = Approvals(gateway)
    with pytest.raises(ApprovalRefused) as no_comment:
        approvals.reject("ciso@city.example", "ciso", held.id, "  ")
    assert no_comment.value.status == 400
    with pytest.raises(ApprovalRefused) as wrong_role:
        approvals.reject("head@city.example", "section_head", held.id, "だめです")
    assert wrong_role.value.status == 403
    approvals.reject("ciso@city.example", "ciso", held.id, "宛先誤り")
    assert gateway.held.get(held.id).status == "rejected"
    assert gateway.held.get(held.id).comment == "宛先誤り"
