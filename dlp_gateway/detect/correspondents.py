"""Correspondents are not data: the sender's signature, the From/To/Cc display names and
the salutation to the addressee (山田様 opening a letter) name the mail's own parties.
Names found there are not counted as ``name`` findings.

The separators and signature words come from ``patterns/name.toml``.
"""

from __future__ import annotations

from email.headerregistry import Address
from email.parser import BytesHeaderParser

import regex

from dlp_gateway.detect.normalize import fold
from dlp_gateway.detect.patterns import NamePatterns
from dlp_gateway.mail.headers import header_bytes
from dlp_gateway.mail.policy import MEMO_POLICY

SALUTATION_LINES = 4
SIGNATURE_MAX_LINES = 12
_BRACKETED = regex.compile(r"[(（\[［【〔<＜].*?[)）\]］】〕>＞]")
_SPACES = regex.compile(r"[\s\u3000]+")


def compact_name(text: str) -> str:
    return _SPACES.sub("", _BRACKETED.sub("", fold(text)))


def display_names(raw: bytes) -> frozenset[str]:
    """Display names of From, To, Cc and Reply-To (folded, spaces and 【所属】 removed)."""
    try:
        headers = BytesHeaderParser(policy=MEMO_POLICY).parsebytes(header_bytes(raw),
                                                                   headersonly=True)
    except Exception:  # a broken header must not stop the scan
        return frozenset()
    names: set[str] = set()
    for field in ("From", "To", "Cc", "Reply-To", "Sender"):
        for value in headers.get_all(field) or ():
            try:
                addresses: tuple[Address, ...] = value.addresses
            except Exception:
                continue
            for address in addresses:
                name = compact_name(address.display_name or "")
                if len(name) >= 2:
                    names.add(name)
    return frozenset(names)


class CorrespondentSpans:
    """Character spans of a body text that belong to its correspondents."""

    def __init__(self, patterns: NamePatterns):
        self.separators = tuple(fold(s) for s in patterns.signature_separators)
        self.words = tuple(fold(w).casefold() for w in patterns.signature_words)
        self.labels = tuple(fold(w) for w in patterns.value_labels)
        honorifics = "|".join(regex.escape(h) for h in (*patterns.honorifics, "御中", "各位"))
        # 山田太郎様 / 〇〇課 山田様、 / 山田様 いつもお世話になっております
        self._salutation_line = regex.compile(
            rf"^(?:[^。、\t]{{0,30}}?(?:{honorifics})[、,，:：!！]?$|[^。、\s\t]{{1,12}}(?:{honorifics})[、,，\s])"
        )

    def spans(self, text: str) -> list[tuple[int, int]]:
        lines = text.split("\n")
        starts = []
        position = 0
        for line in lines:
            starts.append(position)
            position += len(line) + 1
        out = []
        salutation = self._salutation(lines)
        if salutation is not None:
            out.append((starts[salutation], starts[salutation] + len(lines[salutation])))
        signature = self._signature(lines)
        if signature is not None:
            out.append((starts[signature], len(text)))
        return out

    def salutation_reach(self, text: str, span: tuple[int, int]) -> int:
        """Where the data that makes a span not a salutation may stand: the span and the
        next non-empty line (山口 勝様 / 生年月日 昭和16年3月4日: the 様 names a person
        the mail is about, not the addressee)."""
        position = end = span[1]
        while position < len(text):
            line_end = text.find("\n", position + 1)
            line_end = len(text) if line_end < 0 else line_end
            if text[position:line_end].strip():
                return line_end
            position = line_end
        return end

    def _salutation(self, lines: list[str]) -> int | None:
        seen = 0
        for index, line in enumerate(lines):
            stripped = line.strip()
            if not stripped:
                continue
            seen += 1
            if seen > SALUTATION_LINES:
                return None
            if self._salutation_line.search(stripped) and not self._labelled(stripped):
                return index
        return None

    def _labelled(self, line: str) -> bool:
        """対象者　山口 勝様, 【対象者】延岡 花子 様: a labelled name is data, not the addressee."""
        folded = fold(line)
        return folded.startswith(("【", "[", "■", "●", "・")) or folded.startswith(self.labels)

    def _signature(self, lines: list[str]) -> int | None:
        tail = max(0, len(lines) - SIGNATURE_MAX_LINES - 2)
        for index in range(len(lines) - 1, tail - 1, -1):
            if self._is_separator(lines[index]):
                block = [x for x in lines[index + 1 :] if x.strip()]
                if block and len(block) <= SIGNATURE_MAX_LINES and self._signature_like(block):
                    return index
                return None
        # no separator: the last paragraph, when it reads like a signature
        end = len(lines)
        while end > 0 and not lines[end - 1].strip():
            end -= 1
        start = end
        while start > 0 and lines[start - 1].strip():
            start -= 1
        block = lines[start:end]
        if start > 0 and 0 < len(block) <= 6 and self._signature_like(block):
            return start
        return None

    def _is_separator(self, line: str) -> bool:
        stripped = line.strip()
        if len(stripped) < 2:
            return False
        if stripped in ("--", "-- "):
            return True
        marks = set(stripped)
        return len(marks) <= 3 and any(
            stripped.startswith(s) and set(s) <= marks for s in self.separators
        )

    def _signature_like(self, block: list[str]) -> bool:
        joined = "\n".join(block).casefold()
        return any(w in joined for w in self.words) and "\t" not in joined


def in_spans(position: int, spans: list[tuple[int, int]]) -> bool:
    return any(start <= position < end for start, end in spans)
