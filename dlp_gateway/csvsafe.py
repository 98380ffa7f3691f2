"""CSV cells that a spreadsheet will not run: formula injection (CWE-1236) defused.

A text cell beginning with ``=``, ``+``, ``-``, ``@`` (or a tab / carriage return,
which some spreadsheets skip before looking) gets a leading apostrophe, so Excel
shows it as text instead of evaluating ``=HYPERLINK(...)`` or ``@SUM(...)`` from a
subject line or an address somebody chose.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` unchanged unless it is text a spreadsheet would read as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in values]
