"""Allow-listed values: salted hashes of normalised values, never the values themselves.

A value is normalised before hashing so that ``1234-5678-9018``, ``123456789018``
and full-width digits are the same entry: numbers keep their digits only; other
text is NFKC-folded, case-folded and stripped of spaces.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

import regex

_NON_DIGIT = regex.compile(r"\D+")
_SPACE = regex.compile(r"\s+")
_NUMBERISH = regex.compile(r"^[\d\s\-.()/・ー−]+$")


def normalise(value: object) -> str:
    """The form of a value that is hashed (digits only for a number)."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    text = unicodedata.normalize("NFKC", str(value)).strip()
    if text and _NUMBERISH.match(text) and any(ch.isdigit() for ch in text):
        return _NON_DIGIT.sub("", text)
    return _SPACE.sub("", text).casefold()


def value_hash(salt: str, value: object) -> str:
    """HMAC-SHA256 of the normalised value, keyed with the allow-list's salt."""
    return hmac.new(salt.encode(), normalise(value).encode(), hashlib.sha256).hexdigest()


class ValueFilter:
    """Answers "is this value allow-listed?" for one allow-list (cheap when it is empty)."""

    def __init__(self, salt: str, hashes: frozenset[str]):
        self.salt, self.hashes = salt, hashes

    def __bool__(self) -> bool:
        return bool(self.hashes)

    def allowed(self, value: object) -> bool:
        if not self.hashes or value is None or value == "":
            return False
        if isinstance(value, int | float) and not isinstance(value, bool):
            if isinstance(value, float) and not value.is_integer():
                return False
            value = int(value)
            # Excel drops a leading zero: try the 12-digit form too.
            return (value_hash(self.salt, value) in self.hashes
                    or value_hash(self.salt, str(value).zfill(12)) in self.hashes)
        return value_hash(self.salt, value) in self.hashes
