"""Load and validate the detection knowledge in ``patterns/`` (TOML data files).

Operators edit those files; this module turns them into compiled, typed objects
once at start-up and fails with a message naming the file and key when something
is wrong, rather than detecting nothing at run time.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regex

DEFAULT_PATTERNS_DIR = Path(__file__).resolve().parents[2] / "patterns"
PATTERN_FILES = ("my_number", "insured_number", "birth_date", "name")
ACTIONS = ("pass", "encrypt", "hold")
ROLES = ("section_head", "ciso")
METRICS = (
    "my_number",
    "insured_number",
    "name",
    "birth_date",
    "records",
    "body_records",
    "attachment_records",
    "unscannable",
)


class PatternError(ValueError):
    """A patterns file is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class Example:
    text: str
    count: int


@dataclass(frozen=True)
class LabelSet:
    """Positive and negative labels, matched together so the nearest one can win."""

    positive: tuple[str, ...]
    negative: tuple[str, ...]
    regex: Any = field(repr=False)

    @classmethod
    def build(cls, positive: list[str], negative: list[str]) -> LabelSet:
        words = sorted({*positive, *negative}, key=len, reverse=True)
        pattern = regex.compile("|".join(regex.escape(w) for w in words), regex.IGNORECASE)
        return cls(tuple(positive), tuple(negative), pattern)

    def is_positive(self, label: str) -> bool:
        return label.casefold() in {p.casefold() for p in self.positive}


@dataclass(frozen=True)
class MyNumberPatterns:
    labels: LabelSet
    headers: tuple[str, ...]
    keyword_window: int
    label_window: int
    column_checksum_share: float
    column_min_values: int
    examples: tuple[Example, ...]


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


@dataclass(frozen=True)
class BirthDatePatterns:
    labels: LabelSet
    headers: tuple[str, ...]
    negative_headers: tuple[str, ...]
    suffixes: tuple[str, ...]
    label_window: int
    suffix_window: int
    max_age_years: int
    examples: tuple[Example, ...]


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


@dataclass(frozen=True)
class Rule:
    id: str
    metric: str
    min: int
    action: str
    reason: str
    approver_role: str | None = None
    approvals_required: int = 1


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]
    default_action: str = "pass"
    unscannable_ignore: tuple[str, ...] = ()  # reasons not counted in the unscannable metric


@dataclass(frozen=True)
class PatternSet:
    directory: Path
    my_number: MyNumberPatterns
    insured_number: InsuredPatterns
    birth_date: BirthDatePatterns
    name: NamePatterns
    policy: Policy


def load_patterns(directory: Path | str | None = None) -> PatternSet:
    """Load every patterns file from ``directory`` (default: the bundled ``patterns/``)."""
    path = Path(directory or os.environ.get("DLP_PATTERNS_DIR") or DEFAULT_PATTERNS_DIR)
    if not path.is_dir():
        raise PatternError(f"patterns directory not found: {path}")
    data = {name: _read_toml(path / f"{name}.toml") for name in (*PATTERN_FILES, "policy")}
    return PatternSet(
        directory=path,
        my_number=_my_number(_section(data, "my_number"), data["my_number"]),
        insured_number=_insured(_section(data, "insured_number"), data["insured_number"]),
        birth_date=_birth_date(_section(data, "birth_date"), data["birth_date"]),
        name=_name(_section(data, "name"), data["name"]),
        policy=_policy(data["policy"]),
    )


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        with file.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise PatternError(f"missing patterns file: {file}") from None
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
    )


def _insured(r: _Reader, doc: dict[str, Any]) -> InsuredPatterns:
    negative = r.words("negative_labels")
    try:
        symbol_number = regex.compile(r.get("symbol_number_regex", str))
    except regex.error as exc:
        raise PatternError(f"{r.where}: symbol_number_regex: {exc}") from None
    return InsuredPatterns(
        labels=LabelSet.build(list(r.words("keywords")), list(negative)),
        headers=r.words("headers"),
        negative_headers=negative,
        keyword_window=r.get("keyword_window", int),
        text_lengths=tuple(r.get("text_lengths", list)),
        cell_min_digits=r.get("cell_min_digits", int),
        cell_max_digits=r.get("cell_max_digits", int),
        symbol_number=symbol_number,
        examples=_examples(doc, r.where),
    )


def _birth_date(r: _Reader, doc: dict[str, Any]) -> BirthDatePatterns:
    negative = r.words("negative_labels")
    return BirthDatePatterns(
        labels=LabelSet.build(list(r.words("labels")), list(negative)),
        headers=r.words("headers"),
        negative_headers=negative,
        suffixes=r.words("suffixes"),
        label_window=r.get("label_window", int),
        suffix_window=r.get("suffix_window", int),
        max_age_years=r.get("max_age_years", int),
        examples=_examples(doc, r.where),
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
    )


def _policy(doc: dict[str, Any]) -> Policy:
    rules = []
    for i, raw in enumerate(doc.get("rules", [])):
        r = _Reader(f"policy.toml rules[{i}]", raw)
        rule = Rule(
            id=r.get("id", str),
            metric=r.get("metric", str),
            min=r.get("min", int),
            action=r.get("action", str),
            reason=r.get("reason", str),
            approver_role=raw.get("approver_role"),
            approvals_required=raw.get("approvals_required", 1),
        )
        if rule.metric not in METRICS:
            raise PatternError(f"{r.where}: metric must be one of {', '.join(METRICS)}")
        if rule.action not in ACTIONS:
            raise PatternError(f"{r.where}: action must be one of {', '.join(ACTIONS)}")
        if rule.action == "hold" and rule.approver_role not in ROLES:
            raise PatternError(f"{r.where}: a hold rule needs approver_role in {ROLES}")
        rules.append(rule)
    default = doc.get("default_action", "pass")
    if default not in ACTIONS:
        raise PatternError(f"policy.toml: default_action must be one of {ACTIONS}")
    ignore = doc.get("unscannable_ignore", [])
    if not isinstance(ignore, list) or not all(isinstance(r, str) for r in ignore):
        raise PatternError("policy.toml: unscannable_ignore must be a list of reasons")
    return Policy(tuple(rules), default, tuple(ignore))
