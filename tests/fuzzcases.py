"""Fail-closed fuzzing: builders of real files, mutations, and an independent oracle.

Adding a format means adding a builder to ``BUILDERS`` (name -> function of a
``random.Random`` and a roster, returning file bytes; the name is the file's
extension). Every format of tests/filebuilders.py is joined too (``JOINED``: rows ->
bytes, fed by ``persons_rows``), so a format added there is fuzzed here as well.

The oracle (``recoverable_numbers``) reads a file with ordinary tools only: the
raw bytes, UTF-16, zip members, MIME parts after transfer decoding. Whatever My
Number it can read back must either appear in the text the extractor produced, or
the extractor must have reported an ``Unscannable`` part (so the policy holds it).
UTF-16 is read per part from its first byte (see ``_utf16_readings``), compressed
streams as far as zcat/bzcat/xzcat get before damage.
"""

from __future__ import annotations

import base64
import bz2
import contextlib
import csv
import datetime as dt
import email
import email.policy
import gzip
import io
import lzma
import quopri
import random
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.message import EmailMessage

from dlp_gateway.extract.units import Skipped, TableUnit, TextUnit, Unit, Unscannable
from tests import filebuilders as fb
from tests.officebuilders import docx_package, para, person_line, roster_xlsx, row_xml, run
from tests.officebuilders import table_xml as docx_table
from tests.roster import HEADER, Person, people, roster_csv, roster_html, roster_prose

Builder = Callable[[random.Random, list[Person]], bytes]
TEXT_ENCODINGS = ["utf-8", "cp932", "euc_jp", "iso2022_jp", "utf-16", "utf-8-sig"]


def _encoding(rng: random.Random) -> str:
    return rng.choice(TEXT_ENCODINGS)


def build_txt(rng: random.Random, persons: list[Person]) -> bytes:
    return roster_prose(persons).encode(_encoding(rng))


def build_csv(rng: random.Random, persons: list[Person]) -> bytes:
    return roster_csv(persons, ",", rng.choice(["\r\n", "\n"])).encode(_encoding(rng))


def build_tsv(rng: random.Random, persons: list[Person]) -> bytes:
    return roster_csv(persons, "\t").encode(_encoding(rng))


def build_html(rng: random.Random, persons: list[Person]) -> bytes:
    return roster_html(persons).encode("utf-8")


def build_xlsx(rng: random.Random, persons: list[Person]) -> bytes:
    return roster_xlsx(persons)


def build_docx(rng: random.Random, persons: list[Person]) -> bytes:
    if rng.random() < 0.5:
        return docx_package(para(run("下記のとおり。")) + "".join(
            para(run(person_line(p))) for p in persons))
    rows = "".join(row_xml([p.my_number, p.name, p.birth_text]) for p in persons)
    return docx_package(para(run("名簿")) + docx_table(list(HEADER), rows))


def build_eml(rng: random.Random, persons: list[Person]) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@city.example.lg.jp", "b@example.com", "名簿"
    msg.set_content(roster_prose(persons), charset=rng.choice(["utf-8", "iso-2022-jp"]))
    return msg.as_bytes()


def build_zip(rng: random.Random, persons: list[Person]) -> bytes:
    buf = io.BytesIO()
    inner = rng.choice(["csv", "txt", "xlsx"])
    with zipfile.ZipFile(buf, "w", rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])) as zf:
        zf.writestr(f"名簿.{inner}", BUILDERS[inner](rng, persons))
    return buf.getvalue()


BUILDERS: dict[str, Builder] = {
    "txt": build_txt,
    "csv": build_csv,
    "tsv": build_tsv,
    "html": build_html,
    "xlsx": build_xlsx,
    "docx": build_docx,
    "eml": build_eml,
    "zip": build_zip,
}


# --- the formats of tests/filebuilders.py, joined through rows ------------------------------

NUMBER_LABELS = ["個人番号", "マイナンバー", "個人番号(マイナンバー)", "個人番号（12桁）"]
_ERAS = ((dt.date(2019, 5, 1), "令和", "R"), (dt.date(1989, 1, 8), "平成", "H"),
         (dt.date(1926, 12, 25), "昭和", "S"))


