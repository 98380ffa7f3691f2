"""Zip archives: members are files, dispatched back through the file extractor.

Header sizes are not trusted: members are read in chunks and reading stops as
soon as a limit is passed (member size, message-wide total, compression ratio).
Any encrypted member (ZipCrypto or AES) is reported, never skipped silently.
"""

from __future__ import annotations

import contextlib
import io
import zipfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from dlp_gateway.extract.units import Skipped, Unit, Unscannable

if TYPE_CHECKING:
    from dlp_gateway.extract.files import Context

CHUNK = 1 << 20
RATIO_FLOOR = 1 << 20  # compression ratio is only judged for members over 1 MiB
UTF8_FLAG = 0x800

Dispatch = Callable[[str, bytes, "Context", int], Iterator[Unit]]


class LimitExceeded(Exception):
    """A member passed one of the size limits while being read."""


def member_name(info: zipfile.ZipInfo) -> str:
    """Member name; names without the UTF-8 flag are usually cp932 (Japanese Windows)."""
    name = info.filename
    if not info.flag_bits & UTF8_FLAG:
        with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
            name = name.encode("cp437").decode("cp932")
    return name.replace("\\", "/")


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, ctx: Context) -> bytes:
    limits = ctx.limits
    chunks: list[bytes] = []
    size = 0
    with zf.open(info) as stream:
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > limits.max_part_bytes:
                raise LimitExceeded(f"member over {limits.max_part_bytes} bytes")
            if not ctx.take_bytes(len(chunk)):
                raise LimitExceeded(f"archive content over {limits.max_total_bytes} bytes")
            if size > RATIO_FLOOR and size / max(info.compress_size, 1) > limits.max_ratio:
                raise LimitExceeded(f"compression ratio over {limits.max_ratio:g}")
            chunks.append(chunk)
    return b"".join(chunks)


def holds_data(info: zipfile.ZipInfo) -> bool:
    """Files, and "directories" (name ending in /) that nonetheless carry bytes."""
    return not info.is_dir() or info.file_size > 0 or info.compress_size > 2


def comment_unit(path: str, comment: bytes) -> Iterator[Unit]:
    """The archive comment (free text a zip may carry besides its members)."""
    if comment and comment.strip(b"\0 \r\n\t"):
        from dlp_gateway.extract.text import decode_bytes
        from dlp_gateway.extract.units import TextUnit

        yield TextUnit(decode_bytes(comment), part=path, location=f"{path}!comment")


def extract_zip(
    path: str, data: bytes, ctx: Context, depth: int, dispatch: Dispatch
) -> Iterator[Unit]:
    """Members of the zip at ``path`` (nesting level ``depth``), each dispatched as a file."""
    if depth + 1 > ctx.limits.max_depth:
        yield Unscannable(path, "too_deep", f"archive nesting over {ctx.limits.max_depth}")
        return
    try:
        import pyzipper  # here: Cryptodome costs ~30 ms of every CLI start

        zf = pyzipper.AESZipFile(io.BytesIO(data))
        infos = [i for i in zf.infolist() if holds_data(i)]
    except Exception as exc:
        yield Unscannable(path, "corrupt", f"{type(exc).__name__}: {exc}")
        return
    if len(infos) > ctx.limits.max_members:
        yield Unscannable(path, "too_large", f"{len(infos)} members over the limit")
        return
    with zf:
        yield from comment_unit(path, zf.comment)
        if not infos and not zf.comment.strip(b"\0 \r\n\t"):
            yield Skipped(path, "empty")  # an archive with no files: nothing to read
        yield from member_units(path, zf, infos, ctx, depth, dispatch)


def member_units(
    path: str, zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], ctx: Context, depth: int,
    dispatch: Dispatch,
) -> Iterator[Unit]:
    """Each member read within the limits and dispatched as a file of its own; an
    encrypted, oversized or broken member is unscannable by itself."""
    for info in infos:
        member_path = f"{path}/{member_name(info).strip('/')}"
        if info.flag_bits & 0x1:
            yield Unscannable(member_path, "encrypted_archive", "password-protected member")
            continue
        try:
            content = _read_member(zf, info, ctx)
        except LimitExceeded as exc:
            yield Unscannable(member_path, "too_large", str(exc))
            if ctx.total_exceeded:
                return
            continue
        except Exception as exc:  # bad CRC, broken deflate stream, unsupported method
            yield Unscannable(member_path, "corrupt", f"{type(exc).__name__}: {exc}")
            continue
        yield from dispatch(member_path, content, ctx, depth + 1)


# --- winmail.dat (Outlook TNEF) -----------------------------------------------------------


def _tnef_name(attachment: object, index: int, codepage: str | None) -> str:
    from dlp_gateway.extract.text import decode_bytes

    name: object = ""
    try:
        name = attachment.long_filename()  # type: ignore[attr-defined]
    except Exception:  # tnefparse decodes the short title as UTF-8; cp932 titles fail
        name = getattr(attachment, "_name", b"")
    if isinstance(name, bytes):
        name = decode_bytes(name, codepage)
    text = str(name).strip("\x00").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return text or f"attachment-{index}.bin"


def extract_tnef(
    path: str, data: bytes, ctx: Context, depth: int, dispatch: Dispatch
) -> Iterator[Unit]:
    """Body and attachments hidden in an Outlook winmail.dat (application/ms-tnef)."""
    from tnefparse.tnef import TNEF

    from dlp_gateway.extract.html import html_to_text
    from dlp_gateway.extract.text import decode_bytes
    from dlp_gateway.extract.units import TextUnit

    if depth + 1 > ctx.limits.max_depth:
        yield Unscannable(path, "too_deep", f"archive nesting over {ctx.limits.max_depth}")
        return
    tnef = TNEF(data, do_checksum=False)
    codepage = tnef.codepage
    texts = []
    for body, is_html in ((tnef.body, False), (tnef.htmlbody, True)):
        if body:
            text = body if isinstance(body, str) else decode_bytes(body, codepage)
            texts.append(html_to_text(text) if is_html else text)
    if texts:
        best = max(texts, key=lambda t: len("".join(t.split())))
        yield TextUnit(best, part=path, location=f"{path}!body")
    used: set[str] = set()
    for index, attachment in enumerate(tnef.attachments, 1):
        name = _tnef_name(attachment, index, codepage)
        if name in used:
            name = f"{index}-{name}"
        used.add(name)
        content = attachment.data if isinstance(attachment.data, bytes) else b""
        if not ctx.take_bytes(len(content)):
            yield Unscannable(f"{path}/{name}", "too_large", "content over the total limit")
            return
        yield from dispatch(f"{path}/{name}", content, ctx, depth + 1)
