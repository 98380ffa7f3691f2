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
import contextlib
import functools
import hashlib
import ipaddress
import logging
import re
import secrets
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session, syntax

from dlp_gateway import metrics
from dlp_gateway.actions import notify
from dlp_gateway.actions.encrypt import EncryptError, encrypt_attachments, new_password
from dlp_gateway.gateway import Gateway
from dlp_gateway.mail import addresses
from dlp_gateway.mail.headers import decoded_subject, header_bytes, prepend_headers
from dlp_gateway.relay.dataread import read_data
from dlp_gateway.relay.scanpool import ScanOutcome, ScanPool
from dlp_gateway.relay.upstream import (
    XFORWARD_ATTRIBUTES,
    DeliveryError,
    Upstream,
    deliver_async,
    xforward_from_origin,
)
from dlp_gateway.store.db import is_storage_error
from dlp_gateway.store.dedupe import message_key

log = logging.getLogger("dlp_gateway.relay")
_aiosmtpd_log = logging.getLogger("mail.log")  # aiosmtpd's own logger

RELAY_DENIED = "554 5.7.1 Relay access denied"
TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
TEMP_FAIL = "451 4.3.0 Temporary internal error, please retry (scan id {scan_id})"
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)
STORAGE_FULL = "452 4.3.1 Insufficient system storage, please retry later"
BARE_EOL_REFUSED = "550 5.6.11 Bare CR or LF in message data (see RFC 5321 2.3.8)"
_ANY_EOL = re.compile(rb"\r\n|\r|\n")
ENCRYPT_FAILED_REASON = "添付ファイルを暗号化できなかったため保留しました"
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
# <dot-atom@hostname>, then nothing or blanks and parameters (no comment)
_SIMPLE_PATH = re.compile(
    rf"<({_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*)>(?:[ \t]+(?=[^ \t(])|\Z)")
EXPEDITE_EVERY_SECONDS = 1.0  # deliveries make deferred queue items due at most this often


