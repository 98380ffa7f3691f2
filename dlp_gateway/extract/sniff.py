"""What a file is, by its content first and its name second."""

from __future__ import annotations

import io
import posixpath
import zipfile
from dataclasses import dataclass

import olefile

XLSX_EXTENSIONS = {".xlsx", ".xlsm", ".xltx", ".xltm", ".xlsb", ".xlam"}
DOCX_EXTENSIONS = {".docx", ".docm", ".dotx", ".dotm"}
OFFICE_EXTENSIONS = XLSX_EXTENSIONS | DOCX_EXTENSIONS | {
    ".xls", ".doc", ".ppt", ".pptx", ".ods", ".odt", ".xlt", ".dot"
}
# A name that promises one of these and content that does not parse is corrupt, not skipped.
STRUCTURED_EXTENSIONS = OFFICE_EXTENSIONS | {".zip", ".eml", ".csv", ".tsv"}

_IMAGES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)
_OTHER_BINARY = (
    (b"Rar!\x1a\x07", "application/vnd.rar"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"\x1f\x8b", "application/gzip"),
    (b"\xfd7zXZ\x00", "application/x-xz"),
    (b"\x78\x9f\x3e\x22", "application/ms-tnef"),
)
_CONTROL = set(range(0, 9)) | {11, 12} | set(range(14, 27)) | set(range(28, 32)) | {127}


@dataclass(frozen=True, slots=True)
class Kind:
    """``kind`` is the reader to use; ``content_type`` names it for Skipped parts."""

    kind: str  # empty docx xlsx ods zip xls encrypted_office ole_encrypted_doc skip text corrupt
    content_type: str = ""
    detail: str = ""


def extension(name: str) -> str:
    return posixpath.splitext(name.lower())[1]


def sniff(name: str, data: bytes) -> Kind:
    """Classify ``data``; ``name`` only breaks ties (text flavours, corrupt vs unknown)."""
    if not data:
        return Kind("empty", "empty")
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return _sniff_zip(data)
    if data.startswith(olefile.MAGIC):
        return _sniff_ole(data)
    head = data[:2048]
    if b"%PDF-" in head[:1024]:
        return Kind("skip", "application/pdf")
    for magic, content_type in _IMAGES:
        if data.startswith(magic):
            return Kind("skip", content_type)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return Kind("skip", "image/webp")
    if data.startswith(b"BM") and data[6:10] == b"\0\0\0\0":
        return Kind("skip", "image/bmp")
    if data.startswith(b"BZh") and data[3:4].isdigit():
        return Kind("skip", "application/x-bzip2")
    for magic, content_type in _OTHER_BINARY:
        if data.startswith(magic):
            return Kind("skip", content_type)
    if is_text(data):
        return Kind("text", "text/plain")
    if extension(name) in STRUCTURED_EXTENSIONS:
        return Kind("corrupt", detail=f"not a valid {extension(name)} file")
    return Kind("skip", "application/octet-stream")


def is_text(data: bytes) -> bool:
    """No NULs (unless UTF-16 by BOM) and few control bytes in the first 8 KiB."""
    sample = data[:8192]
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    if sample.count(0):
        # UTF-16 without BOM: NULs at every other byte, nowhere else
        zeros_even, zeros_odd = sample[0::2].count(0), sample[1::2].count(0)
        return min(zeros_even, zeros_odd) == 0 and max(zeros_even, zeros_odd) > len(sample) // 8
    control = sum(1 for b in sample if b in _CONTROL and b != 0x1B)
    return control <= max(1, len(sample) // 100)


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
    if mimetype == b"application/vnd.oasis.opendocument.spreadsheet":
        return Kind("ods", mimetype.decode())
    if "ppt/presentation.xml" in names:
        return Kind("pptx", "application/vnd.openxmlformats-officedocument.presentationml")
    if mimetype.startswith(b"application/vnd.oasis.opendocument."):
        return Kind("skip", mimetype.decode("ascii", "replace"))
    return Kind("zip", "application/zip")


def _zip_mimetype(zf: zipfile.ZipFile, names: set[str]) -> bytes:
    """The OpenDocument ``mimetype`` member, if present and readable."""
    if "mimetype" not in names:
        return b""
    try:
        return zf.read("mimetype")[:100]
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
            return Kind("skip", "application/msword")
        if "powerpoint document" in lowered:
            return Kind("skip", "application/vnd.ms-powerpoint")
        if any(s.startswith("__substg1.0_") for s in lowered):
            return Kind("skip", "application/vnd.ms-outlook")
        return Kind("skip", "application/x-ole-storage")
    finally:
        ole.close()


def _word_encrypted(ole: olefile.OleFileIO) -> bool:
    """FIB flag fEncrypted (bit 8 of the 16-bit flags at offset 0x0A)."""
    try:
        fib = ole.openstream("WordDocument").read(12)
    except Exception:
        return False
    return len(fib) >= 12 and bool(fib[0x0B] & 0x01)
