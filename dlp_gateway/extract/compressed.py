"""gzip, bzip2, xz streams, tar, 7z, and (through libarchive) rar, lzh and cab.

Every kind obeys the same limits as zip (``archive.py``): nesting depth, member
count, bytes per member, bytes over the whole message and compression ratio, all
checked while decompressing, never from declared sizes alone. A compressed stream
(``名簿.csv.gz``) is one member named after the stream (``名簿.csv.gz/名簿.csv``);
``.tar.gz`` is a gzip stream holding a tar, found by its content.
"""

from __future__ import annotations

import bz2
import functools
import io
import logging
import lzma
import posixpath
import struct
import tarfile
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from dlp_gateway.extract.archive import CHUNK, RATIO_FLOOR, Dispatch, LimitExceeded
from dlp_gateway.extract.units import NOT_THIS_FORMAT, Skipped, Unit, Unscannable

if TYPE_CHECKING:
    from dlp_gateway.extract.files import Context

_STREAM_SUFFIXES = {".gz": "", ".tgz": ".tar", ".bz2": "", ".tbz2": ".tar", ".tbz": ".tar",
                    ".xz": "", ".txz": ".tar"}


class _Budget:
    """Counts the bytes produced by one member against every size limit."""

    def __init__(self, ctx: Context, compressed_size: int):
        self.ctx, self.compressed, self.size = ctx, max(compressed_size, 1), 0

    def take(self, count: int) -> None:
        limits = self.ctx.limits
        self.size += count
        if self.size > limits.max_part_bytes:
            raise LimitExceeded(f"member over {limits.max_part_bytes} bytes")
        if not self.ctx.take_bytes(count):
            raise LimitExceeded(f"archive content over {limits.max_total_bytes} bytes")
        if self.size > RATIO_FLOOR and self.size / self.compressed > limits.max_ratio:
            raise LimitExceeded(f"compression ratio over {limits.max_ratio:g}")


ArchiveReader = Callable[[str, bytes, "Context", int, Dispatch], Iterator[Unit]]


def depth_guarded(reader: ArchiveReader) -> ArchiveReader:
    """An archive reader that first says ``too_deep`` past the nesting limit."""

    @functools.wraps(reader)
    def guarded(path: str, data: bytes, ctx: Context, depth: int, dispatch: Dispatch
                ) -> Iterator[Unit]:
        if depth + 1 > ctx.limits.max_depth:
            yield Unscannable(path, "too_deep", f"archive nesting over {ctx.limits.max_depth}")
            return
        yield from reader(path, data, ctx, depth, dispatch)

    return guarded


def _inner_name(path: str, stored: str | None = None) -> str:
    """Name of the file inside a compressed stream: the stored name, else the outer name."""
    if stored:
        return posixpath.basename(stored.replace("\\", "/")) or stored
    base = posixpath.basename(path)
    stem, ext = posixpath.splitext(base)
    if ext.lower() in _STREAM_SUFFIXES:
        return stem + _STREAM_SUFFIXES[ext.lower()]
    return stem or "content"


# --- single streams: gzip, bzip2, xz --------------------------------------------------------


def _decompress(data: bytes, make: Callable[[], object], budget: _Budget) -> bytes:
    """Every concatenated stream (multi-member gzip/bz2/xz), bounded while it inflates."""
    out: list[bytes] = []
    rest = data
    while rest:
        decomp = make()
        chunk = decomp.decompress(rest, CHUNK)  # type: ignore[attr-defined]
        while True:
            budget.take(len(chunk))
            out.append(chunk)
            if decomp.eof or (not chunk and decomp.needs_input):  # type: ignore[attr-defined]
                break
            chunk = decomp.decompress(b"", CHUNK)  # type: ignore[attr-defined]
        if not decomp.eof:  # type: ignore[attr-defined]
            raise EOFError("compressed stream ends before its end marker")
        rest = decomp.unused_data.lstrip(b"\0")  # type: ignore[attr-defined]
    return b"".join(out)


class _Gzip:
    """zlib's gzip decoder with the bz2/lzma decompressor interface (max_length)."""

    def __init__(self) -> None:
        self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.needs_input = True

    def decompress(self, data: bytes, max_length: int) -> bytes:
        buffer = data if data else self._z.unconsumed_tail
        out = self._z.decompress(buffer, max_length)
        self.needs_input = not self._z.unconsumed_tail
        return out

    @property
    def eof(self) -> bool:
        return self._z.eof

    @property
    def unused_data(self) -> bytes:
        return self._z.unused_data


