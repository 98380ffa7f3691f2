"""The value type detectors produce."""

from __future__ import annotations

from dataclasses import dataclass
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
