"""HTML to plain text: one line per block, entities unescaped.

Besides the visible text, what a reader of the source can see is kept too: the
<title>, comments (each on its own line) and the values of text-bearing
attributes (alt, title, value, content, placeholder, ...), inline where they
stand so a table row keeps its cells. Only script and style are left out.
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import replace
from html.parser import HTMLParser

from dlp_gateway.extract.units import TextUnit

_SKIP = {"script", "style"}
_BLOCK = {
    "address", "article", "aside", "blockquote", "br", "caption", "dd", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
    "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody",
    "thead", "tfoot", "tr", "ul", "body", "html", "title", "option", "textarea",
}
# Attributes whose values are text a person wrote (not URLs or styling).
_TEXT_ATTRIBUTES = {
    "alt", "title", "value", "content", "placeholder", "label", "summary", "abbr",
    "aria-label", "aria-description", "data", "download",
}
_CELL = {"td", "th"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "wbr"}
_SPACES = re.compile(r"[ \t\r\n\f\v]+")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_\-:.]+)""", re.I)


class _TableState:
    """Where the next cell of a table row goes: a cell under a rowspan from a row above,
    or after a colspan, is preceded by one tab per column it skips, so the tab-separated
    rows keep every cell under its header (元号 | 年 | 月 | 日 under 生年 beside a
    氏名 that spans both header rows)."""

    __slots__ = ("breaks", "cell_start", "column", "new_spans", "spans", "tabs")

    def __init__(self) -> None:
        self.spans: dict[int, int] = {}  # column -> rows still covered by a rowspan above
        self.new_spans: dict[int, int] = {}
        self.column = 0  # the column the next cell starts in (before rowspans)
        self.tabs = 0  # tabs written in this row so far
        self.cell_start: int | None = None  # the open cell's first chunk
        self.breaks: list[int] = []  # chunks holding its line breaks

    def end_row(self) -> None:
        left = {c: n - 1 for c, n in self.spans.items() if n > 1}
        self.spans = {**left, **self.new_spans}
        self.new_spans = {}
        self.column = self.tabs = 0

    def cell(self, attrs: dict[str, str | None]) -> int:
        """Tabs to write before a cell starting here; records its spans."""
        while self.spans.get(self.column, 0) > 0:
            self.column += 1
        tabs = self.column - self.tabs
        self.tabs = self.column
        width = _span(attrs.get("colspan"))
        rows = _span(attrs.get("rowspan"))
        if rows > 1:
            for column in range(self.column, self.column + width):
                self.new_spans[column] = rows - 1
        self.column += width
        return tabs


def _span(value: str | None) -> int:
    """A colspan/rowspan attribute as a count (1 when absent or odd, at most 256)."""
    value = (value or "1").strip()
    return min(max(int(value), 1), 256) if value.isdigit() else 1


