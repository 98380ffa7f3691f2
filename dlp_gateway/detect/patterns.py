"""Load and validate the detection knowledge in ``patterns/`` (TOML data files).

Operators edit those files; this module turns them into compiled, typed objects
once at start-up and fails with a message naming the file and key when something
is wrong, rather than detecting nothing at run time.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regex

from dlp_gateway.detect.schema import (
    ACTIONS,
    BUILTIN_METRICS,
    PATTERN_FILES,
    ROLES,
    PatternsEncodingError,
    Problem,
    check_directory,
    read_patterns_text,
    set_digest,
)

# The shipped patterns: ``dlp_gateway/bundled_patterns`` is a link to the top-level
# ``patterns/`` in a checkout and a real directory of package data in an installed wheel.
DEFAULT_PATTERNS_DIR = Path(__file__).resolve().parents[1] / "bundled_patterns"
METRICS = BUILTIN_METRICS  # plus the ids of id_types.toml entries
# Re-exported: callers import these from here.
__all__ = [
    "ACTIONS", "DEFAULT_PATTERNS_DIR", "METRICS", "PATTERN_FILES", "ROLES", "AllowList",
    "PatternError", "PatternSet", "Policy", "Problem", "Rule", "check_patterns", "load_patterns",
]


class PatternError(ValueError):
    """A patterns file is missing, unreadable or inconsistent; ``problems`` lists each."""

    def __init__(self, message: str, problems: tuple[Problem, ...] = ()):
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class Example:
    text: str
    count: int


# Letters that ``regex`` IGNORECASE matches to an ASCII letter but ``str.lower`` does not
# lower to it (dotted/dotless i, long s, Kelvin sign): text with one takes the slow path.
_CASE_TRAPS = re.compile("[\u0130\u0131\u017f\u212a]")


@dataclass(frozen=True)
class LabelSet:
    """Positive and negative labels, matched together so the nearest one can win."""

    positive: tuple[str, ...]
    negative: tuple[str, ...]
    regex: Any = field(repr=False)
    # The same alternation, lower-cased, for stdlib ``re`` over lower-cased text: a
    # literal search there is several times faster than ``regex`` with IGNORECASE. None
    # when a word has a non-ASCII cased letter (then only ``regex`` is exact).
    lowered: Any = field(default=None, repr=False, compare=False)
    folded_positive: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @classmethod
    def build(cls, positive: list[str], negative: list[str]) -> LabelSet:
        words = sorted({*positive, *negative}, key=len, reverse=True)
        pattern = regex.compile("|".join(regex.escape(w) for w in words), regex.IGNORECASE)
        exact = all(c.isascii() or c.lower() == c.upper() for w in words for c in w)
        lowered = re.compile("|".join(re.escape(w.lower()) for w in words)) if exact else None
        return cls(tuple(positive), tuple(negative), pattern, lowered,
                   frozenset(p.casefold() for p in positive))

    def is_positive(self, label: str) -> bool:
        return label.casefold() in self.folded_positive

    def spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) of every label in ``text``, as ``regex.finditer`` finds them."""
        lowered = _lowered(text) if self.lowered is not None else None
        if lowered is not None:
            return [m.span() for m in self.lowered.finditer(lowered)]
        return [m.span() for m in self.regex.finditer(text)]


_LAST_LOWERED: tuple[str, str | None] = ("", "")


def _lowered(text: str) -> str | None:
    """``text.lower()`` if it keeps every position and no case trap is in the text, else
    None. The last answer is kept: the detectors of one text ask for it in turn."""
    global _LAST_LOWERED
    last = _LAST_LOWERED
    if last[0] is text:
        return last[1]
    lowered: str | None = text.lower()
    if len(lowered) != len(text) or (not text.isascii() and _CASE_TRAPS.search(text)):
        lowered = None
    _LAST_LOWERED = (text, lowered)
    return lowered


@dataclass(frozen=True)
class MyNumberPatterns:
    labels: LabelSet
    headers: tuple[str, ...]
    keyword_window: int
    label_window: int
    column_checksum_share: float
    column_min_values: int
    examples: tuple[Example, ...]
    column_plain_headers: tuple[str, ...] = ()
    sub_headers: tuple[str, ...] = ()
    mask_characters: str = "*"


@dataclass(frozen=True)
class InsuredPatterns:
    labels: LabelSet
    headers: tuple[str, ...]
    negative_headers: tuple[str, ...]
    keyword_window: int
    text_lengths: tuple[int, ...]
    cell_min_digits: int
    cell_max_digits: int
    symbol_number: Any
    examples: tuple[Example, ...]
    title_words: tuple[str, ...] = ()
    title_plain_headers: tuple[str, ...] = ()
    title_negative_words: tuple[str, ...] = ()
    title_lengths: tuple[int, ...] = ()
    sub_headers: tuple[str, ...] = ()
    mask_characters: str = "*"
    # 保険証番号 宮延23-456: a card label and its value (None: no card labels).
    card_number: Any = None
    lost_zero_column_share: float = 0.8