class GatewaySMTP(SMTP):
    """aiosmtpd's SMTP with enhanced status codes for size, connection limits, a shorter
    idle timeout before MAIL, Postfix's XFORWARD (``xforward_hosts``; LOGIN from trusted
    relays only) and ``AUTH=``."""

    def __init__(self, handler: RelayHandler, limiter: ConnectionLimiter, **kwargs: Any):
        super().__init__(handler, **kwargs)
        self._limiter = limiter
        self._idle_before_mail = handler.config.smtp_idle_before_mail_seconds
        self.last_activity = time.monotonic()
        self._continued: list[bytes] = []  # lines of a multi-line reply not yet written

    async def push(self, status: Any) -> None:
        """Writes a multi-line reply (EHLO) at once when its last line comes: Postfix's
        before-queue proxy opens a connection (and sends EHLO) per mail, and a write
        per line was a third of the gateway's system calls there."""
        text = status.decode("ascii", "replace") if isinstance(status, bytes) else status
        if text.startswith("552 Error:"):
            status = TOO_BIG
        line = status if isinstance(status, bytes) else status.encode(
            "utf-8" if self.enable_SMTPUTF8 else "ascii")
        if text[3:4] == "-" and text[:3].isdigit():
            self._continued.append(line)
            return
        if self._continued:
            line = b"\r\n".join([*self._continued, line])
            self._continued.clear()
        await super().push(line)

    @property
    def client_ip(self) -> str:
        peer = self.session.peer if self.session is not None else None
        return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)

    @property
    def in_transaction(self) -> bool:
        return bool(self.envelope is not None and self.envelope.mail_from is not None)

    def _reset_timeout(self, duration: float | None = None) -> None:
        self.last_activity = time.monotonic()
        if duration is None and not self.in_transaction:
            duration = self._idle_before_mail  # idle clients before MAIL go first
        super()._reset_timeout(duration)

    async def _handle_client(self) -> None:
        refusal = self._limiter.admit(self)
        try:
            if refusal:
                log.warning("%s; refusing %r", refusal, self.session.peer)
                await self.push("421 4.7.0 Too many connections, try again later")
                self.transport.close()
                return
            await super()._handle_client()
        finally:
            self._limiter.release(self)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA (same checks, same answers) with the message read in blocks
        (``dataread``) instead of line by line. The gateway never decodes DATA."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            content, state = await read_data(self._reader, self.data_size_limit,
                                             self.line_length_limit)
        except asyncio.CancelledError:  # the connection went (aiosmtpd cancels on EOF)
            _aiosmtpd_log.info("Connection lost during DATA")
            self._writer.close()
            raise
        except asyncio.IncompleteReadError as exc:  # the same, seen by the reader first
            raise ConnectionResetError("connection lost during DATA") from exc
        if state != "ok":
            await self.push("500 Line too long (see RFC5321 4.5.3.1.6)" if state == "too_long"
                            else "552 Error: Too much mail data")
            self._set_post_data_state()
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's parse of ``<local@domain> params``, with a fast path for the plain
        dot-atom form nearly every client sends (the email package's general parser
        costs more than the rest of MAIL and RCPT together). Anything else, and anything
        the fast path is unsure of, goes to aiosmtpd's own parser; both give the same
        answer on the fast path's inputs (tests/test_smtp_getaddr.py)."""
        found = _SIMPLE_PATH.match(arg) if arg else None
        if found is not None:
            address = found.group(1)
            limit = self.local_part_limit
            if not (limit and len(address.rpartition("@")[0]) > limit):
                return address, arg[found.end():]
        return super()._getaddr(arg)

    async def smtp_MAIL(self, arg: str | None) -> None:
        """Take RFC 4954 ``AUTH=<identity>`` off the line (case kept) before aiosmtpd parses it."""
        if arg and self.session is not None:
            words = arg.split(" ")
            auth = [w for w in words if w.upper().startswith("AUTH=")]
            if auth:
                arg = " ".join(w for w in words if not w.upper().startswith("AUTH="))
                self.session.mail_auth_param = _xtext_decode(auth[-1][5:])
        await super().smtp_MAIL(arg)

    async def smtp_XFORWARD(self, arg: str | None) -> None:
        """Postfix's XFORWARD: the original client's attributes from ``xforward_hosts``;
        ``LOGIN`` (an identity) from ``trusted_relays`` only. A command naming an attribute
        not offered to this peer is refused whole (501), nothing of it applied."""
        offered = self.event_handler.xforward_offer(self.session.peer)
        if not offered:
            await self.push("550 5.7.0 XFORWARD not permitted")
            return
        parsed: dict[str, str] = {}
        for word in (arg or "").split():
            name, eq, value = word.partition("=")
            if not eq or name.upper() not in offered:
                await self.push("501 5.5.4 Bad XFORWARD attribute name: "
                                + _printable(name)[:40])
                return
            parsed[name.upper()] = _printable(_xtext_decode(value))[:255]
        if not parsed:
            await self.push("501 5.5.4 Syntax: XFORWARD attribute=value...")
            return
        attrs: dict[str, str] = getattr(self.session, "xforward", {})
        attrs.update(parsed)
        self.session.xforward = attrs
        await self.push("250 2.0.0 Ok")


