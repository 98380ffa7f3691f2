"""What a file is, by its content (magic bytes and structure); the name only breaks ties.

``sniff`` never trusts a prefix alone: containers are checked for a structure that
parses (zip central directory, OLE directory, tar header checksum), harmless kinds
must pass a full structure walk (``harmless.py``), and bytes that fail every
structured reader but read as text are scanned as text. The only outcomes are a
reader to use, a harmless kind, ``corrupt`` (the name promised a format the bytes
do not have) or ``unsupported`` (an unknown binary: held as ``unsupported_format``).
"""

from __future__ import annotations

import codecs
import io
import posixpath
import re
import zipfile
from dataclasses import dataclass

import olefile

from dlp_gateway.extract.harmless import harmless_kind

XLSX_EXTENSIONS = {".xlsx", ".xlsm", ".xltx", ".xltm", ".xlsb", ".xlam"}
DOCX_EXTENSIONS = {".docx", ".docm", ".dotx", ".dotm"}
OFFICE_EXTENSIONS = XLSX_EXTENSIONS | DOCX_EXTENSIONS | {
    ".xls", ".doc", ".ppt", ".pptx", ".ods", ".odt", ".xlt", ".dot"
}
ARCHIVE_EXTENSIONS = {".zip", ".gz", ".tgz", ".tar", ".bz2", ".xz", ".7z", ".rar", ".lzh",
                      ".lha", ".cab", ".msg", ".pdf"}
# A name that promises one of these and content that does not parse is corrupt.
STRUCTURED_EXTENSIONS = OFFICE_EXTENSIONS | ARCHIVE_EXTENSIONS | {".eml", ".csv", ".tsv"}

ODF_TEXT_TYPES = ("application/vnd.oasis.opendocument.",)
_SPREADSHEETML = re.compile(rb"urn:schemas-microsoft-com:office:spreadsheet")
_HTML_START = re.compile(rb"<\s*(!doctype\s+html|html|head|body|table|meta)\b", re.IGNORECASE)
_VCARD = re.compile(rb"(\xef\xbb\xbf)?\s*BEGIN:VCARD\s*$", re.IGNORECASE | re.MULTILINE)
_LZH = re.compile(rb"-(lh[0-7d]|lz[s45])-")
_SOFT_CONTROLS = frozenset(b"\x00\x0c\x1a")  # NUL padding, form feed, DOS EOF
_HARD_CONTROLS = frozenset(set(range(0, 9)) | {11} | set(range(14, 27)) | set(range(28, 32))
                           | {127}) - _SOFT_CONTROLS
_TEXT_CANDIDATES = ("utf-8", "cp932", "euc_jp")
# RFC 822 header fields that mark a saved mail (two of them open the file).
_MAIL_HEADERS = frozenset({
    b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"mime-version", b"received",
    b"return-path", b"content-type", b"reply-to", b"sender", b"delivered-to",
    b"content-transfer-encoding", b"x-mailer", b"user-agent", b"in-reply-to", b"references"})
_HEADER_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")


@dataclass(frozen=True, slots=True)
class Kind:
    """``kind`` names the reader; ``content_type`` the harmless kind or the format."""

    kind: str
    content_type: str = ""
    detail: str = ""


def extension(name: str) -> str:
    return posixpath.splitext(name.lower())[1]


def sniff(name: str, data: bytes, harmless_dir: str | None = None) -> Kind:
    """Classify ``data`` by content; ``name`` only tells corrupt from unsupported."""
    if not data:
        return Kind("harmless", "empty")
    kind = _container(data) or _compressed(data) or _message(data) or _marked(data)
    if kind is not None:
        return kind
    harmless = harmless_kind(data, harmless_dir)
    if harmless is not None:
        return Kind("harmless", harmless)
    return _textual(name, data)


def _container(data: bytes) -> Kind | None:
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return _sniff_zip(data)
    if data.startswith(olefile.MAGIC):
        return _sniff_ole(data)
    return None


def _compressed(data: bytes) -> Kind | None:
    """Compressed streams and archives, each by a signature long enough not to be text."""
    if data.startswith(b"\x1f\x8b\x08"):
        return Kind("gzip", "application/gzip")
    if re.match(rb"BZh[1-9](1AY&SY|\x17rE8P\x90)", data[:10]):
        return Kind("bzip2", "application/x-bzip2")
    if data.startswith(b"\xfd7zXZ\x00"):
        return Kind("xz", "application/x-xz")
    if data.startswith(b"7z\xbc\xaf\x27\x1c"):
        return Kind("7z", "application/x-7z-compressed")
    if data.startswith((b"Rar!\x1a\x07\x00", b"Rar!\x1a\x07\x01\x00")):
        return Kind("libarchive", "application/vnd.rar")
    if data.startswith(b"MSCF\0\0\0\0"):
        return Kind("libarchive", "application/vnd.ms-cab-compressed")
    if len(data) > 21 and _LZH.fullmatch(data[2:7]):
        return Kind("libarchive", "application/x-lzh-compressed")
    if data.startswith(b"\x78\x9f\x3e\x22"):
        return Kind("tnef", "application/ms-tnef")
    if is_tar(data):
        return Kind("tar", "application/x-tar")
    return None