@dataclass(frozen=True)
class BirthDatePatterns:
    labels: LabelSet
    headers: tuple[str, ...]
    negative_headers: tuple[str, ...]
    suffixes: tuple[str, ...]
    range_connectors: tuple[str, ...]
    label_window: int
    suffix_window: int
    max_age_years: int
    examples: tuple[Example, ...]
    part_headers: tuple[str, ...] = ()
    # A birth date split over adjacent columns: [era] | year | month | day.
    split_era_headers: tuple[str, ...] = ()
    split_year_headers: tuple[str, ...] = ()
    split_plain_year_headers: tuple[str, ...] = ()
    split_month_headers: tuple[str, ...] = ()
    split_day_headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class NamePatterns:
    headers: tuple[str, ...]
    header_suffixes: tuple[str, ...]
    part_headers: tuple[str, ...]
    kana_headers: tuple[str, ...]
    negative_headers: tuple[str, ...]
    honorifics: tuple[str, ...]
    organisation_suffixes: tuple[str, ...]
    max_cell_length: int
    examples: tuple[Example, ...]
    sub_headers: tuple[str, ...] = ()
    signature_separators: tuple[str, ...] = ()
    signature_words: tuple[str, ...] = ()
    other_headers: tuple[str, ...] = ()
    kanji_variants: tuple[str, ...] = ()
    anchor_words: tuple[str, ...] = ()  # name labels that let free text be analysed
    value_labels: tuple[str, ...] = ()
    value_stopwords: tuple[str, ...] = ()
    surname_followers: tuple[str, ...] = ()
    signoff_labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class IdType:
    """An operator-defined identification number (id_types.toml): found by its regex,
    counted only with a keyword within ``keyword_window`` or under one of ``headers``."""

    id: str
    label: str
    regex: Any = field(repr=False)
    labels: LabelSet
    keyword_window: int
    headers: tuple[str, ...]
    record: bool = True
    confidence: float = 0.9


@dataclass(frozen=True)
class TypedExample:
    type: str
    text: str
    count: int


@dataclass(frozen=True)
class Rule:
    id: str
    metric: str
    min: int
    action: str
    reason: str
    approver_role: str | None = None
    approvals_required: int = 1
    monitor: bool = False  # verdict computed and logged, mail not stopped
    # When every recipient is in allow.toml's recipient_domains, the rule acts like this.
    allowed_recipient_action: str | None = None


@dataclass(frozen=True)
class PolicyExample:
    name: str
    verdict: str
    text: str = ""
    table: tuple[tuple[Any, ...], ...] = ()
    attachment: str = "example.csv"
    sender: str = "sender@example.lg.jp"
    recipients: tuple[str, ...] = ("someone@example.com",)


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    default_action: str = "pass"
    unscannable_ignore: tuple[str, ...] = ()  # reasons not counted in the unscannable metric
    examples: tuple[PolicyExample, ...] = ()


@dataclass(frozen=True)
class AllowEntry:
    hash: str
    added_by: str
    added_at: str
    reason: str


@dataclass(frozen=True)
class AllowList:
    salt: str = ""
    senders: frozenset[str] = frozenset()
    recipient_domains: frozenset[str] = frozenset()
    values: tuple[AllowEntry, ...] = ()

    @property
    def hashes(self) -> frozenset[str]:
        return frozenset(v.hash for v in self.values)


@dataclass(frozen=True)
class PatternSet:
    directory: Path
    my_number: MyNumberPatterns
    insured_number: InsuredPatterns
    birth_date: BirthDatePatterns
    name: NamePatterns
    policy: Policy
    id_types: tuple[IdType, ...] = ()
    id_examples: tuple[TypedExample, ...] = ()
    allow: AllowList = AllowList()
    digest: str = ""  # SHA-256 of the set's files: what the admin page shows


def resolve_dir(directory: Path | str | None = None) -> Path:
    return Path(directory or os.environ.get("DLP_PATTERNS_DIR") or DEFAULT_PATTERNS_DIR)


def check_patterns(directory: Path | str | None = None) -> list[Problem]:
    """Every problem in the set (``file:line: message`` each); empty when it is valid."""
    return check_directory(resolve_dir(directory))


