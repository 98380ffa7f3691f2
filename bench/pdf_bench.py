"""PDF library comparison (not a test): `make bench-pdf` or `python bench/pdf_bench.py`.

Prints a 7,203-row roster to PDF with reportlab (HeiseiKakuGo-W5, a built-in CID font,
no font download), then, each in a fresh child process, extracts text *with positions*
(what rebuilding table rows needs) with pypdfium2, pdfminer.six and pypdf, and times
the gateway's full scan of the file (pypdfium2 + row rebuilding + detection).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
ROWS = 7_203

CHILD = r"""
import json, resource, sys, time
kind, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
t0 = time.perf_counter()
chars = 0
if kind == "pypdfium2":
    import pypdfium2 as pdfium
    doc = pdfium.PdfDocument(data)
    for page in doc:
        tp = page.get_textpage()
        n = tp.count_chars()
        text = tp.get_text_range(0, n)
        for i in range(n):
            tp.get_charbox(i)
        chars += n
elif kind == "pdfminer.six":
    import io
    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LTTextLine, LTTextContainer
    for page in extract_pages(io.BytesIO(data)):
        for box in page:
            if isinstance(box, LTTextContainer):
                for line in box:
                    if isinstance(line, LTTextLine):
                        chars += len(line.get_text())
elif kind == "pypdf":
    import io
    from pypdf import PdfReader
    def visit(text, cm, tm, font, size):
        global chars
        chars += len(text)
    for page in PdfReader(io.BytesIO(data)).pages:
        page.extract_text(visitor_text=visit)
elif kind == "scan":
    from dlp_gateway.scan import Scanner
    scanner = Scanner()
    t0 = time.perf_counter()
    result = scanner.scan_file("roster.pdf", data)
    chars = result.counts["records"]
print(json.dumps({"seconds": time.perf_counter() - t0, "chars": chars,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_pdf(path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.filebuilders import pdf_bytes, roster_rows

    path.write_bytes(pdf_bytes(roster_rows(ROWS, seed=7203)))


def main() -> None:
    OUT.mkdir(exist_ok=True)
    pdf = OUT / "roster_7203.pdf"
    if not pdf.exists():
        started = time.perf_counter()
        make_pdf(pdf)
        print(f"generated {pdf.name} ({pdf.stat().st_size:,} bytes) "
              f"in {time.perf_counter() - started:.1f} s")
    for kind in ("pypdfium2", "pdfminer.six", "pypdf", "scan"):
        out = subprocess.run([sys.executable, "-c", CHILD, kind, str(pdf)], capture_output=True,
                             text=True, check=True, cwd=ROOT)
        figures = json.loads(out.stdout)
        label = "records" if kind == "scan" else "chars"
        print(f"{kind:13s} {figures['seconds']:7.2f} s  peak {figures['peak_mib']:6.0f} MiB  "
              f"{label} {figures['chars']:,}")


if __name__ == "__main__":
    main()
