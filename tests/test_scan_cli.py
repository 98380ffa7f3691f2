"""`dlp-gateway scan`: one JSON object per PATH, in order; errors and exit statuses."""

from __future__ import annotations

import datetime as dt
import io
import json
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import openpyxl
import pytest
import pyzipper

KEYS = {"path", "verdict", "reasons", "counts", "findings", "unscannable", "skipped"}


def run_scan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dlp_gateway.cli", "scan", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def roster_xlsx(rows: int) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Sheet1"
    ws.append(["令和4年 要介護認定者一覧"])
    ws.append(["被保険者番号", "氏名", "生年月日", "性別", "住所", "要介護度"])
    for i in range(rows):
        ws.append(
            [f"{i + 1:010d}", "延岡花子", dt.date(1938, 4, 1 + i % 28), "女", "延岡市", "要介護2"]
        )
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def message(body: str, attachments: list[tuple[str, bytes]] = ()) -> bytes:  # type: ignore[assignment]
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "staff@city.example.lg.jp", "c@example.com", "送付"
    msg.set_content(body, charset="iso-2022-jp")
    for name, data in attachments:
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return bytes(msg)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("corpus")
    files = {
        "clean.eml": message("お世話になっております。会議資料を送ります。\n総務課 山田"),
        "roster.eml": message("名簿です。", [("R4介護認定者.xlsx", roster_xlsx(40))]),
        "few.eml": message("資料です。", [("対象者.xlsx", roster_xlsx(3))]),
        "mynumber.eml": message("個人番号：1234 5678 9018 の方の件です。"),
        "roster.xlsx": roster_xlsx(12),
    }
    buf = io.BytesIO()
    with pyzipper.AESZipFile(buf, "w", encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(b"secret")
        zf.writestr("名簿.xlsx", roster_xlsx(2))
    files["locked.zip"] = buf.getvalue()
    paths = {}
    for name, data in files.items():
        paths[name] = d / name
        paths[name].write_bytes(data)
    return paths


def test_json_lines_in_order_with_verdicts(corpus: dict[str, Path]) -> None:
    names = ["clean.eml", "roster.eml", "few.eml", "mynumber.eml", "roster.xlsx", "locked.zip"]
    proc = run_scan("--format", "json", *(str(corpus[n]) for n in names))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    results = [json.loads(line) for line in lines]
    assert [r["path"] for r in results] == [str(corpus[n]) for n in names]
    assert all(set(r) >= KEYS for r in results)
    verdicts = {n: r["verdict"] for n, r in zip(names, results, strict=True)}
    assert verdicts == {
        "clean.eml": "pass",
        "roster.eml": "hold",
        "few.eml": "encrypt",
        "mynumber.eml": "hold",
        "roster.xlsx": "hold",
        "locked.zip": "hold",
    }
    roster = results[1]
    assert roster["counts"] == {
        "my_number": 0,
        "insured_number": 40,
        "name": 40,
        "birth_date": 40,
        "records": 40,
    }
    cell = roster["findings"][0]
    assert cell["location"] == "R4介護認定者.xlsx!Sheet1!A3"
    assert cell["part"] == "R4介護認定者.xlsx"
    assert results[5]["unscannable"][0]["reason"] == "encrypted_archive"
    assert "9018" in results[3]["findings"][0]["masked"]
    assert "123456789018" not in proc.stdout and "1234 5678 9018" not in proc.stdout


def test_unreadable_path_gives_error_object_and_exit_1(corpus: dict[str, Path]) -> None:
    proc = run_scan("--format", "json", "/nonexistent/x.eml", str(corpus["clean.eml"]))
    assert proc.returncode == 1
    first, second = (json.loads(x) for x in proc.stdout.strip().splitlines())
    assert first["path"] == "/nonexistent/x.eml" and "error" in first
    assert second["verdict"] == "pass"


def test_usage_error_exits_2() -> None:
    assert run_scan("--format", "yaml", "x").returncode == 2
    assert run_scan().returncode == 2


def test_text_format_is_a_readable_summary(corpus: dict[str, Path]) -> None:
    proc = run_scan(str(corpus["mynumber.eml"]))
    assert proc.returncode == 0
    assert "保留 (hold)" in proc.stdout and "統括情報セキュリティ責任者" in proc.stdout


def test_json_lists_skipped_and_new_reasons(tmp_path: Path) -> None:
    import random

    from tests import filebuilders as fb

    files = {
        "photo.png": fb.image_bytes("PNG"),
        "bundle.zip": fb.zip_of({"a.csv": b"x,y\r\n1,2\r\n", "__MACOSX/._a.csv":
                                 fb.appledouble_bytes()}),
        "blob.bin": random.Random(3).randbytes(3000),
        "scan.pdf": fb.image_only_pdf_bytes(),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    proc = run_scan("--format", "json", *(str(tmp_path / n) for n in files))
    assert proc.returncode == 0, proc.stderr
    results = {Path(r["path"]).name: r for r in map(json.loads, proc.stdout.splitlines())}
    assert results["photo.png"]["skipped"] == [{"part": "photo.png", "kind": "image/png"}]
    assert results["photo.png"]["verdict"] == "pass"
    assert results["bundle.zip"]["skipped"] == [
        {"part": "bundle.zip/__MACOSX/._a.csv", "kind": "application/applefile"}]
    assert results["blob.bin"]["unscannable"] == [
        {"part": "blob.bin", "reason": "unsupported_format"}]
    assert results["blob.bin"]["verdict"] == "hold"
    assert results["scan.pdf"]["unscannable"] == [{"part": "scan.pdf", "reason": "no_text_layer"}]
    assert all(r["skipped"] == [] for n, r in results.items() if n in ("blob.bin", "scan.pdf"))
