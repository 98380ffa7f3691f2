"""One wall-clock and memory limit per scan, in the CLI as in the relay.

`dlp-gateway scan` runs each PATH in a forked child: a scan that runs over its time
becomes hold/timeout, one that outgrows its memory cap hold/too_large, and the JSON
keeps its contract. The relay caps its workers the same way: a message whose scan
kills its worker is held, never answered 451 forever.
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from pathlib import Path

import openpyxl

from tests.conftest import RECIPIENT, SENDER, send
from tests.test_scan_cli import KEYS, run_scan


def sparse_xlsx(last_cell: str) -> bytes:
    """A tiny workbook whose only cells are A1 and ``last_cell`` (calamine allocates
    the whole rectangle between them)."""
    wb = openpyxl.Workbook()
    wb.active["A1"] = "個人番号"
    wb.active["B2"] = "x"
    buf = io.BytesIO()
    wb.save(buf)
    src = zipfile.ZipFile(buf)
    row = re.sub(r"\D", "", last_cell)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                content = content.replace(b'r="B2"', f'r="{last_cell}"'.encode())
                content = content.replace(b'<row r="2"', f'<row r="{row}"'.encode())
                content = re.sub(rb'<dimension ref="[^"]*"/>', b"", content)
            dst.writestr(info, content)
    return out.getvalue()


def _only(stdout: str) -> dict:
    [line] = stdout.strip().splitlines()
    return json.loads(line)


def test_cli_scan_over_its_time_is_held_as_timeout(tmp_path: Path) -> None:
    big = tmp_path / "export.txt"
    line = "氏名 山田太郎 生年月日 1970年1月1日 住所 大阪府堺市堺区南瓦町3番1号\n"
    big.write_text(line * 400_000, encoding="utf-8")  # ~40 MB of free text
    small = tmp_path / "memo.txt"
    small.write_text("会議は午後二時からです。\n", encoding="utf-8")
    started = time.monotonic()
    proc = run_scan("--format", "json", "--timeout", "2", str(big), str(small))
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    first, second = (json.loads(x) for x in proc.stdout.strip().splitlines())
    assert set(first) == KEYS and first["path"] == str(big)
    assert first["verdict"] == "hold"
    assert first["unscannable"] == [{"part": "export.txt", "reason": "timeout"}]
    assert second["verdict"] == "pass" and second["unscannable"] == []
    assert elapsed < 30  # killed at its limit, not run to the end


def test_cli_scan_over_its_memory_is_held_as_too_large(tmp_path: Path) -> None:
    path = tmp_path / "台帳.xlsx"
    path.write_bytes(sparse_xlsx("J1000000"))  # 10 M cells: under the cell guard
    proc = run_scan("--format", "json", "--max-memory", "64", str(path))
    assert proc.returncode == 0, proc.stderr
    result = _only(proc.stdout)
    assert set(result) == KEYS
    assert result["verdict"] == "hold"
    assert result["unscannable"] == [{"part": "台帳.xlsx", "reason": "too_large"}]


def test_cli_limits_off_scans_in_process(tmp_path: Path) -> None:
    path = tmp_path / "memo.txt"
    path.write_text("個人番号 123456789018 の件\n", encoding="utf-8")
    proc = run_scan("--format", "json", "--timeout", "0", "--max-memory", "0", str(path))
    result = _only(proc.stdout)
    assert result["verdict"] == "hold" and result["counts"]["my_number"] == 1


def test_cli_rejects_negative_limits(tmp_path: Path) -> None:
    assert run_scan("--timeout", "-1", str(tmp_path)).returncode == 2


def _held_mail(attachment: bytes) -> bytes:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = SENDER, RECIPIENT, "台帳"
    msg.set_content("台帳を送ります。")
    msg.add_attachment(attachment, maintype="application",
                       subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                       filename="台帳.xlsx")
    from email.policy import default

    return msg.as_bytes(policy=default.clone(linesep="\r\n"))


def test_relay_holds_a_message_that_kills_its_worker(gateway_factory, upstream_sink) -> None:
    gw = gateway_factory(scan_max_memory_mb=64, scan_workers=1, web=False)
    code, reply = send(gw.smtp_port, _held_mail(sparse_xlsx("J1000000")))
    assert code == 250, reply
    assert "held" in reply
    [held] = gw.gateway.held.list()
    assert "corrupt" in held.rules  # the relay's crash rule (scan_max_attempts)
    assert upstream_sink.to(RECIPIENT) == []
    # the pool was replaced: the next ordinary mail passes
    from tests.conftest import clean_mail

    assert send(gw.smtp_port, clean_mail(2))[0] == 250
    deadline = time.monotonic() + 20
    while not upstream_sink.to(RECIPIENT) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(upstream_sink.to(RECIPIENT)) == 1


def test_relay_holds_the_far_apart_cells_workbook(gateway_factory, upstream_sink) -> None:
    """The 2 KB A1..XFD1048576 workbook: held as too_large, not a dead worker (451)."""
    gw = gateway_factory(web=False)
    code, reply = send(gw.smtp_port, _held_mail(sparse_xlsx("XFD1048576")))
    assert code == 250, reply
    [held] = gw.gateway.held.list()
    assert "unscannable" in held.rules
