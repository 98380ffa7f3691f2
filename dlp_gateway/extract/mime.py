"""The RFC 5322 message walk: bodies, attachments, forwarded messages.

``iter_attachments`` is shared with the relay (it re-encrypts attachments by the
same names), so the name of a top-level attachment is defined in one place: a
finding's ``part.split("/")[0]`` is always one of the names it yields.
"""

from __future__ import annotations

import email
import email.errors
import email.header
import email.policy
import email.utils
import mimetypes
import posixpath
import re
from collections.abc import Iterator
from email.message import EmailMessage, Message

from dlp_gateway.extract.files import Context, extract_part
from dlp_gateway.extract.html import html_to_text, meta_charset
from dlp_gateway.extract.text import decode_bytes
from dlp_gateway.extract.units import Limits, TextUnit, Unit, Unscannable

_FORWARDED_TYPES = {"message/rfc822", "message/global"}
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_EXTRA_EXTENSIONS = {
    "application/octet-stream": ".bin",
    "text/plain": ".txt",
    "text/html": ".html",
    "text/csv": ".csv",
    "application/ms-tnef": ".dat",
    "application/vnd.ms-excel": ".xls",
    "application/msword": ".doc",
    "image/jpeg": ".jpg",
}


# --- parsing ------------------------------------------------------------------------------


def parse_message(raw: bytes) -> Message:
    """Parse with the modern policy; fall back to compat32 if its header parser chokes."""
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        for part in _walk_all(msg):  # surface lazy header-parsing errors now
            part.get_content_type()
            part.get_filename()
            part.get_content_disposition()
        return msg
    except Exception:
        return email.message_from_bytes(raw, policy=email.policy.compat32)


def _walk_all(msg: Message) -> Iterator[Message]:
    yield msg
    payload = msg.get_payload()
    if isinstance(payload, list):
        for sub in payload:
            if isinstance(sub, Message):
                yield from _walk_all(sub)


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "application/octet-stream"


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:
        return None


def _charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except Exception:
        return None


def _decode_header_text(value: str) -> str:
    """RFC 2047 words (any charset, even mislabelled) and raw 8-bit bytes to text."""
    if any("\udc80" <= ch <= "\udcff" for ch in value):
        value = decode_bytes(value.encode("utf-8", "surrogateescape"))
    if "=?" not in value:
        return value
    try:
        pieces = email.header.decode_header(value)
    except Exception:
        return value
    out = []
    for chunk, charset in pieces:
        if isinstance(chunk, bytes):
            out.append(decode_bytes(chunk, charset))
        else:
            out.append(chunk)
    return "".join(out)


def _param(part: Message, name: str, header: str) -> str | None:
    try:
        value = part.get_param(name, header=header)
    except Exception:
        return None
    if value is None:
        return None
    if isinstance(value, tuple):  # RFC 2231 under compat32: (charset, language, text)
        charset, _lang, text = value
        try:
            raw = text.encode("raw-unicode-escape")
        except UnicodeEncodeError:
            return text
        return decode_bytes(raw, charset or None)
    return str(value)


def _raw_name(part: Message) -> str | None:
    return _param(part, "filename", "content-disposition") or _param(
        part, "name", "content-type"
    )


def attachment_filename(part: Message) -> str | None:
    """The decoded file name of a part (Content-Disposition filename, else Content-Type
    name; RFC 2047 and RFC 2231 forms), without directories; None if it has none."""
    name = _raw_name(part)
    if name and "\ufffd" in name and hasattr(part, "raw_items"):
        # the modern policy replaced raw 8-bit bytes (cp932 names from old clients):
        # read the same headers again from their raw form
        legacy = Message()
        for key, value in part.raw_items():
            if key.lower() in ("content-type", "content-disposition"):
                legacy[key] = decode_bytes(str(value).encode("utf-8", "surrogateescape"))
        name = _raw_name(legacy) or name
    if not name:
        return None
    name = _decode_header_text(name)
    name = _CONTROL_CHARS.sub("", name).strip().strip('"').strip()
    name = posixpath.basename(name.replace("\\", "/")).strip()
    return name or None


# --- structure ------------------------------------------------------------------------------


def _is_forwarded(part: Message) -> bool:
    return _content_type(part) in _FORWARDED_TYPES


def _is_body_text(part: Message) -> bool:
    """A text/plain or text/html leaf that is not an attachment."""
    if part.is_multipart() or _content_type(part) not in ("text/plain", "text/html"):
        return False
    return _disposition(part) != "attachment" and attachment_filename(part) is None


def _attachment_parts(part: Message) -> Iterator[Message]:
    """Leaves that are not body text, and forwarded messages (not descended into)."""
    if _is_forwarded(part):
        yield part
        return
    payload = part.get_payload()
    if part.is_multipart() and isinstance(payload, list):
        for sub in payload:
            if isinstance(sub, Message):
                yield from _attachment_parts(sub)
        return
    if not _is_body_text(part):
        yield part


def _unique(name: str, used: set[str]) -> str:
    if name not in used:
        return name
    stem, ext = posixpath.splitext(name)
    n = 2
    while f"{stem} ({n}){ext}" in used:
        n += 1
    return f"{stem} ({n}){ext}"


def _default_extension(content_type: str) -> str:
    return _EXTRA_EXTENSIONS.get(content_type) or mimetypes.guess_extension(content_type) or ".bin"


