"""The worked examples of docs/patterns.md run as written (the 基礎年金番号 ID type)."""

from __future__ import annotations

import io
import random
import re
import shutil
from pathlib import Path

import pytest

from dlp_gateway.commands.patterns import run_examples
from dlp_gateway.detect.patterns import DEFAULT_PATTERNS_DIR, check_patterns, load_patterns
from dlp_gateway.scan import Scanner

DOC = Path(__file__).resolve().parents[1] / "docs" / "patterns.md"
BLOCK = re.compile(r"```toml\n# append to: (\S+)\n(.*?)```", re.S)


@pytest.fixture(scope="module")
def documented(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("doc") / "patterns"
    shutil.copytree(DEFAULT_PATTERNS_DIR, target)
    blocks = BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert {name for name, _ in blocks} == {"id_types.toml", "policy.toml"}
    for name, body in blocks:
        with (target / name).open("a", encoding="utf-8") as fh:
            fh.write("\n" + body)
    return target


def test_documented_set_checks_and_its_examples_pass(documented: Path) -> None:
    assert check_patterns(documented) == []
    patterns = load_patterns(documented)
    assert [t.id for t in patterns.id_types] == ["kiso_nenkin"]
    results = run_examples(patterns)
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    assert any(r.example.startswith("[kiso_nenkin]") for r in results)


def _number(rng: random.Random) -> tuple[str, str]:
    office, serial = f"{rng.randint(0, 9999):04d}", f"{rng.randint(0, 999999):06d}"
    wide = str.maketrans("0123456789-", "０１２３４５６７８９－")
    form = rng.choice([f"{office}-{serial}", f"{office}{serial}",
                       f"{office}-{serial}".translate(wide)])
    return form, serial[-4:]


@pytest.mark.parametrize("seed", range(8))
def test_kiso_nenkin_in_text_needs_context(documented: Path, seed: int) -> None:
    rng = random.Random(seed)
    scanner = Scanner(documented)
    number, last4 = _number(rng)
    label = rng.choice(["基礎年金番号", "年金番号", "年金手帳の番号"])
    gap = rng.choice(["：", " ", "は", "は、"])
    result = scanner.scan_file("a.txt", f"{label}{gap}{number}です".encode())
    found = [f for f in result.findings if f.type == "kiso_nenkin"]
    assert [f.masked[-4:] for f in found] == [last4], (seed, label, number)
    assert "1234" not in found[0].masked[:-4] and result.counts["kiso_nenkin"] == 1
    assert result.counts["records"] == 1
    bare = scanner.scan_file("a.txt", f"会議室 {number}".encode())
    assert bare.counts["kiso_nenkin"] == 0, (seed, number)
    negative = scanner.scan_file("a.txt", f"事業所番号 {number}".encode())
    assert negative.counts["kiso_nenkin"] == 0, (seed, number)


def test_kiso_nenkin_column_in_a_spreadsheet(documented: Path) -> None:
    import openpyxl

    rng = random.Random(5)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["氏名", "基礎年金番号", "備考"])
    expected = []
    for i in range(rng.randint(6, 9)):
        number, last4 = _number(rng)
        if i % 3 == 2:  # typed as a number: Excel keeps it as an integer cell
            number = int(f"{rng.randint(1000, 9999)}{rng.randint(0, 999999):06d}")
            last4 = f"{number:010d}"[-4:]
        elif i % 3 == 1:  # an office code 0xxx typed as a number: the leading zeros are lost
            number = int(f"{rng.randint(0, 999):04d}{rng.randint(0, 999999):06d}")
            last4 = f"{number:010d}"[-4:]
        ws.append([f"山田太郎{i}", number, "特になし"])
        expected.append(last4)
    buf = io.BytesIO()
    wb.save(buf)
    result = Scanner(documented).scan_file("年金.xlsx", buf.getvalue())
    found = [f.masked[-4:] for f in result.findings if f.type == "kiso_nenkin"]
    assert sorted(found) == sorted(expected)
    assert len({f.location for f in result.findings if f.type == "kiso_nenkin"}) == len(found)
    assert result.counts["records"] >= len(expected)
    verdict = result.verdict
    assert verdict.monitor == ("kiso_nenkin",) and verdict.monitor_action == "hold"
    assert verdict.action == "encrypt" and "kiso_nenkin" not in verdict.rules
