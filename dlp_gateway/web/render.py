"""Display helpers for the admin page: masking, a masked body excerpt, summaries.

Everything shown from a message goes through ``mask_digits`` so that no full
My Number (or other long number) can reach the browser, whatever the detectors
found: any run of 6 or more digits, even split by spaces, dashes or slashes,
shows at most its last four digits.
"""

from __future__ import annotations

import csv
import datetime as dt
import email
import email.policy
import html
import io
import re
from collections.abc import Iterable, Mapping
from typing import Any

from dlp_gateway import timefmt
from dlp_gateway.csvsafe import safe_row

TYPE_LABELS = {
    "my_number": "マイナンバー",
    "insured_number": "被保険者番号",
    "name": "氏名",
    "birth_date": "生年月日",
}
UNSCANNABLE_LABELS = {
    "encrypted_archive": "暗号化された圧縮ファイル",
    "encrypted_office": "パスワード付きOfficeファイル",
    "corrupt": "壊れたファイル",
    "too_deep": "圧縮の入れ子が深すぎる",
    "too_large": "展開後のサイズが大きすぎる",
    "timeout": "検査時間の上限超過",
}
ROLE_LABELS = {
    "section_head": "所属長",
    "ciso": "統括情報セキュリティ責任者",
    "operator": "運用担当者",
    None: "—",
}
STATUS_LABELS = {
    "held": "保留中",
    "released": "送信済み（承認）",
    "rejected": "却下",
    "expired": "期限切れ（却下）",
    "withdrawn": "取り消し（差出人）",
}
MODE_LABELS = {"as_is": "暗号化せずにそのまま送信", "encrypted": "添付ファイルを暗号化して送信"}
RULE_LABELS = {
    "my_number": "マイナンバーを含む（統括情報セキュリティ責任者の承認が必要）",
    "unscannable": "検査できない部分がある",
    "many_records": "10人分以上の個人情報",
    "records_in_body": "本文に個人情報（暗号化では保護できない）",
    "records_in_attachments": "添付ファイルに個人情報",
    "timeout": "検査が時間内に終わらなかった",
    "encrypt_failed": "暗号化できなかった",
}
EVENT_LABELS = {
    "hold": "保留",
    "approve": "承認",
    "approve_void": "承認の取り消し（送信できず）",
    "release": "送信（承認済み）",
    "reject": "却下",
    "withdraw": "差出人による取り消し",
    "escalate": "期限超過の通知",
    "expire": "期限切れ",
    "login": "ログイン",
    "login_failed": "ログイン失敗",
    "logout": "ログアウト",
    "encrypt": "暗号化して送信",
    "pass": "通過",
    "monitor": "監視モードで通過",
    "deliver": "配送",
    "delivered": "配送完了",
    "delivery_failed": "配送失敗",
    "user_added": "利用者の追加",
    "user_updated": "利用者の変更",
    "user_disabled": "利用者の無効化",
    "staff_imported": "職員名簿の取り込み",
    "staff_added": "職員名簿への追加",
}
DETAIL_LABELS = {
    "sha256": "SHA-256",
    "mode": "送信方法",
    "comment": "コメント",
    "recipients": "宛先",
    "encrypted_files": "暗号化したファイル",
    "approvals": "承認数",
    "required": "必要な承認数",
    "scan_id": "スキャンID",
    "subject": "件名",
    "counts": "検出数",
    "rules": "ルール",
    "approver_role": "承認者",
    "total_findings": "検出の総数",
    "reason": "理由",
    "ip": "接続元",
    "locked_until": "ロック解除",
    "email": "メールアドレス",
    "role": "役割",
    "department": "所属",
    "deputy": "代理",
    "notified": "通知先",
    "received": "受付日時",
    "error": "エラー",
    "file": "ファイル",
    "added": "追加",
    "updated": "更新",
    "unchanged": "変更なし",
    "removed": "削除",
    "skipped": "読み飛ばし",
    "name": "氏名",
    "outcome": "結果",
}
VALUE_LABELS = {
    "bad_credentials": "メールアドレスまたはパスワードの誤り",
    "locked": "ロック中",
    "section_head": "所属長",
    "ciso": "統括情報セキュリティ責任者",
    "operator": "運用担当者",
    **{k: v for k, v in MODE_LABELS.items()},
}