@dataclass(slots=True)
class ConnectionLimiter:
    """Global and per-client connection limits; at the global limit the longest-idle
    connection that has not started a transaction is closed to make room."""

    maximum: int
    per_client: int = 1_000_000
    active: int = 0
    clients: dict[str, int] = field(default_factory=dict)
    connections: set[Any] = field(default_factory=set)

    def admit(self, conn: GatewaySMTP) -> str:
        """'' when admitted (always counted; ``release`` undoes it), else the reason."""
        ip = conn.client_ip
        self.active += 1
        self.clients[ip] = self.clients.get(ip, 0) + 1
        self.connections.add(conn)
        if self.clients[ip] > self.per_client:
            return f"per-client connection limit ({self.per_client}) reached for {ip}"
        if self.active > self.maximum and not self._evict_idle(conn):
            return f"connection limit ({self.maximum}) reached"
        return ""

    def _evict_idle(self, newcomer: GatewaySMTP) -> bool:
        idle = [c for c in self.connections
                if c is not newcomer and not c.in_transaction and c.transport is not None
                and not getattr(c, "_evicted", False)]
        if not idle:
            return False
        victim = min(idle, key=lambda c: c.last_activity)
        victim._evicted = True
        log.info("connection limit: closing idle connection from %r", victim.session.peer)
        with contextlib.suppress(Exception):
            victim.transport.write(b"421 4.4.2 Idle connection closed to make room\r\n")
            victim.transport.close()
        return True

    def release(self, conn: GatewaySMTP) -> None:
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        ip = conn.client_ip
        self.active -= 1
        self.clients[ip] = self.clients.get(ip, 1) - 1
        if self.clients[ip] <= 0:
            self.clients.pop(ip, None)


