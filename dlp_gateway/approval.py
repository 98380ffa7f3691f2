"""Who may release or reject held mail, and when held mail escalates or expires.

The rules (DOMAIN.md §10) are pure functions over plain values so they can be
unit-tested without a gateway:

- nobody acts on mail they sent or that is addressed to them;
- operators may look but not decide;
- a hold that needs the CISO cannot be decided by a section head (the CISO may
  decide section-head holds);
- a policy rule may require several distinct approvers (``approvals_required``);
- an approval names the SHA-256 of the stored message; if the stored bytes no
  longer hash to the value recorded at hold time, nothing can be approved.

Who is asked (``plan_route``): a section-head hold goes to the heads and deputies
of the sender's own department (as recorded from the staff directory when the
mail was held); a sender not in the directory, or a department with nobody able
to approve, sends it to the CISOs; a CISO hold goes to the CISOs; with no account
able to approve at all, the operators are told. Only the accounts a hold is
routed to may see and decide it (a CISO also once it has been escalated);
operators may look at everything.

Releasing as is (unencrypted) needs ``confirm`` and a comment; the default mode
is encrypted when the mail has attachments and as is when it has none.

When approvers of a multi-approver hold choose different modes, the message is
released encrypted if any of them asked for encryption (the safer choice wins).
Rejection needs one authorised approver: any one of them may stop a message.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from dlp_gateway.store.db import Database, utc_now
from dlp_gateway.store.staff import normalize_department

log = logging.getLogger(__name__)

MODES = ("as_is", "encrypted")
DECIDING_ROLES = ("section_head", "ciso")

# Table: dlp_gateway/store/schema.py (versioned migrations).


class HeldLike(Protocol):
    id: str
    sender: str
    recipients: Any
    approver_role: str | None
    status: str
    sha256: str
    rules: Any


@dataclass(frozen=True, slots=True)
class Route:
    """Who a hold is waiting for.

    ``role`` is ``section_head`` (the heads/deputies of ``department``), ``ciso``,
    or ``operator`` (nobody can approve: operators must create approver accounts).
    ``approvers`` are the addresses notified; ``label`` says it in Japanese.
    """

    role: str
    department: str
    approvers: tuple[str, ...]
    label: str
    why: str = ""


class ApprovalRefused(Exception):
    """An action the rules forbid. ``message`` is Japanese, ``status`` the HTTP code."""

    def __init__(self, message: str, status: int = 403):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class Approval:
    held_id: str
    approver: str
    sha256: str
    mode: str
    at: str
    comment: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an approval did: ``released`` or still waiting for ``required - count``."""

    released: bool
    count: int
    required: int
    mode: str


# -- pure rules -------------------------------------------------------------------------


def _norm(address: str) -> str:
    return address.strip().lower()


def refusal(actor_email: str, actor_role: str, held: HeldLike) -> str | None:
    """Why ``actor`` may not decide on ``held`` (Japanese), or None if they may."""
    if held.status != "held":
        return f"この保留メールは既に処理済みです（状態: {held.status}）。"
    if actor_role not in DECIDING_ROLES:
        return "運用担当者は保留メールを閲覧できますが、承認・却下はできません。"
    me = _norm(actor_email)
    if me == _norm(held.sender):
        return "自分が送信したメールを承認・却下することはできません。"
    if me in {_norm(r) for r in held.recipients}:
        return "自分宛てのメールを承認・却下することはできません。"
    if held.approver_role == "ciso" and actor_role != "ciso":
        return "このメールは統括情報セキュリティ責任者の承認が必要です。所属長は承認できません。"
    return None


def plan_route(
    approver_role: str | None,
    department: str,
    sender: str,
    recipients: Iterable[str],
    heads: Iterable[str],
    cisos: Iterable[str],
    operators: Iterable[str],
) -> Route:
    """Where a hold goes (pure: the caller looks up the accounts).

    ``heads`` are the enabled heads and deputies of ``department``. Nobody is asked
    to decide on mail they sent or that is addressed to them, so such accounts do
    not count when deciding whether a department has someone able to approve.
    """
    excluded = {_norm(sender), *(_norm(r) for r in recipients)}
    why = ""
    if approver_role != "ciso":
        if department:
            able = tuple(h for h in heads if _norm(h) not in excluded)
            if able:
                return Route("section_head", department, able, f"{department}の所属長")
            why = f"{department}に承認できる所属長が登録されていないため"
        else:
            why = "差出人が職員名簿に登録されていないため"
    able = tuple(c for c in cisos if _norm(c) not in excluded)
    if able:
        return Route("ciso", department, able, "統括情報セキュリティ責任者", why)
    return Route(
        "operator", department, tuple(operators), "（承認できる人がいません）",
        "承認者のアカウントが登録されていないため。運用担当者が承認者を登録してください",
    )


