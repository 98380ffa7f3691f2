"""`scan --explain`: why each finding fired, why near misses did not (Japanese and English)."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pytest
from stdnum.jp import in_ as my_number_check

from dlp_gateway.cli import main
from dlp_gateway.detect.patterns import load_patterns

PATTERNS = load_patterns()


def valid(rng: random.Random) -> str:
    while True:
        body = "".join(rng.choice("0123456789") for _ in range(11))
        number = body + my_number_check.calc_check_digit(body)
        if len(set(number)) > 1:
            return number


def _run(capsys: pytest.CaptureFixture[str], path: Path, fmt: str = "json") -> str:
    assert main(["scan", "--explain", "--format", fmt, str(path)]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("seed", range(10))
def test_keyword_distance_and_near_misses(tmp_path: Path, capsys, seed: int) -> None:
    rng = random.Random(seed)
    keyword = rng.choice(PATTERNS.my_number.labels.positive)
    gap = rng.choice(["：", " ", "は", "：\u3000"])
    negative = rng.choice([w for w in PATTERNS.my_number.labels.negative if len(w) > 2])
    hit, trap, bare = valid(rng), valid(rng), valid(rng)
    text = (f"{keyword}{gap}{hit}\n\n" + "あ" * 40 + f"\n{negative} {trap} の件\n\n"
            + "い" * 400 + f"\n参照 {bare}\n")
    path = tmp_path / "a.txt"
    path.write_text(text, encoding="utf-8")
    out = _run(capsys, path)
    doc = json.loads(out)
    [finding] = [f for f in doc["findings"] if f["type"] == "my_number"]
    why = finding["explain"]
    distance = len(gap)
    assert f"「{keyword}」が {distance} 文字前" in why["ja"], (seed, why)
    assert f"'{keyword}' {distance} chars before" in why["en"] and "check digit" in why["en"]
    assert "my_number" in why["rules"]
    misses = {m["masked"][-4:]: m for m in doc["near_misses"]}
    assert trap[-4:] in misses and f"「{negative}」" in misses[trap[-4:]]["ja"], (seed, misses)
    assert bare[-4:] in misses and "no keyword" in misses[bare[-4:]]["en"], (seed, misses)
    assert doc["verdict_explain"]["en"].startswith("hold by rule(s) my_number")
    for number in (hit, trap, bare):
        assert number not in out


def test_table_header_and_title_context(tmp_path: Path, capsys) -> None:
    import openpyxl

    rng = random.Random(3)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["令和6年度 児童手当 受給者一覧"])
    ws.append([])
    ws.append(["氏名", "個人番号", "管理番号"])
    numbers = [valid(rng) for _ in range(4)]
    for i, n in enumerate(numbers):
        ws.append([f"山田{'一二三四'[i]}郎", n, valid(rng)])
    buf = io.BytesIO()
    wb.save(buf)
    path = tmp_path / "一覧.xlsx"
    path.write_bytes(buf.getvalue())
    doc = json.loads(_run(capsys, path))
    mine = [f for f in doc["findings"] if f["type"] == "my_number"]
    assert len(mine) == len(numbers)
    for f in mine:
        assert "列見出し「個人番号」（3 行目）" in f["explain"]["ja"], f
        assert "title context '令和6年度 児童手当 受給者一覧'" in f["explain"]["en"]
    misses = doc["near_misses"]
    assert len(misses) == 4 and all("管理番号" in m["ja"] for m in misses)
    text = _run(capsys, path, "text")
    assert "検出の理由" in text and "near misses" in text and "under the column header" in text


def test_without_explain_no_extra_fields(tmp_path: Path, capsys) -> None:
    path = tmp_path / "a.txt"
    path.write_text("個人番号：123456789018", encoding="utf-8")
    assert main(["scan", "--format", "json", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "explain" not in doc["findings"][0] and "near_misses" not in doc
