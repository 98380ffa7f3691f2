"""Native parsers run in a child process: a crash, a runaway allocation or a hang
becomes a held part, and the scan goes on with the next part."""

from __future__ import annotations

import ctypes
import time

import pytest

from dlp_gateway.extract.isolate import IsolatedFailure as IsolatedError
from dlp_gateway.extract.isolate import run_isolated
from dlp_gateway.extract.units import Limits
from dlp_gateway.scan import Scanner
from tests import filebuilders as fb


def _segfault(_data: bytes) -> None:
    ctypes.string_at(0)


def _allocate(_data: bytes) -> bytes:
    return bytes(64 << 30)


def _hang(_data: bytes) -> None:
    time.sleep(30)


def test_result_comes_back() -> None:
    assert run_isolated(sorted, [3, 1, 2]) == [1, 2, 3]


@pytest.mark.parametrize(("fn", "reason"), [(_segfault, "corrupt"), (_allocate, "too_large"),
                                            (_hang, "timeout")])
def test_failures_become_reasons(fn, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IsolatedError) as caught:
        run_isolated(fn, b"", timeout=1.0)
    assert caught.value.reason == reason


def test_crashing_pdf_reader_holds_that_part_only(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from dlp_gateway.extract import pdf

    monkeypatch.setattr(pdf, "_read_pdf", _segfault)
    rows = fb.roster_rows(3, seed=1)
    data = fb.zip_of({"a.pdf": fb.pdf_bytes(rows), "名簿.csv": fb.csv_bytes(rows)})
    result = Scanner(limits=Limits(timeout_seconds=10)).scan_file("送付.zip", data)
    assert [(u.part, u.reason) for u in result.unscannable] == [("送付.zip/a.pdf", "corrupt")]
    assert "crashed" in result.unscannable[0].detail
    assert result.counts["records"] == 3  # the csv next to it was still read
    assert result.verdict.action == "hold"
