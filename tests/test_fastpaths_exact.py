"""The per-mail fast paths (scan and relay) answer exactly what the slow forms they replace answer.

Generated inputs (seeded; the seed is in each failure message) over the characters that
matter: cases, the letters case-insensitive matching treats specially, line ends.
"""

from __future__ import annotations

import random
import re
import smtplib
import unicodedata

import pytest
import regex

from dlp_gateway.detect.normalize import fold
from dlp_gateway.detect.patterns import LabelSet, load_patterns
from dlp_gateway.detect.textblocks import _LABEL_LINE, _is_label_line
from dlp_gateway.relay.smtp import has_bare_line_ending
from dlp_gateway.relay.upstream import quote_periods

PATTERNS = load_patterns()
LABEL_SETS = {
    "my_number": PATTERNS.my_number.labels,
    "insured_number": PATTERNS.insured_number.labels,
    "birth_date": PATTERNS.birth_date.labels,
}
TRAPS = "\u0130\u0131\u017f\u212a\u00df\u1e9e"  # İ ı ſ K ß ẞ


def _words(labels: LabelSet) -> list[str]:
    return [*labels.positive, *labels.negative]


def _text(rng: random.Random, words: list[str]) -> str:
    pieces = []
    for _ in range(rng.randint(0, 30)):
        kind = rng.random()
        if kind < 0.4:
            word = rng.choice(words)
            pieces.append(rng.choice([word, word.upper(), word.title(), word.swapcase()]))
        elif kind < 0.5:
            pieces.append(rng.choice(TRAPS))
        else:
            pieces.append(rng.choice(["の", "番号", "は", " ", "\n", "ID", "date", "123", "、"]))
    return "".join(pieces)


@pytest.mark.parametrize("kind", sorted(LABEL_SETS))
@pytest.mark.parametrize("seed", range(40))
def test_label_spans_are_what_the_case_insensitive_regex_finds(kind: str, seed: int) -> None:
    labels = LABEL_SETS[kind]
    rng = random.Random(seed)
    for _ in range(25):
        text = _text(rng, _words(labels))
        expected = [m.span() for m in labels.regex.finditer(text)]
        assert labels.spans(text) == expected, f"seed {seed}: {text!r}"


def test_a_label_set_with_a_non_ascii_cased_word_keeps_the_regex() -> None:
    labels = LabelSet.build(["Straße", "ΣΟΦΙΑ"], [])
    assert labels.lowered is None
    assert labels.spans("STRASSE strasse straße ΣΟΦΙΑ σοφια") == [
        m.span() for m in labels.regex.finditer("STRASSE strasse straße ΣΟΦΙΑ σοφια")]


@pytest.mark.parametrize("seed", range(30))
def test_fold_is_nfkc_and_dash_folding(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = "０１２３ｱｲｳ㍼\u2212\u2010\u2013\u2014\u2015ー-12 山田\n"
    text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
    dashes = str.maketrans({c: "-" for c in "\u2212\u2010\u2013\u2014\u2015"})
    expected = unicodedata.normalize("NFKC", text).translate(dashes)
    expected = regex.sub(r"(?<=\d)\s?ー\s?(?=\d)", "-", expected)
    assert fold(text) == (text if text.isascii() else expected), f"seed {seed}"


_OLD_BARE_EOL = re.compile(rb"\r(?!\n)|(?<!\r)\n")


@pytest.mark.parametrize("seed", range(200))
def test_bare_line_endings_counted_like_the_regex_found_them(seed: int) -> None:
    rng = random.Random(seed)
    raw = bytes(rng.choice(b"ab\r\n.") for _ in range(rng.randint(0, 40)))
    assert has_bare_line_ending(raw) == bool(_OLD_BARE_EOL.search(raw)), f"seed {seed}: {raw!r}"


@pytest.mark.parametrize("seed", range(100))
def test_label_line_guard_agrees_with_the_regex(seed: int) -> None:
    rng = random.Random(seed)
    line = "".join(rng.choice(" \u3000氏名番号、。1\tａ") for _ in range(rng.randint(0, 18)))
    assert _is_label_line(line) == bool(_LABEL_LINE.match(line)), f"seed {seed}: {line!r}"


@pytest.mark.parametrize("seed", range(200))
def test_dot_stuffing_is_smtplibs(seed: int) -> None:
    rng = random.Random(seed)
    data = bytes(rng.choice(b"a.\r\n") for _ in range(rng.randint(0, 40)))
    assert quote_periods(data) == smtplib._quote_periods(data), f"seed {seed}: {data!r}"
