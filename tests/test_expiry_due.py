"""Issue 10: the expiry pass loads only the held rows that are due, not all of them."""

from __future__ import annotations

import datetime as dt
import json
import tracemalloc

from dlp_gateway.approval import run_expiry
from dlp_gateway.gateway import Gateway
from tests.conftest import make_config, roster_mail

FINDINGS = json.dumps([{"type": "my_number", "masked": "********0001", "part": "a.xlsx",
                        "location": f"a.xlsx!名簿!A{i}", "confidence": 0.9} for i in range(150)])


def test_expiry_pass_does_not_load_every_held_row(tmp_path):
    gw = Gateway(make_config(tmp_path, None, escalate_hours=24, expire_hours=72))
    try:
        now = dt.datetime.now(dt.UTC)
        due = gw.held.add(roster_mail(3), sender="a@city.example.lg.jp",
                          recipients=["b@care.example.com"], subject="古い", reasons=["r"],
                          rules=["x"], approver_role="section_head")
        old = (now - dt.timedelta(hours=80)).isoformat(timespec="seconds")
        fresh = now.isoformat(timespec="seconds")
        with gw.db.transaction() as conn:
            conn.execute("UPDATE held SET received = ? WHERE id = ?", (old, due.id))
            conn.executemany(
                "INSERT INTO held (id, received, sender, recipients, subject, reasons, rules,"
                " approver_role, status, sha256, size, spool_name, findings)"
                " VALUES (?, ?, 's@city.example.lg.jp', '[]', '件名', '[]', '[]',"
                " 'section_head', 'held', '', 0, 'held/x', ?)",
                [(f"fresh{i:05d}", fresh, FINDINGS) for i in range(1500)],
            )
        tracemalloc.start()
        done = run_expiry(gw, now)
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert done["expire"] == [due.id]
        assert peak < 4_000_000, peak  # 1,500 rows x ~20 KB of findings were never loaded
    finally:
        gw.close()
