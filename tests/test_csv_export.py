"""Issue 10: CSV exports escape cells a spreadsheet would run as formulas."""

from __future__ import annotations

import csv
import io
import random

from dlp_gateway import cli
from dlp_gateway.csvsafe import safe_cell
from dlp_gateway.gateway import Gateway
from tests.conftest import make_config, roster_mail

STARTS = ["=", "+", "-", "@", "\t", "\r"]


def test_audit_csv_has_no_cell_starting_like_a_formula(tmp_path):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    config = make_config(tmp_path, None)
    gw = Gateway(config)
    try:
        payloads = [f"{rng.choice(STARTS)}HYPERLINK(\"http://evil.example/?{i}\",\"x\")"
                    for i in range(12)]
        for i, payload in enumerate(payloads):
            held = gw.held.add(roster_mail(3), sender="staff@city.example.lg.jp",
                               recipients=[f"{payload[:1]}r{i}@care.example.com"],
                               subject=payload, reasons=["r"], rules=["x"],
                               approver_role="section_head")
            gw.audit.append("hold", payload, held.id, {"note": payload})
    finally:
        gw.close()
    target = tmp_path / "audit.csv"
    assert cli.main(["audit", "export", "--csv", str(target),
                     "--data-dir", str(config.data_dir)]) == 0
    rows = list(csv.reader(io.StringIO(target.read_text(encoding="utf-8-sig"))))
    cells = [cell for row in rows[1:] for cell in row]
    bad = [c for c in cells if c[:1] in STARTS]
    assert not bad, f"seed={seed} {bad[:3]}"
    assert any(c.startswith("'=") or c.startswith("'@") or c.startswith("'+")
               or c.startswith("'-") for c in cells), f"seed={seed}"


def test_safe_cell_leaves_ordinary_values_alone():
    assert safe_cell("佐藤 花子") == "佐藤 花子" and safe_cell(-5) == -5
    assert safe_cell("=1+1") == "'=1+1" and safe_cell("@SUM(A1)") == "'@SUM(A1)"
