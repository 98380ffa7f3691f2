"""Value types produced by extraction: what was read, and where it came from.

Extraction turns a message into a stream of units. Free text (mail bodies, txt
files, docx paragraphs) becomes a ``TextUnit``; tabular data (xlsx sheets, csv,
docx tables) becomes a ``TableUnit`` whose rows are read lazily, so a 680,000-row
csv is never held as millions of small objects. Parts that cannot be read become
an ``Unscannable`` with a named reason; parts identified (by their own signature
and structure) as a kind listed in ``patterns/harmless.toml`` a ``Skipped``.
Every part ends as exactly one of: units read, ``Skipped``, ``Unscannable``.

Location paths are for people: ``名簿.zip/R4.xlsx!Sheet1!C7``,
``通知.docx!table1!r3c2``, ``body``. ``part`` is the file the unit sits in (the
path through archives, or ``body`` for the message text); ``location`` extends it
with the place inside that file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

# Where a unit sits among alternative readings of the same content: a path of
# (group id, option) pairs. Two decodings of one mislabelled part, or the text and
# the html branch of a multipart/alternative, are options of one group: every
# option is scanned, and the scan counts the option with the most person records
# (so one person is never counted twice, and no reading is left unscanned).
AltPath = tuple[tuple[str, str], ...]

# A cell's value as the reader gave it: text, a number, or a real date.
CellValue = str | int | float | dt.date | dt.datetime | None

UnscannableReason = Literal[
    "encrypted_archive",
    "encrypted_office",
    "encrypted_pdf",
    "corrupt",
    "too_deep",
    "too_large",
    "timeout",
    "unsupported_format",
    "no_text_layer",
]


@dataclass(frozen=True, slots=True)
class TextUnit:
    """A block of free text (lines separated by newlines).

    ``in_body`` is true for the message body itself (and the body of a forwarded
    message): personal data there cannot be protected by encrypting attachments.
    """

    text: str
    part: str
    location: str
    in_body: bool = False
    header: str | None = None
    line_label: str = "L"  # detectors name lines "<location>!L12" ("p" for docx paragraphs)
    alt: AltPath = ()


@dataclass(slots=True)  # not frozen: a frozen dataclass is built 2.4x slower, per row
class Row:
    """One table row: its 1-based number in the file and its cell values."""

    number: int
    cells: list[CellValue]


@dataclass(slots=True)
class TableUnit:
    """A table (sheet, csv file, docx table), read row by row.

    ``rows`` is a zero-argument callable returning a fresh iterator, so the table
    can be read lazily (and, for header detection, its first rows peeked at).
    ``cell_style`` says how a cell is named in a location: ``a1`` gives ``C7``
    (spreadsheets, csv), ``rc`` gives ``r7c3`` (docx tables).
    """

    part: str
    location: str
    rows: Callable[[], Iterator[Row]]
    cell_style: Literal["a1", "rc"] = "a1"
    in_body: bool = False
    alt: AltPath = ()

    def cell_location(self, row_number: int, column_index: int) -> str:
        """Human location of a cell; ``column_index`` is 0-based."""
        if self.cell_style == "rc":
            return f"{self.location}!r{row_number}c{column_index + 1}"
        return f"{self.location}!{column_letter(column_index)}{row_number}"


# Detail prefix of a reader that could not open its format at all (as opposed to a
# crash or a limit): files.py then tries the bytes as text (a csv starting "%PDF-").
NOT_THIS_FORMAT = "not this format: "


@dataclass(frozen=True, slots=True)
class Unscannable:
    """A part that could not be read; policy holds the message for it."""

    part: str
    reason: UnscannableReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Skipped:
    """A known-harmless part (image, font, Finder metadata...): nothing to read in it.

    ``content_type`` is the harmless kind from ``patterns/harmless.toml``
    (``image/png``, ``font/ttf``, ``application/applefile``, ``empty``...).
    """

    part: str
    content_type: str

    @property
    def kind(self) -> str:
        return self.content_type


Unit = TextUnit | TableUnit | Unscannable | Skipped


@dataclass(slots=True)
class Limits:
    """Bounds that keep a hostile message from exhausting the scanner."""

    max_depth: int = 5  # archive nesting (zip in zip in ...)
    max_members: int = 10_000  # members of one archive
    max_total_bytes: int = 1 << 30  # uncompressed bytes over the whole message
    max_ratio: float = 200.0  # uncompressed / compressed size of one member
    max_part_bytes: int = 256 << 20  # one file after decompression
    max_cells: int = 20_000_000  # table cells over the whole message
    timeout_seconds: float = 60.0
    harmless_dir: str | None = None  # patterns directory with harmless.toml (None: default)
    max_parser_memory_bytes: int = 2 << 30  # what a risky reader in a child may add


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters
