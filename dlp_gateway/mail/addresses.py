"""One strict mail-address parser for the relay, the notices and the admin page.

An envelope address the gateway acts on (a sender who gets a password, an approver
who gets a link) must be exactly one mailbox: ``local@domain`` with a dot-atom
local part (RFC 5321 Dot-string; UTF-8 allowed, RFC 6531) and a host-name domain.
Quoted local parts, comments, display names, address literals, source routes and
lists are refused: ``"attacker@evil.example,"@city.example.lg.jp`` is *one* RFC 5322
address, but any code that splits on commas sees two, so it never gets this far.
Header values (To:, Cc:) are parsed with ``email.headerregistry`` and every
address in them must pass the same check.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.headerregistry import AddressHeader

MAX_ADDRESS = 254
MAX_LOCAL = 64
MAX_LABEL = 63

# RFC 5322 atext, plus any non-ASCII character (RFC 6531 UTF8-non-ascii).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]+"
_LOCAL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*\Z")
_LABEL = re.compile(r"[A-Za-z0-9\u0080-\U0010ffff](?:[A-Za-z0-9\-\u0080-\U0010ffff]*"
                    r"[A-Za-z0-9\u0080-\U0010ffff])?\Z")


# Non-ASCII mailboxes are fine here (SMTPUTF8); the email package flags them anyway.
_UTF8_DEFECTS = {"NonASCIILocalPartDefect"}


class AddressError(ValueError):
    """Not exactly one well-formed mailbox."""


@dataclass(frozen=True, slots=True)
class Mailbox:
    local: str
    domain: str  # lower-cased

    @property
    def addr_spec(self) -> str:
        return f"{self.local}@{self.domain}"

    @property
    def is_ascii(self) -> bool:
        return self.addr_spec.isascii()

    def __str__(self) -> str:
        return self.addr_spec


def parse_mailbox(text: str) -> Mailbox:
    """``local@domain`` exactly (no brackets, quotes, comments, lists); raise AddressError."""
    if not isinstance(text, str) or not text:
        raise AddressError("empty address")
    if len(text) > MAX_ADDRESS:
        raise AddressError("address too long")
    if _has_surrogates(text):
        raise AddressError("address is not valid UTF-8")
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise AddressError("address needs local@domain")
    if len(local.encode("utf-8")) > MAX_LOCAL or not _LOCAL.match(local):
        raise AddressError("local part must be a plain dot-atom (no quotes, commas, spaces)")
    labels = domain.split(".")
    if any(len(lb) > MAX_LABEL or not _LABEL.match(lb) for lb in labels):
        raise AddressError("domain must be a host name")
    return Mailbox(local, domain.lower())


def is_mailbox(text: str) -> bool:
    try:
        parse_mailbox(text)
    except AddressError:
        return False
    return True


def normalize(text: str) -> str:
    """Case-folded form for comparisons (login vs MAIL FROM, account lookups)."""
    return text.strip().lower()


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().strip(">").lower()


def in_domains(address: str, domains: Iterable[str]) -> bool:
    """True if the address's domain is one of ``domains`` or a subdomain of one."""
    domain = domain_of(address)
    return any(domain == d or domain.endswith("." + d) for d in domains if d)


def header_addresses(value: str) -> list[str]:
    """The addr-specs of an address-list header (To, Cc), parsed by ``email``.

    Raises AddressError when the header is not a clean list of plain mailboxes,
    so a caller never falls back to splitting on commas.
    """
    parsed: dict = {}
    try:
        AddressHeader.parse(str(value), parsed)
    except Exception as exc:  # the email package raises several types on garbage
        raise AddressError(f"unparsable address header: {exc}") from exc
    defects = [d for d in parsed.get("defects", ()) if type(d).__name__ not in _UTF8_DEFECTS]
    if defects:
        raise AddressError("address header has defects: "
                           + "; ".join(type(d).__name__ for d in defects))
    result = []
    for group in parsed.get("groups", ()):
        for address in group.addresses:
            result.append(parse_mailbox(address.addr_spec).addr_spec)
    if not result:
        raise AddressError("no address in header")
    return result


def format_list(addresses: Iterable[str]) -> str:
    """A To: value for plain mailboxes (each checked first)."""
    return ", ".join(parse_mailbox(a).addr_spec for a in addresses)


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


__all__ = [
    "AddressError",
    "Mailbox",
    "domain_of",
    "format_list",
    "header_addresses",
    "in_domains",
    "is_mailbox",
    "normalize",
    "parse_mailbox",
]
