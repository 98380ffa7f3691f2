"""Who a hold is routed to (issue 9): the sender's own department's heads and deputies,
else the CISO, else the operators; who may see and decide it; start-up warnings.

Pure rules are checked over seeded random organisations (seed printed on failure);
the gateway-level tests use a real Gateway (SQLite file, spool) and read the
notices it queued."""

from __future__ import annotations

import datetime as dt
import os
import random
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest

from dlp_gateway.approval import (
    ApprovalRefused,
    Approvals,
    may_see,
    missing_approvers,
    plan_route,
    route_refusal,
    run_expiry,
)
from dlp_gateway.config import load_config
from dlp_gateway.gateway import Gateway
from dlp_gateway.store.db import Database
from dlp_gateway.store.staff import StaffStore
from dlp_gateway.store.users import UserStore

SEED = int(os.environ.get("DLP_SEED", random.randrange(1 << 30)))
N_ORGS = int(os.environ.get("DLP_FUZZ_N", "300"))
DEPTS = ["介護保険課", "税務課", "市民課", "子育て支援課", "情報政策課"]


class Held:
    def __init__(self, sender, recipients, role="section_head", department="", escalated=None,
                 status="held", decided_by=None):
        self.id = "x"
        self.sender = sender
        self.recipients = recipients
        self.approver_role = role
        self.department = department
        self.escalated_at = escalated
        self.status = status
        self.decided_by = decided_by


def _random_org(rng: random.Random):
    heads = {d: [f"head{i}.{j}@city.example" for j in range(rng.randint(0, 2))]
             for i, d in enumerate(DEPTS)}
    cisos = [f"ciso{j}@city.example" for j in range(rng.randint(0, 2))]
    operators = [f"ops{j}@city.example" for j in range(rng.randint(0, 1))]
    return heads, cisos, operators


def test_route_properties_over_random_organisations():
    rng = random.Random(SEED)
    for case in range(N_ORGS):
        heads, cisos, operators = _random_org(rng)
        department = rng.choice([*DEPTS, ""])
        everyone = [h for hs in heads.values() for h in hs] + cisos
        sender = rng.choice([*everyone, "staff@city.example"])
        recipients = [rng.choice([*everyone, "center@care.example"])]
        role = rng.choice(["section_head", "ciso"])
        route = plan_route(role, department, sender, recipients, heads.get(department, []),
                           cisos, operators)
        where = f"seed={SEED} case={case} role={role} dept={department!r} sender={sender}"
        # nobody is asked to decide on their own mail or mail addressed to them
        if route.role != "operator":
            assert sender not in route.approvers, where
            assert not set(recipients) & set(route.approvers), where
        able_heads = [h for h in heads.get(department, []) if h not in {sender, *recipients}]
        able_cisos = [c for c in cisos if c not in {sender, *recipients}]
        if role == "section_head" and department and able_heads:
            assert route.role == "section_head" and route.department == department, where
            assert set(route.approvers) == set(able_heads), where
            # only heads of that department: no other department's head, no CISO
            others = {h for d, hs in heads.items() if d != department for h in hs}
            assert not others & set(route.approvers), where
        elif able_cisos:
            assert route.role == "ciso" and set(route.approvers) == set(able_cisos), where
        else:
            assert route.role == "operator" and list(route.approvers) == operators, where


def test_section_head_of_other_department_may_neither_see_nor_decide():
    held = Held("staff@city.example", ["center@care.example"], department="介護保険課")
    route = plan_route("section_head", "介護保険課", held.sender, held.recipients,
                       ["kaigo@city.example"], ["ciso@city.example"], [])
    assert route.label == "介護保険課の所属長"
    assert route_refusal("kaigo@city.example", "section_head", "介護保険課", held, route) is None
    reason = route_refusal("zeimu@city.example", "section_head", "税務課", held, route)
    assert reason and "介護保険課" in reason
    assert not may_see("zeimu@city.example", "section_head", "税務課", held, route)
    assert may_see("kaigo@city.example", "section_head", "介護保険課", held, route)
    # the CISO is not asked unless it escalates; operators look at everything
    assert route_refusal("ciso@city.example", "ciso", None, held, route)
    assert not may_see("ciso@city.example", "ciso", None, held, route)
    held.escalated_at = "2026-01-01T00:00:00+00:00"
    assert route_refusal("ciso@city.example", "ciso", None, held, route) is None
    assert may_see("ops@city.example", "operator", None, held, route)
    assert route_refusal("ops@city.example", "operator", None, held, route)


