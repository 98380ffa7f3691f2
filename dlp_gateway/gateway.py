"""The gateway's shared services and the decisions both the CLI and the admin page take.

``Gateway(config)`` opens the data directory (SQLite + spool) and exposes
``db``, ``audit``, ``held``, ``queue``, ``users``. ``release`` / ``reject`` /
``expire`` / ``escalate`` change a held message's status, audit the decision and
enqueue the outbound mail in the durable queue. The status change and the queue
rows commit in one transaction: a release is never recorded without its mail,
nor its mail sent without the release. Role and separation-of-duty checks live in
``dlp_gateway.approval`` and run before these.
"""

from __future__ import annotations

import datetime as dt
import logging
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from dlp_gateway.actions import notify
from dlp_gateway.actions.encrypt import encrypt_attachments, new_password
from dlp_gateway.config import Config
from dlp_gateway.mail.addresses import AddressError, header_addresses, parse_mailbox
from dlp_gateway.mail.headers import mask_numbers_in_text, prepend_headers
from dlp_gateway.ownership import share_database_files
from dlp_gateway.store.audit import AuditLog
from dlp_gateway.store.db import DB_FILENAME, Database, StorageError, StorageState
from dlp_gateway.store.dedupe import RecentMessages
from dlp_gateway.store.held import (
    HeldIntegrityError,
    HeldMessage,
    HeldNotFound,
    HeldStateError,
    HeldStore,
)
from dlp_gateway.store.queue import OutboundQueue
from dlp_gateway.store.spool import open_spool

__all__ = [
    "Gateway",
    "HeldIntegrityError",
    "HeldNotFound",
    "HeldStateError",
    "ReleaseError",
]

log = logging.getLogger("dlp_gateway.gateway")

RELEASE_MODES = ("as_is", "encrypted")
SYSTEM_ACTOR = "system"


class ReleaseError(ValueError):
    """A release that cannot be carried out as asked (bad mode, nothing to encrypt)."""


