"""Personal names with SudachiPy (sudachidict-core tags 人名,姓 and 人名,名).

In free text a name is a surname followed by a given name (山田太郎, 渡辺 美咲), or a
surname or given name followed by an honorific (田中さん). A surname followed by an
organisation word (山田製作所) is not a person. In tables the column header does the
work and SudachiPy is only asked to judge columns that have no header.
"""

from __future__ import annotations

from typing import Any

import regex

from dlp_gateway.detect.findings import mask_name
from dlp_gateway.detect.numbers import Hit
from dlp_gateway.detect.patterns import NamePatterns

_SURNAME = ("名詞", "固有名詞", "人名", "姓")
_GIVEN = ("名詞", "固有名詞", "人名", "名")
_PLACE = ("名詞", "固有名詞", "地名", "一般")
_WHOLE = ("名詞", "固有名詞", "人名", "一般")  # one dictionary entry for a full name (小林太郎)
# SudachiPy refuses inputs over 49,149 bytes; stay well below.
_CHUNK_CHARS = 8000
_HAS_JAPANESE = regex.compile(r"[\p{Han}\p{Katakana}\p{Hiragana}]")
_NAME_CELL = regex.compile(r"^[\p{Han}\p{Katakana}\p{Hiragana}\p{Latin}ー・･ 　.'-]+$")
# The shape of a name written after a name label (folded text: the ideographic space is a
# space, half-width kana are full-width): a kanji surname and a kanji or kana given name
# (山田太郎, 椎葉 キヨ, 那須 ミツ子, 伊藤 末吉), or a kana surname and given name with a
# space between (ヤマダ トメ). A hiragana given name needs the space (山田 さくら).
_KANJI = r"[\p{Han}々〆ヶ]"
_KATA = r"[\p{Katakana}ー]"
_HIRA = r"[\p{Hiragana}ー]"
_NAME_CHAR = r"[\p{Han}\p{Katakana}\p{Hiragana}ー々〆ヶ]"


def _name_value(honorifics: tuple[str, ...]) -> str:
    """The name shapes (the forms with a space first: the longest reading wins); a name
    ends where the name characters end or where an honorific starts (髙田 マツ様)."""
    after = "|".join(regex.escape(h) for h in honorifics)
    end = rf"(?:(?!{_NAME_CHAR})|(?={after}))" if after else rf"(?!{_NAME_CHAR})"
    return (
        rf"{_KANJI}{{1,5}} {{1,2}}(?:{_KANJI}{{1,4}}|{_KATA}{{1,6}}[子江枝代]?|{_HIRA}{{1,6}}){end}"
        rf"|{_KATA}{{2,8}} {{1,2}}{_KATA}{{1,8}}{end}|{_HIRA}{{2,8}} {{1,2}}{_HIRA}{{1,8}}{end}"
        rf"|(?P<joined>{_KANJI}{{1,5}}(?:{_KANJI}{{1,4}}|{_KATA}{{1,6}}[子江枝代]?)){end}"
    )


