"""The RFC 5322 message walk: bodies, attachments, forwarded messages.

``iter_attachments`` is shared with the relay (it re-encrypts attachments by the
same names), so the name of a top-level attachment is defined in one place: a
finding's ``part.split("/")[0]`` is always one of the names it yields.
"""

from __future__ import annotations

import binascii
import email
import email.errors
import email.header
import email.policy
import email.utils
import mimetypes
import posixpath
import quopri
import re
from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage, Message

from dlp_gateway.extract.files import Context, extract_part
from dlp_gateway.extract.html import html_units
from dlp_gateway.extract.text import decode_bytes, text_readings
from dlp_gateway.extract.units import (
    AltPath,
    Limits,
    TableUnit,
    TextUnit,
    Unit,
    Unscannable,
)
from dlp_gateway.mail.policy import MEMO_POLICY

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
        msg = email.message_from_bytes(raw, policy=MEMO_POLICY)
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


def _payload_bytes(part: Message) -> bytes:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        payload = part.get_payload()
        data = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
    return data


def body_leaves(part: Message, alt: AltPath = (), where: str = "") -> list[tuple[Message, AltPath]]:
    """Body text leaves in order, each with its place among alternatives.

    Every branch of a multipart/alternative is a leaf: each is scanned, and the scan
    counts the branch with the most person records (the plain and the html branch
    usually carry the same people; counting both would double them).
    """
    counter = [0]

    def walk(node: Message, path: AltPath) -> list[tuple[Message, AltPath]]:
        if _is_forwarded(node):
            return []
        payload = node.get_payload()
        if node.is_multipart() and isinstance(payload, list):
            subs = [s for s in payload if isinstance(s, Message)]
            if _content_type(node) == "multipart/alternative" and len(subs) > 1:
                counter[0] += 1
                group = f"{where or 'message'}#alternative{counter[0]}"
                return [leaf for i, sub in enumerate(subs, 1)
                        for leaf in walk(sub, (*path, (group, str(i))))]
            return [leaf for sub in subs for leaf in walk(sub, path)]
        if _is_body_text(node):
            return [(node, path)]
        return []

    return walk(part, alt)


def body_units(leaf: Message, part: str, location: str, in_body: bool,
               alt: AltPath) -> list[TextUnit]:
    """A body leaf's text under each plausible decoding (html converted to text)."""
    declared = _charset(leaf)
    variants = _transfer_variants(leaf, _payload_bytes(leaf))
    out: list[TextUnit] = []
    for variant, data in variants:
        where = location if variant == "decoded" else f"{location}[{variant}]"
        if _content_type(leaf) == "text/html":
            units = html_units(part, where, data, declared, in_body=in_body)
        else:
            units = text_readings(part, where, data, declared, in_body=in_body)
        prefix = alt + (((f"{location}#transfer", variant),) if len(variants) > 1 else ())
        out += [replace(u, alt=prefix + u.alt) if prefix else u for u in units]
    return out


_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/=\s]")


def _transfer_variants(part: Message, decoded: bytes) -> list[tuple[str, bytes]]:
    """The decoded payload, and the raw one too when the part claims base64 but is not
    (a mislabelled transfer encoding must not hide plain text from the scan)."""
    cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    raw = getattr(part, "_payload", None)
    if cte != "base64" or not isinstance(raw, str) or not _NOT_BASE64.search(raw):
        return [("decoded", decoded)]
    return [("decoded", decoded), ("raw", raw.encode("utf-8", "surrogateescape"))]


def _with_alt(units: Iterator[Unit], prefix: AltPath) -> Iterator[Unit]:
    for unit in units:
        if isinstance(unit, TextUnit | TableUnit):
            unit = replace(unit, alt=prefix + unit.alt)
        yield unit


# Headers a person writes or names a person in (display names): scanned as text.
_TEXT_HEADERS = ("subject", "from", "to", "cc", "bcc", "reply-to", "sender", "comments",
                 "keywords", "organization", "thread-topic", "disposition-notification-to")


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n[ \t]", " ", value).replace("\r", "").replace("\n", " ")


def header_units(msg: Message, path: str, in_body: bool) -> list[TextUnit]:
    """Subject, display names and similar headers (RFC 2047, any charset) as text."""
    items = msg.raw_items() if hasattr(msg, "raw_items") else msg.items()
    units: list[TextUnit] = []
    seen: dict[str, int] = {}
    for key, value in items:
        name = key.strip()
        if name.lower() not in _TEXT_HEADERS:
            continue
        text = _decode_header_text(_unfold(str(value))).strip()
        if not text:
            continue
        seen[name.lower()] = seen.get(name.lower(), 0) + 1
        label = name if seen[name.lower()] == 1 else f"{name}#{seen[name.lower()]}"
        location = f"{path}!header:{label}" if path else f"header:{label}"
        units.append(TextUnit(text, part=path or "body", location=location, in_body=in_body))
    return units