class Gateway:
    def __init__(self, config: Config):
        self.config = config
        data_dir = config.data_dir
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            self.db = Database.for_config(config)
            share_database_files(data_dir, DB_FILENAME)  # operators' CLI writes it too
            self.spool = open_spool(self.db, data_dir)  # PostgreSQL: in the database
            self.spool.check_writable()
        except StorageError:
            raise
        except OSError as exc:
            raise StorageError(f"data directory {data_dir} is not usable: {exc}") from exc
        self.audit = AuditLog(self.db)
        self.held = HeldStore(self.db, self.spool)
        self.queue = OutboundQueue(self.db, self.spool)
        self.storage = StorageState()  # disk full / read-only: logged once per change
        self.recent = RecentMessages(self.db, config.duplicate_window_seconds)
        from dlp_gateway.store.users import UserStore  # written by the admin-page helper

        self.users = UserStore(self.db)

    def close(self) -> None:
        self.db.close()

    # -- notifications --------------------------------------------------------------
    def enqueue_notice(
        self,
        msg: EmailMessage,
        ref: str | None = None,
        conn: Any | None = None,
        rcpts: list[str] | None = None,
    ) -> int:
        """Queue a gateway notification (envelope sender: the gateway's address).

        One queue item per recipient, each with exactly one envelope address: ``rcpts``
        when given (the sender of a password notice), else the To header read by the
        strict address parser, never split on commas. An address that is not one
        well-formed mailbox gets nothing; the failure is recorded for operators.
        Returns the last queue id (0 if nothing could be queued).
        """
        try:
            targets = (
                [parse_mailbox(a).addr_spec for a in rcpts] if rcpts is not None
                else header_addresses(str(msg["To"]))
            )
        except AddressError as exc:
            subject = mask_numbers_in_text(str(msg["Subject"] or ""))
            log.error("notice %r not queued: recipient is not one well-formed address (%s)",
                      subject, exc)
            self.queue.record_undeliverable(
                "notice", ref, self.config.gateway_address, list(rcpts or [str(msg["To"])]),
                f"invalid recipient address: {exc}", subject, conn=conn,
            )
            return 0
        data = notify.to_bytes(msg)
        item_id = 0
        for target in dict.fromkeys(targets):  # de-duplicated, order kept
            item_id = self.queue.enqueue(
                self.config.gateway_address, [target], data, kind="notice", ref=ref, conn=conn
            )
        return item_id

    def route(self, held: HeldMessage) -> Any:
        """Who the hold waits for (``approval.Route``): own department's heads, CISO, ..."""
        from dlp_gateway.approval import route_for

        return route_for(self, held)

    def status_url(self, held: HeldMessage) -> str:
        """The sender's signed link to this mail's status page (valid until the deadline)."""
        from dlp_gateway.status_link import load_key, make_token
        from dlp_gateway.timefmt import deadline

        token = make_token(
            load_key(self.config.data_dir, self.db), held.id,
            deadline(held.received, self.config.expire_hours),
        )
        return f"{self.config.admin_base_url}/s/{token}"

    def notify_hold(self, held: HeldMessage, conn: Any | None = None) -> None:
        route = self.route(held)
        if route.approvers:
            self.enqueue_notice(notify.approver_notice(self.config, held, route), held.id, conn)
        if route.role == "operator" or not route.approvers:
            log.warning("held %s: no account can approve it (role %s, department %r); %s",
                        held.id, held.approver_role, held.department,
                        "operators notified" if route.approvers else "nobody notified")
        self.enqueue_notice(
            notify.sender_hold_notice(self.config, held, route, self.status_url(held)), held.id,
            conn,
        )

    # -- decisions --------------------------------------------------------------------
    def release(
        self, held_id: str, actor: str, mode: str = "as_is", comment: str = ""
    ) -> HeldMessage:
        """Release a held message (as is, or with its attachments AES-zipped)."""
        if mode not in RELEASE_MODES:
            raise ReleaseError(f"mode must be one of {', '.join(RELEASE_MODES)}")
        held = self._require_held(held_id)
        if self.config.require_auth_for_release and not held.sender_authenticated:
            raise ReleaseError(
                "送信者が認証されていない（SMTP AUTH なし）メールのため、送信を承認できません"
            )
        raw = self.held.raw(held_id)  # raises HeldIntegrityError if the file changed
        password = None
        files: list[str] = []
        if mode == "encrypted":
            files = sorted(_names_to_encrypt(held, raw))
            if not files:
                raise ReleaseError("暗号化できる添付ファイルがありません")
            password = new_password()
            raw = encrypt_attachments(raw, set(files), password)
        data = prepend_headers(
            raw, [("X-DLP-Verdict", f"released-{mode.replace('_', '-')}"),
                  ("X-DLP-Scan-Id", held.scan_id or held.id)]
        )
        xforward = self.held_client_xforward(held_id)
        with self.db.transaction() as conn:
            self.held.set_release_mode(held_id, mode, conn=conn)
            decided = self.held.set_status(held_id, "released", actor, comment, conn=conn)
            self.queue.enqueue(
                held.sender, held.recipients, data, kind="release", ref=held_id, conn=conn,
                xforward=xforward,
            )
            if password is not None:
                self.enqueue_notice(
                    notify.password_notice(
                        self.config, held.sender, held.recipients, held.subject, password, files
                    ),
                    held_id, conn=conn, rcpts=[held.sender],  # the sender, and only the sender
                )
            self.enqueue_notice(notify.release_notice(self.config, decided, mode), held_id, conn)
        self.audit.append(
            "release", actor, held_id,
            {"sha256": held.sha256, "mode": mode, "comment": comment,
             "recipients": held.recipients, "encrypted_files": files},
        )
        log.info("held %s released (%s) by %s", held_id, mode, actor)
        return self.held.get(held_id)

    def held_client_xforward(self, held_id: str) -> dict[str, str] | None:
        """The original client of a held mail (the ``client`` its hold audit row recorded:
        XFORWARD from Postfix, else the direct peer), as XFORWARD attributes for the
        release. Notices carry none: they are the gateway's own mail."""
        from dlp_gateway.relay.upstream import xforward_from_origin

        rows = self.audit.entries(event="hold", held_id=held_id, limit=1)
        client = rows[0].details.get("client") if rows else None
        return xforward_from_origin(client) if isinstance(client, dict) else None

    def reject(self, held_id: str, actor: str, comment: str) -> HeldMessage:
        """Reject a held message: never delivered; the sender gets the comment."""
        held = self._require_held(held_id)
        with self.db.transaction() as conn:
            decided = self.held.set_status(held_id, "rejected", actor, comment, conn=conn)
            self.enqueue_notice(
                notify.rejection_notice(self.config, decided, comment), held_id, conn
            )
        self.audit.append(
            "reject", actor, held_id,
            {"sha256": held.sha256, "comment": comment, "recipients": held.recipients},
        )
        log.info("held %s rejected by %s", held_id, actor)
        return self.held.get(held_id)

    def withdraw(self, held_id: str, actor: str) -> HeldMessage:
        """The sender takes the mail back: never delivered, off the approvers' lists."""
        held = self._require_held(held_id)
        route = self.route(held)
        with self.db.transaction() as conn:
            decided = self.held.set_status(
                held_id, "withdrawn", actor, "差出人が取り消しました", conn=conn
            )
            if route.approvers:  # those asked to review need not any more
                notice = notify.withdrawal_notice(self.config, decided, route)
                self.enqueue_notice(notice, held_id, conn)
        self.audit.append(
            "withdraw", actor, held_id, {"sha256": held.sha256, "recipients": held.recipients}
        )
        log.info("held %s withdrawn by its sender", held_id)
        return self.held.get(held_id)

    def expire(self, held_id: str, now: dt.datetime | None = None) -> HeldMessage:
        """Past the final deadline: status expired, sender told, never delivered."""
        held = self._require_held(held_id)
        comment = "承認期限切れ"
        with self.db.transaction() as conn:
            decided = self.held.set_status(held_id, "expired", SYSTEM_ACTOR, comment, conn=conn)
            self.enqueue_notice(notify.expiry_notice(self.config, decided), held_id, conn)
        self.audit.append(
            "expire", SYSTEM_ACTOR, held_id,
            {"sha256": held.sha256, "received": held.received, "recipients": held.recipients},
        )
        return self.held.get(held_id)

    def escalate(self, held_id: str, now: dt.datetime | None = None) -> HeldMessage:
        """Past the first deadline: tell the CISO(s); the message stays held."""
        held = self._require_held(held_id)
        at = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
        cisos = self.users.emails_for_role("ciso")
        with self.db.transaction() as conn:
            if not self.held.mark_escalated(held_id, at, conn=conn):
                raise HeldStateError(f"held message {held_id} was escalated or decided already")
            if cisos:
                notice = notify.escalation_notice(self.config, held, cisos)
                self.enqueue_notice(notice, held_id, conn)
        if not cisos:
            log.warning("held %s: escalation due but no ciso account exists", held_id)
        self.audit.append(
            "escalate", SYSTEM_ACTOR, held_id, {"sha256": held.sha256, "notified": cisos}
        )
        return self.held.get(held_id)

    def _require_held(self, held_id: str) -> HeldMessage:
        held = self.held.get(held_id)  # raises HeldNotFound
        if held.status != "held":
            raise HeldStateError(f"held message {held_id} is {held.status}, not held")
        return held


def _names_to_encrypt(held: HeldMessage, raw: bytes) -> set[str]:
    """Attachments with findings; every attachment when the hold had none (unscannable)."""
    names = {
        str(f["part"]).split("/", 1)[0]
        for f in held.findings
        if not f.get("in_body") and f.get("part") and f.get("part") != "body"
    }
    return names or attachment_names(raw)


def attachment_names(raw: bytes) -> set[str]:
    """Names of the message's top-level attachments."""
    msg: Any = message_from_bytes(raw, policy=default_policy)
    names: set[str] = set()
    for part in msg.iter_attachments() if msg.is_multipart() else ():
        try:
            name = part.get_filename()
        except Exception:
            name = None
        if name:
            names.add(str(name))
    return names
