"""Japanese notification mails (UTF-8, From: the gateway's address).

Rules: no finding value beyond its masked form, no message body, and the
password appears in ``password_notice`` only (sent to the sender, never to a
recipient). Subjects quoted from a message have long numbers masked.
"""

from __future__ import annotations

import email.utils
from collections.abc import Iterable
from email.message import EmailMessage
from email.policy import SMTP
from types import SimpleNamespace
from typing import Any

from dlp_gateway.config import Config
from dlp_gateway.mail.headers import mask_numbers_in_text
from dlp_gateway.store.held import HeldMessage
from dlp_gateway.timefmt import deadline, local

ROLE_LABELS = {
    "ciso": "統括情報セキュリティ責任者",
    "section_head": "所属長",
    "operator": "運用担当者",
}

TYPE_LABELS = {
    "my_number": "マイナンバー",
    "insured_number": "被保険者番号",
    "name": "氏名",
    "birth_date": "生年月日",
    "records": "個人の記録",
}

FOOTER = "\n--\nこのメールは情報漏えい防止ゲートウェイ (dlp-gateway) が自動送信しています。\n"


def role_label(role: str | None) -> str:
    return ROLE_LABELS.get(role or "", role or "（なし）")


def counts_text(counts: dict[str, int]) -> str:
    """``マイナンバー 3件、被保険者番号 7,203件`` (zero counts left out)."""
    parts = [f"{TYPE_LABELS[k]} {v:,}件" for k, v in counts.items()
             if v and k in TYPE_LABELS and k != "records"]
    if counts.get("records"):
        parts.append(f"（{counts['records']:,}人分）")
    return "、".join(parts).replace("、（", "（") or "なし"


def approver_text(held: HeldMessage, route: Any) -> str:
    """'介護保険課の所属長' / '統括情報セキュリティ責任者（差出人が職員名簿に…ため）'."""
    if route is None:
        return role_label(held.approver_role)
    return route.label + (f"（{route.why}）" if route.why else "")


def mode_text(mode: str | None) -> str:
    return "添付ファイルを暗号化して送信" if mode == "encrypted" else "暗号化せずにそのまま送信"


def to_bytes(msg: EmailMessage) -> bytes:
    """Wire form (CRLF line ends) for the outbound queue."""
    return msg.as_bytes(policy=SMTP)