def test_unknown_sender_and_headless_department_go_to_ciso_then_operators():
    unknown = plan_route("section_head", "", "x@city.example", ["a@b.example"],
                         [], ["ciso@city.example"], ["ops@city.example"])
    assert unknown.role == "ciso" and "職員名簿" in unknown.why
    headless = plan_route("section_head", "市民課", "x@city.example", ["a@b.example"],
                          [], ["ciso@city.example"], ["ops@city.example"])
    assert headless.role == "ciso" and "市民課" in headless.why
    nobody = plan_route("ciso", "市民課", "x@city.example", ["a@b.example"],
                        ["head@city.example"], [], ["ops@city.example"])
    assert nobody.role == "operator" and nobody.approvers == ("ops@city.example",)
    # the only head is the sender: a deputy-less department goes to the CISO
    own = plan_route("section_head", "市民課", "head@city.example", ["a@b.example"],
                     ["head@city.example"], ["ciso@city.example"], [])
    assert own.role == "ciso"


# -- against a real gateway ---------------------------------------------------------------


def _mail(sender: str, to: str, attachment: bool = True) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, "名簿送付"
    msg.set_content("名簿を送ります。")
    if attachment:
        msg.add_attachment(b"PK-not-really", maintype="application", subtype="octet-stream",
                           filename="名簿.xlsx")
    return msg.as_bytes()


def _hold(gw: Gateway, sender: str, role: str = "section_head", attachment: bool = True):
    held = gw.held.add(
        _mail(sender, "center@care.example", attachment), sender=sender,
        recipients=["center@care.example"], subject="名簿送付", reasons=["個人情報 12人分"],
        rules=["many_records"], approver_role=role, counts={"insured_number": 12, "records": 12},
        findings=[{"type": "insured_number", "part": "名簿.xlsx", "location": "名簿.xlsx!S!A2",
                   "masked": "****5678", "confidence": 0.9}],
    )
    gw.notify_hold(held)
    return held


def _notified(gw: Gateway, held_id: str) -> dict[str, str]:
    """Recipient -> text of each notice queued for this hold."""
    out = {}
    for item in gw.queue.items():
        if item.kind == "notice" and item.ref == held_id:
            msg = message_from_bytes(gw.queue.load(item), policy=default_policy)
            text = msg.get_body(preferencelist=("plain",)).get_content()
            for rcpt in item.rcpts:
                out[rcpt] = text
    return out


@pytest.fixture
def gateway(tmp_path):
    gw = Gateway(load_config(data_dir=tmp_path / "data"))
    yield gw
    gw.close()


def _org(gw: Gateway) -> None:
    gw.users.add("kaigo-kacho@city.example", "section_head", "password-1", "介護保険課")
    gw.users.add("kaigo-dairi@city.example", "section_head", "password-2", "介護保険課",
                 deputy=True)
    gw.users.add("zeimu-kacho@city.example", "section_head", "password-3", "税務課")
    gw.users.add("ciso@city.example", "ciso", "password-4")
    gw.users.add("ops@city.example", "operator", "password-5")
    staff = StaffStore(gw.db)
    staff.add("kaigo@city.example", "介護 太郎", "介護保険課")
    staff.add("shimin@city.example", "市民 花子", "市民課")


