"""Message bytes -> ScanResult: extract, detect, group into records, decide.

No I/O besides reading what it is given, so a ``Scanner`` can live in a worker
process of the relay. Build one ``Scanner`` and reuse it: loading the patterns
and the SudachiPy dictionary is the expensive part.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dlp_gateway.detect.correspondents import display_names
from dlp_gateway.detect.engine import DetectionEngine
from dlp_gateway.detect.findings import (
    FINDING_TYPES,
    ID_CODE_TYPES,
    Finding,
    FindingList,
    Omitted,
    omitted_of,
    total_findings,
)
from dlp_gateway.detect.patterns import AllowList, PatternSet, load_patterns
from dlp_gateway.detect.records import count_records
from dlp_gateway.extract.files import extract_file
from dlp_gateway.extract.mime import extract_message
from dlp_gateway.extract.units import (
    AltPath,
    Limits,
    Skipped,
    TableUnit,
    TextUnit,
    Unit,
    Unscannable,
)
from dlp_gateway.policy import Verdict, decide

Envelope = tuple[str, list[str]]  # (sender, recipients)


@dataclass(slots=True)
class ScanResult:
    verdict: Verdict
    counts: dict[str, int]
    findings: list[Finding]
    unscannable: list[Unscannable] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        """``findings_total`` and ``findings_truncated`` appear only when ``findings`` is
        the evidence of a bigger count (a table past the evidence bound)."""
        out: dict[str, object] = {
            "verdict": self.verdict.action,
            "reasons": list(self.verdict.reasons),
            "counts": self.counts,
            "findings": [f.to_json() for f in self.findings],
        }
        total = self.findings_total
        if total > len(self.findings):
            out["findings_total"] = total
            out["findings_truncated"] = True
        out["unscannable"] = [{"part": u.part, "reason": u.reason} for u in self.unscannable]
        out["skipped"] = [{"part": s.part, "kind": s.kind} for s in self.skipped]
        return out

    @property
    def findings_total(self) -> int:
        """Every finding counted, also those past the evidence bound (not in ``findings``)."""
        return total_findings(self.findings)

    def parts_with_findings(self) -> set[str]:
        """Top-level parts (attachment file names, or ``body``) that carry findings."""
        parts = {f.part for f in self.findings if not f.in_body}
        omitted = omitted_of(self.findings)
        if omitted is not None:
            parts |= omitted.parts
        return {p.split("/", 1)[0] for p in parts}


def _alt_score(findings: list[Finding]) -> tuple[int, int, int]:
    ids = sum(1 for f in findings if f.type in ID_CODE_TYPES)
    omitted = omitted_of(findings)
    if omitted is not None:
        ids += sum(n for t, n in omitted.by_type.items() if t in ID_CODE_TYPES)
    return count_records(findings).total, ids, total_findings(findings)


class AltTree:
    """Findings in unit order, with alternative readings resolved at the end.

    Units with an ``alt`` path (two decodings of one part, the branches of a
    multipart/alternative) are all scanned; per group the option with the most
    person records (then ID codes, then findings; the first option on a tie) is
    kept, so a person present in both the text and the html branch counts once.
    """

    __slots__ = ("entries", "groups")

    def __init__(self) -> None:
        self.entries: list[list[Finding] | str] = []  # findings, or a group id
        self.groups: dict[str, dict[str, AltTree]] = {}

    def add(self, alt: AltPath, findings: list[Finding]) -> None:
        node = self
        for group, option in alt:
            if group not in node.groups:
                node.groups[group] = {}
                node.entries.append(group)
            node = node.groups[group].setdefault(option, AltTree())
        node.entries.append(findings)

    def resolve(self) -> list[Finding]:
        out = FindingList(omitted=Omitted())
        for entry in self.entries:
            if isinstance(entry, str):
                options = [tree.resolve() for tree in self.groups[entry].values()]
                entry = max(options, key=_alt_score)
            out.extend(entry)
            out.omitted.merge(omitted_of(entry))  # type: ignore[union-attr]
        return out


class Scanner:
    """Scans messages and files with one loaded pattern set."""

    def __init__(
        self,
        patterns_dir: Path | str | None = None,
        limits: Limits | None = None,
        patterns: PatternSet | None = None,
    ):
        self.patterns: PatternSet = patterns or load_patterns(patterns_dir)
        self.limits = dataclasses.replace(
            limits or Limits(), harmless_dir=str(self.patterns.directory)
        )
        self.engine = DetectionEngine(self.patterns)

    def scan_message(self, raw: bytes, envelope: Envelope | None = None) -> ScanResult:
        """Scan an RFC 5322 message (bytes as received).

        ``envelope`` (sender, recipients) drives the allow-lists; without it the
        From/To/Cc headers stand in (the ``scan`` command has no envelope). The From/To/Cc
        display names are the mail's correspondents: not counted as names in the body.
        """
        envelope = envelope or envelope_from_headers(raw)
        sender_allowed = allowed_sender(self.patterns.allow, envelope[0])
        result = self._scan(
            extract_message(raw, self.limits),
            recipients_allowed=recipients_allowed(self.patterns.allow, envelope[1]),
            correspondents=display_names(raw),
        )
        if sender_allowed:
            result.verdict = Verdict(
                "pass", ("許可リストの送信者 (allow-listed sender)",), ("allow_sender",)
            )
        return result

    def scan_file(self, name: str, data: bytes) -> ScanResult:
        """Scan a single file (xlsx, docx, csv, txt, zip, ...) given its name and bytes."""
        return self._scan(extract_file(name, data, self.limits))

    def scan_units(self, units: Iterable[Unit]) -> ScanResult:
        """Scan units already extracted (tests compare extraction and verdict)."""
        return self._scan(iter(units))

    def _scan(  # type: ignore[no-untyped-def]
        self,
        units_iter,
        recipients_allowed: bool = False,
        correspondents: frozenset[str] = frozenset(),
    ) -> ScanResult:
        started = time.monotonic()
        deadline = started + self.limits.timeout_seconds
        tree = AltTree()
        unscannable: list[Unscannable] = []
        skipped: list[Skipped] = []
        try:
            for unit in units_iter:
                self._collect(unit, tree, unscannable, skipped, correspondents)
                if time.monotonic() > deadline:
                    unscannable.append(Unscannable("message", "timeout", "scan time limit"))
                    break
        except MemoryError:
            unscannable.append(Unscannable("message", "too_large", "memory limit"))
        except Exception as exc:  # a reader bug must hold the message, not pass it
            unscannable.append(Unscannable("message", "corrupt", f"{type(exc).__name__}: {exc}"))
        return self._result(tree.resolve(), unscannable, skipped, started, recipients_allowed)

    def held_result(self, unit: Unscannable) -> ScanResult:
        """The result of a scan that could not finish (killed over its limits)."""
        return self._result([], [unit], [], time.monotonic())

    def _collect(
        self,
        unit: Unit,
        tree: AltTree,
        unscannable: list[Unscannable],
        skipped: list[Skipped],
        correspondents: frozenset[str] = frozenset(),
    ) -> None:
        try:
            if isinstance(unit, TextUnit):
                tree.add(unit.alt, self.engine.scan_text(unit, correspondents))
            elif isinstance(unit, TableUnit):
                tree.add(unit.alt, self.engine.scan_table(unit))
        except MemoryError:
            raise
        except Exception as exc:  # a lazy reader failing mid-table: that part is held
            unscannable.append(Unscannable(unit.part, "corrupt", f"{type(exc).__name__}: {exc}"))
            return
        if isinstance(unit, Unscannable):
            unscannable.append(unit)
        elif isinstance(unit, Skipped):
            skipped.append(unit)

    def _result(
        self,
        findings: list[Finding],
        unscannable: list[Unscannable],
        skipped: list[Skipped],
        started: float,
        recipients_allowed: bool = False,
    ) -> ScanResult:
        by_type = Counter(f.type for f in findings)
        omitted = omitted_of(findings)
        if omitted is not None:
            by_type.update(omitted.by_type)
        id_types = tuple(t.id for t in self.patterns.id_types)
        counts = {t: by_type.get(t, 0) for t in (*FINDING_TYPES, *id_types)}
        records = count_records(findings, tuple(t.id for t in self.patterns.id_types if t.record))
        counts["records"] = records.total
        verdict = decide(self.patterns.policy, counts, records, unscannable, recipients_allowed)
        return ScanResult(
            verdict=verdict,
            counts=counts,
            findings=findings,
            unscannable=unscannable,
            skipped=skipped,
            seconds=time.monotonic() - started,
        )


def envelope_from_headers(raw: bytes) -> Envelope:
    """(From, To+Cc) addresses of a message, for scans without an SMTP envelope.

    Read with the one strict address parser: a header it refuses (a forged
    ``"a@allowed,"@evil`` form) gives no address, so no allow-list can apply.
    """
    from email import message_from_bytes
    from email.policy import compat32

    from dlp_gateway.mail.addresses import AddressError, header_addresses

    def addresses(values: list[str]) -> list[str]:
        try:
            return [a for v in values for a in header_addresses(v)]
        except AddressError:
            return []

    try:
        msg = message_from_bytes(raw[:65536].split(b"\r\n\r\n")[0].split(b"\n\n")[0],
                                 policy=compat32)
        senders = addresses([str(msg["From"])] if msg["From"] else [])
        rcpts = addresses([str(v) for v in msg.get_all("To", []) + msg.get_all("Cc", [])])
    except Exception:
        return "", []
    return (senders[0] if len(senders) == 1 else ""), rcpts


def allowed_sender(allow: AllowList, sender: str) -> bool:
    return bool(sender) and sender.strip("<>").lower() in allow.senders


def recipients_allowed(allow: AllowList, rcpts: list[str]) -> bool:
    """Every recipient is in an allow-listed domain (or a subdomain of one)."""
    if not rcpts or not allow.recipient_domains:
        return False
    for rcpt in rcpts:
        domain = rcpt.strip("<>").rpartition("@")[2].lower()
        if not any(domain == d or domain.endswith("." + d) for d in allow.recipient_domains):
            return False
    return True
