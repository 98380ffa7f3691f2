"""The aiosmtpd side: who may relay, and what happens to each message at DATA.

250 means the gateway owns the message: upstream accepted it, or it is on disk
and committed (a held message, or the durable outbound queue when upstream is
down). Internal errors answer ``451 4.3.0`` with the scan id logged, never 5xx.

pass    -> relayed now with ``X-DLP-Verdict: pass`` and ``X-DLP-Scan-Id`` prepended
           (the rest byte-for-byte); upstream down -> queued durably, still 250.
hold    -> spool + SQLite commit, audit, notifications queued, then
           ``250 2.6.0 held for approval <id>``.
encrypt -> attachments with findings AES-zipped; password mail to the sender
           queued first, then the message relayed (or queued).
Internal recipients (config.internal_domains) get the original as pass; with mixed
recipients the external ones get the verdict (two deliveries).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from dlp_gateway.actions import notify
from dlp_gateway.actions.encrypt import EncryptError, encrypt_attachments, new_password
from dlp_gateway.gateway import Gateway
from dlp_gateway.relay.headers import decoded_subject, prepend_headers
from dlp_gateway.relay.scanpool import ScanOutcome, ScanPool
from dlp_gateway.relay.upstream import DeliveryError, Upstream

log = logging.getLogger("dlp_gateway.relay")

RELAY_DENIED = "554 5.7.1 Relay access denied"
TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
TEMP_FAIL = "451 4.3.0 Temporary internal error, please retry (scan id {scan_id})"
ENCRYPT_FAILED_REASON = "添付ファイルを暗号化できなかったため保留しました"


class GatewaySMTP(SMTP):
    """aiosmtpd's SMTP with enhanced status codes for size, and a connection limit."""

    def __init__(self, handler: RelayHandler, limiter: ConnectionLimiter, **kwargs: Any):
        super().__init__(handler, **kwargs)
        self._limiter = limiter

    async def push(self, status: Any) -> None:
        text = status.decode("ascii", "replace") if isinstance(status, bytes) else status
        if text.startswith("552 Error:"):
            status = TOO_BIG
        await super().push(status)

    async def _handle_client(self) -> None:
        self._limiter.active += 1
        try:
            if self._limiter.active > self._limiter.maximum:
                log.warning("connection limit (%d) reached; refusing %r",
                            self._limiter.maximum, self.session.peer)
                await self.push("421 4.7.0 Too many connections, try again later")
                self.transport.close()
                return
            await super()._handle_client()
        finally:
            self._limiter.active -= 1


@dataclass(slots=True)
class ConnectionLimiter:
    maximum: int
    active: int = 0