_DIGIT = "0-9０-９"
_SEP = r"\s\-‐‑‒–—―−ｰー－/／.．・,，:：()（）"
_DIGIT_RUN = re.compile(f"[{_DIGIT}](?:[{_SEP}]{{0,3}}[{_DIGIT}])*")
_IS_DIGIT = re.compile(f"[{_DIGIT}]")
MIN_MASKED_DIGITS = 6
EXCERPT_CHARS = 2000


def mask_digits(text: object) -> str:
    """Mask every long digit run, keeping at most its last four digits."""
    return _DIGIT_RUN.sub(_mask_run, "" if text is None else str(text))


def _mask_run(match: re.Match[str]) -> str:
    run = match.group(0)
    total = len(_IS_DIGIT.findall(run))
    if total < MIN_MASKED_DIGITS:
        return run
    keep = min(4, total - 4)
    out, seen = [], 0
    for ch in run:
        if _IS_DIGIT.match(ch):
            seen += 1
            out.append(ch if seen > total - keep else "*")
        else:
            out.append(ch)
    return "".join(out)


def body_excerpt(
    raw: bytes, limit: int = EXCERPT_CHARS, findings: Iterable[Mapping[str, Any]] = ()
) -> str:
    """The first text body of a message, masked and cut to ``limit`` characters.

    ``findings`` (the scan's, for the body) also mask the names and birth dates found.
    """
    from dlp_gateway.web.evidence import mask_body

    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        text = _first_text(msg)
    except Exception:  # a malformed message still gets a (masked) page, not a crash
        text = raw[: limit * 4].decode("utf-8", errors="replace")
    text = mask_body(text.replace("\r\n", "\n"), findings).strip()
    if len(text) > limit:
        text = text[:limit] + "\n…（以下省略）"
    return mask_digits(text)


def _first_text(msg: Any) -> str:
    part = msg.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    from dlp_gateway.extract.text import decode_bytes

    # As the scanner reads it: 8-bit bodies without a charset (scripts, old clients) and
    # mislabelled ones are sniffed, not shown as replacement characters.
    payload = part.get_payload(decode=True) or b""
    content = decode_bytes(payload, part.get_content_charset())
    if part.get_content_subtype() == "html":
        content = _html_to_text(content)
    return content


def _html_to_text(markup: str) -> str:
    markup = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", "", markup)
    markup = re.sub(r"(?i)<br\s*/?>|</p\s*>|</div\s*>|</tr\s*>", "\n", markup)
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def why_held(
    counts: Mapping[str, int], reasons: Iterable[str], unscannable: Iterable[Any]
) -> list[str]:
    """Short lines such as 'マイナンバー 3件', '被保険者番号 7,203件'."""
    lines = [f"{label} {counts[t]:,}件" for t, label in TYPE_LABELS.items() if counts.get(t)]
    if counts.get("records"):
        lines.append(f"個人 {counts['records']:,}人分")
    reasons_by_kind: dict[str, int] = {}
    for item in unscannable:
        reason = item.get("reason", "") if isinstance(item, Mapping) else str(item)
        reasons_by_kind[reason] = reasons_by_kind.get(reason, 0) + 1
    for reason, n in reasons_by_kind.items():
        lines.append(f"{UNSCANNABLE_LABELS.get(reason, reason)} {n:,}件")
    if not lines:
        lines = [mask_digits(r) for r in reasons]
    return lines