class NameFinder:
    """Wraps one SudachiPy tokenizer (not shareable across processes; build one per worker)."""

    def __init__(self, patterns: NamePatterns, lazy: bool = True):
        self.patterns = patterns
        self._loaded: Any = None
        self._name_pos: frozenset[int] = frozenset()  # POS ids tagged 人名,姓 / 人名,名
        self._pos_count = 0  # POS ids below this are known (the rest: asked one by one)
        if not lazy:
            self.load()
        self._org_suffixes = tuple(patterns.organisation_suffixes)
        self._honorifics = frozenset(patterns.honorifics)
        pairs = patterns.kanji_variants
        self._variants = str.maketrans({p[0]: p[1] for p in pairs if len(p) == 2})
        self._labelled = _labelled_regex(patterns.value_labels, patterns.honorifics)
        self._name_shape = regex.compile(_name_value(()))
        # a line that is a name and an honorific (佐藤　末吉 様): the honorific is its label
        honorifics = "|".join(regex.escape(h) for h in patterns.honorifics)
        self._kana_honorific = regex.compile(
            rf"(?P<han>{_KANJI}{{1,3}})(?P<given>{_KATA}{{1,4}}子?) ?(?:{honorifics})"
        )
        self._honorific_line = regex.compile(
            rf"(?m)^[ \t]*(?P<value>[^\r\n]{{2,16}}?)[ \t]*(?:{honorifics})[ \t\r]*$"
        )
        self._stopwords = tuple(patterns.value_stopwords)
        self._not_given = frozenset(patterns.surname_followers) | self._honorifics

    def load(self) -> Any:
        """The SudachiPy tokenizer, built on first use: a scan whose text has nothing
        Japanese (and no headerless name column) never loads the dictionary."""
        if self._loaded is None:
            from dlp_gateway.extract.isolate import outside_cap

            loaded = outside_cap(_new_tokenizer)  # a capped scan child loads it too
            self._loaded, self._name_pos, self._pos_count = loaded
        return self._loaded

    @property
    def _tokenizer(self) -> Any:
        return self._loaded if self._loaded is not None else self.load()

    def find(self, text: str) -> list[Hit]:
        """Names in folded free text."""
        if not _HAS_JAPANESE.search(text):
            return []
        hits: list[Hit] = []
        for offset, chunk in _chunks(text):
            hits.extend(self._find_in_chunk(chunk, offset))
        return hits

    def find_labelled(self, text: str) -> list[Hit]:
        """Names right after a name label (氏名：椎葉　キヨ, 【対象者】延岡 花子 様): a
        name by its position and shape, whether or not the dictionary knows it."""
        if self._labelled is None or not _HAS_JAPANESE.search(text):
            return []
        hits = []
        for m in self._labelled.finditer(text):
            hit = self._labelled_hit(m.group("value"), m.start("value"), bool(m.group("joined")))
            if hit is not None:
                hits.append(hit)
        if any(h in text for h in self._honorifics):
            hits += self._kana_given_before_honorific(text, hits)
            for m in self._honorific_line.finditer(text):
                shaped = self._name_shape.fullmatch(m.group("value"))
                if shaped is not None:
                    joined = bool(shaped.group("joined"))
                    hit = self._labelled_hit(m.group("value"), m.start("value"), joined)
                    if hit is not None and not any(h.start == hit.start for h in hits):
                        hits.append(hit)
        return hits

    def _kana_given_before_honorific(self, text: str, hits: list[Hit]) -> list[Hit]:
        """日高カメさん, 興梠トメ様: a surname (or a place name used as one) and a katakana
        given name the dictionary reads as a common noun, made a name by the honorific."""
        out = []
        for m in self._kana_honorific.finditer(text):
            han, end = m.group("han"), m.end("given")
            for size in (3, 2, 1):
                if size <= len(han) and self._is_surname(han[-size:], places=True):
                    start = m.end("han") - size
                    if not any(h.start <= start < h.end for h in hits):
                        out.append(Hit("name", start, end, mask_name(text[start:end]), 0.7))
                    break
        return out

    def _labelled_hit(self, value: str, start: int, joined: bool) -> Hit | None:
        found = self._without_honorific(value)
        if found is None:
            return None
        if any(w in found for w in self._stopwords) or found.endswith(self._org_suffixes):
            return None
        if joined and not self._starts_with_surname(found):
            return None  # 対象者：高齢者: kanji run without a space needs a known surname
        return Hit("name", start, start + len(found), mask_name(found), 0.8)

    def _without_honorific(self, value: str) -> str | None:
        """山口 勝様 -> 山口 勝; None when no given name is left (山田 様)."""
        for honorific in self._honorifics:
            if value.endswith(honorific) and len(value) > len(honorific):
                value = value[: -len(honorific)]
                if value.endswith(" ") or len(value) < 2:
                    return None
                break
        return value

    def _is_surname(self, value: str, places: bool = False) -> bool:
        tokens = list(self._tokenizer.tokenize(value.translate(self._variants)))
        if len(tokens) != 1:
            return False
        pos = tuple(tokens[0].part_of_speech()[:4])
        return pos == _SURNAME or (places and pos == _PLACE)

    def _starts_with_surname(self, value: str) -> bool:
        tokens = list(self._tokenizer.tokenize(value.translate(self._variants)))
        return len(tokens) >= 2 and tuple(tokens[0].part_of_speech()[:4]) == _SURNAME

    def _find_in_chunk(self, chunk: str, offset: int) -> list[Hit]:
        # old kanji (髙橋, 山﨑) read as their common form: one character for one, so the
        # offsets stay those of the chunk
        tokens = list(self._tokenizer.tokenize(chunk.translate(self._variants)))
        pos_ids = [t.part_of_speech_id() for t in tokens]
        name_pos, known = self._name_pos, self._pos_count
        hits = []
        i = 0
        while i < len(tokens):
            if pos_ids[i] < known and pos_ids[i] not in name_pos:
                i += 1  # not a surname or given name: what _name_at would say, cheaper
                continue
            hit, next_index = self._name_at(tokens, i)
            if hit is not None:
                start, end, confidence = hit
                masked = mask_name(chunk[start:end])
                hits.append(Hit("name", offset + start, offset + end, masked, confidence))
            i = next_index
        return hits

    def _name_at(self, tokens: list, i: int) -> tuple[tuple[int, int, float] | None, int]:
        """A name starting at token ``i`` (span, confidence) and the index to go on from."""
        pos = tuple(tokens[i].part_of_speech()[:4])
        if pos == _WHOLE:
            return self._whole_name(tokens, i)
        if pos not in (_SURNAME, _GIVEN):
            return None, i + 1
        start, end = tokens[i].begin(), tokens[i].end()
        j = i + 1
        if pos == _SURNAME:
            k = j + 1 if j < len(tokens) and tokens[j].surface() in (" ", "\u3000") else j
            if k < len(tokens) and tuple(tokens[k].part_of_speech()[:4]) == _GIVEN:
                end, j = tokens[k].end(), k + 1
                return self._checked(tokens, start, end, j, 0.85)
            if k > j and k < len(tokens) and self._spaced_given(tokens, k):
                return self._checked(tokens, start, tokens[k].end(), k + 1, 0.6)  # 池田　愛
            if k < len(tokens) and _KANA_GIVEN.match(tokens[k].surface()):
                h = k + 2 if k + 2 < len(tokens) and tokens[k + 1].surface() == " " else k + 1
                if h < len(tokens) and tokens[h].surface() in self._honorifics:
                    return (start, tokens[k].end(), 0.7), h + 1  # 興梠トメさん, 斎藤 トメ 様
                if k + 1 == len(tokens) or tokens[k + 1].surface()[:1] in _NAME_END:
                    return (start, tokens[k].end(), 0.6), k + 1  # 佐藤トメ　生年月日…
        if j < len(tokens) and tokens[j].surface() in self._honorifics:
            return (start, end, 0.7), j + 1
        return None, j

    def _spaced_given(self, tokens: list, k: int) -> bool:
        """After a surname and a space, a one-kanji or hiragana given name the dictionary
        reads as a common word (愛, 湊, さくら, ひなた), ended by a space, a bracket, an
        honorific or the end of the text."""
        surface = tokens[k].surface()
        if not _SHORT_GIVEN.match(surface) or any(w in surface for w in self._stopwords):
            return False
        if surface in self._not_given or tokens[k].part_of_speech()[0] in _NOT_GIVEN:
            return False
        following = tokens[k + 1].surface() if k + 1 < len(tokens) else ""
        return not following or following[:1] in _NAME_END or following in self._honorifics

    def _joined_name(self, value: str) -> bool:
        """林一郎, 黒木トメ: a known surname and then a given name (a dictionary given name,
        or a katakana one) with no space between, which the dictionary reads otherwise."""
        for size in (1, 2, 3):
            rest = value[size:]
            if not rest or not self._is_surname(value[:size]):
                continue
            if _KANA_GIVEN.match(rest):
                return True
            tokens = list(self._tokenizer.tokenize(rest))
            if len(tokens) == 1 and tuple(tokens[0].part_of_speech()[:4]) == _GIVEN:
                return True
        return False

    def _whole_name(self, tokens: list, i: int) -> tuple[tuple[int, int, float] | None, int]:
        """A full name the dictionary lists as one word (小林太郎): a name when it is a
        known surname followed by a given name in kanji."""
        surface = tokens[i].surface()
        if _WHOLE_SHAPE.match(surface) and any(
            self._is_surname(surface[:size]) for size in (1, 2, 3) if len(surface) - size >= 1
        ):
            return self._checked(tokens, tokens[i].begin(), tokens[i].end(), i + 1, 0.8)
        return None, i + 1

    def _checked(self, tokens: list, start: int, end: int, j: int, confidence: float):  # type: ignore[no-untyped-def]
        following = tokens[j].surface() if j < len(tokens) else ""
        if following and following.startswith(self._org_suffixes):
            return None, j
        return (start, end, confidence), j

    def looks_like_name(self, value: str) -> bool:
        """For columns without a header: is this short cell a person's name?"""
        value = value.strip()
        if not value or len(value) > self.patterns.max_cell_length or not _NAME_CELL.match(value):
            return False
        parts = value.replace("\u3000", " ").split()
        if len(parts) == 2 and _GIVEN_SHAPE.match(parts[1]) and self._is_surname(parts[0]):
            return True  # 山田 ウメ, 伊藤 末吉: a known surname, a given name by its shape
        compact = value.replace(" ", "").replace("\u3000", "").translate(self._variants)
        if len(parts) == 1 and self._joined_name(compact):
            return True
        tokens = [t for t in self._tokenizer.tokenize(compact) if t.surface().strip()]
        if not tokens or len(tokens) > 3:
            return False
        pos = [tuple(t.part_of_speech()[:4]) for t in tokens]
        if pos[0] == _PLACE and len(pos) >= 2 and pos[1] == _GIVEN:
            pos[0] = _SURNAME  # 千葉 太郎: a place name that is also a surname
        return pos[0] == _SURNAME and all(p in (_SURNAME, _GIVEN) for p in pos)


