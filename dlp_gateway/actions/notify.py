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

from dlp_gateway.config import Config
from dlp_gateway.mail.headers import mask_numbers_in_text
from dlp_gateway.store.held import HeldMessage

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
    parts = [f"{TYPE_LABELS[k]} {v:,}件" for k, v in counts.items() if v and k in TYPE_LABELS]
    return "、".join(parts) or "なし"


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


def _held_block(held: HeldMessage) -> str:
    lines = [
        f"受付日時: {held.received}",
        f"差出人: {held.sender}",
        f"宛先: {', '.join(held.recipients)}",
        f"件名: {mask_numbers_in_text(held.subject)}",
        f"検出内容: {counts_text(held.counts)}",
        "保留の理由:",
        *[f"  ・{reason}" for reason in held.reasons],
        f"必要な承認者: {role_label(held.approver_role)}",
        f"保留ID: {held.id}",
    ]
    return "\n".join(lines)


def held_link(config: Config, held_id: str) -> str:
    return f"{config.admin_base_url}/held/{held_id}"


def _review_request(
    config: Config, held: HeldMessage, recipients: list[str], tag: str, intro: str
) -> EmailMessage:
    """A notice asking approvers to review a hold, with the link to its detail page."""
    body = (
        f"{intro}\n\n{_held_block(held)}\n\n"
        f"確認・承認はこちら（ログインが必要です）:\n{held_link(config, held.id)}\n"
    )
    return _message(config, recipients, f"{tag} {mask_numbers_in_text(held.subject)}", body)


def approver_notice(config: Config, held: HeldMessage, approvers: list[str]) -> EmailMessage:
    intro = (
        "個人情報を含む可能性のある送信メールを保留しました。内容を確認し、承認（送信）または"
        "差し戻しを判断してください。"
    )
    return _review_request(config, held, approvers, "[承認依頼] 送信メールを保留しました:", intro)


def sender_hold_notice(config: Config, held: HeldMessage) -> EmailMessage:
    body = (
        "あなたが送信したメールに個人情報が含まれている可能性があるため、送信を保留しました。\n"
        f"{role_label(held.approver_role)}の承認後に送信されます。承認されなかった場合は"
        "理由を添えてお知らせします。\n\n"
        f"{_held_block(held)}\n"
    )
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
        f"{_held_block(held)}\n\n"
        f"判断者: {held.decided_by or '（不明）'}\n"
        f"コメント:\n{comment}\n"
    )
    return _message(
        config, [held.sender], f"[送信不可] {mask_numbers_in_text(held.subject)}", body
    )


def release_notice(config: Config, held: HeldMessage, mode: str) -> EmailMessage:
    how = "添付ファイルを暗号化して" if mode == "encrypted" else "そのまま"
    body = (
        f"保留されていたあなたの送信メールが承認され、{how}送信されました。\n\n"
        f"{_held_block(held)}\n\n"
        f"承認者: {held.decided_by or '（不明）'}\n"
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
    return _review_request(config, held, recipients, "[承認期限超過]", intro)


def expiry_notice(config: Config, held: HeldMessage) -> EmailMessage:
    body = (
        "保留されていたあなたの送信メールは期限までに承認されなかったため、送信されませんでした。"
        "必要であれば、内容を見直して送り直してください。\n\n"
        f"{_held_block(held)}\n"
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
