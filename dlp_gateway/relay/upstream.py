"""Handing mail to the next hop: an SMTP smarthost, or a local Maildir.

``deliver`` is synchronous (run it in a thread). It returns the recipients the
upstream refused individually ({rcpt: (code, message)}) and raises
``DeliveryError`` when the message as a whole was not accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mailbox
import os
import smtplib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from dlp_gateway.config import Config
from dlp_gateway.mail.headers import strip_dlp_headers

log = logging.getLogger("dlp_gateway.relay.upstream")

Refused = dict[str, tuple[int, str]]


class DeliveryError(Exception):
    """The upstream did not take the message; ``permanent`` for 5xx answers."""

    def __init__(self, message: str, permanent: bool = False, code: int = 0):
        super().__init__(message)
        self.permanent = permanent
        self.code = code


Xforward = dict[str, str]  # XFORWARD attribute (NAME, ADDR, PROTO, HELO, SOURCE) -> value
XFORWARD_ATTRIBUTES = ("NAME", "ADDR", "PROTO", "HELO", "SOURCE")


class Upstream(Protocol):
    def deliver(self, mail_from: str, rcpts: list[str], data: bytes,
                xforward: Xforward | None = None) -> Refused: ...


class SmtpUpstream:
    """An SMTP smarthost. Connections are reused (like Postfix's smtp connection cache):
    after a delivery the connection waits, at most ``reuse_seconds``, for the next one;
    a waiting connection is checked with NOOP before it carries mail, and one that
    failed in any way is closed, never reused. At most ``max_idle`` wait at a time (each
    ties up one smtpd process of the upstream): 10, Postfix's mails in flight to the
    gateway in deploy/postfix/ (with 4, a third of the mails behind Postfix opened a new
    connection to the reinjection listener; its process limit there is 20)."""

    def __init__(self, host: str, port: int, timeout: float = 30.0, helo: str | None = None,
                 reuse_seconds: float = 5.0, max_idle: int = 10, reuse_count: int = 100):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.helo = helo
        self.reuse_seconds = reuse_seconds
        self.max_idle = max_idle
        self.reuse_count = reuse_count
        self._idle: list[tuple[smtplib.SMTP, float, int]] = []  # (connection, since, uses)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SmtpUpstream({self.host}:{self.port})"

    def deliver(self, mail_from: str, rcpts: list[str], data: bytes,
                xforward: Xforward | None = None) -> Refused:
        """Any failure, whatever its type, comes out as a DeliveryError."""
        try:
            return self._deliver(mail_from, rcpts, data, xforward)
        except DeliveryError:
            raise
        except Exception as exc:  # e.g. UnicodeEncodeError from smtplib: never escape
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc

    def _deliver(self, mail_from: str, rcpts: list[str], data: bytes,
                 xforward: Xforward | None = None) -> Refused:
        try:
            try:
                refused = self._on_connection(mail_from, rcpts, data, xforward)
            except smtplib.SMTPSenderRefused as exc:
                if exc.smtp_code != 421:
                    raise
                # a reused connection the server was done with (421 at MAIL: nothing of
                # this mail was taken): once more on a new connection
                refused = self._on_connection(mail_from, rcpts, data, xforward, fresh=True)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            permanent = all(code >= 500 for code in codes)
            raise DeliveryError(
                f"all recipients refused: {_codes(exc.recipients)}", permanent, max(codes)
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"{exc.smtp_code} {_text(exc.smtp_error)}", exc.smtp_code >= 500, exc.smtp_code
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        return {rcpt: (code, _text(msg)) for rcpt, (code, msg) in refused.items()}

    def _on_connection(self, mail_from: str, rcpts: list[str], data: bytes,
                       xforward: Xforward | None, fresh: bool = False) -> dict:
        smtp, uses = self._checkout(fresh)
        done = False
        try:
            refused = self._transaction(smtp, mail_from, rcpts, data, xforward)
            done = True
        finally:
            if done:
                self._checkin(smtp, uses + 1)
            else:
                _close(smtp)  # after any failure: never reused
        return refused

    def _transaction(self, smtp: smtplib.SMTP, mail_from: str, rcpts: list[str], data: bytes,
                     xforward: Xforward | None) -> dict:
        if xforward:
            send_xforward(smtp, xforward)
        data = fit_advertised_size(data, smtp.esmtp_features.get("size", ""))
        options = ["BODY=8BITMIME"] if smtp.has_extn("8bitmime") else []
        if not all(a.isascii() for a in [mail_from, *rcpts]):
            if not smtp.has_extn("smtputf8"):
                raise DeliveryError(
                    "553 5.6.7 upstream does not offer SMTPUTF8; an address is not"
                    " ASCII", permanent=True, code=553,
                )
            options.append("SMTPUTF8")
        return smtp.sendmail(mail_from, rcpts, data, mail_options=options)

    # -- the connection cache -----------------------------------------------------------
    def _checkout(self, fresh: bool = False) -> tuple[smtplib.SMTP, int]:
        """A waiting connection that still answers NOOP, else a new one (after EHLO)."""
        while not fresh:
            with self._lock:
                if not self._idle:
                    break
                smtp, since, uses = self._idle.pop()  # the most recently used
            if time.monotonic() - since <= self.reuse_seconds and _answers(smtp):
                return smtp, uses
            _close(smtp)
        smtp = QuickDataSMTP(self.host, self.port, self.helo, timeout=self.timeout)
        try:
            smtp.ehlo_or_helo_if_needed()
        except BaseException:
            _close(smtp)
            raise
        return smtp, 0

    def _checkin(self, smtp: smtplib.SMTP, uses: int) -> None:
        if uses < self.reuse_count and self.reuse_seconds > 0:
            with self._lock:
                if len(self._idle) < self.max_idle:
                    self._idle.append((smtp, time.monotonic(), uses))
                    return
        _quit(smtp)

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    def close_idle(self, everything: bool = False) -> int:
        """QUIT connections that waited longer than ``reuse_seconds`` (all of them with
        ``everything``); returns how many were closed. Blocking: run it in a thread."""
        now = time.monotonic()
        with self._lock:
            expired = [c for c in self._idle if everything or now - c[1] > self.reuse_seconds]
            self._idle = [c for c in self._idle if c not in expired]
        for smtp, _since, _uses in expired:
            _quit(smtp)
        return len(expired)


class QuickDataSMTP(smtplib.SMTP):
    """smtplib's client whose DATA escapes leading dots with ``bytes.replace``: the bytes
    sent are the ones smtplib's ``(?m)^\\.`` substitution gives (a dot at the start and
    after every LF doubled), without a regex substitution per line of the mail."""

    def data(self, msg):  # type: ignore[no-untyped-def]
        if not isinstance(msg, bytes | bytearray):
            return super().data(msg)
        self.putcmd("data")
        code, repl = self.getreply()
        if code != 354:
            raise smtplib.SMTPDataError(code, repl)
        quoted = quote_periods(bytes(msg))
        if quoted[-2:] != b"\r\n":
            quoted += b"\r\n"
        self.send(quoted + b".\r\n")
        return self.getreply()


def quote_periods(data: bytes) -> bytes:
    """SMTP dot-stuffing of ``data`` as smtplib does it (``re.sub(rb'(?m)^\\.', b'..')``)."""
    return (b"." if data.startswith(b".") else b"") + data.replace(b"\n.", b"\n..")


def _answers(smtp: smtplib.SMTP) -> bool:
    try:
        return smtp.noop()[0] == 250
    except Exception:
        return False


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except Exception:
        _close(smtp)


def _close(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(Exception):
        smtp.close()


def xforward_from_origin(origin: dict[str, str] | None) -> Xforward | None:
    """The XFORWARD attributes (upper case) for a client recorded as ``origin`` (lower-case
    keys: name, addr, proto, helo, source, as the relay's audit rows have them)."""
    if not origin:
        return None
    found = {a: str(origin[a.lower()]) for a in XFORWARD_ATTRIBUTES if origin.get(a.lower())}
    return found or None


def send_xforward(smtp: smtplib.SMTP, xforward: Xforward) -> None:
    """Postfix's XFORWARD before MAIL: the attributes the upstream advertises, xtext
    encoded, in commands under 512 bytes. A refusal is logged; the mail still goes."""
    offered = {a.upper() for a in smtp.esmtp_features.get("xforward", "").split()}
    if not smtp.has_extn("xforward") or not offered:
        return
    words = [f"{name}={xtext_encode(xforward[name])}" for name in XFORWARD_ATTRIBUTES
             if name in offered and xforward.get(name)]
    for command in _batches(words, 480):
        code, reply = smtp.docmd("XFORWARD", command)
        if code != 250:
            log.warning("upstream refused XFORWARD %s: %d %s", command, code, _text(reply))
            return


def xtext_encode(value: str) -> str:
    """RFC 3461 xtext; longer values are cut to 255 characters as Postfix does."""
    out = []
    for byte in value[:255].encode("utf-8", "replace"):
        char = chr(byte)
        out.append(char if 33 <= byte <= 126 and char not in "+=" else f"+{byte:02X}")
    return "".join(out)


def _batches(words: list[str], limit: int) -> list[str]:
    batches: list[str] = []
    for word in words:
        if batches and len(batches[-1]) + 1 + len(word) <= limit:
            batches[-1] += " " + word
        else:
            batches.append(word)
    return batches


def fit_advertised_size(data: bytes, size_param: str) -> bytes:
    """Keep a message within the upstream's EHLO ``SIZE`` (RFC 1870).

    The gateway's own X-DLP-* headers are optional: when they would push the mail
    over the limit they are left off (logged). A mail over the limit even without
    them is refused here as permanent (552), the upstream would refuse it anyway.
    """
    limit = int(size_param) if size_param.strip().isdigit() else 0
    if limit <= 0 or len(data) <= limit:
        return data
    stripped = strip_dlp_headers(data)
    if len(stripped) <= limit:
        log.warning("upstream SIZE %d: delivering without the X-DLP-* headers (%d bytes)",
                    limit, len(data))
        return stripped
    raise DeliveryError(
        f"552 5.3.4 message size {len(stripped)} exceeds the upstream's SIZE {limit}",
        permanent=True, code=552,
    )


class MaildirUpstream:
    """The built-in upstream of ``make run``: every delivery lands in PATH/new."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.maildir = mailbox.Maildir(self.path, create=True)

    def __repr__(self) -> str:
        return f"MaildirUpstream({self.path})"

    def deliver(self, mail_from: str, rcpts: list[str], data: bytes,
                xforward: Xforward | None = None) -> Refused:
        envelope = (
            f"Return-Path: <{mail_from}>\r\nX-Original-To: {', '.join(rcpts)}\r\n"
        ).encode("utf-8", "surrogateescape")
        try:
            key = self.maildir.add(envelope + data)
            _fsync_file(self.path / "new" / key)
            _fsync_file(self.path / "new")
        except OSError as exc:
            raise DeliveryError(f"maildir: {exc}") from exc
        return {}


_IO_LOCK = threading.Lock()
_IO: ThreadPoolExecutor | None = None
IO_THREADS = 16


def io_executor() -> ThreadPoolExecutor:
    """Upstream I/O gets threads of its own: a hanging upstream never starves the
    default pool that SQLite writes, spooling and encryption run on."""
    global _IO
    with _IO_LOCK:
        if _IO is None:
            _IO = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="upstream-io")
        return _IO


async def deliver_async(upstream: Upstream, mail_from: str, rcpts: list[str], data: bytes,
                        xforward: Xforward | None = None) -> Refused:
    loop = asyncio.get_running_loop()
    if not xforward:  # upstreams (and test doubles) that know nothing of XFORWARD
        return await loop.run_in_executor(io_executor(), upstream.deliver, mail_from, rcpts,
                                          data)
    return await loop.run_in_executor(io_executor(), upstream.deliver, mail_from, rcpts, data,
                                      xforward)


def make_upstream(config: Config) -> Upstream:
    maildir = config.upstream_maildir
    if maildir is not None:
        return MaildirUpstream(maildir)
    host, port = config.upstream_host_port
    return SmtpUpstream(host, port, config.upstream_timeout_seconds, helo=config.hostname)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _codes(refused: dict[str, tuple[int, bytes]]) -> str:
    return ", ".join(f"{r}: {c}" for r, (c, _m) in refused.items())