def _preamble_epilogue(msg: Message, path: str, in_body: bool) -> Iterator[TextUnit]:
    """Text before the first and after the last boundary of each multipart."""
    count = 0
    for part in _walk_all(msg):
        if not part.is_multipart():
            continue
        for kind in ("preamble", "epilogue"):
            value = getattr(part, kind, None)
            if not isinstance(value, str) or not value.strip():
                continue
            count += 1
            label = kind if count <= 2 else f"{kind}#{count}"
            location = f"{path}!{label}" if path else label
            yield from text_readings(path or "body", location,
                                     value.encode("utf-8", "surrogateescape"), None,
                                     in_body=in_body)


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
        yield from header_units(msg, path, in_body)
    except Exception as exc:
        yield Unscannable(where, "corrupt", f"headers: {type(exc).__name__}: {exc}")
    try:
        if _boundary_missing(msg):
            yield Unscannable(where, "corrupt", "MIME boundary not found")
        leaves = body_leaves(msg, where=where)
    except Exception as exc:
        yield Unscannable(where, "corrupt", f"body: {type(exc).__name__}: {exc}")
        leaves = []
    for index, (leaf, alt) in enumerate(leaves, 1):
        label = "body" if index == 1 else f"body#{index}"
        location = f"{path}!{label}" if path else label
        try:
            yield from body_units(leaf, path or "body", location, in_body, alt)
        except Exception as exc:
            yield Unscannable(location, "corrupt", f"{type(exc).__name__}: {exc}")
    try:
        yield from _preamble_epilogue(msg, path, in_body)
    except Exception as exc:
        yield Unscannable(where, "corrupt", f"preamble: {type(exc).__name__}: {exc}")
    try:
        attachments = list(iter_attachments(msg))
    except Exception as exc:
        yield Unscannable(where, "corrupt", f"attachments: {type(exc).__name__}: {exc}")
        return
    for name, part in attachments:
        child = f"{path}/{name}" if path else name
        yield from _filename_units(child, part, in_body)
        yield from _attachment_units(child, part, ctx, depth, in_body)


def _filename_units(path: str, part: Message, in_body: bool) -> Iterator[TextUnit]:
    """The attachment's own name (延岡花子_S12.3.4生_調査票.xlsx) as text. A name of the
    mail's own attachments travels in the clear even inside the encrypted ZIP, so it
    counts as body text (inside an attached .eml file it is as protected as the file)."""
    try:
        name = attachment_filename(part)
    except Exception:  # the part itself is read (and judged) by _attachment_units
        return
    if name and name.strip():
        yield TextUnit(name.replace("_", " "), part=path, location=f"{path}!filename",
                       in_body=in_body)


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
            if not _looks_like_message(inner):  # labelled a message: a file (zip, csv...)
                yield from extract_part(path, _headerless_bytes(inner), ctx, depth)
                return
            yield from _message_units(inner, path, ctx, depth + 1, in_body)
            return
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            data = b""
    except Exception as exc:
        yield Unscannable(path, "corrupt", f"{type(exc).__name__}: {exc}")
        return
    variants = _transfer_variants(part, data)
    if len(variants) == 1:
        yield from extract_part(path, data, ctx, depth, _content_type(part), _charset(part))
        return
    for variant, content in variants:
        where = path if variant == "decoded" else f"{path}[{variant}]"
        yield from _with_alt(
            extract_part(where, content, ctx, depth, _content_type(part), _charset(part)),
            ((f"{path}#transfer", variant),))


def _inner_message(part: Message) -> Message | None:
    """The message inside a message/rfc822 part, in any transfer encoding.

    The parser reads a message/* body as a message whatever its encoding, so a
    base64 or quoted-printable one comes back as a header-less blob: re-encode it,
    decode it, and parse the result.
    """
    payload = part.get_payload()
    cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if cte in ("base64", "quoted-printable") and isinstance(payload, list) and payload:
        encoded = payload[0].as_string() if isinstance(payload[0], Message) else str(payload[0])
        if cte == "base64" and _NOT_BASE64.search(encoded):
            return payload[0] if isinstance(payload[0], Message) else None  # not base64
        return parse_message(_transfer_decode(encoded, cte))
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    data = part.get_payload(decode=True)
    if isinstance(data, bytes) and data:
        return parse_message(data)
    return None


_MESSAGE_HEADERS = {"from", "to", "cc", "subject", "date", "message-id", "received",
                    "mime-version", "content-type", "return-path", "sender", "reply-to"}


def _looks_like_message(inner: Message) -> bool:
    """A message has at least one of the usual headers (a zip or a csv has none)."""
    return any(key.strip().lower() in _MESSAGE_HEADERS for key in inner)


def _headerless_bytes(inner: Message) -> bytes:
    """The original bytes of a header-less "message" (the parser kept them as its body)."""
    # the raw attribute: get_payload() would re-decode 8-bit bytes with "replace"
    payload = getattr(inner, "_payload", None)
    if not isinstance(payload, str):
        return inner.as_bytes(policy=email.policy.compat32.clone(linesep="\r\n"))
    data = payload.encode("utf-8", "surrogateescape")
    if not inner.keys():
        return data[1:] if data.startswith(b"\n") else data
    # lines the parser took for header fields (BEGIN:VCARD), rebuilt as they were: as_bytes
    # would add a space after each colon and a blank line the file never had
    head = b"".join(f"{key}:{value}".encode("utf-8", "surrogateescape") + b"\r\n"
                    for key, value in inner.raw_items())
    separated = not any(isinstance(d, email.errors.MissingHeaderBodySeparatorDefect)
                        for d in inner.defects)
    return head + (b"\r\n" if separated else b"") + data


def _transfer_decode(encoded: str, cte: str) -> bytes:
    raw = encoded.encode("utf-8", "surrogateescape")
    if cte == "quoted-printable":
        return quopri.decodestring(raw)
    compact = re.sub(rb"[^A-Za-z0-9+/]", b"", raw)
    compact = compact[: len(compact) - len(compact) % 4 or None] if len(compact) % 4 == 1 \
        else compact + b"=" * (-len(compact) % 4)
    return binascii.a2b_base64(compact)