def load_patterns(directory: Path | str | None = None) -> PatternSet:
    """Check, then load every patterns file from ``directory`` (default: bundled ``patterns/``).

    A set with any problem is refused as a whole: PatternError lists them all.
    """
    path = resolve_dir(directory)
    problems = check_directory(path)
    if problems:
        shown = "\n".join(str(p) for p in problems)
        raise PatternError(f"{len(problems)} problem(s) in {path}:\n{shown}", tuple(problems))
    data = {name: _read_toml(path / f"{name}.toml") for name in (*PATTERN_FILES, "policy")}
    ids = _read_toml(path / "id_types.toml") if (path / "id_types.toml").exists() else {}
    allow = _read_toml(path / "allow.toml") if (path / "allow.toml").exists() else {}
    return PatternSet(
        directory=path,
        my_number=_my_number(_section(data, "my_number"), data["my_number"]),
        insured_number=_insured(_section(data, "insured_number"), data["insured_number"]),
        birth_date=_birth_date(_section(data, "birth_date"), data["birth_date"]),
        name=_name(_section(data, "name"), data["name"]),
        policy=_policy(data["policy"]),
        id_types=tuple(_id_type(raw) for raw in ids.get("id_types", [])),
        id_examples=tuple(
            TypedExample(e["type"], e["text"], e["count"]) for e in ids.get("examples", [])
        ),
        allow=_allow(allow),
        digest=set_digest(path),
    )


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(read_patterns_text(file))
    except FileNotFoundError:
        raise PatternError(f"missing patterns file: {file}") from None
    except PatternsEncodingError as exc:
        raise PatternError(f"{file}:{exc.line}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PatternError(f"{file}: {exc}") from None


def _section(data: dict[str, dict[str, Any]], name: str) -> _Reader:
    if name not in data[name]:
        raise PatternError(f"{name}.toml: missing [{name}] table")
    return _Reader(f"{name}.toml", data[name][name])


class _Reader:
    """Typed access to one TOML table with errors that name file and key."""

    def __init__(self, where: str, table: dict[str, Any]):
        self.where, self.table = where, table

    def get(self, key: str, kind: type, default: Any = None) -> Any:
        if key not in self.table:
            if default is None:
                raise PatternError(f"{self.where}: missing key '{key}'")
            return default
        value = self.table[key]
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind):
            raise PatternError(f"{self.where}: '{key}' must be {kind.__name__}")
        return value

    def words(self, key: str, required: bool = True) -> tuple[str, ...]:
        value = self.get(key, list, None if required else [])
        if not all(isinstance(v, str) and v for v in value):
            raise PatternError(f"{self.where}: '{key}' must be a list of non-empty strings")
        return tuple(value)


def _examples(doc: dict[str, Any], where: str) -> tuple[Example, ...]:
    out = []
    for i, ex in enumerate(doc.get("examples", [])):
        if not isinstance(ex.get("text"), str) or not isinstance(ex.get("count"), int):
            raise PatternError(f"{where}: examples[{i}] needs text (string) and count (integer)")
        out.append(Example(ex["text"], ex["count"]))
    return tuple(out)


def _my_number(r: _Reader, doc: dict[str, Any]) -> MyNumberPatterns:
    return MyNumberPatterns(
        labels=LabelSet.build(list(r.words("keywords")), list(r.words("negative_labels"))),
        headers=r.words("headers"),
        keyword_window=r.get("keyword_window", int),
        label_window=r.get("label_window", int),
        column_checksum_share=r.get("column_checksum_share", float),
        column_min_values=r.get("column_min_values", int),
        examples=_examples(doc, r.where),
        column_plain_headers=r.words("column_plain_headers", required=False),
        sub_headers=r.words("sub_headers", required=False),
        mask_characters=r.get("mask_characters", str, "*"),
    )


def _insured(r: _Reader, doc: dict[str, Any]) -> InsuredPatterns:
    negative = r.words("negative_labels")
    try:
        symbol_number = regex.compile(r.get("symbol_number_regex", str))
    except regex.error as exc:
        raise PatternError(f"{r.where}: symbol_number_regex: {exc}") from None
    return InsuredPatterns(
        card_number=_card_number(r),
        labels=LabelSet.build(list(r.words("keywords")), list(negative)),
        headers=r.words("headers"),
        negative_headers=negative,
        keyword_window=r.get("keyword_window", int),
        text_lengths=tuple(r.get("text_lengths", list)),
        cell_min_digits=r.get("cell_min_digits", int),
        cell_max_digits=r.get("cell_max_digits", int),
        symbol_number=symbol_number,
        examples=_examples(doc, r.where),
        title_words=r.words("title_words", required=False),
        title_plain_headers=r.words("title_plain_headers", required=False),
        title_negative_words=r.words("title_negative_words", required=False),
        title_lengths=tuple(r.get("title_lengths", list, [8, 10])),
        sub_headers=r.words("sub_headers", required=False),
        mask_characters=r.get("mask_characters", str, "*"),
        lost_zero_column_share=r.get("lost_zero_column_share", float, 0.8),
    )


