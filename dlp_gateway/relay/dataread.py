"""The DATA of an SMTP transaction read in blocks (RFC 5321 §4.5.2).

aiosmtpd reads DATA one line at a time (a ``readuntil`` and its bookkeeping per line),
which was the largest single cost of relaying an ordinary 20 KB mail. Here the stream is
read up to the terminator ``CRLF . CRLF`` a block at a time (the stream limit, about
1 KB, per ``readuntil``), never past it, and then checked and un-stuffed as a whole, with
aiosmtpd's answers: a line over ``line_limit`` octets (CRLF included) makes the DATA
"too_long" (500), more than ``size_limit`` octets "too_much" (552), whichever comes first
in the stream. Once over the size limit nothing more is kept.
"""

from __future__ import annotations

import asyncio

END = b"\r\n.\r\n"


async def read_data(
    reader: asyncio.StreamReader, size_limit: int | None, line_limit: int
) -> tuple[bytes, str]:
    """(content, state): state is "ok" (content un-stuffed), "too_long" or "too_much".

    Raises ``asyncio.IncompleteReadError`` if the stream ends first."""
    kept = bytearray()
    tail = b"\r\n"  # the last bytes read: the first byte of DATA starts a line
    state = "ok"
    while True:
        overlap = _partial_end(tail)
        if overlap:  # the terminator may have begun in what was read: finish it exactly
            chunk = await reader.readexactly(len(END) - overlap)
            done = (tail + chunk).endswith(END)
        else:
            try:
                chunk = await reader.readuntil(END)
                done = True
            except asyncio.LimitOverrunError as exc:
                chunk = await reader.readexactly(exc.consumed)
                done = False
        tail = (tail + chunk)[-4:]
        if state == "ok":
            kept += chunk
            if size_limit and len(kept) > size_limit + len(END):
                state = _violation(bytes(kept), size_limit, line_limit, complete=False)
                kept.clear()
        if done:
            break
    if state != "ok":
        return b"", state
    content = bytes(kept[:-3])  # the terminator's ". CRLF" (its CRLF ends the last line)
    if len(content) > line_limit - 2 or (size_limit and len(content) > size_limit):
        state = _violation(content, size_limit, line_limit, complete=True)
        if state != "ok":
            return b"", state
    return _unstuffed(content), "ok"


def _partial_end(tail: bytes) -> int:
    """The length of the longest end of ``tail`` that begins the terminator (0-4)."""
    for n in range(min(len(tail), len(END) - 1), 0, -1):
        if tail.endswith(END[:n]):
            return n
    return 0


def _violation(data: bytes, size_limit: int | None, line_limit: int, complete: bool) -> str:
    """The first limit ``data`` breaks, line by line as aiosmtpd meets them ("ok" if
    none). ``complete``: data ends at a line end (else its last line is still open)."""
    lines = data.split(b"\r\n")
    last = lines.pop()  # after the final CRLF: empty when complete
    size = 0
    for line in lines:
        if len(line) + 2 > line_limit:
            return "too_long"
        size += len(line) + 2
        if size_limit and size > size_limit:
            return "too_much"
    if not complete and len(last) + 2 > line_limit:
        return "too_long"
    if size_limit and size + len(last) > size_limit:
        return "too_much"
    return "ok"


def _unstuffed(content: bytes) -> bytes:
    """A leading dot of every line removed (dot-stuffing undone)."""
    if content.startswith(b"."):
        content = content[1:]
    return content.replace(b"\r\n.", b"\r\n")