class RelayHandler:
    def __init__(self, gateway: Gateway, scanner: ScanPool, upstream: Upstream):
        self.gateway = gateway
        self.config = gateway.config
        self.scanner = scanner
        self.upstream = upstream
        self.networks = self.config.networks
        self.upstream_down_until = 0.0  # skip the synchronous attempt while upstream is down
        self.retain: Any = None  # retention of passed mail (server sets it when enabled)

    # -- SMTP hooks -------------------------------------------------------------------
    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list
    ) -> str:
        if not (session.authenticated or self.peer_allowed(session.peer)):
            log.warning("relay denied for %r (rcpt domain %s)", session.peer, _domain(address))
            return RELAY_DENIED
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        scan_id = secrets.token_hex(8)
        raw = envelope.original_content or b""
        try:
            return await self.process(scan_id, envelope.mail_from or "", list(envelope.rcpt_tos),
                                      raw)
        except Exception:
            log.exception("scan %s: internal error; answered 451", scan_id)
            return TEMP_FAIL.format(scan_id=scan_id)

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        """SMTP AUTH PLAIN/LOGIN against the gateway's user store (only after STARTTLS)."""
        if mechanism not in ("PLAIN", "LOGIN") or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        ok = bool(self.gateway.users.verify_password(login, password))
        log.info("smtp auth %s for %s from %r", "ok" if ok else "failed", login, session.peer)
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)

    def peer_allowed(self, peer: Any) -> bool:
        try:
            host = peer[0] if isinstance(peer, tuple) else str(peer)
            ip = ipaddress.ip_address(host.split("%", 1)[0])
        except (ValueError, TypeError, IndexError):
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.networks)

    # -- the decision -------------------------------------------------------------------
    async def process(self, scan_id: str, sender: str, rcpts: list[str], raw: bytes) -> str:
        started = time.monotonic()
        outcome = await self.scanner.scan(raw, (sender, list(rcpts)))
        action = outcome.action
        internal, external = self.split_recipients(rcpts)
        log.info(
            "scan %s: verdict=%s rules=%s counts=%s size=%d rcpts=%d (internal %d) %.0fms",
            scan_id, action, ",".join(outcome.rules), _nonzero(outcome.counts), len(raw),
            len(rcpts), len(internal), (time.monotonic() - started) * 1000,
        )
        if outcome.monitor:
            log.info("scan %s: monitor rules %s would %s", scan_id, ",".join(outcome.monitor),
                     outcome.monitor_action)
            await asyncio.to_thread(self._audit_rule_monitor, scan_id, sender, rcpts, raw,
                                    outcome)
        if self.retain is not None and action == "pass":
            await asyncio.to_thread(self.retain, scan_id, sender, rcpts, raw, outcome.action)
        if self.config.monitor_mode and action != "pass":
            log.info("scan %s: monitor mode, would %s; passing", scan_id, action)
            await asyncio.to_thread(self._audit_monitor, scan_id, sender, rcpts, raw, outcome)
            action = "pass"
        if action == "pass" or not external:
            return await self.deliver_pass(scan_id, sender, rcpts, raw, may_reject=True)
        if action == "encrypt":
            reply = await self.encrypt(scan_id, sender, external, raw, outcome)
        else:
            reply = await self.hold(scan_id, sender, external, raw, outcome)
        if internal:  # after the verdict part is safe, so a 451 never duplicates it
            await self.deliver_pass(scan_id, sender, internal, raw, may_reject=False)
        return reply

    def split_recipients(self, rcpts: list[str]) -> tuple[list[str], list[str]]:
        domains = set(self.config.internal_domains)
        if not domains:
            return [], list(rcpts)
        internal = [r for r in rcpts if _is_internal(r, domains)]
        external = [r for r in rcpts if not _is_internal(r, domains)]
        return internal, external

    async def hold(
        self,
        scan_id: str,
        sender: str,
        rcpts: list[str],
        raw: bytes,
        outcome: ScanOutcome,
        extra_reason: str | None = None,
    ) -> str:
        held = await asyncio.to_thread(
            self._persist_hold, scan_id, sender, rcpts, raw, outcome, extra_reason
        )
        log.info("scan %s: held as %s for %s", scan_id, held.id, held.approver_role)
        return f"250 2.6.0 held for approval {held.id}"

    def _persist_hold(
        self,
        scan_id: str,
        sender: str,
        rcpts: list[str],
        raw: bytes,
        outcome: ScanOutcome,
        extra_reason: str | None,
    ) -> Any:
        gw = self.gateway
        reasons = list(outcome.reasons) + ([extra_reason] if extra_reason else [])
        reasons += [f"（monitor・判定に影響なし）{r}" for r in outcome.monitor_reasons]
        held = gw.held.add(
            raw,
            sender=sender,
            recipients=rcpts,
            subject=decoded_subject(raw),
            reasons=reasons,
            rules=list(outcome.rules) + (["encrypt_failed"] if extra_reason else [])
            + [f"monitor:{r}" for r in outcome.monitor],
            approver_role=outcome.approver_role or "section_head",
            scan_id=scan_id,
            counts=outcome.counts,
            findings=list(outcome.findings),
            unscannable=list(outcome.unscannable),
        )
        gw.notify_hold(held)
        gw.audit.append(
            "hold", sender or "<>", held.id,
            {"scan_id": scan_id, "sha256": held.sha256, "recipients": rcpts,
             "subject": held.subject, "counts": outcome.counts, "rules": held.rules,
             "approver_role": held.approver_role, "total_findings": outcome.total_findings},
        )
        return held

    async def encrypt(
        self, scan_id: str, sender: str, rcpts: list[str], raw: bytes, outcome: ScanOutcome
    ) -> str:
        if not sender:  # nobody could receive the password: never send it blind
            return await self.hold(scan_id, sender, rcpts, raw, outcome, ENCRYPT_FAILED_REASON)
        password = new_password()
        names = set(outcome.parts_with_findings)
        try:
            encrypted = await asyncio.to_thread(encrypt_attachments, raw, names, password)
        except EncryptError as exc:
            log.warning("scan %s: cannot encrypt (%s); holding instead", scan_id, exc)
            return await self.hold(scan_id, sender, rcpts, raw, outcome, ENCRYPT_FAILED_REASON)
        subject = decoded_subject(raw)
        notice = notify.password_notice(
            self.config, sender, rcpts, subject, password, sorted(names)
        )
        await asyncio.to_thread(self._record_encrypt, scan_id, sender, rcpts, raw, outcome,
                                notice, sorted(names))
        headers = [("X-DLP-Verdict", "encrypt"), ("X-DLP-Scan-Id", scan_id)]
        data = prepend_headers(encrypted, headers)
        await self.deliver(scan_id, sender, rcpts, data, may_reject=False)
        return f"250 2.0.0 OK: sent with encrypted attachments (scan id {scan_id})"

    def _record_encrypt(
        self, scan_id: str, sender: str, rcpts: list[str], raw: bytes, outcome: ScanOutcome,
        notice: Any, files: list[str],
    ) -> None:
        self.gateway.enqueue_notice(notice, scan_id)
        self.gateway.audit.append(
            "encrypt", sender or "<>", None,
            {"scan_id": scan_id, "sha256": hashlib.sha256(raw).hexdigest(), "recipients": rcpts,
             "subject": decoded_subject(raw), "counts": outcome.counts, "files": files},
        )

    def _audit_monitor(
        self, scan_id: str, sender: str, rcpts: list[str], raw: bytes, outcome: ScanOutcome
    ) -> None:
        self.gateway.audit.append(
            "pass", sender or "<>", None,
            {"scan_id": scan_id, "monitor_mode": True, "would": outcome.action,
             "sha256": hashlib.sha256(raw).hexdigest(), "recipients": rcpts,
             "counts": outcome.counts, "rules": list(outcome.rules)},
        )

    def _audit_rule_monitor(
        self, scan_id: str, sender: str, rcpts: list[str], raw: bytes, outcome: ScanOutcome
    ) -> None:
        """Rules in monitor mode fired: record what they would have done ("monitor")."""
        self.gateway.audit.append(
            "monitor", sender or "<>", None,
            {"scan_id": scan_id, "would": outcome.monitor_action, "verdict": outcome.action,
             "monitor_rules": list(outcome.monitor), "sha256": hashlib.sha256(raw).hexdigest(),
             "recipients": rcpts, "subject": decoded_subject(raw), "counts": outcome.counts},
        )

    # -- delivery -------------------------------------------------------------------
    async def deliver_pass(
        self, scan_id: str, sender: str, rcpts: list[str], raw: bytes, may_reject: bool
    ) -> str:
        data = prepend_headers(raw, [("X-DLP-Verdict", "pass"), ("X-DLP-Scan-Id", scan_id)])
        return await self.deliver(scan_id, sender, rcpts, data, may_reject)

    async def deliver(
        self, scan_id: str, sender: str, rcpts: list[str], data: bytes, may_reject: bool
    ) -> str:
        """Relay now; if upstream is down, own the message through the durable queue.

        With ``may_reject`` (one delivery for the whole DATA), a permanent refusal
        of the whole message by upstream is passed back to the client as its 5xx.
        """
        if time.monotonic() < self.upstream_down_until:
            await self._enqueue(scan_id, sender, rcpts, data, "upstream down")
            return f"250 2.0.0 OK: queued (scan id {scan_id})"
        try:
            refused = await asyncio.to_thread(self.upstream.deliver, sender, rcpts, data)
        except DeliveryError as exc:
            if exc.permanent and may_reject:
                log.warning("scan %s: upstream refused: %s", scan_id, exc)
                return f"554 5.0.0 Upstream refused the message: {exc}"[:400]
            if exc.permanent:
                await asyncio.to_thread(self._notify_failure, sender, rcpts, data, str(exc))
                return f"250 2.0.0 OK (scan id {scan_id})"
            self.upstream_down_until = time.monotonic() + 10.0
            await self._enqueue(scan_id, sender, rcpts, data, str(exc))
            return f"250 2.0.0 OK: queued (scan id {scan_id})"
        self.upstream_down_until = 0.0
        if refused:
            await self._handle_refused(scan_id, sender, refused, data)
        return f"250 2.0.0 OK (scan id {scan_id})"

    async def _enqueue(
        self, scan_id: str, sender: str, rcpts: list[str], data: bytes, why: str
    ) -> None:
        log.info("scan %s: upstream unavailable (%s); queued", scan_id, why)
        await asyncio.to_thread(
            self.gateway.queue.enqueue, sender, rcpts, data, "mail", scan_id
        )

    async def _handle_refused(
        self, scan_id: str, sender: str, refused: dict[str, tuple[int, str]], data: bytes
    ) -> None:
        temporary = [r for r, (code, _m) in refused.items() if code < 500]
        permanent = [r for r, (code, _m) in refused.items() if code >= 500]
        if temporary:
            await self._enqueue(scan_id, sender, temporary, data, "recipient deferred")
        if permanent:
            error = "; ".join(f"{r}: {refused[r][0]} {refused[r][1]}" for r in permanent)
            await asyncio.to_thread(self._notify_failure, sender, permanent, data, error)

    def _notify_failure(self, sender: str, rcpts: list[str], data: bytes, error: str) -> None:
        if not sender:
            return
        notice = notify.delivery_failure_notice(
            self.config, sender, rcpts, decoded_subject(data), error
        )
        self.gateway.enqueue_notice(notice)


def _domain(address: str) -> str:
    return address.rpartition("@")[2].strip(">").lower()


def _is_internal(address: str, domains: set[str]) -> bool:
    domain = _domain(address)
    return any(domain == d or domain.endswith("." + d) for d in domains)


def _nonzero(counts: dict[str, int]) -> str:
    return ",".join(f"{k}={v}" for k, v in counts.items() if v) or "-"


def smtp_factory(handler: RelayHandler, loop: asyncio.AbstractEventLoop, tls_context: Any,
                 limiter: ConnectionLimiter) -> Any:
    """A protocol factory for ``loop.create_server``."""
    config = handler.config

    def factory() -> GatewaySMTP:
        return GatewaySMTP(
            handler,
            limiter,
            data_size_limit=config.max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=config.hostname,
            ident="dlp-gateway ESMTP",
            tls_context=tls_context,
            require_starttls=bool(tls_context) and config.require_auth,
            auth_required=config.require_auth,
            auth_require_tls=True,
            authenticator=handler.authenticate,
            loop=loop,
        )

    return factory