def route_refusal(
    actor_email: str, actor_role: str, actor_department: str | None, held: Any, route: Route
) -> str | None:
    """Why the actor is not among those the hold is routed to (Japanese), or None."""
    if route.role == "section_head":
        same = normalize_department(actor_department) == normalize_department(route.department)
        if actor_role == "section_head" and same:
            return None
        if actor_role == "ciso" and getattr(held, "escalated_at", None):
            return None  # escalated: the CISO may now decide
        return (
            f"このメールは{route.department}の所属長（代理を含む）が承認します。"
            "あなたは判断できません。"
        )
    if route.role == "ciso":
        if actor_role == "ciso":
            return None
        return "このメールは統括情報セキュリティ責任者が承認します。所属長は判断できません。"
    return "承認できるアカウントが登録されていません。運用担当者に連絡してください。"


def may_see(actor_email: str, actor_role: str, actor_department: str | None,
            held: Any, route: Route) -> bool:
    """Operators see every hold; an approver sees what is routed to them."""
    if actor_role == "operator":
        return True
    if _norm(actor_email) == _norm(held.decided_by or ""):
        return True
    if actor_role == "ciso" and (route.role == "ciso" or held.approver_role == "ciso"):
        return True
    return route_refusal(actor_email, actor_role, actor_department, held, route) is None


def route_for(gateway: Any, held: Any) -> Route:
    """``plan_route`` with the gateway's current accounts."""
    users = gateway.users
    heads = [u.email for u in users.section_heads(held.department)] if held.department else []
    return plan_route(
        held.approver_role, held.department or "", held.sender, held.recipients, heads,
        users.emails_for_role("ciso"), users.emails_for_role("operator"),
    )


def missing_approvers(gateway: Any) -> list[str]:
    """Start-up warnings (English, for the log): roles and departments nobody can approve for."""
    users = gateway.users
    consequence = {
        "section_head": "section-head holds go to the CISO",
        "ciso": "CISO holds (My Number) cannot be approved",
        "operator": "nobody is told when a hold has no approver",
    }
    warnings = [
        f"no enabled {role} account: {consequence[role]}"
        f" (create one: dlp-gateway users add EMAIL --role {role}"
        + (" --department DEPT" if role == "section_head" else "") + ")"
        for role in ("section_head", "ciso", "operator")
        if not users.emails_for_role(role)
    ]
    from dlp_gateway.store.staff import StaffStore

    departments = StaffStore(gateway.db).departments()
    headless = [d for d in departments if not users.section_heads(d)]
    known = set(departments)
    stray = sorted({u.department or "(none)" for u in users.list()
                    if u.role == "section_head" and u.enabled and u.department not in known})
    if departments and stray:
        warnings.append(
            "section head department(s) not in the staff directory (typo?), nobody's mail"
            f" goes to them: {', '.join(stray[:10])}"
        )
    if headless:
        shown = ", ".join(headless[:10]) + (" ..." if len(headless) > 10 else "")
        warnings.append(
            f"{len(headless)} department(s) in the staff directory have no section head;"
            f" their holds go to the CISO: {shown}"
        )
    return warnings


def default_mode(has_attachments: bool) -> str:
    """Encrypted when there is something to encrypt, else as is (body-only holds)."""
    return "encrypted" if has_attachments else "as_is"


def required_approvals(rules: Iterable[str], requirements: Mapping[str, int]) -> int:
    """The number of distinct approvers the strictest fired rule asks for (at least 1)."""
    return max([1, *(int(requirements.get(rule, 1)) for rule in rules)])


def release_mode(modes: Iterable[str]) -> str:
    """``encrypted`` if any approver asked for it, else ``as_is``."""
    return "encrypted" if "encrypted" in set(modes) else "as_is"


