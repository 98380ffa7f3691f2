"""The built wheel carries the shipped patterns: an installed (non-editable) copy scans."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    if result.returncode != 0:
        pytest.fail(f"pip wheel failed:\n{result.stderr[-2000:]}")
    (path,) = out.glob("dlp_gateway-*.whl")
    return path


def test_wheel_contains_every_patterns_file(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = {n for n in zf.namelist() if n.startswith("dlp_gateway/bundled_patterns/")}
    shipped = {f"dlp_gateway/bundled_patterns/{p.name}" for p in (ROOT / "patterns").glob("*.toml")}
    assert shipped and shipped <= names


def test_installed_wheel_scans_with_its_own_patterns(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    sample = tmp_path / "roster.txt"
    sample.write_text("個人番号：123456789018\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = (
        "import sys, dlp_gateway; assert dlp_gateway.__file__.startswith(sys.argv[1]), "
        "dlp_gateway.__file__; from dlp_gateway.cli import main; sys.exit(main(sys.argv[2:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(target), "scan", "--format", "json", str(sample)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[0])
    assert report["verdict"] == "hold"
    assert report["counts"]["my_number"] == 1