def _era(born: dt.date) -> tuple[str, str, int]:
    for start, name, letter in _ERAS:
        if born >= start:
            return name, letter, born.year - start.year + 1
    raise ValueError(born)


def birth_texts(born: dt.date) -> list[str]:
    """Ways a roster writes a birth date: 1970/03/02, 1970年3月2日, 昭和45年3月2日, S45.3.2."""
    name, letter, year = _era(born)
    era_year = "元" if year == 1 else str(year)
    return [f"{born.year}/{born.month:02d}/{born.day:02d}",
            f"{born.year}年{born.month}月{born.day}日",
            f"{name}{era_year}年{born.month}月{born.day}日",
            f"{letter}{year}.{born.month}.{born.day}"]


BIRTH_STYLES = ("slash", "kanji", "era", "era letter")


def persons_rows(rng: random.Random, persons: list[Person], label: str | None = None,
                 style: int | None = None) -> list[list[str]]:
    """filebuilders rows (a header, then number, name, birth date, address) for ``persons``.

    The number column is headed by a My Number keyword, or - for three people or more,
    when a column of check-digit-valid numbers counts by itself - by nothing at all
    (keyword-less rows). Birth dates in one style per file, Western, kanji or era.
    """
    if label is None:
        keyword_less = len(persons) >= 3 and rng.random() < 0.3
        label = "" if keyword_less else rng.choice(NUMBER_LABELS)
    if style is None:
        style = rng.randrange(len(BIRTH_STYLES))
    rows = [[label, "氏名", "生年月日", "住所"]]
    for p in persons:
        rows.append([p.my_number, p.name, birth_texts(p.birth)[style],
                     f"宮崎県延岡市{rng.randrange(1, 99)}番地"])
    return rows


def _joined(build: Callable[[fb.Rows], bytes]) -> Builder:
    return lambda rng, persons: build(persons_rows(rng, persons))


_TAGS = {"固定長": "fixed", "html": "html", "xml": "xml", "rtf": "rtf", "sjis": "sjis",
         "web": "web"}


def _joined_key(file_name: str) -> str:
    """名簿_html.xls -> "html.xls"; a name the native builders use gets "rows." first."""
    stem, ext = file_name.split(".", 1)
    tag = _TAGS[stem.split("_", 1)[1]] + "." if "_" in stem else ""
    key = tag + ext
    return "rows." + key if key in BUILDERS else key


JOINED: dict[str, Callable[[fb.Rows], bytes]] = {
    _joined_key(name): build for name, build in fb.BUILDERS.items()}
JOINED["rar"] = lambda rows: fb.rar4_of({"meibo.csv": fb.csv_bytes(rows)})
JOINED["rar5.rar"] = lambda rows: fb.rar5_of({"meibo.csv": fb.csv_bytes(rows)})
BUILDERS.update({key: _joined(build) for key, build in JOINED.items()})
# The joined formats whose rows are label-value text (slides, an RTF mail body, vCard
# NOTE): there a number needs a My Number keyword next to it, as in any free text (a
# keyword-less check-digit number counts only as a table column); the persons still
# count as name + birth-date records.
TEXT_FORM = {"ppt", "rtf.msg", "vcf", "sjis.vcf"}


# --- mutations ----------------------------------------------------------------------------


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(0, max(1, len(data)))]