def _message(data: bytes) -> Kind | None:
    """A saved mail (.eml under any name or none): read as a mail, its parts decoded."""
    if mail_header(data) == "clean":
        return Kind("message", "message/rfc822")
    return None


def mail_header(data: bytes) -> str | None:
    """How ``data`` opens as an RFC 822 message: "clean" (header fields up to the blank
    line or the end of the sample, two of them well-known mail fields; an mbox "From "
    line may come first), "damaged" (the same with a stray line or two: a flipped byte,
    an editor's line) or None.

    The header block of a real saved mail runs to many KiB (Received, DKIM, ARC), so the
    sample is the first 64 KiB, not a few lines.
    """
    lines = data[:65536].lstrip().split(b"\n", 1000)
    if lines and lines[0].startswith(b"From "):
        lines = lines[1:]
    known = good = bad = 0
    for raw in lines[:1000]:
        line = raw.rstrip(b"\r")
        if not line:
            break
        if line[:1] in (b" ", b"\t") and good:
            continue  # a folded field
        match = _HEADER_NAME.match(line)
        if match is None:
            bad += 1
            if bad > 2 or not good:
                return None
            continue
        good += 1
        known += match.group(1).lower() in _MAIL_HEADERS
    if known < 2:
        return None
    return "clean" if bad == 0 else "damaged"


def without_stray_lines(data: bytes) -> bytes:
    """A mail whose header block holds stray lines, without them (the parser would take
    the first one for the start of the body and leave the MIME fields after it unread)."""
    lines = data.split(b"\n")
    kept: list[bytes] = []
    for index, raw in enumerate(lines):
        line = raw.rstrip(b"\r")
        if not line:
            return b"\n".join(kept + lines[index:])
        if (line[:1] in (b" ", b"\t") and kept) or _HEADER_NAME.match(line) or (
                not kept and line.startswith(b"From ")):
            kept.append(raw)
    return b"\n".join(kept)


def _marked(data: bytes) -> Kind | None:
    """Formats announced by a text marker; their reader falls back to text if they fail."""
    if b"%PDF-" in data[:1024]:
        return Kind("pdf", "application/pdf")
    if data.lstrip()[:5] == b"{\\rtf":
        return Kind("rtf", "application/rtf")
    head = data[:4096]
    if head.lstrip().startswith(b"<") and _SPREADSHEETML.search(head):
        return Kind("spreadsheetml", "application/vnd.ms-excel (SpreadsheetML 2003)")
    if _VCARD.match(head):  # the file is an address book, not text that quotes a card
        return Kind("vcard", "text/vcard")
    return None


def _textual(name: str, data: bytes) -> Kind:
    if text_profile(data) is not None:
        head = data[:4096]
        if _HTML_START.search(head.lstrip()[:512]) or _HTML_START.match(head.lstrip()):
            return Kind("html", "text/html")
        return Kind("text", "text/plain")
    if _embedded_zip(data):
        return Kind("zip", "application/zip", "zip after a stub (self-extracting archive)")
    if mail_header(data) is not None:  # a damaged header block over 8-bit binary parts
        return Kind("message", "message/rfc822", "damaged header")
    if extension(name) in STRUCTURED_EXTENSIONS:
        return Kind("corrupt", detail=f"not a valid {extension(name)} file")
    return Kind("unsupported", "application/octet-stream", "unknown binary format")


def is_tar(data: bytes) -> bool:
    """A POSIX/GNU tar: the first header's checksum adds up (magic alone is not enough)."""
    if len(data) < 512:
        return False
    header = data[:512]
    try:
        stored = int(header[148:156].replace(b"\0", b" ").strip() or b"-1", 8)
    except ValueError:
        return False
    computed = sum(header[:148]) + 8 * 32 + sum(header[156:])
    return stored == computed


def _embedded_zip(data: bytes) -> bool:
    """A zip appended to something else (self-extracting .exe): the end record is found."""
    if b"PK\x05\x06" not in data[-(1 << 16) - 22 :]:
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return bool(zf.infolist())
    except Exception:
        return False


# --- text ---------------------------------------------------------------------------------


