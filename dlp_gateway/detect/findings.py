"""The value type detectors produce."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

FindingType = Literal["my_number", "insured_number", "name", "birth_date"]
FINDING_TYPES: tuple[FindingType, ...] = ("my_number", "insured_number", "name", "birth_date")
ID_CODE_TYPES: frozenset[str] = frozenset({"my_number", "insured_number"})


@dataclass(frozen=True, slots=True)
class Finding:
    """One occurrence of personal data.

    ``masked`` never shows more than the last four digits of a number.
    ``group`` identifies the table row or text paragraph the finding sits in;
    findings sharing a group may make up one person record.
    """

    type: FindingType
    part: str
    location: str
    masked: str
    confidence: float
    group: str
    in_body: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "type": self.type,
            "part": self.part,
            "location": self.location,
            "masked": self.masked,
            "confidence": round(self.confidence, 2),
        }


def mask_number(digits: str) -> str:
    """Show at most the last four digits: ``********9018``."""
    digits = "".join(ch for ch in digits if ch.isdigit()) or digits
    keep = min(4, max(0, len(digits) - 4))
    return "*" * (len(digits) - keep) + digits[len(digits) - keep :]


def mask_name(value: object) -> str:
    """Keep the first character of a name: 山田太郎 -> 山＊＊＊."""
    text = str(value).strip()
    return (text[:1] + "＊" * max(1, len(text) - 1)) if text else "＊"


@dataclass(slots=True)
class Omitted:
    """Findings counted exactly but not kept as evidence (a table past the evidence bound).

    Their groups (table rows) are closed: no kept finding shares a group with them, so
    their records are counted here and added to the records of the kept findings.
    """

    by_type: dict[str, int] = field(default_factory=dict)
    records: int = 0
    in_body_records: int = 0
    parts: set[str] = field(default_factory=set)

    @property
    def count(self) -> int:
        return sum(self.by_type.values())

    def add(self, type_: str, n: int = 1) -> None:
        self.by_type[type_] = self.by_type.get(type_, 0) + n

    def merge(self, other: Omitted | None) -> None:
        if other is None:
            return
        for type_, n in other.by_type.items():
            self.add(type_, n)
        self.records += other.records
        self.in_body_records += other.in_body_records
        self.parts |= other.parts


class FindingList(list[Finding]):
    """Findings kept as evidence, with ``omitted``: those counted but not kept (or None)."""

    __slots__ = ("omitted",)

    def __init__(self, items: Iterable[Finding] = (), omitted: Omitted | None = None):
        super().__init__(items)
        self.omitted = omitted


def omitted_of(findings: Iterable[Finding]) -> Omitted | None:
    return getattr(findings, "omitted", None)


def total_findings(findings: list[Finding]) -> int:
    """Kept and omitted findings together."""
    omitted = omitted_of(findings)
    return len(findings) + (omitted.count if omitted else 0)


def joined(*lists: list[Finding]) -> list[Finding]:
    """Lists concatenated, their omitted tallies summed (a plain list when none has any)."""
    out: list[Finding] = [f for found in lists for f in found]
    tallies = [o for o in map(omitted_of, lists) if o is not None]
    if not tallies:
        return out
    omitted = Omitted()
    for tally in tallies:
        omitted.merge(tally)
    return FindingList(out, omitted)
