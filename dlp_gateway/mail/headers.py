"""Small header helpers that never parse (or copy) a message body."""

from __future__ import annotations

import re
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import default as default_policy

from dlp_gateway.detect.findings import mask_number

# Runs of 8+ digits, possibly split by spaces or hyphens (half- or full-width).
_NUMBER_RUN = re.compile(r"[0-9０-９](?:[0-9０-９]|[-\s‐－ー](?=[0-9０-９])){7,}")


def prepend_headers(raw: bytes, headers: list[tuple[str, str]]) -> bytes:
    """Put ``headers`` in front of the message; the original bytes stay untouched."""
    eol = b"\r\n" if b"\r\n" in raw[:4096] or not raw else b"\n"
    lines = b"".join(f"{name}: {value}".encode("ascii") + eol for name, value in headers)
    return lines + raw


def header_bytes(raw: bytes) -> bytes:
    """The header block of ``raw`` (up to the first empty line)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(sep)
        if end != -1:
            return raw[: end + len(sep)]
    return raw


def decoded_subject(raw: bytes) -> str:
    """The Subject as text (RFC 2047 decoded, best effort), long numbers masked."""
    try:
        msg = BytesHeaderParser(policy=default_policy).parsebytes(header_bytes(raw))
        value = msg.get("Subject", "")
        text = str(value) if value is not None else ""
    except Exception:  # a broken header must not stop the relay
        try:
            msg = BytesHeaderParser().parsebytes(header_bytes(raw))
            text = str(make_header(decode_header(msg.get("Subject", "") or "")))
        except Exception:
            text = ""
    return mask_numbers_in_text(" ".join(text.split()))


def mask_numbers_in_text(text: str) -> str:
    """Mask every long digit run (a My Number in a subject must not reach a log or page)."""
    return _NUMBER_RUN.sub(lambda m: mask_number(_ascii_digits(m.group(0))), text)


def _ascii_digits(text: str) -> str:
    return "".join(
        str(ord(ch) - 0xFF10) if "０" <= ch <= "９" else ch for ch in text if ch.isdigit()
    )


def strip_dlp_headers(data: bytes) -> bytes:
    """``data`` without the leading X-DLP-* lines ``prepend_headers`` put in front."""
    while data[:6].lower() == b"x-dlp-":
        end = data.find(b"\n")
        if end == -1:
            return data
        data = data[end + 1 :]
    return data
