"""Findings + person records -> Verdict (pass | encrypt | hold).

The rules are data, in patterns/policy.toml.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from dlp_gateway.detect.patterns import Policy, Rule
from dlp_gateway.detect.records import RecordCount
from dlp_gateway.extract.units import Unscannable

ACTION_STRENGTH = {"pass": 0, "encrypt": 1, "hold": 2}
ROLE_RANK = {None: 0, "section_head": 1, "ciso": 2}

TYPE_LABELS_JA = {
    "my_number": "マイナンバー",
    "insured_number": "被保険者番号",
    "name": "氏名",
    "birth_date": "生年月日",
}
REASON_LABELS_JA = {
    "encrypted_archive": "暗号化された圧縮ファイル",
    "encrypted_office": "パスワード付きOfficeファイル",
    "corrupt": "壊れたファイル",
    "too_deep": "圧縮の入れ子が深すぎる",
    "too_large": "展開後のサイズが大きすぎる（zip bomb の疑い）",
    "timeout": "検査時間の上限を超えた",
    "unsupported_format": "対応していない形式",
    "no_text_layer": "文字情報のないPDF（スキャン画像）",
    "encrypted_pdf": "パスワード付きPDF",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    action: str  # "pass" | "encrypt" | "hold"
    reasons: tuple[str, ...]  # Japanese, for senders and approvers
    rules: tuple[str, ...]  # ids of the rules that fired for this action
    approver_role: str | None = None  # "section_head" | "ciso" for a hold
    approvals_required: int = 0
    # Rules in monitor mode that fired: computed and logged, never enforced.
    monitor: tuple[str, ...] = ()
    monitor_action: str = "pass"  # what the monitor rules alone would have done
    monitor_reasons: tuple[str, ...] = ()


def decide(
    policy: Policy,
    counts: dict[str, int],
    records: RecordCount,
    unscannable: Sequence[Unscannable],
    recipients_allowed: bool = False,
) -> Verdict:
    """Apply every rule; the strongest action wins and gathers the reasons of its rules.

    Rules with ``monitor = true`` are evaluated the same way but only reported in
    ``Verdict.monitor``. With ``recipients_allowed`` (every recipient is in an
    allow-listed domain) a rule with ``allowed_recipient_action`` acts like that.
    """
    counted = [u for u in unscannable if u.reason not in policy.unscannable_ignore]
    metrics = {
        **counts,
        "records": records.total,
        "body_records": records.in_body,
        "attachment_records": records.total - records.in_body,
        "unscannable": len(counted),
    }
    fired = [
        _lowered(rule) if recipients_allowed and rule.allowed_recipient_action else rule
        for rule in policy.rules
        if metrics.get(rule.metric, 0) >= rule.min
    ]
    context = _reason_context(counts, counted)
    enforced = _strongest([r for r in fired if not r.monitor], metrics, counts, context)
    monitored = [r for r in fired if r.monitor]
    watched = _strongest(monitored, metrics, counts, context)
    if enforced is None:
        enforced = Verdict(policy.default_action, (), ())
    if watched is None:
        return enforced
    return replace(
        enforced, monitor=tuple(r.id for r in monitored), monitor_action=watched.action,
        monitor_reasons=watched.reasons,
    )


def _lowered(rule: Rule) -> Rule:
    action = rule.allowed_recipient_action or rule.action
    if ACTION_STRENGTH[action] >= ACTION_STRENGTH[rule.action]:
        return rule
    return replace(rule, action=action, approver_role=rule.approver_role if action == "hold"
                   else None)


def _strongest(
    fired: list[Rule], metrics: dict[str, int], counts: dict[str, int], context: dict[str, str]
) -> Verdict | None:
    if not fired:
        return None
    action = max((r.action for r in fired), key=ACTION_STRENGTH.__getitem__)
    chosen = [r for r in fired if r.action == action]
    reasons = tuple(_reason(rule, metrics, context) for rule in chosen)
    if action == "hold" or action == "encrypt":
        reasons += _breakdown(counts)
    role = max((r.approver_role for r in chosen), key=ROLE_RANK.__getitem__)
    approvals = max(r.approvals_required for r in chosen) if action == "hold" else 0
    return Verdict(action, reasons, tuple(r.id for r in chosen), role, approvals)


def _reason(rule: Rule, metrics: dict[str, int], context: dict[str, str]) -> str:
    try:
        return rule.reason.format(n=f"{metrics.get(rule.metric, 0):,}", **context)
    except (KeyError, IndexError, ValueError):
        return f"{rule.reason} ({rule.id})"


def _reason_context(counts: dict[str, int], unscannable: Sequence[Unscannable]) -> dict[str, str]:
    details = "、".join(
        f"{u.part}: {REASON_LABELS_JA.get(u.reason, u.reason)}" for u in unscannable[:5]
    )
    if len(unscannable) > 5:
        details += f" ほか{len(unscannable) - 5}件"
    return {"details": details, "breakdown": "、".join(_breakdown(counts))}


def _breakdown(counts: dict[str, int]) -> tuple[str, ...]:
    """'マイナンバー 3件' style lines for each finding type found."""
    return tuple(f"{label} {counts[t]:,}件" for t, label in TYPE_LABELS_JA.items() if counts.get(t))