def _card_number(r: _Reader) -> Any:
    """``card_labels`` followed (after a colon, は, a bracket) by ``card_value_regex``."""
    labels = sorted(r.words("card_labels", required=False), key=len, reverse=True)
    value = r.get("card_value_regex", str, "")
    if not labels or not value:
        return None
    words = "|".join(regex.escape(w) for w in labels)
    try:
        return regex.compile(
            rf"(?:{words})[\s:：はがの「『(（]{{0,4}}(?P<value>{value})", regex.IGNORECASE
        )
    except regex.error as exc:
        raise PatternError(f"{r.where}: card_value_regex: {exc}") from None


def _birth_date(r: _Reader, doc: dict[str, Any]) -> BirthDatePatterns:
    negative = r.words("negative_labels")
    return BirthDatePatterns(
        labels=LabelSet.build(list(r.words("labels")), list(negative)),
        headers=r.words("headers"),
        negative_headers=negative,
        suffixes=r.words("suffixes"),
        range_connectors=r.words("range_connectors", required=False),
        label_window=r.get("label_window", int),
        suffix_window=r.get("suffix_window", int),
        max_age_years=r.get("max_age_years", int),
        examples=_examples(doc, r.where),
        part_headers=r.words("part_headers", required=False),
        split_era_headers=r.words("split_era_headers", required=False),
        split_year_headers=r.words("split_year_headers", required=False),
        split_plain_year_headers=r.words("split_plain_year_headers", required=False),
        split_month_headers=r.words("split_month_headers", required=False),
        split_day_headers=r.words("split_day_headers", required=False),
    )


def _name(r: _Reader, doc: dict[str, Any]) -> NamePatterns:
    return NamePatterns(
        headers=r.words("headers"),
        header_suffixes=r.words("header_suffixes"),
        part_headers=r.words("part_headers"),
        kana_headers=r.words("kana_headers"),
        negative_headers=r.words("negative_headers"),
        honorifics=r.words("honorifics"),
        organisation_suffixes=r.words("organisation_suffixes"),
        max_cell_length=r.get("max_cell_length", int),
        examples=_examples(doc, r.where),
        sub_headers=r.words("sub_headers", required=False),
        signature_separators=r.words("signature_separators", required=False),
        signature_words=r.words("signature_words", required=False),
        other_headers=r.words("other_headers", required=False),
        kanji_variants=r.words("kanji_variants", required=False),
        anchor_words=r.words("anchor_words", required=False),
        value_labels=r.words("value_labels", required=False),
        value_stopwords=r.words("value_stopwords", required=False),
        surname_followers=r.words("surname_followers", required=False),
        signoff_labels=r.words("signoff_labels", required=False),
    )


def _policy(doc: dict[str, Any]) -> Policy:
    """Build the policy (already validated by the schema check)."""
    rules = tuple(
        Rule(
            id=raw["id"],
            metric=raw["metric"],
            min=raw["min"],
            action=raw["action"],
            reason=raw["reason"],
            approver_role=raw.get("approver_role"),
            approvals_required=raw.get("approvals_required", 1),
            monitor=raw.get("monitor", False),
            allowed_recipient_action=raw.get("allowed_recipient_action"),
        )
        for raw in doc.get("rules", [])
    )
    examples = tuple(
        PolicyExample(
            name=raw["name"],
            verdict=raw["verdict"],
            text=raw.get("text", ""),
            table=tuple(tuple(row) for row in raw.get("table", [])),
            attachment=raw.get("attachment", "example.csv"),
            sender=raw.get("sender", "sender@example.lg.jp"),
            recipients=tuple(raw.get("recipients", ["someone@example.com"])),
        )
        for raw in doc.get("examples", [])
    )
    ignore = tuple(doc.get("unscannable_ignore", []))
    return Policy(rules, doc.get("default_action", "pass"), ignore, examples)


def _id_type(raw: dict[str, Any]) -> IdType:
    return IdType(
        id=raw["id"],
        label=raw["label"],
        regex=regex.compile(raw["regex"]),
        labels=LabelSet.build(list(raw["keywords"]), list(raw.get("negative_labels", []))),
        keyword_window=raw["keyword_window"],
        headers=tuple(raw["headers"]),
        record=raw.get("record", True),
        confidence=float(raw.get("confidence", 0.9)),
    )


def _allow(doc: dict[str, Any]) -> AllowList:
    return AllowList(
        salt=doc.get("salt", ""),
        senders=frozenset(s.strip().lower() for s in doc.get("senders", [])),
        recipient_domains=frozenset(
            d.strip().lower().lstrip("@") for d in doc.get("recipient_domains", [])
        ),
        values=tuple(
            AllowEntry(v["hash"], v["added_by"], v["added_at"], v["reason"])
            for v in doc.get("values", [])
        ),
    )