def bit_flip(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return data
    out = bytearray(data)
    for _ in range(rng.randrange(1, 9)):
        pos = rng.randrange(len(out))
        out[pos] ^= 1 << rng.randrange(8)
    return bytes(out)


def splice_bytes(rng: random.Random, data: bytes) -> bytes:
    """Insert a few invalid or control bytes (bad charset bytes, NUL padding, FF)."""
    out = bytearray(data)
    for _ in range(rng.randrange(1, 4)):
        pos = rng.randrange(len(out) + 1)
        out[pos:pos] = rng.choice([b"\xff", b"\x80", b"\x00", b"\x0c", b"\xfe\xfe", b"\x1b"])
    return bytes(out)


def random_bytes(rng: random.Random, _data: bytes) -> bytes:
    return rng.randbytes(rng.randrange(0, 4096))


MUTATIONS: dict[str, Callable[[random.Random, bytes], bytes]] = {
    "none": lambda _rng, data: data,
    "truncate": truncate,
    "bitflip": bit_flip,
    "splice": splice_bytes,
    "random": random_bytes,
}

CONTENT_TYPES = ["application/octet-stream", "text/plain", "text/csv", "text/html",
                 "application/pdf", "image/png", "application/zip",
                 "application/vnd.ms-excel", "message/rfc822", "application/msword"]
CHARSETS = [None, "utf-8", "shift_jis", "euc-jp", "iso-2022-jp", "us-ascii", "bogus-8"]


def wrap_in_mail(rng: random.Random, name: str, data: bytes) -> bytes:
    """A mail carrying ``data`` under a random (often wrong) type, charset and encoding."""
    ctype = rng.choice(CONTENT_TYPES)
    charset = rng.choice(CHARSETS)
    cte = rng.choice(["base64", "quoted-printable", "8bit", "7bit"])
    boundary = f"b{rng.randrange(10**9)}"
    if rng.random() < 0.15:  # a lying header: claims base64, carries the raw bytes
        cte, body = "base64", data
    elif cte == "base64":
        body = base64.encodebytes(data)
    elif cte == "quoted-printable":
        body = quopri.encodestring(data)
    else:
        body = data
    params = f"; charset={charset}" if charset else ""
    disposition = rng.choice(["attachment", "inline", None])
    head = (
        "From: =?iso-2022-jp?B?GyRCOzNFRBsoQg==?= <a@city.example.lg.jp>\r\n"
        "To: b@example.com\r\nSubject: =?utf-8?B?5ZCN57C/?=\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n送付します。\r\n"
        f"--{boundary}\r\nContent-Type: {ctype}{params}; name=\"{name}\"\r\n"
        f"Content-Transfer-Encoding: {cte}\r\n"
    ).encode()
    if disposition:
        head += f'Content-Disposition: {disposition}; filename="{name}"\r\n'.encode()
    return head + b"\r\n" + body + f"\r\n--{boundary}--\r\n".encode()


# --- the oracle ---------------------------------------------------------------------------

_DIGITS = re.compile(rb"(?<![0-9])[0-9]{12}(?![0-9])")


def recoverable_numbers(data: bytes, wanted: set[str], depth: int = 0) -> set[str]:
    """My Numbers of ``wanted`` that ordinary tools read back from ``data``."""
    found: set[str] = set()
    mail = _looks_like_mail(data)
    # in a mail's raw bytes, quoted-printable escapes (=B7) are not digits
    views = [re.sub(rb"=[0-9A-F]{2}|=\r?\n", b" ", data) if mail else data]
    for codec in _utf16_readings(data, mail):
        views.append(data.decode(codec, "ignore").encode("utf-8", "ignore"))
    for view in views:
        found |= {m.decode() for m in _DIGITS.findall(view)} & wanted
    if depth >= 4:
        return found
    for inner in _containers(data):
        found |= recoverable_numbers(inner, wanted, depth + 1)
    return found


def _utf16_readings(data: bytes, mail: bool) -> tuple[str, ...]:
    """The UTF-16 byte orders a real reader could apply to ``data`` from its first byte.

    A mail is not read as UTF-16 whole: its parts are (``_containers`` decodes each MIME
    part and this runs again on it, from the part's own first byte). Reading the raw mail
    as UTF-16 puts an 8bit UTF-16LE part at whatever parity its offset happens to have;
    at the odd one the big-endian reading pairs each digit with the NUL *before* it, so a
    digit whose own high byte was bit-flipped ("1" + 0x10 = U+1031) still reads as "1"
    there though no decoder of that part would see it (DLP_FUZZ_SEED=7, case 15571).
    A part with a byte-order mark is read in that order only. Without a mark both orders
    stay: in a binary file shifted by an inserted byte, the big-endian reading is what
    shows the little-endian strings after the shift (a damaged container the extractor
    must report).
    """
    if mail:
        return ()
    if data.startswith(b"\xff\xfe"):
        return ("utf-16-le",)
    if data.startswith(b"\xfe\xff"):
        return ("utf-16-be",)
    return ("utf-16-le", "utf-16-be")


def _looks_like_mail(data: bytes) -> bool:
    head = data[:2000].lower()
    return b"content-type:" in head or b"mime-version:" in head or b"subject:" in head


def _containers(data: bytes) -> Iterable[bytes]:
    """What ordinary tools unpack from ``data``: zip members, gzip, MIME parts."""
    if data[:2] == b"PK":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for info in zf.infolist()[:200]:
                    try:
                        yield zf.read(info)
                    except Exception:
                        continue
        except Exception:
            pass
    if data[:2] == b"\x1f\x8b":
        with contextlib.suppress(Exception):
            yield gzip.decompress(data)
    # what zcat / bzcat / xzcat print before they stop at damage
    for magic, make in ((b"\x1f\x8b", lambda: zlib.decompressobj(31)),
                        (b"BZh", bz2.BZ2Decompressor), (b"\xfd7zXZ", lzma.LZMADecompressor)):
        if data.startswith(magic):
            yield _partial(make(), data)
    if _looks_like_mail(data):
        try:
            msg = email.message_from_bytes(data, policy=email.policy.compat32)
            for part in msg.walk():
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes) and payload:
                    yield payload
        except Exception:
            pass


