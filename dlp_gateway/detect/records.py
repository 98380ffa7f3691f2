"""Findings -> person records.

A record is one person's data in one table row or one paragraph: an
identification code (My Number or insured-person number, personal information on
its own under the APPI), or a name together with a birth date. Names alone and
dates alone are not records.

A paragraph listing several people counts each of them: a group holds as many
records as its largest identification-code count, or as many name+date pairs as
it has, whichever is greater.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from dlp_gateway.detect.findings import Finding, omitted_of


@dataclass(frozen=True, slots=True)
class RecordCount:
    total: int
    in_body: int


def records_in_group(types: Iterable[str], id_types: Iterable[str] = ()) -> int:
    """``id_types``: operator-defined ID types that make a record on their own."""
    counts: dict[str, int] = defaultdict(int)
    for t in types:
        counts[t] += 1
    return max(
        counts["my_number"],
        counts["insured_number"],
        min(counts["name"], counts["birth_date"]),
        *(counts[t] for t in id_types),
    )


def count_records(findings: Iterable[Finding], id_types: Iterable[str] = ()) -> RecordCount:
    groups: dict[str, list[str]] = defaultdict(list)
    body_groups: set[str] = set()
    for f in findings:
        groups[f.group].append(f.type)
        if f.in_body:
            body_groups.add(f.group)
    total = in_body = 0
    for group, types in groups.items():
        n = records_in_group(types, id_types)
        total += n
        if group in body_groups:
            in_body += n
    omitted = omitted_of(findings)
    if omitted is not None:  # rows past the evidence bound, counted when read
        total += omitted.records
        in_body += omitted.in_body_records
    return RecordCount(total, in_body)