def message_sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def load_requirements(patterns_dir: Path | str | None) -> dict[str, int]:
    """``approvals_required`` per rule name from ``patterns/policy.toml``.

    Any table in the file that has both a name (``name``, ``id`` or ``rule``) and
    ``approvals_required`` counts, as does a ``[approvals_required]`` table mapping
    rule names to numbers. A missing or unreadable file means one approver everywhere.
    """
    from dlp_gateway.detect.patterns import DEFAULT_PATTERNS_DIR

    base = Path(patterns_dir) if patterns_dir else DEFAULT_PATTERNS_DIR
    try:
        data = tomllib.loads((base / "policy.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    found: dict[str, int] = {}
    table = data.get("approvals_required")
    if isinstance(table, dict):
        found.update({str(k): int(v) for k, v in table.items() if isinstance(v, int)})
    _collect_requirements(data, found, key=None)
    return found


def _collect_requirements(node: Any, found: dict[str, int], key: str | None) -> None:
    if isinstance(node, list):
        for item in node:
            _collect_requirements(item, found, key)
    elif isinstance(node, dict):
        n = node.get("approvals_required")
        name = node.get("name") or node.get("id") or node.get("rule") or key
        if isinstance(n, int) and isinstance(name, str):
            found.setdefault(name, n)
        for sub_key, value in node.items():
            if isinstance(value, dict | list):
                _collect_requirements(value, found, sub_key)


# -- the approvals table and the service the web page calls ------------------------------


class ApprovalStore:
    def __init__(self, db: Database):
        self.db = db

    def for_message(self, held_id: str) -> list[Approval]:
        rows = self.db.query(
            "SELECT * FROM approvals WHERE held_id = ? ORDER BY at, approver", (held_id,)
        )
        return [Approval(**{k: r[k] for k in r.keys()}) for r in rows]  # noqa: SIM118

    def remove(self, held_id: str, approver: str) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM approvals WHERE held_id = ? AND approver = ?", (held_id, approver)
            )

    def add(self, approval: Approval) -> bool:
        """Record one approval; False if this approver already approved this message."""
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO approvals (held_id, approver, sha256, mode, at, comment)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (approval.held_id, approval.approver, approval.sha256, approval.mode,
                 approval.at, approval.comment),
            )
        return cur.rowcount > 0


class Approvals:
    """Applies the rules, records approvals, and calls the gateway's release/reject."""

    def __init__(self, gateway: Any, requirements: Mapping[str, int] | None = None):
        self.gateway = gateway
        self.store = ApprovalStore(gateway.db)
        if requirements is None:
            requirements = load_requirements(getattr(gateway.config, "patterns_dir", None))
        self.requirements = dict(requirements)

    def required_for(self, held: HeldLike) -> int:
        return required_approvals(held.rules or (), self.requirements)

    def route(self, held: Any) -> Route:
        return route_for(self.gateway, held)

    def router(self) -> Callable[[Any], Route]:
        """``route`` for many holds: the accounts are read once."""
        users = self.gateway.users
        cisos = users.emails_for_role("ciso")
        operators = users.emails_for_role("operator")
        heads: dict[str, list[str]] = {}

        def route(held: Any) -> Route:
            dept = held.department or ""
            if dept and dept not in heads:
                heads[dept] = [u.email for u in users.section_heads(dept)]
            return plan_route(held.approver_role, dept, held.sender, held.recipients,
                              heads.get(dept, []), cisos, operators)

        return route

    def refusal_for(self, actor_email: str, actor_role: str, held: Any) -> str | None:
        """All the rules: separation of duties, then the routing to a department."""
        reason = refusal(actor_email, actor_role, held)
        if reason or held.status != "held":
            return reason
        return route_refusal(
            actor_email, actor_role, self._department(actor_email), held, self.route(held)
        )

    def visible(self, actor_email: str, actor_role: str, held: Any) -> bool:
        return may_see(
            actor_email, actor_role, self._department(actor_email), held, self.route(held)
        )

    def _department(self, actor_email: str) -> str | None:
        user = self.gateway.users.get(actor_email)
        return user.department if user else None

    def has_attachments(self, held_id: str) -> bool:
        from dlp_gateway.gateway import attachment_names

        try:
            return bool(attachment_names(self.gateway.held.raw(held_id)))
        except Exception:
            return False

    def _check(self, actor_email: str, actor_role: str, held_id: str) -> tuple[Any, str]:
        held = self._held(held_id)
        reason = self.refusal_for(actor_email, actor_role, held)
        if reason:
            raise ApprovalRefused(reason, 409 if held.status != "held" else 403)
        try:
            raw = self.gateway.held.raw(held_id)
        except Exception:  # HeldIntegrityError or a missing spool file: never approve
            raw = None
        digest = message_sha256(raw) if raw is not None else ""
        if not held.sha256 or digest != held.sha256:
            raise ApprovalRefused(
                "保存されたメールの内容が保留時と一致しません（SHA-256 不一致）。"
                "承認できません。",
                409,
            )
        return held, digest

    def approve(
        self, actor_email: str, actor_role: str, held_id: str, mode: str, comment: str = "",
        confirm: bool = False,
    ) -> Outcome:
        held, digest = self._check(actor_email, actor_role, held_id)
        attachments = self.has_attachments(held_id)
        mode = mode or default_mode(attachments)
        if mode not in MODES:
            raise ApprovalRefused("送信方法（そのまま / 暗号化）を選んでください。", 400)
        if mode == "encrypted" and not attachments:
            raise ApprovalRefused(
                "このメールには添付ファイルがないため暗号化できません。"
                "「暗号化せずに送信」を選んでください。", 400,
            )
        if mode == "as_is" and not (confirm and comment.strip()):
            raise ApprovalRefused(
                "暗号化せずに送信するには、確認欄にチェックを入れ、理由を入力してください。"
                "（送信していません）", 400,
            )
        at = utc_now()
        approval = Approval(held_id, _norm(actor_email), digest, mode, at, comment.strip())
        if not self.store.add(approval):
            raise ApprovalRefused(
                "このメールは既にあなたが承認しています。別の承認者が必要です。", 409
            )
        valid = [a for a in self.store.for_message(held_id) if a.sha256 == digest]
        required = self.required_for(held)
        chosen = release_mode(a.mode for a in valid)
        self.gateway.audit.append(
            "approve", approval.approver, held_id,
            {"sha256": digest, "mode": mode, "approvals": len(valid), "required": required,
             "comment": approval.comment},
        )
        if len(valid) < required:
            return Outcome(False, len(valid), required, chosen)
        approvers = ", ".join(a.approver for a in valid)
        try:
            self.gateway.release(held_id, approvers, chosen, approval.comment)
        except Exception as exc:
            # Not released (e.g. nothing to encrypt): the approval must not linger.
            self.store.remove(held_id, approval.approver)
            self.gateway.audit.append(
                "approve_void", approval.approver, held_id, {"error": type(exc).__name__}
            )
            raise
        return Outcome(True, len(valid), required, chosen)

    def reject(self, actor_email: str, actor_role: str, held_id: str, comment: str) -> None:
        if not comment.strip():
            raise ApprovalRefused("却下の理由（コメント）を入力してください。", 400)
        self._check_reject(actor_email, actor_role, held_id)
        self.gateway.reject(held_id, _norm(actor_email), comment.strip())

    def _check_reject(self, actor_email: str, actor_role: str, held_id: str) -> None:
        """Rejecting needs the same authority, but not an intact spool file."""
        held = self._held(held_id)
        reason = self.refusal_for(actor_email, actor_role, held)
        if reason:
            raise ApprovalRefused(reason, 409 if held.status != "held" else 403)

    def _held(self, held_id: str) -> Any:
        try:
            held = self.gateway.held.get(held_id)
        except KeyError:  # HeldNotFound
            held = None
        if held is None:
            raise ApprovalRefused("指定された保留メールは見つかりません。", 404)
        return held