def _gzip_name(data: bytes) -> str | None:
    """FNAME from the gzip header (RFC 1952), decoded as UTF-8 or cp932."""
    flags = data[3]
    if not flags & 0x08:
        return None
    pos = 10
    if flags & 0x04:
        (extra,) = struct.unpack_from("<H", data, pos)
        pos += 2 + extra
    end = data.find(b"\0", pos)
    if end < 0:
        return None
    raw = data[pos:end]
    for encoding in ("utf-8", "cp932"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def _stream_reader(make: Callable[[], object], stored_name: Callable[[bytes], str | None]):
    @depth_guarded
    def read(path: str, data: bytes, ctx: Context, depth: int, dispatch: Dispatch
             ) -> Iterator[Unit]:
        member = f"{path}/{_inner_name(path, stored_name(data))}"
        try:
            content = _decompress(data, make, _Budget(ctx, len(data)))
        except LimitExceeded as exc:
            yield Unscannable(member, "too_large", str(exc))
            return
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
            yield Unscannable(path, "corrupt", f"{type(exc).__name__}: {exc}")
            return
        yield from dispatch(member, content, ctx, depth + 1)

    return read


# --- tar ------------------------------------------------------------------------------------


@depth_guarded
def extract_tar(path: str, data: bytes, ctx: Context, depth: int, dispatch: Dispatch
                ) -> Iterator[Unit]:
    """Regular-file members of an (uncompressed) tar; links and devices carry no data."""
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:")  # noqa: SIM115 (closed below)
    except tarfile.TarError as exc:
        yield Unscannable(path, "corrupt", f"{type(exc).__name__}: {exc}")
        return
    count = files = 0
    with tar:
        while True:
            try:
                info = tar.next()
            except tarfile.TarError as exc:
                yield Unscannable(path, "corrupt", f"{type(exc).__name__}: {exc}")
                return
            if info is None:
                if not files:
                    yield Skipped(path, "empty")
                return
            count += 1
            if count > ctx.limits.max_members:
                yield Unscannable(path, "too_large", "members over the limit")
                return
            if not info.isreg():
                continue
            files += 1
            member = f"{path}/{info.name.strip('/')}"
            try:
                content = _read_stream(tar.extractfile(info), _Budget(ctx, info.size or 1))
            except LimitExceeded as exc:
                yield Unscannable(member, "too_large", str(exc))
                if ctx.total_exceeded:
                    return
                continue
            yield from dispatch(member, content, ctx, depth + 1)


def _read_stream(stream: io.BufferedIOBase | None, budget: _Budget) -> bytes:
    if stream is None:
        return b""
    chunks = []
    while chunk := stream.read(CHUNK):
        budget.take(len(chunk))
        chunks.append(chunk)
    return b"".join(chunks)


# --- 7z -------------------------------------------------------------------------------------


@depth_guarded
def extract_7z(path: str, data: bytes, ctx: Context, depth: int, dispatch: Dispatch
               ) -> Iterator[Unit]:
    """7z members; an archive needing a password is ``encrypted_archive``.

    py7zr's codecs are native extensions: the archive is opened in a child process.
    """
    yield from _isolated_members(path, data, ctx, depth, dispatch, _7z_members)


def _7z_members(path: str, data: bytes, ctx: Context) -> list:  # type: ignore[type-arg]
    """(member path, bytes) pairs, or a single Unscannable / Skipped for the archive."""
    import py7zr
    import py7zr.exceptions

    try:
        archive = py7zr.SevenZipFile(io.BytesIO(data))
    except py7zr.exceptions.PasswordRequired:
        return [Unscannable(path, "encrypted_archive", "7z with encrypted headers")]
    except Exception as exc:
        return [Unscannable(path, "corrupt", f"{type(exc).__name__}: {exc}")]
    with archive:
        if archive.needs_password():
            return [Unscannable(path, "encrypted_archive", "password-protected 7z")]
        infos = [i for i in archive.list() if not i.is_directory]
        if len(infos) > ctx.limits.max_members:
            return [Unscannable(path, "too_large", f"{len(infos)} members over the limit")]
        factory = _BoundedFactory(ctx, len(data))
        try:
            archive.extractall(factory=factory)
        except LimitExceeded as exc:
            return [Unscannable(path, "too_large", str(exc))]
        except Exception as exc:
            return [Unscannable(path, "corrupt", f"{type(exc).__name__}: {exc}")]
        return [(f"{path}/{name.strip('/')}", writer.getvalue())
                for name, writer in factory.products.items()]


# An empty rar/lzh/cab is its signature and two or three short headers.
EMPTY_ARCHIVE_BYTES = 128


def _isolated_members(path: str, data: bytes, ctx: Context, depth: int, dispatch: Dispatch,
                      lister: Callable[[str, bytes, Context], list]  # type: ignore[type-arg]
                      ) -> Iterator[Unit]:
    """Members listed by ``lister`` in a child process, then dispatched here."""
    from dlp_gateway.extract.isolate import IsolatedFailure, run_isolated

    try:
        members = run_isolated(lister, path, data, ctx, timeout=ctx.limits.timeout_seconds)
    except IsolatedFailure as exc:
        yield Unscannable(path, exc.reason, exc.detail)  # type: ignore[arg-type]
        return
    if not members and len(data) > EMPTY_ARCHIVE_BYTES and lister is _libarchive_members:
        # libarchive ends quietly at a header it cannot parse: bytes that are neither an
        # empty archive's few headers nor a listed member were not read
        yield Unscannable(path, "corrupt", f"no member listed from {len(data)} bytes")
    elif not members:
        yield Skipped(path, "empty")
    for item in members:
        if isinstance(item, Unscannable):
            yield item
            continue
        name, content = item
        if not ctx.take_bytes(len(content)):  # the child's accounting stayed in the child
            yield Unscannable(name, "too_large", "archive content over the total limit")
            return
        yield from dispatch(name, content, ctx, depth + 1)


class _BoundedWriter:
    """py7zr's Py7zIO: keeps the bytes, counting them against the limits as they come."""

    def __init__(self, budget: _Budget):
        self.budget, self.buffer = budget, io.BytesIO()

    def write(self, s: bytes | bytearray) -> int:
        self.budget.take(len(s))
        return self.buffer.write(s)

    def read(self, size: int | None = None) -> bytes:
        return self.buffer.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.buffer.seek(offset, whence)

    def flush(self) -> None:
        return None

    def size(self) -> int:
        return self.buffer.getbuffer().nbytes

    def close(self) -> None:
        return None

    def getvalue(self) -> bytes:
        return self.buffer.getvalue()


class _BoundedFactory:
    def __init__(self, ctx: Context, compressed: int):
        self.ctx, self.compressed = ctx, compressed
        self.products: dict[str, _BoundedWriter] = {}

    def create(self, filename: str) -> _BoundedWriter:
        # ratio judged against the whole archive (solid 7z blocks share one stream)
        writer = _BoundedWriter(_Budget(self.ctx, self.compressed))
        self.products[filename] = writer
        return writer


# --- rar, lzh, cab via libarchive -----------------------------------------------------------


@depth_guarded
def extract_libarchive(path: str, data: bytes, ctx: Context, depth: int, dispatch: Dispatch
                       ) -> Iterator[Unit]:
    """rar / lzh / cab members through Debian's libarchive (libarchive-c bindings)."""
    try:
        import libarchive  # noqa: F401  (loads libarchive.so.13)
    except (ImportError, OSError) as exc:  # libarchive13 missing on this machine
        yield Unscannable(path, "unsupported_format", f"libarchive unavailable: {exc}")
        return
    yield from _isolated_members(path, data, ctx, depth, dispatch, _libarchive_members)


def _libarchive_members(path: str, data: bytes, ctx: Context) -> list:  # type: ignore[type-arg]
    """(member path, bytes) pairs, or Unscannable for what cannot be read.

    Names in lzh/rar headers without a Unicode flag are cp932 on Japanese Windows;
    if they do not convert, the archive is read again with latin-1 names, which
    always convert, and each name is re-decoded here.
    """
    first = _libarchive_pass(path, data, ctx, b"hdrcharset=CP932")
    if first and isinstance(first[-1], Unscannable) and first[-1].reason == "corrupt":
        second = _libarchive_pass(path, data, ctx, b"hdrcharset=ISO-8859-1", _relatin)
        if not (second and isinstance(second[-1], Unscannable)):
            return second
    if len(first) == 1 and isinstance(first[0], Unscannable) and first[0].reason == "corrupt":
        # nothing at all could be read: not an archive of this kind (files.py may try text)
        return [Unscannable(path, "corrupt", f"{NOT_THIS_FORMAT}{first[0].detail}")]
    return first


def _relatin(name: str) -> str:
    raw = name.encode("latin-1", errors="replace")
    for encoding in ("utf-8", "cp932"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return name


def _set_options(archive_p: object, options: bytes) -> None:
    from ctypes import c_char_p, c_int, c_void_p

    from libarchive import ffi

    setter = ffi.libarchive.archive_read_set_options
    setter.argtypes, setter.restype = [c_void_p, c_char_p], c_int
    setter(archive_p, options)


def _libarchive_pass(path: str, data: bytes, ctx: Context, options: bytes,
                     rename: Callable[[str], str] = str) -> list:  # type: ignore[type-arg]
    from ctypes import c_void_p, cast

    from libarchive import ffi
    from libarchive.read import ArchiveRead, new_archive_read

    results: list[object] = []
    count = 0
    encrypted = rar5_encrypted_entries(data)
    warned = _LibarchiveWarnings.install()
    try:
        with new_archive_read("all", "all", None) as archive_p:
            _set_options(archive_p, options)
            ffi.read_open_memory(archive_p, cast(data, c_void_p), len(data))
            for entry in ArchiveRead(archive_p, "utf-8"):
                count += 1
                if count > ctx.limits.max_members:
                    results.append(Unscannable(path, "too_large", "members over the limit"))
                    break
                if not entry.isfile:
                    continue
                inner = rename(str(entry.pathname)).replace(chr(92), "/").strip("/")
                name = f"{path}/{inner}"
                if _entry_encrypted(entry) or count - 1 in encrypted:
                    results.append(Unscannable(name, "encrypted_archive", "encrypted member"))
                    continue
                warned.messages.clear()
                try:
                    budget = _Budget(ctx, len(data))
                    content = b"".join(_bounded_blocks(entry.get_blocks(), budget))
                except LimitExceeded as exc:
                    results.append(Unscannable(name, "too_large", str(exc)))
                    break
                if warned.messages:  # e.g. "LHa data CRC error": read, but not trusted
                    results.append(Unscannable(name, "corrupt", "; ".join(warned.messages)[:200]))
                results.append((name, content))
    except Exception as exc:
        message = str(exc)
        reason = "encrypted_archive" if "ncrypt" in message or "assword" in message else "corrupt"
        results.append(Unscannable(path, reason, f"{type(exc).__name__}: {message[:200]}"))
    return results


class _LibarchiveWarnings(logging.Handler):
    """Collects what libarchive-c logs (ARCHIVE_WARN: CRC errors...) instead of printing it."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    @classmethod
    def install(cls) -> _LibarchiveWarnings:
        logger = logging.getLogger("libarchive")
        for handler in logger.handlers:
            if isinstance(handler, cls):
                return handler
        handler = cls()
        logger.addHandler(handler)
        logger.propagate = False
        return handler


def _bounded_blocks(blocks: Iterator[bytes], budget: _Budget) -> Iterator[bytes]:
    for block in blocks:
        budget.take(len(block))
        yield bytes(block)


RAR5_SIGNATURE = b"Rar!\x1a\x07\x01\x00"


def _vint(data: bytes, pos: int) -> tuple[int, int]:
    """A RAR 5 vint at ``pos``: (value, position after it)."""
    value = shift = 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80 or shift > 63:
            return value, pos


def rar5_encrypted_entries(data: bytes, limit: int = 100_000) -> set[int]:
    """Indexes (in archive order) of RAR 5 file headers with a file-encryption record.

    libarchive before 3.7 skips that record and hands out the AES ciphertext as the
    member's content (a password-protected .rar would be "corrupt" or "unsupported",
    not ``encrypted_archive``), so the headers are walked here (RAR 5.0 technote:
    CRC32, header size, type, flags, extra and data sizes, extra records).
    """
    found: set[int] = set()
    if not data.startswith(RAR5_SIGNATURE):
        return found
    pos, index = len(RAR5_SIGNATURE), 0
    try:
        while pos + 4 < len(data) and index < limit:
            size, start = _vint(data, pos + 4)
            end = start + size
            head_type, cursor = _vint(data, start)
            flags, cursor = _vint(data, cursor)
            extra = _vint(data, cursor)[0] if flags & 0x0001 else 0
            cursor = _vint(data, cursor)[1] if flags & 0x0001 else cursor
            data_size = _vint(data, cursor)[0] if flags & 0x0002 else 0
            if head_type == 2:
                if extra and _has_crypt_record(data, end - extra, end):
                    found.add(index)
                index += 1
            elif head_type == 5 or head_type == 4:  # end, or headers encrypted (libarchive says)
                break
            pos = end + data_size
    except IndexError:  # a cut header: libarchive reports the damage
        pass
    return found


def _has_crypt_record(data: bytes, pos: int, end: int) -> bool:
    while pos < end:
        size, after = _vint(data, pos)
        if _vint(data, after)[0] == 0x01:  # file encryption record
            return True
        pos = after + max(size, 1)
    return False


def _entry_encrypted(entry: object) -> bool:
    """libarchive's own flag (data or metadata encrypted); libarchive-c does not expose it."""
    from ctypes import c_int, c_void_p

    from libarchive import ffi

    check = ffi.libarchive.archive_entry_is_encrypted
    check.argtypes, check.restype = [c_void_p], c_int
    return bool(check(entry._entry_p))  # type: ignore[attr-defined]


READERS: dict[str, Callable[[str, bytes, Context, int, Dispatch], Iterator[Unit]]] = {
    "gzip": _stream_reader(_Gzip, _gzip_name),
    "bzip2": _stream_reader(bz2.BZ2Decompressor, lambda _data: None),
    "xz": _stream_reader(lambda: lzma.LZMADecompressor(), lambda _data: None),
    "tar": extract_tar,
    "7z": extract_7z,
    "libarchive": extract_libarchive,
}
