"""Decoding Japanese text of unknown charset, and csv/tsv/txt files as units.

Japanese mail and files arrive in UTF-8, cp932 (Shift_JIS), EUC-JP, ISO-2022-JP
and UTF-16, often with a wrong or missing charset label. ``decode_bytes`` tries
the declared charset and the usual suspects, scores the candidates that decode
cleanly by how Japanese they look, and never raises.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import replace

from dlp_gateway.extract.units import AltPath, Row, TableUnit, TextUnit

# Large quoted fields happen (addresses pasted with newlines); do not fail on them.
csv.field_size_limit(64 << 20)

SAMPLE_BYTES = 256 << 10

_ALIASES = {
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "s-jis": "cp932",
    "ms_kanji": "cp932",
    "csshiftjis": "cp932",
    "windows-31j": "cp932",
    "ms932": "cp932",
    "x-ms-cp932": "cp932",
    "cp932": "cp932",
    "shift_jisx0213": "cp932",
    "shift_jis_2004": "cp932",
    "euc-jp": "euc_jp",
    "x-euc-jp": "euc_jp",
    "eucjp": "euc_jp",
    "euc_jp": "euc_jp",
    "cseucpkdfmtjapanese": "euc_jp",
    "iso-2022-jp": "iso2022_jp",
    "csiso2022jp": "iso2022_jp",
    "iso-2022-jp-1": "iso2022_jp_1",
    "iso-2022-jp-2": "iso2022_jp_2",
    "iso-2022-jp-3": "iso2022_jp_3",
    "iso-2022-jp-2004": "iso2022_jp_2004",
    "us-ascii": "ascii",
    "ascii": "ascii",
    "utf8": "utf-8",
    "utf-8": "utf-8",
}

# ISO-2022-JP as written by real clients may carry NEC / JIS X 0213 characters (①).
_ISO2022_CHAIN = ("iso2022_jp", "iso2022_jp_ext", "iso2022_jp_2004", "iso2022_jp_2")
_FALLBACK_CHAIN = ("utf-8", "cp932", "euc_jp")
_SINGLE_BYTE = {"latin_1", "iso8859_1", "cp1252", "ascii"}
# A candidate with more bad bytes than this (per non-ASCII character) is not a reading.
MAX_BAD_RATIO = 0.1
FEW_BAD_CHARS = 4  # a damaged byte can break up to ~3 characters of a multi-byte charset
UTF8_GOOD_PER_BAD = 4  # valid multi-byte characters needed per bad byte to stay UTF-8
MAX_ALT_BAD_RATIO = 0.03  # stricter for an alternative reading of the same bytes
# Alternative readings are tried for data up to this size (text is small next to tables).
MAX_ALTERNATIVE_BYTES = 4 << 20
# An alternative reading must score at least this share of the best one's score.
PLAUSIBLE_SCORE_SHARE = 0.6


def normalize_charset(name: str | None) -> str | None:
    """Map a MIME charset label to a Python codec name, or None if unknown."""
    if not name:
        return None
    label = name.strip().strip('"').lower()
    if label in _ALIASES:
        return _ALIASES[label]
    try:
        return codecs.lookup(label).name
    except (LookupError, ValueError):
        return None


def _bom_encoding(data: bytes) -> str | None:
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)) and len(data) % 4 == 0:
        return "utf-32"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return None


def _utf16_without_bom(sample: bytes) -> str | None:
    """UTF-16 text of mostly ASCII/kana has NULs at every other byte."""
    if len(sample) < 4 or sample.count(0) < len(sample) // 4:
        return None
    even = sample[0::2].count(0)
    odd = sample[1::2].count(0)
    if odd > even * 3:
        return "utf-16-le"
    if even > odd * 3:
        return "utf-16-be"
    return None


def _try_decode(sample: bytes, encoding: str, final: bool) -> str | None:
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        return decoder.decode(sample, final=final)
    except (UnicodeDecodeError, LookupError, ValueError):
        return None


SEVEN_BIT = "7bit"  # a pseudo-codec: ISO-2022-JP bytes read as plain ASCII


def decode_text(data: bytes, encoding: str) -> str:
    """``data.decode(encoding, "replace")``; ISO-2022-JP line by line.

    Every line of ISO-2022-JP starts in ASCII (RFC 1468). Decoded as one stream, a
    single damaged escape sequence would leave the decoder in JIS X 0208 and turn all
    the ASCII that follows (the numbers) into kanji; line by line it costs one line.
    """
    if encoding == SEVEN_BIT:  # ISO-2022-JP with its escapes dropped: the ASCII in sight
        return _ISO2022_ESCAPE.sub(b"", data).decode("ascii", errors="replace")
    if encoding.endswith("+1"):  # the same codec one byte further (UTF-16 phase)
        return decode_text(data[1:], encoding[:-2])
    if encoding.startswith("iso2022"):
        return "".join(_iso2022_line(line, encoding)
                       for line in data.splitlines(keepends=True))
    return data.decode(encoding, errors="replace")


_ISO2022_ESCAPE = re.compile(rb"\x1b(?:\([BJI]|\$[@B]|\$\([DOPQ])")
_ISO2022_ASCII = (b"\x1b(B", b"\x1b(J")


def _iso2022_line(line: bytes, encoding: str) -> str:
    """One ISO-2022-JP line, each escape-delimited segment decoded on its own.

    A damaged escape (a stray ESC, a byte inside the sequence) returns to ASCII
    instead of leaving the rest of the line read as kanji.
    """
    if b"\x1b" not in line:
        return line.decode(encoding, errors="replace")
    out: list[str] = []
    mode = b"\x1b(B"
    pos = 0
    for match in _ISO2022_ESCAPE.finditer(line):
        out.append(_iso2022_segment(line[pos:match.start()], mode, encoding))
        mode, pos = match.group(0), match.end()
    out.append(_iso2022_segment(line[pos:], mode, encoding))
    return "".join(out)


def _iso2022_segment(chunk: bytes, mode: bytes, encoding: str) -> str:
    if b"\x1b" in chunk:  # a broken escape: what follows it is most likely ASCII
        head, _esc, tail = chunk.partition(b"\x1b")
        tail = tail.lstrip(bytes(range(0x20)) + b"\x7f").removeprefix(b"(B")
        return _iso2022_segment(head, mode, encoding) + tail.decode("ascii", "replace")
    if mode in _ISO2022_ASCII or not chunk:
        return chunk.decode("ascii", errors="replace")
    return (mode + chunk + b"\x1b(B").decode(encoding, errors="replace")


def _lenient_decode(sample: bytes, encoding: str, final: bool) -> str | None:
    """Decode with bad bytes replaced (U+FFFD); None only for an unknown codec."""
    if encoding.startswith("iso2022"):
        try:
            return decode_text(sample, encoding)
        except (LookupError, ValueError, UnicodeError):
            return None
    try:
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        return decoder.decode(sample, final=final)
    except (LookupError, ValueError, UnicodeError):
        return None


def few_errors(text: str, ratio: float) -> bool:
    """At most FEW_BAD_CHARS replacement characters, or ``ratio`` per non-ASCII char."""
    bad = text.count("\ufffd")
    return bad <= FEW_BAD_CHARS or bad_ratio(text) <= ratio


def bad_ratio(text: str) -> float:
    """Replacement characters per non-ASCII character (0.0 = a clean decoding)."""
    bad = text.count("\ufffd")
    if not bad:
        return 0.0
    non_ascii = sum(1 for ch in text if ord(ch) > 0x7F)
    return bad / max(1, non_ascii)


def japanese_score(text: str) -> float:
    """How much ``text`` looks like (Japanese or ASCII) text, per character.

    Mojibake from decoding EUC-JP as cp932 shows as half-width katakana interleaved
    with kanji; private-use and control characters show a wrong decoding too.
    """
    if not text:
        return 0.0
    score = 0.0
    prev_kind = ""
    for ch in text[:20000]:
        o = ord(ch)
        if o < 0x80:
            kind = "a"
            score += 0.5 if (ch.isprintable() or ch in "\r\n\t") else -5
        elif 0x3040 <= o <= 0x309F:
            kind = "h"
            score += 3
        elif 0x30A0 <= o <= 0x30FF:
            kind = "k"
            score += 2
        elif 0x4E00 <= o <= 0x9FFF:
            kind = "c"
            score += 1
        elif 0x3000 <= o <= 0x303F or 0xFF01 <= o <= 0xFF5E:
            kind = "p"
            score += 1
        elif 0xFF61 <= o <= 0xFF9F:
            kind = "w"
            score += 1
        elif 0xE000 <= o <= 0xF8FF or o == 0xFFFD or 0x80 <= o <= 0x9F:
            kind = "x"
            score -= 5
        else:
            kind = "o"
            score -= 0.5 if unicodedata.category(ch).startswith("L") else 1
        if (kind == "w" and prev_kind in "hkc") or (prev_kind == "w" and kind in "hkc"):
            score -= 3
        prev_kind = kind
    return score / min(len(text), 20000)


def _mostly_utf8(sample: bytes, final: bool) -> bool:
    """Valid UTF-8, or UTF-8 with a few bad bytes among many good multi-byte characters.

    Text in another charset almost never forms valid multi-byte UTF-8 sequences, so
    a handful of broken bytes must not turn a UTF-8 part into cp932 mojibake.
    """
    text = _lenient_decode(sample, "utf-8", final)
    if text is None:
        return False
    bad = text.count("\ufffd")
    if not bad:
        return True
    good = sum(1 for ch in text if ord(ch) > 0x7F) - bad
    return good >= 2 and bad * UTF8_GOOD_PER_BAD <= good


def _candidates(declared_codec: str | None, sample: bytes) -> list[str]:
    out: list[str] = []
    if declared_codec and declared_codec not in _SINGLE_BYTE:
        out.append(declared_codec)
    if b"\x1b$" in sample or b"\x1b(" in sample:
        out += [e for e in _ISO2022_CHAIN[:1] if e not in out]
    out += [e for e in _FALLBACK_CHAIN if e not in out]
    return out


def choose_encoding(data: bytes, declared: str | None = None) -> str:
    """Pick a codec for ``data`` (the declared charset if it fits). Never raises.

    Candidates are decoded *leniently*: a few bad bytes in a UTF-8 (or declared)
    part cost a little score, they never make a whole part switch to a charset that
    turns its keywords to mojibake.
    """
    bom = _bom_encoding(data)
    if bom:
        return bom
    sample = data[:SAMPLE_BYTES]
    final = len(data) <= SAMPLE_BYTES
    utf16 = _utf16_without_bom(sample)
    if utf16 and few_errors(_lenient_decode(sample, utf16, final) or "\ufffd" * 9,
                            MAX_BAD_RATIO):
        return utf16
    declared_codec = normalize_charset(declared)
    if sample.isascii():
        if b"\x1b$" in sample or b"\x1b(" in sample:
            for enc in _ISO2022_CHAIN:
                if _try_decode(sample, enc, final) is not None:
                    return enc
            return _ISO2022_CHAIN[-1]  # replaces what it cannot read, keeps the rest
        return "utf-8" if declared_codec in (None, "ascii") else declared_codec
    if _mostly_utf8(sample, final):
        return "utf-8"  # multi-byte UTF-8 that validates is practically never accidental
    best: tuple[float, int, str] | None = None
    for order, enc in enumerate(_candidates(declared_codec, sample)):
        text = _lenient_decode(sample, enc, final)
        if text is None:
            continue
        if not few_errors(text, MAX_BAD_RATIO):
            continue
        ratio = bad_ratio(text)
        score = _non_ascii_score(text.replace("\ufffd", "")) - 2 * ratio
        key = (score + (0.3 if enc == declared_codec else 0.0), -order, enc)
        if best is None or key > best:
            best = key
    if best is not None:
        return best[2]
    if declared_codec in _SINGLE_BYTE:
        return declared_codec  # honoured only when nothing Japanese fits
    from charset_normalizer import from_bytes  # only for text that is not UTF-8

    guess = from_bytes(sample).best()
    if guess is not None and guess.encoding:
        return normalize_charset(guess.encoding) or guess.encoding
    return declared_codec or "cp932"


def decode_bytes(data: bytes, declared: str | None = None) -> str:
    """Decode text of uncertain charset; never raises (last resort: replacement chars)."""
    encoding = choose_encoding(data, declared)
    try:
        return decode_text(data, encoding)
    except (LookupError, ValueError):
        return data.decode("utf-8", errors="replace")


def _non_ascii_score(text: str) -> float:
    """``japanese_score`` of the non-ASCII characters only (markup would dilute it)."""
    return japanese_score("".join(ch for ch in text[:100000] if ord(ch) > 0x7F) or "a")


def decodings(data: bytes, declared: str | None = None) -> list[tuple[str, str]]:
    """Every plausible (encoding, text) of ``data``, the best first; never empty.

    The first is ``decode_bytes``. The others are candidates that decode with few
    bad bytes and still look like text, and whose text differs from those before:
    a mislabelled part is then scanned under each reading, so a wrong guess cannot
    turn a roster into mojibake that passes. Large data gets the best reading only.
    """
    primary = choose_encoding(data, declared)
    try:
        first = decode_text(data, primary)
    except (LookupError, ValueError):
        primary, first = "utf-8", data.decode("utf-8", errors="replace")
    out = [(primary, first)]
    if len(data) > MAX_ALTERNATIVE_BYTES:
        return out
    if data[:SAMPLE_BYTES].count(0) * 10 >= min(len(data), SAMPLE_BYTES):
        return out + _utf16_readings(data, {first}) if _utf16_damaged(primary, first) else out
    if primary.startswith("iso2022"):
        if not _iso2022_damaged(data, first):
            return out
        # a destroyed escape sequence leaves a line read as kanji: the 7-bit reading
        # (escapes dropped) keeps its ASCII, numbers included, in sight
        seven_bit = decode_text(data, SEVEN_BIT)
        return out + ([(SEVEN_BIT, seven_bit)] if seven_bit != first else [])
    if data.isascii() or primary.startswith(("utf-16", "utf-32")):
        return out
    clean = "\ufffd" not in first
    if clean and (primary == "utf-8" or primary == normalize_charset(declared)):
        return out  # a clean UTF-8 or as-declared reading is never an accident
    seen = {first}
    # a reading far less Japanese-looking than the best one is mojibake, not a reading
    floor = max(0.0, _non_ascii_score(first) * PLAUSIBLE_SCORE_SHARE)
    for enc in _candidates(normalize_charset(declared), data[:SAMPLE_BYTES]):
        if enc == primary or (primary == "utf-8-sig" and enc == "utf-8"):
            continue
        text = _lenient_decode(data, enc, True)
        if text is None or text in seen:
            continue
        if not few_errors(text, MAX_ALT_BAD_RATIO) or _non_ascii_score(text) <= floor:
            continue
        seen.add(text)
        out.append((enc, text))
    return out


def _iso2022_damaged(data: bytes, text: str) -> bool:
    """Bad bytes, or escape sequences that lost their ESC ("(B" without "\x1b(B")."""
    return "\ufffd" in text or b"\x1b" in _ISO2022_ESCAPE.sub(b"", data) or (
        data.count(b"(B") > data.count(b"\x1b(B") or data.count(b"$B") > data.count(b"\x1b$B"))


def _utf16_damaged(encoding: str, text: str) -> bool:
    """NUL-rich data not read as clean UTF-16: bad characters, or ASCII shifted a byte
    (U+3100 for "1": a character whose low byte is 0 and high byte printable ASCII)."""
    if not encoding.startswith("utf-16") or "\ufffd" in text or "\x00" in text:
        return True
    shifted = sum(1 for ch in text[:100000] if not ord(ch) & 0xFF and 0x20 <= ord(ch) >> 8 < 0x7F)
    return shifted >= 4


_UTF16_READINGS = ("utf-16-le", "utf-16-be", "utf-16-le+1", "utf-16-be+1")


def _utf16_readings(data: bytes, seen: set[str]) -> list[tuple[str, str]]:
    """NUL-rich data: UTF-16 in both byte orders and both byte phases. A byte lost or
    added (or a damaged BOM) shifts the rest of a UTF-16 text into garbage that still
    decodes without errors; one of the four readings has each stretch right."""
    out = []
    for enc in _UTF16_READINGS:
        text = decode_text(data, enc).lstrip("\ufeff")
        if text not in seen:
            seen.add(text)
            out.append((enc, text))
    return out


# --- text files -----------------------------------------------------------------------

_TABLE_EXTENSIONS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}


def _sniff_delimiter(head: str) -> str | None:
    """Comma or tab if the first lines split consistently into 2+ fields."""
    lines = [line for line in head.splitlines()[:20] if line.strip()]
    if len(head.splitlines()) > 20:
        lines = lines[:-1]  # the last line of a cut sample may be partial
    if len(lines) < 2:
        return None
    for delimiter in ("\t", ","):
        try:
            widths = [len(r) for r in csv.reader(lines, delimiter=delimiter)]
        except csv.Error:
            continue
        if widths and min(widths) >= 2 and max(widths) == min(widths):
            return delimiter
    return None


def _csv_delimiter(head: str, extension: str) -> str:
    """The extension's delimiter if the first line has it, else the one it has
    (a comma-separated file named .tsv is still read in columns)."""
    first = head.split("\n", 1)[0]
    named = _TABLE_EXTENSIONS[extension]
    if named in first:
        return named
    present = [(first.count(d), d) for d in (",", "\t", ";") if d in first]
    return max(present)[1] if present else named


def csv_table(path: str, data: bytes, encoding: str, delimiter: str) -> TableUnit:
    """A TableUnit over delimited text, streamed: nothing is decoded until rows() runs."""

    def rows() -> Iterator[Row]:
        stream: io.TextIOBase
        if encoding.startswith("iso2022") or encoding.endswith("+1") or encoding == SEVEN_BIT:
            stream = io.StringIO(decode_text(data, encoding), newline="")
        else:
            stream = io.TextIOWrapper(io.BytesIO(data), encoding=encoding, errors="replace",
                                      newline="")
        reader = csv.reader(stream, delimiter=delimiter)
        start = 1
        for record in reader:
            if "" in record:
                record = [value or None for value in record]  # an empty field is None
            yield Row(start, record)
            start = reader.line_num + 1

    return TableUnit(part=path, location=path, rows=rows, cell_style="a1")


def estimate_cells(data: bytes, head: str, delimiter: str) -> int:
    """Rough cell count (lines x first-line width) for the message-wide cell budget."""
    first = head.split("\n", 1)[0]
    return (data.count(b"\n") + 1) * (first.count(delimiter) + 1)


def text_units(
    path: str, data: bytes, extension: str, declared: str | None = None
) -> tuple[TextUnit | TableUnit, int]:
    """A .csv/.tsv (or tabular-looking text) as a table, other text as one TextUnit.

    Returns the unit and its estimated cell count (0 for free text).
    """
    encoding = choose_encoding(data, declared)
    head = decode_text(data[:SAMPLE_BYTES], encoding)
    if head.startswith("\ufeff"):
        head = head[1:]
    delimiter: str | None
    if extension in _TABLE_EXTENSIONS:
        delimiter = _csv_delimiter(head, extension)
    else:
        delimiter = _sniff_delimiter(head)
    if delimiter is not None:
        return csv_table(path, data, encoding, delimiter), estimate_cells(data, head, delimiter)
    text = decode_text(data, encoding).lstrip("\ufeff")
    return TextUnit(text=text, part=path, location=path), 0


def alt_location(location: str, encoding: str) -> str:
    """Location of an alternative reading: ``memo.txt[euc_jp]``."""
    return f"{location}[{encoding}]"


def charset_alt(location: str, encoding: str) -> AltPath:
    return ((f"{location}#charset", encoding),)


def text_file_units(
    path: str, data: bytes, extension: str, declared: str | None = None
) -> tuple[list[TextUnit | TableUnit], int]:
    """Like ``text_units``, plus one unit per alternative plausible decoding.

    With several readings every unit carries an ``alt`` path of one group (the
    scan counts the reading with the most person records). Returns the units and
    the estimated cell count of one reading (0 for free text).
    """
    unit, cells = text_units(path, data, extension, declared)
    readings = decodings(data, declared) if len(data) <= MAX_ALTERNATIVE_BYTES else []
    if len(readings) < 2:
        return [unit], cells
    primary = readings[0][0]
    units: list[TextUnit | TableUnit] = [_with_alt(unit, charset_alt(path, primary))]
    for encoding, decoded in readings[1:]:
        alt = charset_alt(path, encoding)
        location = alt_location(path, encoding)
        if isinstance(unit, TableUnit):
            delimiter = _sniff_delimiter(decoded[:SAMPLE_BYTES]) or (
                _csv_delimiter(decoded[:SAMPLE_BYTES], extension)
                if extension in _TABLE_EXTENSIONS else ","
            )
            table = csv_table(path, data, encoding, delimiter)
            table.location, table.alt = location, alt
            units.append(table)
        else:
            units.append(TextUnit(decoded.lstrip("\ufeff"), part=path, location=location,
                                  alt=alt))
    return units, cells


def text_readings(
    part: str, location: str, data: bytes, declared: str | None, **fields: object
) -> list[TextUnit]:
    """One TextUnit per plausible decoding of ``data`` (a mail body, a header)."""
    readings = decodings(data, declared)
    if len(readings) == 1:
        return [TextUnit(readings[0][1], part=part, location=location, **fields)]  # type: ignore[arg-type]
    return [
        TextUnit(decoded, part=part,
                 location=location if i == 0 else alt_location(location, encoding),
                 alt=charset_alt(location, readings[0][0] if i == 0 else encoding),
                 **fields)  # type: ignore[arg-type]
        for i, (encoding, decoded) in enumerate(readings)
    ]


def _with_alt(unit: TextUnit | TableUnit, alt: AltPath) -> TextUnit | TableUnit:
    if isinstance(unit, TableUnit):
        unit.alt = alt
        return unit
    return replace(unit, alt=alt)