class RelayHandler:
    def __init__(self, gateway: Gateway, scanner: ScanPool, upstream: Upstream):
        self.gateway = gateway
        self.config = gateway.config
        self.scanner = scanner
        self.upstream = upstream
        self.networks = self.config.networks
        self.trusted = self.config.trusted_networks
        self.xforwarders = self.config.xforward_networks
        self.upstream_down_until = 0.0  # skip the synchronous attempt while upstream is down
        self._expedited_at = 0.0
        self.replies = RecentReplies(gateway)
        self.retain: Any = None  # retention of passed mail (server sets it when enabled)

    # -- SMTP hooks -------------------------------------------------------------------
    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        offered = self.xforward_offer(session.peer)
        if offered:
            responses.insert(-1, "250-XFORWARD " + " ".join(offered))
        # RFC 2920: aiosmtpd reads and answers one command at a time, in order, so a
        # client may send XFORWARD..DATA in one write (Postfix does: one round trip per
        # mail instead of five; bench/postfix_bench.py).
        responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        mail_options: list,
    ) -> str:
        refusal = self.sender_refusal(session, address)
        param = getattr(session, "mail_auth_param", None)
        session.mail_auth_param = None
        if refusal:
            log.warning("sender refused for %r: %s (%s)", session.peer, refusal,
                        address.encode("utf-8", "backslashreplace").decode("ascii", "replace"))
            return refusal
        envelope.mail_from = "" if address == "<>" else address
        envelope.mail_options.extend(mail_options)
        envelope.sender_login = self.sender_login(session, param)
        envelope.xforward = getattr(session, "xforward", {})
        session.xforward = {}  # XFORWARD describes the next transaction only
        return "250 2.1.0 OK"

    def sender_refusal(self, session: Session, address: str) -> str:
        """'' if this envelope sender may relay here, else the 5xx reply.

        One well-formed mailbox of an allowed domain; with SMTP AUTH (or a login a
        trusted relay passed on) it must be the login's own address."""
        if any("\udc80" <= ch <= "\udcff" for ch in address):
            return "553 5.6.7 Sender address is not valid UTF-8"
        login = self.sender_login(session, getattr(session, "mail_auth_param", None))
        if address in ("", "<>"):
            if login:  # an authenticated user cannot hide behind the null sender
                return "553 5.7.1 Sender address rejected: not owned by the authenticated user"
            return ""  # the null sender (bounces); it never receives a notice
        try:
            mailbox = addresses.parse_mailbox(address)
        except addresses.AddressError as exc:
            return f"553 5.1.7 Sender address rejected: not a single well-formed address ({exc})"
        domains = self.config.allowed_sender_domains
        if domains and not addresses.in_domains(mailbox.addr_spec, domains):
            return "553 5.7.1 Sender address rejected: domain not allowed here"
        if login and addresses.normalize(login) != addresses.normalize(mailbox.addr_spec):
            return "553 5.7.1 Sender address rejected: not owned by the authenticated user"
        return ""

    def sender_login(self, session: Session, auth_param: str | None = None) -> str | None:
        """Who authenticated: our own SMTP AUTH, or what a trusted relay passed on."""
        if session.authenticated and session.auth_data:
            return str(session.auth_data)
        if not self.trusted_relay(session.peer):
            return None
        forwarded = getattr(session, "xforward", {}).get("LOGIN") or auth_param
        if forwarded and forwarded not in ("<>", "[UNAVAILABLE]", "[TEMPUNAVAIL]"):
            return forwarded.strip("<>")
        return None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list
    ) -> str:
        if not (session.authenticated or self.peer_allowed(session.peer)):
            log.warning("relay denied for %r (rcpt domain %s)", session.peer, _domain(address))
            return RELAY_DENIED
        if len(envelope.rcpt_tos) >= self.config.max_recipients:
            return "452 4.5.3 Too many recipients"
        if not addresses.is_mailbox(address):
            return "553 5.1.3 Recipient address rejected: not a single well-formed address"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        scan_id = secrets.token_hex(8)
        raw = envelope.original_content or b""
        if has_bare_line_ending(raw):
            if self.config.bare_line_endings == "reject":
                log.warning("scan %s: bare CR or LF in DATA from %r; refused", scan_id,
                            session.peer)
                return BARE_EOL_REFUSED
            raw = normalize_line_endings(raw)  # what is scanned is exactly what is relayed
        try:
            reply = await self.process(scan_id, envelope.mail_from or "",
                                       list(envelope.rcpt_tos), raw,
                                       getattr(envelope, "sender_login", None),
                                       _client_ip(session.peer), origin_of(session, envelope))
        except Exception as exc:
            if is_storage_error(exc):
                self.gateway.storage.failed(exc)
                return STORAGE_FULL
            log.exception("scan %s: internal error; answered 451", scan_id)
            metrics.scanned("tempfail", None)
            return TEMP_FAIL.format(scan_id=scan_id)
        self.gateway.storage.recovered()
        return reply

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
        return _peer_in(peer, self.networks)

    def trusted_relay(self, peer: Any) -> bool:
        return _peer_in(peer, self.trusted)

    def xforward_offer(self, peer: Any) -> tuple[str, ...]:
        """The XFORWARD attributes this peer may send: none, the client's, or also LOGIN."""
        if self.trusted_relay(peer):
            return (*XFORWARD_ATTRIBUTES, "LOGIN")
        return XFORWARD_ATTRIBUTES if _peer_in(peer, self.xforwarders) else ()

    # -- the decision -------------------------------------------------------------------
    async def process(
        self, scan_id: str, sender: str, rcpts: list[str], raw: bytes, login: str | None = None,
        client: str = "", origin: dict[str, str] | None = None,
    ) -> str:
        """Scan and act. ``origin``: the original client (XFORWARD, else the peer) for the
        log, the audit rows and the upstream's XFORWARD."""
        origin = origin or {"addr": client}
        message_id = _message_id(raw)  # without one, a resend is not told from a retry
        key = message_key(client, sender, rcpts, message_id, raw) if message_id else ""
        earlier = await self.replies.reply_for(key) if key else None
        if earlier is not None:
            log.info("scan %s: retry of a message already accepted; answering as before (%s)",
                     scan_id, earlier)
            return earlier
        started = time.monotonic()
        outcome = await self.scan(scan_id, raw, (sender, list(rcpts)))
        action = outcome.action
        internal, external = self.split_recipients(rcpts)
        log.info(
            "scan %s: verdict=%s rules=%s counts=%s size=%d rcpts=%d (internal %d) %.0fms"
            " client=%s",
            scan_id, action, ",".join(outcome.rules), _nonzero(outcome.counts), len(raw),
            len(rcpts), len(internal), (time.monotonic() - started) * 1000,
            describe_origin(origin),
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
            await asyncio.to_thread(self._audit_monitor, scan_id, sender, rcpts, raw, outcome,
                                    origin)
            action = "pass"
        metrics.scanned(action if external else "pass", outcome.seconds)  # what was done
        if action == "pass" or not external:
            reply = await self.deliver_pass(scan_id, sender, rcpts, raw, may_reject=True,
                                            origin=origin)
            if reply.startswith("2") and key:
                self.replies.remember(key, reply)  # group commit, off the reply's path
            return reply
        # The verdict part, the internal recipients' copy and the reply to remember
        # commit in one transaction: a crash leaves all of them or none.
        done = Commit(key, scan_id, sender, internal, raw, origin)
        if action == "encrypt":
            return await self.encrypt(scan_id, sender, external, raw, outcome, login, done)
        return await self.hold(scan_id, sender, external, raw, outcome, login=login, done=done)

    async def scan(
        self, scan_id: str, raw: bytes, envelope: tuple[str, list[str]] | None = None
    ) -> ScanOutcome:
        """Scan; a message whose scan keeps killing the worker is held as ``corrupt``."""
        attempts = self.config.scan_max_attempts
        for attempt in range(1, attempts + 1):
            try:
                return await self.scanner.scan(raw, envelope)
            except BrokenProcessPool:
                log.warning("scan %s: scan worker died (attempt %d of %d)", scan_id, attempt,
                            attempts)
                if not await self.scanner.warm_up():
                    raise  # the workers cannot start at all: not this message's fault (451)
        log.error("scan %s: scan worker died %d times; holding as corrupt", scan_id, attempts)
        return ScanOutcome.corrupt()

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
        login: str | None = None,
        done: Commit | None = None,
    ) -> str:
        held = await asyncio.to_thread(
            self._persist_hold, scan_id, sender, rcpts, raw, outcome, extra_reason, login, done
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
        login: str | None = None,
        done: Commit | None = None,
    ) -> Any:
        gw = self.gateway
        reasons = list(outcome.reasons) + ([extra_reason] if extra_reason else [])
        reasons += [f"（monitor・判定に影響なし）{r}" for r in outcome.monitor_reasons]
        with gw.db.transaction() as conn:
            held = self._hold_rows(conn, scan_id, sender, rcpts, raw, outcome, reasons,
                                   extra_reason, login, done)
            if done is not None:
                self._finish(conn, done, f"250 2.6.0 held for approval {held.id}")
        return held

    def _hold_rows(
        self, conn: Any, scan_id: str, sender: str, rcpts: list[str], raw: bytes,
        outcome: ScanOutcome, reasons: list[str], extra_reason: str | None, login: str | None,
        done: Commit | None = None,
    ) -> Any:
        gw = self.gateway
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
            sender_authenticated=bool(login),
            conn=conn,
        )
        gw.notify_hold(held, conn)
        gw.audit.append(
            "hold", sender or "<>", held.id,
            {"scan_id": scan_id, "sha256": held.sha256, "recipients": rcpts,
             "sender_authenticated": bool(login), "login": login,
             "subject": held.subject, "counts": outcome.counts, "rules": held.rules,
             "approver_role": held.approver_role, "total_findings": outcome.total_findings,
             **_client_detail(done)},
            conn=conn,
        )
        return held

    def _finish(self, conn: Any, done: Commit, reply: str) -> None:
        """Inside the verdict's transaction: the internal copy, and the reply to remember."""
        if done.internal:
            data = prepend_headers(done.raw, [("X-DLP-Verdict", "pass"),
                                              ("X-DLP-Scan-Id", done.scan_id)])
            self.gateway.queue.enqueue(done.sender, done.internal, data, "mail", done.scan_id,
                                       conn=conn, xforward=upstream_xforward(done.origin))
        if done.key:
            self.gateway.recent.remember(done.key, reply, conn)

    async def encrypt(
        self, scan_id: str, sender: str, rcpts: list[str], raw: bytes, outcome: ScanOutcome,
        login: str | None = None, done: Commit | None = None,
    ) -> str:
        if not addresses.is_mailbox(sender):  # nobody could receive the password: never blind
            return await self.hold(scan_id, sender, rcpts, raw, outcome, ENCRYPT_FAILED_REASON,
                                   login, done)
        password = new_password()
        names = set(outcome.parts_with_findings)
        try:
            encrypted = await asyncio.to_thread(encrypt_attachments, raw, names, password)
        except EncryptError as exc:
            log.warning("scan %s: cannot encrypt (%s); holding instead", scan_id, exc)
            return await self.hold(scan_id, sender, rcpts, raw, outcome, ENCRYPT_FAILED_REASON,
                                   login, done)
        subject = decoded_subject(raw)
        notice = notify.password_notice(
            self.config, sender, rcpts, subject, password, sorted(names)
        )
        headers = [("X-DLP-Verdict", "encrypt"), ("X-DLP-Scan-Id", scan_id)]
        data = prepend_headers(encrypted, headers)
        reply = f"250 2.0.0 OK: sent with encrypted attachments (scan id {scan_id})"
        await asyncio.to_thread(self._record_encrypt, scan_id, sender, rcpts, raw, outcome,
                                notice, sorted(names), data, done, reply)
        return reply

    def _record_encrypt(
        self, scan_id: str, sender: str, rcpts: list[str], raw: bytes, outcome: ScanOutcome,
        notice: Any, files: list[str], data: bytes, done: Commit | None, reply: str,
    ) -> None:
        """Password notice, encrypted mail, audit row (and the retry answer) in one commit:
        one password per message, even across a crash and the client's retry. The queue
        worker delivers the mail at once."""
        gw = self.gateway
        with gw.db.transaction() as conn:
            gw.enqueue_notice(notice, scan_id, conn, rcpts=[sender])  # the sender, and only
            gw.queue.enqueue(sender, rcpts, data, "encrypt", scan_id, conn=conn,
                             xforward=upstream_xforward(done.origin if done else None))
            gw.audit.append(
                "encrypt", sender or "<>", None,
                {"scan_id": scan_id, "sha256": hashlib.sha256(raw).hexdigest(),
                 "recipients": rcpts, "subject": decoded_subject(raw), "counts": outcome.counts,
                 "files": files, **_client_detail(done)},
                conn=conn,
            )
            if done is not None:
                self._finish(conn, done, reply)

    def _audit_monitor(
        self, scan_id: str, sender: str, rcpts: list[str], raw: bytes, outcome: ScanOutcome,
        origin: dict[str, str] | None = None,
    ) -> None:
        self.gateway.audit.append(
            "pass", sender or "<>", None,
            {"scan_id": scan_id, "monitor_mode": True, "would": outcome.action,
             "sha256": hashlib.sha256(raw).hexdigest(), "recipients": rcpts,
             "counts": outcome.counts, "rules": list(outcome.rules),
             **({"client": origin} if origin else {})},
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
        self, scan_id: str, sender: str, rcpts: list[str], raw: bytes, may_reject: bool,
        origin: dict[str, str] | None = None,
    ) -> str:
        data = prepend_headers(raw, [("X-DLP-Verdict", "pass"), ("X-DLP-Scan-Id", scan_id)])
        return await self.deliver(scan_id, sender, rcpts, data, may_reject,
                                  upstream_xforward(origin))

    async def deliver(
        self, scan_id: str, sender: str, rcpts: list[str], data: bytes, may_reject: bool,
        xforward: dict[str, str] | None = None,
    ) -> str:
        """Relay now; if upstream is down, own the message through the durable queue.

        With ``may_reject`` (one delivery for the whole DATA), a permanent refusal
        of the whole message by upstream is passed back to the client as its 5xx.
        """
        if time.monotonic() < self.upstream_down_until:
            await self._enqueue(scan_id, sender, rcpts, data, "upstream down", xforward)
            return f"250 2.0.0 OK: queued (scan id {scan_id})"
        try:
            refused = await deliver_async(self.upstream, sender, rcpts, data, xforward)
        except DeliveryError as exc:
            metrics.upstream_error(exc.permanent)
            if exc.permanent and may_reject:
                log.warning("scan %s: upstream refused: %s", scan_id, exc)
                return f"554 5.0.0 Upstream refused the message: {exc}"[:400]
            if exc.permanent:
                await asyncio.to_thread(self._notify_failure, sender, rcpts, data, str(exc))
                return f"250 2.0.0 OK (scan id {scan_id})"
            self.upstream_down_until = time.monotonic() + 10.0
            await self._enqueue(scan_id, sender, rcpts, data, str(exc), xforward)
            return f"250 2.0.0 OK: queued (scan id {scan_id})"
        self.upstream_down_until = 0.0
        now = time.monotonic()
        if now - self._expedited_at >= EXPEDITE_EVERY_SECONDS:  # not a query per mail
            self._expedited_at = now
            if await asyncio.to_thread(self.gateway.queue.expedite):  # drain what waited
                log.info("scan %s: upstream is taking mail again; deferred items are due",
                         scan_id)
        if refused:
            await self._handle_refused(scan_id, sender, refused, data, xforward)
        return f"250 2.0.0 OK (scan id {scan_id})"

    async def _enqueue(
        self, scan_id: str, sender: str, rcpts: list[str], data: bytes, why: str,
        xforward: dict[str, str] | None = None,
    ) -> None:
        log.info("scan %s: upstream unavailable (%s); queued", scan_id, why)
        await asyncio.to_thread(
            functools.partial(self.gateway.queue.enqueue, sender, rcpts, data, "mail", scan_id,
                              xforward=xforward)
        )

    async def _handle_refused(
        self, scan_id: str, sender: str, refused: dict[str, tuple[int, str]], data: bytes,
        xforward: dict[str, str] | None = None,
    ) -> None:
        temporary = [r for r, (code, _m) in refused.items() if code < 500]
        permanent = [r for r, (code, _m) in refused.items() if code >= 500]
        if temporary:
            await self._enqueue(scan_id, sender, temporary, data, "recipient deferred", xforward)
        if permanent:
            error = "; ".join(f"{r}: {refused[r][0]} {refused[r][1]}" for r in permanent)
            await asyncio.to_thread(self._notify_failure, sender, permanent, data, error)

    def _notify_failure(self, sender: str, rcpts: list[str], data: bytes, error: str) -> None:
        if not sender:
            return
        notice = notify.delivery_failure_notice(
            self.config, sender, rcpts, decoded_subject(data), error
        )
        self.gateway.enqueue_notice(notice, rcpts=[sender])