def _new_tokenizer() -> tuple[Any, frozenset[int], int]:
    """The tokenizer, the POS ids of surnames and given names, and how many POS ids the
    dictionary knows."""
    from sudachipy import dictionary, tokenizer

    sudachi = dictionary.Dictionary(dict="core")
    make = getattr(sudachi, "tokenizer", None) or sudachi.create  # create() before 0.6.9
    names, count = set(), 0
    while (pos := sudachi.pos_of(count)) is not None:
        if tuple(pos[:4]) in (_SURNAME, _GIVEN, _WHOLE):
            names.add(count)
        count += 1
    return make(mode=tokenizer.Tokenizer.SplitMode.C), frozenset(names), count


_NAME_END = frozenset(" \u3000\t\r\n（(、，,：:")  # what may follow a bare kana given name
_NOT_GIVEN = frozenset(("助詞", "助動詞", "接尾辞", "接頭辞", "補助記号", "動詞", "形容詞", "副詞",
                        "連体詞", "接続詞", "代名詞"))
_SHORT_GIVEN = regex.compile(r"^(?:[\p{Han}]|[\p{Hiragana}]{2,4})$")
_WHOLE_SHAPE = regex.compile(r"^[\p{Han}々]{3,6}$")
_KANA_GIVEN = regex.compile(r"^[\p{Katakana}ー]{1,4}子?$")
_GIVEN_SHAPE = regex.compile(
    r"^(?:[\p{Katakana}ー]{1,5}[子江枝代]?|[\p{Han}々]{1,3}|[\p{Hiragana}]{2,4})$"
)