def test_hold_notifies_only_the_senders_department(gateway):
    _org(gateway)
    held = _hold(gateway, "kaigo@city.example")
    assert held.department == "介護保険課" and held.sender_name == "介護 太郎"
    notices = _notified(gateway, held.id)
    assert set(notices) == {"kaigo-kacho@city.example", "kaigo-dairi@city.example",
                            "kaigo@city.example"}
    assert "介護保険課の所属長" in notices["kaigo@city.example"]

    approvals = Approvals(gateway)
    with pytest.raises(ApprovalRefused) as other:
        approvals.approve("zeimu-kacho@city.example", "section_head", held.id, "encrypted")
    assert other.value.status == 403
    with pytest.raises(ApprovalRefused):
        approvals.approve("ciso@city.example", "ciso", held.id, "encrypted")
    assert not approvals.visible("zeimu-kacho@city.example", "section_head",
                                 gateway.held.get(held.id))
    outcome = approvals.approve("kaigo-dairi@city.example", "section_head", held.id,
                                "encrypted")
    assert outcome.released and gateway.held.get(held.id).release_mode == "encrypted"


def test_headless_department_and_unknown_sender_go_to_ciso(gateway):
    _org(gateway)
    for sender in ("shimin@city.example", "stranger@city.example"):
        held = _hold(gateway, sender)
        notices = _notified(gateway, held.id)
        assert set(notices) == {"ciso@city.example", sender}, sender
        assert "統括情報セキュリティ責任者" in notices[sender]
        with pytest.raises(ApprovalRefused):
            Approvals(gateway).approve("kaigo-kacho@city.example", "section_head", held.id,
                                       "encrypted")
        assert Approvals(gateway).approve("ciso@city.example", "ciso", held.id,
                                          "encrypted").released


def test_no_approver_account_tells_operators_and_warns(gateway, caplog):
    gateway.users.add("ops@city.example", "operator", "password-5")
    warnings = missing_approvers(gateway)
    assert any("section_head" in w for w in warnings) and any("ciso" in w for w in warnings)
    held = _hold(gateway, "kaigo@city.example", role="ciso")
    notices = _notified(gateway, held.id)
    assert set(notices) == {"ops@city.example", "kaigo@city.example"}
    assert "承認者" in notices["ops@city.example"] and "users add" in notices["ops@city.example"]
    assert "no account can approve" in caplog.text


def test_missing_approvers_lists_departments_without_head(gateway):
    _org(gateway)
    warnings = missing_approvers(gateway)
    assert len(warnings) == 2
    [headless] = [w for w in warnings if "have no section head" in w]
    assert "市民課" in headless and "介護保険課" not in headless
    [stray] = [w for w in warnings if "not in the staff directory" in w]
    assert "税務課" in stray  # a head whose department nobody in the directory has
    StaffStore(gateway.db).add("zeimu@city.example", "税務 次郎", "税務課")
    assert len(missing_approvers(gateway)) == 1


def test_serve_warns_at_start_up_when_a_role_has_no_account(gateway_factory, caplog):
    caplog.set_level("WARNING", logger="dlp_gateway.server")
    gw = gateway_factory(web=False)
    text = caplog.text
    for role in ("section_head", "ciso", "operator"):
        assert f"no enabled {role} account" in text, text
    gw.stop()
    caplog.clear()
    db = Database.in_data_dir(gw.config.data_dir)  # then restart on the same data dir
    users = UserStore(db)
    users.add("kacho@city.example", "section_head", "password-1", "市民課")
    users.add("ciso@city.example", "ciso", "password-2")
    users.add("ops@city.example", "operator", "password-3")
    db.close()
    gateway_factory(web=False)
    assert "no enabled" not in caplog.text


def test_ciso_may_decide_a_department_hold_once_escalated(gateway):
    _org(gateway)
    held = _hold(gateway, "kaigo@city.example")
    approvals = Approvals(gateway)
    assert not approvals.visible("ciso@city.example", "ciso", gateway.held.get(held.id))
    received = dt.datetime.fromisoformat(held.received)
    assert run_expiry(gateway, received + dt.timedelta(hours=25))["escalate"] == [held.id]
    escalated = gateway.held.get(held.id)
    assert approvals.visible("ciso@city.example", "ciso", escalated)
    assert "ciso@city.example" in _notified(gateway, held.id)
    assert approvals.approve("ciso@city.example", "ciso", held.id, "encrypted").released
