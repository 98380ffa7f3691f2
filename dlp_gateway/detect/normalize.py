"""Text folding shared by all detectors, and the nearest-label lookup.

Detectors run on NFKC-folded text: full-width digits and letters become ASCII,
era ligatures (㍼) expand, the ideographic space becomes a space. NFKC leaves
several dash characters alone (U+2212, U+2010, U+2013, U+2014, U+2015, and the
long-vowel mark U+30FC that people type between digits), so those are mapped to
'-' here.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from dataclasses import dataclass

import regex

from dlp_gateway.detect.patterns import LabelSet

_DASHES = str.maketrans({"\u2212": "-", "\u2010": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-"})
_DASH_CHARS = "\u2212\u2010\u2013\u2014\u2015"
_LONG_VOWEL_BETWEEN_DIGITS = regex.compile(r"(?<=\d)\s?ー\s?(?=\d)")


def fold(text: str) -> str:
    """NFKC plus dash folding; may change length (ligatures), so fold before searching."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", text)
    if any(dash in text for dash in _DASH_CHARS):  # translate() is slow on long text
        text = text.translate(_DASHES)
    if "ー" in text:
        text = _LONG_VOWEL_BETWEEN_DIGITS.sub("-", text)
    return text


@dataclass(frozen=True, slots=True)
class Label:
    start: int
    end: int
    word: str
    positive: bool


class LabelIndex:
    """All occurrences of one detector's labels in a text, for nearest-label questions."""

    def __init__(self, labels: LabelSet, text: str):
        self.labels = [
            Label(start, end, text[start:end], labels.is_positive(text[start:end]))
            for start, end in labels.spans(text)
        ]
        self._ends = [label.end for label in self.labels]

    def __bool__(self) -> bool:
        return bool(self.labels)

    def nearest_before(self, position: int, window: int) -> Label | None:
        """The label ending closest before ``position``, if it ends within ``window`` chars."""
        i = bisect_right(self._ends, position)
        while i > 0:
            label = self.labels[i - 1]
            if label.end <= position:
                return label if position - label.end <= window else None
            i -= 1
        return None

    def positive_within(self, start: int, end: int, window: int) -> bool:
        """Is any positive label within ``window`` chars of the span [start, end)?"""
        return any(
            label.positive and label.end >= start - window and label.start <= end + window
            for label in self.labels
        )


def header_matches(text: str, words: tuple[str, ...]) -> bool:
    """Does a header or label cell contain one of ``words`` (case- and width-insensitive)?

    Containment, so 被保険者番号 matches 介護保険被保険者番号 and 生年月日 matches
    生年月日(和暦); 保険者番号 does not match 被保険者番号 because the word must be inside
    the header, not the other way round.
    """
    folded = fold(text).casefold().replace(" ", "")
    return any(w.casefold().replace(" ", "") in folded for w in words)


# -- whole-label keys -------------------------------------------------------------------
# A header or label is compared as a whole after this folding, never as a substring of
# a data value: NFKC (full-width, half-width kana, circled numbers), case, spaces and
# line breaks, brackets, list numbering (①, (1), 1.), and trailing marks (：, ※, *).
_LABEL_NUMBERING = regex.compile(r"^(?:\(?\d{1,2}\)|\d{1,2}(?:[.．、)]|(?=\D))|[a-z][.)])")
_LABEL_DROP = regex.compile(r"[\s\u3000・･:：*※＊\"'`.、,]+")
_LABEL_BRACKETS = regex.compile(r"[()\[\]{}<>（）［］｛｝〈〉《》「」『』【】〔〕〘〙]")
_BRACKETED = regex.compile(
    r"[(\[{<（［｛〈《「『【〔][^)\]}>）］｝〉》」』】〕]*[)\]}>）］｝〉》」』】〕]"
)


def label_key(text: str) -> str:
    """The comparable form of a header or label: ``①被保険者\\n番号：`` -> ``被保険者番号``."""
    folded = fold(text).casefold().strip()
    folded = _LABEL_DROP.sub("", folded.replace("\n", ""))
    folded = _LABEL_NUMBERING.sub("", folded, count=1)
    return _LABEL_BRACKETS.sub("", folded)


def label_key_core(text: str) -> str:
    """The label without its bracketed part: ``生年月日(和暦)`` -> ``生年月日``."""
    folded = fold(text).casefold()
    stripped = _BRACKETED.sub("", folded)
    return label_key(stripped) if stripped.strip() else ""