def _labelled_regex(
    labels: tuple[str, ...], honorifics: tuple[str, ...]
) -> regex.Pattern[str] | None:
    """A name label, a separator on the same line (：, spaces, 】), a name-shaped value
    that ends where the name characters end."""
    if not labels:
        return None
    words = "|".join(regex.escape(w) for w in sorted(labels, key=len, reverse=True))
    return regex.compile(
        rf"(?i)(?<!{_NAME_CHAR}|[a-z])[【\[]?(?:{words})(?:[(（][^)）\n]{{0,12}}[)）])?"
        rf"(?:[ \t]*[:：][ \t]*|[ \t]+|[】\]][ \t]*)"
        rf"(?P<value>{_name_value(honorifics)})"
    )


def is_name_cell(value: object, max_length: int) -> bool:
    """A cell under a name header that plausibly holds a name (cheap: no morphology)."""
    if not isinstance(value, str):
        return False
    value = value.strip()
    return 0 < len(value) <= max_length and bool(_NAME_CELL.match(value))


def _chunks(text: str):  # type: ignore[no-untyped-def]
    """Split at line ends into pieces SudachiPy accepts, keeping offsets."""
    start = 0
    while start < len(text):
        end = min(len(text), start + _CHUNK_CHARS)
        if end < len(text):
            newline = text.rfind("\n", start, end)
            if newline > start:
                end = newline + 1
        yield start, text[start:end]
        start = end