class RecentReplies:
    """The replies of relayed (pass) mail, kept for a retry of the same message.

    A pass mail is owned by the upstream once it accepted it, so its retry record is
    advisory: it is kept in memory at once and written to ``recent_messages`` by a group
    commit right after the reply (every reply that arrived meanwhile in one transaction,
    one fsync), not by a commit of its own before the reply. Holds and encryptions keep
    theirs in the verdict's own transaction (``Commit``)."""

    def __init__(self, gateway: Gateway):
        self.gateway = gateway
        self.pending: dict[str, str] = {}  # not yet committed (includes the batch in flight)
        self._batch: dict[str, str] = {}
        self._writer: asyncio.Task | None = None

    def remember(self, key: str, reply: str) -> None:
        self.pending[key] = reply
        self._batch[key] = reply
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def reply_for(self, key: str) -> str | None:
        if key in self.pending:
            return self.pending[key]
        return await asyncio.to_thread(self.gateway.recent.reply_for, key)

    async def _write(self) -> None:
        while self._batch:
            batch, self._batch = self._batch, {}
            try:
                await asyncio.to_thread(self._commit, batch)
            except Exception:  # advisory: a lost record only lets a retry through again
                log.exception("could not record %d relayed mail(s) for retries", len(batch))
            for key, reply in batch.items():
                if self.pending.get(key) == reply:
                    del self.pending[key]

    def _commit(self, batch: dict[str, str]) -> None:
        recent = self.gateway.recent
        with self.gateway.db.transaction() as conn:
            for key, reply in batch.items():
                recent.remember(key, reply, conn)

    async def flush(self) -> None:
        """Write what is pending now (shutdown)."""
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._batch:
            await self._write()