def parse_time(value: str | dt.datetime) -> dt.datetime:
    when = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def waited(received: str | dt.datetime, now: dt.datetime) -> str:
    """'2日3時間', '5時間12分', '7分'."""
    minutes = max(0, int((now - parse_time(received)).total_seconds() // 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}日{hours}時間"
    if hours:
        return f"{hours}時間{mins}分"
    return f"{mins}分"


def local_time(value: str | dt.datetime | None, tz: str | None = None) -> str:
    """An ISO time in the configured zone (default Asia/Tokyo): '2025年4月1日 09:30'."""
    return timefmt.local(value, tz)


def detail_lines(details: Mapping[str, object], tz: str | None = None) -> list[tuple[str, str]]:
    """An audit row's details as (Japanese label, readable masked text) pairs."""
    lines = []
    for key, value in sorted(details.items()):
        lines.append((DETAIL_LABELS.get(key, key), _detail_value(key, value, tz)))
    return lines


def _detail_value(key: str, value: object, tz: str | None) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "はい" if value else "いいえ"
    if isinstance(value, list | tuple):
        return "、".join(_detail_value(key, v, tz) for v in value) or "—"
    if isinstance(value, dict):
        if key == "counts":
            return why_counts(value)
        return "、".join(f"{DETAIL_LABELS.get(str(k), k)}: {_detail_value(str(k), v, tz)}"
                        for k, v in value.items()) or "—"
    text = str(value)
    if key == "rules":
        return RULE_LABELS.get(text, text)
    if key in ("locked_until", "received", "at"):
        return local_time(text, tz)
    if key == "sha256":
        return text
    return mask_digits(VALUE_LABELS.get(text, text))


def why_counts(counts: Mapping[str, object]) -> str:
    parts = [f"{label} {counts[t]:,}件" for t, label in TYPE_LABELS.items()
             if isinstance(counts.get(t), int) and counts.get(t)]
    if isinstance(counts.get("records"), int) and counts.get("records"):
        parts.append(f"{counts['records']:,}人分")
    return "、".join(parts) or "なし"


def count_line(findings: Iterable[Mapping[str, Any]]) -> str:
    """'被保険者番号 25件、氏名 25件' for one part's findings."""
    counts: dict[str, int] = {}
    for f in findings:
        counts[str(f.get("type"))] = counts.get(str(f.get("type")), 0) + 1
    return "、".join(f"{TYPE_LABELS.get(t, t)} {n:,}件" for t, n in counts.items())


FindingGroup = tuple[str, list[Mapping[str, Any]]]


def group_findings(findings: Iterable[Mapping[str, Any]]) -> list[FindingGroup]:
    """Findings grouped by top-level part (``body`` or attachment name), in order seen."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for f in findings:
        part = str(f.get("part") or "body").split("/", 1)[0]
        groups.setdefault(part, []).append(f)
    return list(groups.items())


CSV_COLUMNS = [
    "連番", "日時", "イベント", "実行者", "保留ID",
    "差出人", "宛先", "件名", "詳細", "ハッシュ", "イベント(コード)",
]


def audit_csv(entries: Iterable[Any], facts: Mapping[str, Any], tz: str | None = None) -> str:
    """Audit rows as CSV for Japanese Excel: BOM, CRLF, each message's sender/recipients."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        held = facts.get(e.held_id or "")
        writer.writerow(safe_row([
            e.seq, timefmt.iso_local(e.at, tz), EVENT_LABELS.get(e.event, e.event), e.actor,
            e.held_id or "",
            held.sender if held else "",
            " ".join(held.recipients) if held else "",
            mask_digits(held.subject) if held else "",
            _details_text(e.details, tz), e.hash, e.event,
        ]))  # formula injection: cells starting = + - @ are escaped
    return "\ufeff" + out.getvalue()


def _details_text(details: dict[str, object], tz: str | None = None) -> str:
    return "; ".join(f"{label}: {text}" for label, text in detail_lines(details, tz))