# -- escalation and expiry --------------------------------------------------------------


def _aware(value: dt.datetime | str) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def due_action(
    received: dt.datetime | str,
    escalated: bool,
    now: dt.datetime,
    escalate_hours: float,
    expire_hours: float,
) -> str | None:
    """``expire``, ``escalate`` or None for a message still held at ``now``."""
    waited = now - _aware(received)
    if waited >= dt.timedelta(hours=expire_hours):
        return "expire"
    if not escalated and waited >= dt.timedelta(hours=escalate_hours):
        return "escalate"
    return None


def run_expiry(gateway: Any, now: dt.datetime | None = None) -> dict[str, list[str]]:
    """One pass over held mail: escalate or expire what is due. Returns the ids acted on."""
    now = now or dt.datetime.now(dt.UTC)
    cfg = gateway.config
    done: dict[str, list[str]] = {"escalate": [], "expire": []}
    cutoff = now.astimezone(dt.UTC)
    due = gateway.held.list_due(  # only what is due, not every held row and its findings
        (cutoff - dt.timedelta(hours=cfg.escalate_hours)).isoformat(timespec="seconds"),
        (cutoff - dt.timedelta(hours=cfg.expire_hours)).isoformat(timespec="seconds"),
    )
    for held in due:
        action = due_action(
            held.received, bool(held.escalated_at), now, cfg.escalate_hours, cfg.expire_hours
        )
        if action is None:
            continue
        try:
            if action == "expire":
                gateway.expire(held.id, now)
            else:
                gateway.escalate(held.id, now)
        except Exception:  # decided meanwhile (HeldStateError) or a one-off failure
            log.warning("held %s: %s skipped", held.id, action, exc_info=True)
            continue
        done[action].append(held.id)
    return done


async def expiry_loop(gateway: Any, interval_seconds: float = 60.0) -> None:
    """Run ``run_expiry`` forever, off the event loop; errors are logged, not fatal."""
    while True:
        try:
            await asyncio.to_thread(run_expiry, gateway)
        except Exception:  # keep the loop alive; the next pass retries
            log.exception("expiry pass failed")
        await asyncio.sleep(interval_seconds)