def iter_attachments(msg: Message) -> Iterator[tuple[str, EmailMessage]]:
    """(decoded unique file name, MIME part) for every top-level attachment, in order.

    The message's own parts only: attachments of a forwarded message are inside the
    ``forwarded-{n}.eml`` part that this yields.
    """
    used: set[str] = set()
    unnamed = forwarded = 0
    if _is_forwarded(msg):
        candidates: Iterator[Message] = iter([msg])
    else:
        payload = msg.get_payload()
        if msg.is_multipart() and isinstance(payload, list):
            candidates = (p for sub in payload if isinstance(sub, Message)
                          for p in _attachment_parts(sub))
        else:
            candidates = iter([]) if _is_body_text(msg) else iter([msg])
    for part in candidates:
        if _is_forwarded(part):
            forwarded += 1
            name = f"forwarded-{forwarded}.eml"
        else:
            name = attachment_filename(part) or ""
            if not name:
                unnamed += 1
                name = f"attachment-{unnamed}{_default_extension(_content_type(part))}"
        name = _unique(name, used)
        used.add(name)
        yield name, part  # type: ignore[misc]


def _text_of(part: Message) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        payload = part.get_payload()
        data = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
    declared = _charset(part)
    if _content_type(part) == "text/html":
        return html_to_text(decode_bytes(data, declared or meta_charset(data)))
    return decode_bytes(data, declared)


def _weight(texts: list[str]) -> int:
    return sum(len("".join(t.split())) for t in texts)


def body_texts(part: Message) -> list[str]:
    """Body texts in order; of a multipart/alternative only the richest alternative."""
    if _is_forwarded(part):
        return []
    payload = part.get_payload()
    if part.is_multipart() and isinstance(payload, list):
        subs = [s for s in payload if isinstance(s, Message)]
        if _content_type(part) == "multipart/alternative" and subs:
            options = [body_texts(s) for s in subs]
            return max(options, key=_weight)  # first wins a tie
        return [t for s in subs for t in body_texts(s)]
    if _is_body_text(part):
        return [_text_of(part)]
    return []


# --- extraction -------------------------------------------------------------------------------


def extract_message(raw: bytes, limits: Limits) -> Iterator[Unit]:
    """Units of a whole message: bodies (in_body), attachments, forwarded messages."""
    ctx = Context(limits)
    try:
        msg = parse_message(raw)
    except Exception as exc:
        yield Unscannable("message", "corrupt", f"{type(exc).__name__}: {exc}")
        return
    yield from _message_units(msg, "", ctx, 0, in_body=True)


def extract_embedded_message(path: str, data: bytes, ctx: Context, depth: int) -> Iterator[Unit]:
    """An .eml file found as an attachment or archive member (its body is not in_body)."""
    try:
        msg = parse_message(data)
    except Exception as exc:
        yield Unscannable(path, "corrupt", f"{type(exc).__name__}: {exc}")
        return
    yield from _message_units(msg, path, ctx, depth, in_body=False)


_BOUNDARY_DEFECTS = (
    email.errors.StartBoundaryNotFoundDefect,
    email.errors.NoBoundaryInMultipartDefect,
)


def _boundary_missing(msg: Message) -> bool:
    return any(
        isinstance(d, _BOUNDARY_DEFECTS)
        for part in _walk_all(msg)
        for d in getattr(part, "defects", [])
    )


def _message_units(
    msg: Message, path: str, ctx: Context, depth: int, in_body: bool
) -> Iterator[Unit]:
    """``path`` is "" for the top-level message, else the forwarded/.eml part path."""
    where = path or "message"
    try:
        if _boundary_missing(msg):
            yield Unscannable(where, "corrupt", "MIME boundary not found")
        texts = body_texts(msg)
    except Exception as exc:
        yield Unscannable(where, "corrupt", f"body: {type(exc).__name__}: {exc}")
        texts = []
    for index, body in enumerate(texts, 1):
        label = "body" if index == 1 else f"body#{index}"
        if path:
            yield TextUnit(body, part=path, location=f"{path}!{label}", in_body=in_body)
        else:
            yield TextUnit(body, part="body", location=label, in_body=in_body)
    try:
        attachments = list(iter_attachments(msg))
    except Exception as exc:
        yield Unscannable(where, "corrupt", f"attachments: {type(exc).__name__}: {exc}")
        return
    for name, part in attachments:
        child = f"{path}/{name}" if path else name
        yield from _attachment_units(child, part, ctx, depth, in_body)


def _attachment_units(
    path: str, part: Message, ctx: Context, depth: int, in_body: bool
) -> Iterator[Unit]:
    try:
        if _is_forwarded(part):
            if depth + 1 > ctx.limits.max_depth:
                yield Unscannable(path, "too_deep", "forwarded messages nested too deep")
                return
            inner = _inner_message(part)
            if inner is None:
                yield Unscannable(path, "corrupt", "unreadable forwarded message")
                return
            yield from _message_units(inner, path, ctx, depth + 1, in_body)
            return
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            data = b""
    except Exception as exc:
        yield Unscannable(path, "corrupt", f"{type(exc).__name__}: {exc}")
        return
    yield from extract_part(path, data, ctx, depth, _content_type(part), _charset(part))


def _inner_message(part: Message) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    data = part.get_payload(decode=True)
    if isinstance(data, bytes) and data:
        return parse_message(data)
    return None
