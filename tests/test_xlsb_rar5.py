"""Real .xlsb and RAR 5 files, built by hand in tests/filebuilders.py (no Python writer
exists for either, and Debian main has no rar): the xlsb is read by python-calamine like
one Excel saves, a RAR 5 with file or header encryption is held as encrypted_archive."""

from __future__ import annotations

import io
import random

import pytest

from dlp_gateway.extract.compressed import rar5_encrypted_entries
from dlp_gateway.scan import Scanner
from tests import filebuilders as fb
from tests.fuzzcases import persons_rows
from tests.roster import people


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def reasons(result) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(u.part, u.reason) for u in result.unscannable]


@pytest.mark.parametrize("seed", range(4))
def test_calamine_reads_the_hand_built_xlsb(seed: int) -> None:
    from python_calamine import CalamineWorkbook

    rows = fb.roster_rows(6, seed)
    workbook = CalamineWorkbook.from_filelike(io.BytesIO(fb.xlsb_bytes(rows, sheet="名簿")))
    assert workbook.sheet_names == ["名簿"]
    read = workbook.get_sheet_by_index(0).to_python()
    assert read[0] == rows[0]
    assert [[str(int(r[0])), *r[1:]] for r in read[1:]] == rows[1:]  # numbers as numbers


@pytest.mark.parametrize("seed", range(4))
def test_xlsb_roster_of_my_numbers_is_held(scanner: Scanner, seed: int) -> None:
    rng = random.Random(seed)
    persons = people(rng, 5)
    rows = persons_rows(rng, persons, label=["個人番号", ""][seed % 2], style=seed)
    result = scanner.scan_file("名簿.xlsb", fb.xlsb_bytes(rows))
    assert result.unscannable == []
    assert result.counts["my_number"] == 5 and result.counts["records"] == 5, (seed, result.counts)
    assert result.verdict.action == "hold"


def test_xlsb_inside_a_zip_and_cut_short(scanner: Scanner) -> None:
    data = fb.xlsb_bytes(fb.roster_rows(12, 3))
    assert scanner.scan_file("送付.zip", fb.zip_of({"名簿.xlsb": data})).counts["records"] == 12
    cut = scanner.scan_file("名簿.xlsb", data[: len(data) // 2])
    assert [u.reason for u in cut.unscannable] == ["corrupt"] and cut.verdict.action == "hold"


CSV = fb.csv_bytes(fb.roster_rows(8, 5))


def test_plain_rar5_is_read(scanner: Scanner) -> None:
    pytest.importorskip("libarchive")
    result = scanner.scan_file("名簿.rar", fb.rar5_of({"meibo.csv": CSV}))
    assert result.unscannable == [] and result.counts["records"] == 8
    assert {f.part for f in result.findings} == {"名簿.rar/meibo.csv"}


@pytest.mark.parametrize("seed", range(3))
def test_rar5_with_encrypted_files_is_held_as_encrypted_archive(scanner: Scanner,
                                                                seed: int) -> None:
    pytest.importorskip("libarchive")
    data = fb.rar5_of({"meibo.csv": CSV, "memo.txt": b"memo"}, password=True, seed=seed)
    result = scanner.scan_file("名簿.rar", data)
    assert sorted(reasons(result)) == [("名簿.rar/meibo.csv", "encrypted_archive"),
                                       ("名簿.rar/memo.txt", "encrypted_archive")]
    assert result.verdict.action == "hold"


def test_rar5_with_encrypted_headers_is_held_as_encrypted_archive(scanner: Scanner) -> None:
    pytest.importorskip("libarchive")
    result = scanner.scan_file("名簿.rar", fb.rar5_of({"meibo.csv": CSV}, header_encryption=True))
    assert reasons(result) == [("名簿.rar", "encrypted_archive")]
    assert result.verdict.action == "hold"


def test_rar5_header_walk_finds_only_the_encrypted_entries() -> None:
    plain = fb.rar5_of({"a.csv": CSV, "b.txt": b"x"})
    assert rar5_encrypted_entries(plain) == set()
    locked = fb.rar5_of({"a.csv": CSV, "b.txt": b"x"}, password=True)
    assert rar5_encrypted_entries(locked) == {0, 1}
    mixed = plain[: -len(fb._rar5_block(5, 0, fb._vint(0)))] + locked[
        len(fb.RAR5_SIGNATURE) + len(fb._rar5_block(1, 0, fb._vint(0))):]
    assert rar5_encrypted_entries(mixed) == {2, 3}
    for cut in range(0, len(locked), 7):  # a cut archive never raises
        assert rar5_encrypted_entries(locked[:cut]) <= {0, 1}
    assert rar5_encrypted_entries(fb.rar4_of({"a.csv": CSV})) == set()