# A cell this short (header 氏名<br>(カナ), a name over its reading) keeps its line breaks
# as spaces, so its row stays one line of tab-separated cells.
SHORT_CELL = 32
_TABLE_PARTS = {"table", "tbody", "thead", "tfoot", "tr", "caption"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.skip_depth = 0
        self.pre_depth = 0
        self.tables: list[_TableState] = [_TableState()]  # the outer one: cells outside tables

    def _attributes(self, attrs: list[tuple[str, str | None]]) -> None:
        values = [v for k, v in attrs if v and v.strip()
                  and (k in _TEXT_ATTRIBUTES or k.startswith("data-"))]
        if values and not self.skip_depth:
            self.chunks.append(" " + " ".join(_SPACES.sub(" ", v) for v in values) + " ")

    def handle_comment(self, data: str) -> None:
        if data.strip():
            self.chunks.append("\n" + data + "\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip_depth += 1
        elif tag == "pre":
            self.pre_depth += 1
        if tag == "tr" or tag in _CELL:
            self._close_cell()
        if tag in _BLOCK:
            self._line_break(tag)
        if tag == "table":
            self.tables.append(_TableState())
        elif tag == "tr":
            self.tables[-1].end_row()
        elif tag in _CELL:
            state = self.tables[-1]
            self.chunks.append("\t" * state.cell(dict(attrs)))
            state.cell_start, state.breaks = len(self.chunks), []
        self._attributes(attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK:
            self._line_break(tag)
        self._attributes(attrs)

    def _line_break(self, tag: str) -> None:
        state = self.tables[-1]
        if state.cell_start is not None and tag not in _TABLE_PARTS:
            state.breaks.append(len(self.chunks))
        self.chunks.append("\n")

    def _close_cell(self) -> None:
        """A short cell's line breaks become spaces (the cell is over)."""
        state = self.tables[-1]
        if state.cell_start is None:
            return
        if state.breaks:
            text = "".join(self.chunks[state.cell_start :])
            if len("".join(text.split())) <= SHORT_CELL and "\t" not in text:
                for index in state.breaks:
                    self.chunks[index] = " "
        state.cell_start, state.breaks = None, []

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP and tag not in _VOID:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
        elif tag in _CELL or tag == "tr":
            self._close_cell()
        elif tag == "table" and len(self.tables) > 1:
            self._close_cell()
            self.tables.pop()
        if tag in _BLOCK:
            self._line_break(tag)

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if self.pre_depth:
            self.chunks.append(data)
        else:
            self.chunks.append(_SPACES.sub(" ", data))


def html_to_text(html: str) -> str:
    """Visible text of an HTML document: script/style skipped, a newline per block."""
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # HTMLParser is lenient; keep whatever was read
        pass
    lines = (line.strip(" ") for line in "".join(parser.chunks).split("\n"))
    return "\n".join(line for line in lines if line.strip()).replace("\xa0", " ")


_MARKUP = re.compile(r"<(?:!doctype|html|head|body|p|div|br|table|tr|td|span|a|font|meta|"
                     r"img|li|h[1-6]|style|title)\b", re.I)


def _has_markup(text: str) -> bool:
    return bool(_MARKUP.search(text[:65536]))


def meta_charset(data: bytes) -> str | None:
    """The charset an HTML document declares in a <meta> tag, if any."""
    match = _META_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii", "replace") if match else None


def looks_like_html(text_head: str) -> bool:
    head = text_head.lstrip("\ufeff \t\r\n")[:512].lower()
    return head.startswith(("<!doctype html", "<html")) or (
        "<html" in head and "<body" in text_head[:4096].lower()
    )


def html_units(
    part: str, location: str, data: bytes, declared: str | None, **fields: object
) -> list[TextUnit]:
    """The text of an HTML document under each plausible decoding (see text_readings)."""
    from dlp_gateway.extract.text import text_readings

    units = text_readings(part, location, data, declared or meta_charset(data), **fields)
    html = [replace(u, text=html_to_text(u.text)) for u in units]
    if _has_markup(units[0].text):
        plain = _strip_tags(units[0].text)
        if not _digit_runs(plain) - _digit_runs(html[0].text):
            return html
        units = [replace(units[0], text=plain)]  # a broken tag swallowed numbers
    # labelled html but not (only) markup: a stray "<" makes the parser swallow text
    # up to the next ">", so the plain reading is scanned too (the best one counted)
    group = f"{location}#markup"
    return [replace(u, alt=((group, "html"), *u.alt)) for u in html] + [
        replace(u, location=f"{u.location}[text]", alt=((group, "text"), *u.alt))
        for u in units
    ]


_TAG = re.compile(r"<[A-Za-z/!?][^<>]*>")
_DIGIT_RUN = re.compile(r"\d{4,}")


_SCRIPT = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>", re.I | re.S)


def _strip_tags(text: str) -> str:
    return html_lib.unescape(_TAG.sub(" ", _SCRIPT.sub(" ", text)))


def _digit_runs(text: str) -> set[str]:
    return set(_DIGIT_RUN.findall(text))