def text_profile(data: bytes) -> str | None:
    """"utf16", "text" (maybe with NUL padding / form feeds) or None if not text.

    Text is judged on the first 8 KiB: hard control bytes at most 1 %, NUL/FF/EOF
    padding allowed, and what remains decodes in a Japanese-capable charset with
    at most 1 % bad bytes.
    """
    sample = data[:8192]
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf16"
    if _utf16_without_bom(sample):
        return "utf16"
    hard = sum(1 for b in sample if b in _HARD_CONTROLS and b != 0x1B)
    if hard > max(1, len(sample) // 100):
        return None
    content = bytes(b for b in sample if b not in _SOFT_CONTROLS)
    if not content.strip() or len(content) < len(sample) // 10:
        return None
    if len(data) > len(sample):
        content = content[:-4]  # a multibyte character may be cut at the sample end
    allowed = max(4, len(content) // 100)
    for encoding in _TEXT_CANDIDATES:
        if content.decode(encoding, errors="replace").count("\ufffd") <= allowed:
            return "text"
    return None


def _utf16_without_bom(sample: bytes) -> bool:
    if len(sample) < 4 or not sample.count(0):
        return False
    zeros_even, zeros_odd = sample[0::2].count(0), sample[1::2].count(0)
    return min(zeros_even, zeros_odd) == 0 and max(zeros_even, zeros_odd) > len(sample) // 8


def clean_text_bytes(data: bytes) -> bytes:
    """Padding NULs -> spaces (keeps fixed-width columns aligned); FF and EOF dropped."""
    if not any(b in data for b in (b"\x00", b"\x0c", b"\x1a")):
        return data
    return data.replace(b"\x00", b" ").replace(b"\x0c", b"").replace(b"\x1a", b"")


# --- zip and OLE containers ---------------------------------------------------------------


def _sniff_zip(data: bytes) -> Kind:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
            mimetype = _zip_mimetype(zf, names)
    except Exception as exc:
        return Kind("corrupt", detail=f"zip: {type(exc).__name__}: {exc}")
    if "word/document.xml" in names:
        return Kind("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml")
    if "xl/workbook.xml" in names or "xl/workbook.bin" in names:
        return Kind("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml")
    if "ppt/presentation.xml" in names:
        return Kind("pptx", "application/vnd.openxmlformats-officedocument.presentationml")
    if mimetype.startswith(b"application/vnd.oasis.opendocument.spreadsheet"):
        return Kind("ods", mimetype.decode("ascii", "replace"))
    if mimetype.startswith(b"application/vnd.oasis.opendocument.") and "content.xml" in names:
        return Kind("odf", mimetype.decode("ascii", "replace"))
    return Kind("zip", "application/zip")


def _zip_mimetype(zf: zipfile.ZipFile, names: set[str]) -> bytes:
    """The OpenDocument ``mimetype`` member, if present and readable."""
    if "mimetype" not in names:
        return b""
    try:
        return zf.read("mimetype")[:100].strip()
    except Exception:
        return b""


def _sniff_ole(data: bytes) -> Kind:
    try:
        ole = olefile.OleFileIO(data)
    except Exception as exc:
        return Kind("corrupt", detail=f"OLE: {type(exc).__name__}: {exc}")
    try:
        streams = {"/".join(entry) for entry in ole.listdir(streams=True, storages=True)}
        lowered = {s.lower() for s in streams}
        if "encryptedpackage" in lowered or "encryptioninfo" in lowered:
            return Kind("encrypted_office", detail="EncryptedPackage stream")
        if "workbook" in lowered or "book" in lowered:
            return Kind("xls", "application/vnd.ms-excel")
        if "worddocument" in lowered:
            if _word_encrypted(ole):
                return Kind("encrypted_office", detail="encrypted Word 97-2003 document")
            return Kind("doc", "application/msword")
        if "powerpoint document" in lowered:
            if "encryptedsummary" in lowered:
                return Kind("encrypted_office", detail="encrypted PowerPoint 97-2003 file")
            return Kind("ppt", "application/vnd.ms-powerpoint")
        if any(s.startswith("__substg1.0_") for s in lowered):
            return Kind("msg", "application/vnd.ms-outlook")
        if "package" in lowered or "\x01ole10native" in lowered:
            return Kind("ole_package", "application/x-ole-storage")
        return Kind("unsupported", "application/x-ole-storage", "unknown OLE compound file")
    finally:
        ole.close()


def _word_encrypted(ole: olefile.OleFileIO) -> bool:
    """FIB flag fEncrypted (bit 8 of the 16-bit flags at offset 0x0A)."""
    try:
        fib = ole.openstream("WordDocument").read(12)
    except Exception:
        return False
    return len(fib) >= 12 and bool(fib[0x0B] & 0x01)