@dataclass(frozen=True, slots=True)
class Commit:
    """What the verdict's transaction also commits: the internal recipients' copy and the
    reply a retry of this message gets."""

    key: str
    scan_id: str
    sender: str
    internal: list[str]
    raw: bytes
    origin: dict[str, str] | None = None  # the original client (see origin_of)


def _message_id(raw: bytes) -> str:
    found = _MESSAGE_ID.search(header_bytes(raw))
    return found.group(1).decode("ascii", "replace").strip() if found else ""


def _peer_in(peer: Any, networks: list) -> bool:
    try:
        ip = _peer_ip(peer[0] if isinstance(peer, tuple) else str(peer))
    except (TypeError, IndexError):
        return False
    return ip is not None and any(ip in net for net in networks)


@functools.lru_cache(maxsize=1024)
def _peer_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The peer's address (IPv4-mapped IPv6 as IPv4), parsed once per address: asked
    several times per mail (relay, trusted relay, XFORWARD), ~7 times behind Postfix."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except (ValueError, AttributeError):
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def origin_of(session: Session, envelope: Envelope) -> dict[str, str]:
    """The original client: the XFORWARD attributes a permitted relay sent for this
    transaction, else the direct peer and its HELO. ``peer`` is always the direct one."""
    peer = _client_ip(session.peer)
    forwarded = getattr(envelope, "xforward", None) or {}
    if any(forwarded.get(a) for a in XFORWARD_ATTRIBUTES):
        found = {a.lower(): forwarded[a] for a in XFORWARD_ATTRIBUTES if forwarded.get(a)}
        return {**found, "peer": peer}
    proto = "ESMTP" if session.extended_smtp else "SMTP"
    origin = {"addr": peer, "proto": proto, "peer": peer}
    if session.host_name:
        origin["helo"] = _printable(str(session.host_name))[:255]
    return origin