def _partial(decompressor, data: bytes) -> bytes:  # type: ignore[no-untyped-def]
    out = bytearray()
    for start in range(0, len(data), 512):
        try:
            out += decompressor.decompress(data[start : start + 512])
        except Exception:
            break
        if len(out) > 1 << 22:
            break
    return bytes(out)


def extracted_corpus(units: list[Unit]) -> str:
    """All text and cell values the extractor produced, digits kept."""
    chunks = []
    for unit in units:
        if isinstance(unit, TextUnit):
            chunks.append(unit.text)
        elif isinstance(unit, TableUnit):
            for row in unit.rows():
                chunks.append("\t".join("" if c is None else str(c) for c in row.cells))
    return "\n".join(chunks)


@dataclass
class Verdict:
    """What one fuzz case shows: numbers read back, numbers extracted, unscannables."""

    recoverable: set[str]
    extracted: set[str]
    unscannable: list[Unscannable]
    skipped: list[Skipped]

    @property
    def silently_unread(self) -> set[str]:
        """Readable numbers the extractor neither produced nor reported unreadable."""
        return set() if self.unscannable else self.recoverable - self.extracted


def judge(data: bytes, units: list[Unit], wanted: set[str]) -> Verdict:
    corpus = re.sub(r"[ \-‐－]", "", extracted_corpus(units))
    return Verdict(
        recoverable=recoverable_numbers(data, wanted),
        extracted={n for n in wanted if n in corpus},
        unscannable=[u for u in units if isinstance(u, Unscannable)],
        skipped=[u for u in units if isinstance(u, Skipped)],
    )


@dataclass(frozen=True)
class Case:
    index: int
    fmt: str
    mutation: str
    name: str
    in_mail: bool
    data: bytes
    numbers: frozenset[str]

    def describe(self) -> str:
        return (f"case {self.index}: {self.fmt} -> {self.mutation} as {self.name!r}"
                f"{' in a mail' if self.in_mail else ''} ({len(self.data)} bytes)")


def make_case(seed: int, index: int) -> Case:
    rng = random.Random(f"{seed}:{index}")
    fmt = rng.choice(sorted(BUILDERS))
    persons = people(rng, rng.randrange(1, 6))
    data = BUILDERS[fmt](rng, persons)
    mutation = rng.choice(sorted(MUTATIONS))
    data = MUTATIONS[mutation](rng, data)
    # re-label: a wrong extension a fifth of the time, random bytes under every name
    ext = fmt if rng.random() < 0.8 else rng.choice(sorted(BUILDERS))
    name = f"名簿.{ext}"
    in_mail = rng.random() < 0.35 and ext != "eml"
    if in_mail:
        data = wrap_in_mail(rng, name, data)
    numbers = frozenset(p.my_number for p in persons)
    return Case(index, fmt, mutation, name, in_mail, data, numbers)


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))