def _message(config: Config, to: Iterable[str], subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"情報漏えい防止ゲートウェイ <{config.gateway_address}>"
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate(localtime=True)
    domain = config.gateway_address.rpartition("@")[2] or "localhost"
    msg["Message-ID"] = email.utils.make_msgid("dlp", domain=domain)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-DLP-Notice"] = "yes"
    msg.set_content(body + FOOTER, charset="utf-8", cte="base64")
    return msg


def _held_block(config: Config, held: HeldMessage, route: Any = None) -> str:
    sender = f"{held.sender_name} <{held.sender}>" if held.sender_name else held.sender
    if held.department:
        sender += f"（{held.department}）"
    lines = [
        f"受付日時: {local(held.received, config.timezone)}",
        f"差出人: {sender}",
        f"宛先: {', '.join(held.recipients)}",
        f"件名: {mask_numbers_in_text(held.subject)}",
        f"検出内容: {counts_text(held.counts)}",
        "保留の理由:",
        *[f"  ・{reason}" for reason in held.reasons],
        f"承認者: {approver_text(held, route)}",
        f"承認期限: {local(deadline(held.received, config.expire_hours), config.timezone)}",
        f"保留ID: {held.id}",
    ]
    return "\n".join(lines)


def held_link(config: Config, held_id: str) -> str:
    return f"{config.admin_base_url}/held/{held_id}"


def _review_request(
    config: Config, held: HeldMessage, recipients: Iterable[str], tag: str, intro: str,
    route: Any = None,
) -> EmailMessage:
    """A notice asking approvers to review a hold, with the link to its detail page."""
    body = (
        f"{intro}\n\n{_held_block(config, held, route)}\n\n"
        f"確認・承認はこちら（ログインが必要です）:\n{held_link(config, held.id)}\n"
    )
    return _message(config, recipients, f"{tag} {mask_numbers_in_text(held.subject)}", body)


def approver_notice(config: Config, held: HeldMessage, route: Any) -> EmailMessage:
    """To the accounts the hold is routed to (``route.approvers``)."""
    if route.role == "operator":
        intro = (
            "送信メールを保留しましたが、承認できるアカウント（所属長・統括情報セキュリティ責任者）"
            "が登録されていません。運用担当者として承認者のアカウントを登録してください"
            "（dlp-gateway users add ...）。登録されるまでこのメールは送信されません。"
        )
        tag = "[要対応] 承認者が未登録です:"
    else:
        intro = (
            "個人情報を含む可能性のある送信メールを保留しました。内容を確認し、承認（送信）または"
            "却下を判断してください。"
        )
        tag = "[承認依頼] 送信メールを保留しました:"
    return _review_request(config, held, route.approvers, tag, intro, route)


def sender_hold_notice(
    config: Config, held: HeldMessage, route: Any = None, status_url: str = ""
) -> EmailMessage:
    due = local(deadline(held.received, config.expire_hours), config.timezone)
    who = approver_text(held, route)
    body = (
        "あなたが送信したメールに個人情報が含まれている可能性があるため、送信を保留しました。\n"
        f"検出された内容: {counts_text(held.counts)}\n\n"
        f"このメールは{who}が承認すると送信されます。"
        f"{due}までに承認されない場合は送信されず、その旨をお知らせします。\n"
    )
    if status_url:
        body += (
            "\n状況の確認と、送信の取り消しは次のページからできます（ログイン不要・"
            f"このメール専用のリンクです。期限まで有効）:\n{status_url}\n"
        )
    body += f"\n{_held_block(config, held, route)}\n"
    subject = f"[送信保留] {mask_numbers_in_text(held.subject)}"
    return _message(config, [held.sender], subject, body)


def password_notice(
    config: Config,
    sender: str,
    recipients: list[str],
    subject: str,
    password: str,
    files: list[str],
) -> EmailMessage:
    """The only message that carries a ZIP password: to the sender, never to a recipient."""
    body = (
        "あなたが送信したメールの添付ファイルに個人情報が含まれていたため、"
        "AES-256 で暗号化した ZIP ファイルに置き換えて送信しました。\n\n"
        f"件名: {mask_numbers_in_text(subject)}\n"
        f"宛先: {', '.join(recipients)}\n"
        "暗号化したファイル:\n"
        + "".join(f"  ・{name}.zip\n" for name in files)
        + f"\nパスワード: {password}\n\n"
        "このパスワードをメールで宛先に送らないでください。電話など別の手段で伝えてください"
        "（パスワード付き ZIP とパスワードを同じ経路で送る「PPAP」は禁止されています）。\n"
    )
    return _message(config, [sender], f"[暗号化送信] パスワードのお知らせ: {subject}", body)


def rejection_notice(config: Config, held: HeldMessage, comment: str) -> EmailMessage:
    body = (
        "保留されていたあなたの送信メールは承認されず、送信されませんでした。\n\n"
        f"{_held_block(config, held)}\n\n"
        f"判断者: {held.decided_by or '（不明）'}\n"
        f"判断日時: {local(held.decided_at, config.timezone)}\n"
        f"コメント:\n{comment}\n"
    )
    return _message(
        config, [held.sender], f"[送信不可] {mask_numbers_in_text(held.subject)}", body
    )


def release_notice(config: Config, held: HeldMessage, mode: str) -> EmailMessage:
    how = "添付ファイルを暗号化して" if mode == "encrypted" else "暗号化せずにそのまま"
    body = (
        f"保留されていたあなたの送信メールが承認され、{how}送信されました。\n\n"
        f"送信方法: {mode_text(mode)}\n"
        f"承認者: {held.decided_by or '（不明）'}\n"
        f"承認日時: {local(held.decided_at, config.timezone)}\n"
        + (f"承認者のコメント: {held.comment}\n" if held.comment else "")
        + f"\n{_held_block(config, held)}\n\n"
    )
    if mode == "encrypted":
        body += "ZIP のパスワードは別のメールでお知らせします。\n"
    return _message(
        config, [held.sender], f"[送信済み] {mask_numbers_in_text(held.subject)}", body
    )


def escalation_notice(config: Config, held: HeldMessage, recipients: list[str]) -> EmailMessage:
    intro = (
        "承認待ちのまま期限を過ぎた送信メールがあります。統括情報セキュリティ責任者として"
        "判断してください。判断がない場合、最終期限で自動的に差し戻されます。"
    )
    escalated = SimpleNamespace(
        label="統括情報セキュリティ責任者", why="承認待ちの期限を過ぎたため"
    )
    return _review_request(config, held, recipients, "[承認期限超過]", intro, escalated)


def withdrawal_notice(config: Config, held: HeldMessage, route: Any) -> EmailMessage:
    """To the approvers: the sender withdrew the mail; nothing to decide any more."""
    body = (
        "承認をお願いしていた次の送信メールは、差出人が取り消しました。"
        "このメールは送信されません。判断は不要です。\n\n"
        f"取り消し日時: {local(held.decided_at, config.timezone)}\n\n"
        f"{_held_block(config, held, route)}\n"
    )
    return _message(
        config, route.approvers, f"[取り消し] {mask_numbers_in_text(held.subject)}", body
    )


def expiry_notice(config: Config, held: HeldMessage) -> EmailMessage:
    body = (
        "保留されていたあなたの送信メールは期限までに承認されなかったため、送信されませんでした。"
        "必要であれば、内容を見直して送り直してください。\n\n"
        f"{_held_block(config, held)}\n"
    )
    return _message(
        config, [held.sender], f"[期限切れ・送信不可] {mask_numbers_in_text(held.subject)}", body
    )


def delivery_failure_notice(
    config: Config, sender: str, recipients: list[str], subject: str, error: str
) -> EmailMessage:
    body = (
        "あなたのメールを次の宛先に配送できませんでした。\n\n"
        f"件名: {mask_numbers_in_text(subject)}\n"
        f"宛先: {', '.join(recipients)}\n"
        f"エラー: {mask_numbers_in_text(error)}\n"
    )
    return _message(
        config, [sender], f"[配送失敗] {mask_numbers_in_text(subject)}", body
    )