def upstream_xforward(origin: dict[str, str] | None) -> dict[str, str] | None:
    """What to tell an upstream that speaks XFORWARD (attribute names upper case)."""
    return xforward_from_origin(origin)


def describe_origin(origin: dict[str, str]) -> str:
    """One log word: ``name[addr]/helo`` (``[addr]`` alone when nothing else is known)."""
    text = f"{origin.get('name', '')}[{origin.get('addr', '?')}]"
    if origin.get("helo"):
        text += "/" + origin["helo"]
    if origin.get("peer") and origin.get("peer") != origin.get("addr"):
        text += f" via={origin['peer']}"
    return text


def _client_detail(done: Commit | None) -> dict[str, Any]:
    return {"client": done.origin} if done is not None and done.origin else {}


def _printable(value: str) -> str:
    """Client-supplied text for logs and audit: control characters become '?'."""
    return "".join(ch if ch.isprintable() else "?" for ch in value)


def _client_ip(peer: Any) -> str:
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


def has_bare_line_ending(raw: bytes) -> bool:
    """A CR not followed by LF, or an LF not preceded by CR (counted at C speed: a regex
    with look-arounds over every line of a 20 KB mail cost a third of a millisecond)."""
    pairs = raw.count(b"\r\n")
    return raw.count(b"\r") != pairs or raw.count(b"\n") != pairs


def normalize_line_endings(raw: bytes) -> bytes:
    """Bare CR and bare LF become CRLF (SMTP smuggling: no line end an upstream could
    read differently survives)."""
    return _ANY_EOL.sub(b"\r\n", raw)


def _xtext_decode(value: str) -> str:
    """RFC 3461 xtext: ``+HH`` is a hex-escaped byte."""
    return re.sub(r"\+([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), value)


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
            timeout=config.smtp_timeout_seconds,
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
