"""The rule: every part is scanned, known-harmless (skipped, by structure) or held."""

from __future__ import annotations

import gzip
import io
import random
import zipfile

import pytest

from dlp_gateway.extract.files import extract_file
from dlp_gateway.extract.sniff import sniff
from dlp_gateway.extract.units import Limits, Skipped, TableUnit, TextUnit, Unscannable
from dlp_gateway.scan import Scanner
from tests import filebuilders as fb

ROWS = fb.roster_rows(12, seed=11)
CSV = fb.csv_bytes(ROWS)


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def reasons(result) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(u.part, u.reason) for u in result.unscannable]


# --- harmless kinds: by signature AND structure ------------------------------------------------


@pytest.mark.parametrize("kind", sorted(fb.IMAGES))
def test_real_images_are_skipped_and_pass(scanner: Scanner, kind: str) -> None:
    result = scanner.scan_file("写真.bin", fb.image_bytes(fb.IMAGES[kind]))
    assert result.verdict.action == "pass"
    assert result.to_json()["skipped"] == [{"part": "写真.bin", "kind": kind}]
    assert result.unscannable == []


def test_mac_metadata_in_zip_is_skipped(scanner: Scanner) -> None:
    data = fb.zip_of({"名簿.csv": CSV, "__MACOSX/._名簿.csv": fb.appledouble_bytes(),
                      ".DS_Store": fb.ds_store_bytes()})
    result = scanner.scan_file("送付.zip", data)
    kinds = {(s["part"], s["kind"]) for s in result.to_json()["skipped"]}
    assert kinds == {("送付.zip/__MACOSX/._名簿.csv", "application/applefile"),
                     ("送付.zip/.DS_Store", "application/x-ds-store")}
    assert result.counts["records"] == 12


def test_image_with_data_appended_is_not_harmless(scanner: Scanner) -> None:
    polyglot = fb.image_bytes("PNG") + CSV
    result = scanner.scan_file("a.png", polyglot)
    assert result.skipped == []
    assert result.verdict.action == "hold"



@pytest.mark.parametrize("prefix", [
    b"%PDF-1.4,", b"GIF89a,", b"BM,", b"II*\x00,",
    b"\xff\xd8\xff,", b"\x89PNG\r\n\x1a\n,",
])
def test_text_starting_with_a_magic_is_scanned_as_text(scanner: Scanner, prefix: bytes) -> None:
    data = prefix + b"\r\n" + CSV
    assert sniff("名簿.csv", data).kind in ("text", "pdf")  # pdf: falls back to text
    result = scanner.scan_file("名簿.csv", data)
    assert result.skipped == [] and result.unscannable == []
    assert result.counts["records"] == 12


def test_nul_padded_fixed_width_and_form_feeds_are_text(scanner: Scanner) -> None:
    padded = fb.fixed_width_bytes(ROWS, pad="\0")
    assert scanner.scan_file("export.dat", padded).counts["records"] == 12
    paged = b"".join(b"\x0c" + line + b"\r\n" for line in CSV.split(b"\r\n") if line)
    result = scanner.scan_file("名簿.csv", paged)
    assert result.counts["records"] == 12 and result.unscannable == []


# --- unscannable with a reason ----------------------------------------------------------------


def test_unknown_binary_is_unsupported_and_held(scanner: Scanner) -> None:
    blob = random.Random(5).randbytes(5000)
    result = scanner.scan_file("data.bin", blob)
    assert reasons(result) == [("data.bin", "unsupported_format")]
    assert result.verdict.action == "hold"


def test_random_bytes_named_xlsx_are_corrupt(scanner: Scanner) -> None:
    result = scanner.scan_file("名簿.xlsx", random.Random(6).randbytes(3000))
    assert reasons(result) == [("名簿.xlsx", "corrupt")]
    assert result.verdict.action == "hold"


@pytest.mark.parametrize("header_encryption", [False, True])
def test_encrypted_7z_is_held(scanner: Scanner, header_encryption: bool) -> None:
    data = fb.sevenz_of({"名簿.csv": CSV}, password="secret", header_encryption=header_encryption)
    result = scanner.scan_file("名簿.7z", data)
    assert reasons(result) == [("名簿.7z", "encrypted_archive")]
    assert result.verdict.action == "hold"


def test_gzip_roster_is_held_with_12_records(scanner: Scanner) -> None:
    result = scanner.scan_file("名簿.csv.gz", gzip.compress(CSV))
    assert result.verdict.action == "hold" and result.counts["records"] == 12
    assert {f.part for f in result.findings} == {"名簿.csv.gz/名簿.csv"}


def test_gzip_bomb_is_too_large(scanner: Scanner) -> None:
    bomb = gzip.compress(bytes(50 << 20))
    result = Scanner(limits=Limits(max_ratio=100)).scan_file("a.gz", bomb)
    assert [u.reason for u in result.unscannable] == ["too_large"]


def test_tar_nesting_obeys_depth_limit() -> None:
    data = CSV
    for _ in range(4):
        data = fb.tar_of({"inner.tar": data})
    result = Scanner(limits=Limits(max_depth=2)).scan_file("a.tar", data)
    assert "too_deep" in [u.reason for u in result.unscannable]


def test_rar_via_libarchive(scanner: Scanner) -> None:
    pytest.importorskip("libarchive")
    result = scanner.scan_file("名簿.rar", fb.rar4_of({"meibo.csv": CSV}))
    assert result.unscannable == [] and result.counts["records"] == 12


def test_pdf_without_text_layer_is_held_unless_policy_says_otherwise(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from dlp_gateway.detect.patterns import DEFAULT_PATTERNS_DIR

    data = fb.image_only_pdf_bytes()
    result = Scanner().scan_file("scan.pdf", data)
    assert reasons(result) == [("scan.pdf", "no_text_layer")]
    assert result.verdict.action == "hold"
    custom = tmp_path / "patterns"
    shutil.copytree(DEFAULT_PATTERNS_DIR, custom)
    policy = (custom / "policy.toml").read_text(encoding="utf-8")
    (custom / "policy.toml").write_text(policy.replace(
        "unscannable_ignore = []", 'unscannable_ignore = ["no_text_layer"]'), encoding="utf-8")
    relaxed = Scanner(custom).scan_file("scan.pdf", data)
    assert reasons(relaxed) == [("scan.pdf", "no_text_layer")]
    assert relaxed.verdict.action == "pass"


def test_encrypted_pdf_is_held(scanner: Scanner) -> None:
    from reportlab.lib import pdfencrypt
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    page = canvas.Canvas(out, encrypt=pdfencrypt.StandardEncryption("user", "owner"))
    page.drawString(50, 700, "secret")
    page.save()
    result = scanner.scan_file("a.pdf", out.getvalue())
    assert reasons(result) == [("a.pdf", "encrypted_pdf")]


def test_pdf_roster_counts_one_person_per_row(scanner: Scanner) -> None:
    rows = fb.roster_rows(150, seed=3)
    result = scanner.scan_file("名簿.pdf", fb.pdf_bytes(rows, font="HeiseiMin-W3"))
    assert result.counts["records"] == 150
    assert result.counts["insured_number"] == 150


# --- zip oddities and packages ----------------------------------------------------------------


def test_zip_comment_is_scanned(scanner: Scanner) -> None:
    text = "\n".join(f"{r[1]} 生年月日 {r[2]}" for r in ROWS[1:]).encode()
    result = scanner.scan_file("a.zip", fb.zip_of({"readme.txt": b"hello"}, comment=text))
    assert result.counts["records"] == 12
    assert {f.part for f in result.findings} == {"a.zip"}


def test_member_named_like_a_directory_is_read(scanner: Scanner) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("名簿.csv/", CSV)
    assert scanner.scan_file("a.zip", out.getvalue()).counts["records"] == 12


def test_self_extracting_zip(scanner: Scanner) -> None:
    stub = b"MZ" + random.Random(1).randbytes(4000)
    result = scanner.scan_file("名簿.exe", stub + fb.zip_of({"名簿.csv": CSV}))
    assert result.counts["records"] == 12 and result.unscannable == []


def test_extra_member_and_embedded_package_in_office_files(scanner: Scanner) -> None:
    docx = fb.docx_bytes([["件名"], ["お知らせ"]])
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(docx)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr("名簿.csv", CSV)
    result = scanner.scan_file("通知.docx", out.getvalue())
    assert result.counts["records"] == 12
    assert {f.part for f in result.findings} == {"通知.docx/名簿.csv"}
    xlsx = fb.xlsx_bytes([["件名"], ["お知らせ"]])
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr("xl/embeddings/Microsoft_Excel_Worksheet.xlsx", fb.xlsx_bytes(ROWS))
    result = scanner.scan_file("集計.xlsx", out.getvalue())
    assert result.counts["records"] == 12


# --- messages inside things -------------------------------------------------------------------


def test_msg_attachment_inside_zip_and_mail(scanner: Scanner) -> None:
    from email.message import EmailMessage

    msg_file = fb.msg_with_roster(ROWS)
    result = scanner.scan_file("転送.zip", fb.zip_of({"転送.msg": msg_file}))
    assert result.counts["records"] == 12
    assert {f.part for f in result.findings} == {"転送.zip/転送.msg/名簿.csv"}
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "a@city.example.lg.jp", "b@example.com", "転送"
    mail.set_content("添付のとおり")
    mail.add_attachment(msg_file, maintype="application", subtype="vnd.ms-outlook",
                        filename="転送.msg")
    result = scanner.scan_message(mail.as_bytes())
    assert result.counts["records"] == 12
    assert not any(f.in_body for f in result.findings)


def test_msg_body_is_attachment_content(scanner: Scanner) -> None:
    body = "\n".join(f"{r[1]} 生年月日 {r[2]}" for r in ROWS[1:4])
    result = scanner.scan_file("a.msg", fb.msg_bytes("件名", body))
    assert result.counts["records"] == 3
    assert not any(f.in_body for f in result.findings)


# --- every outcome is one of the three states ---------------------------------------------------


def _mutations(seed: int) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    cases = []
    for name, build in sorted(fb.BUILDERS.items()):
        data = build(fb.roster_rows(5, seed))
        cut = data[: rng.randrange(1, max(len(data), 2))]
        flipped = bytearray(data)
        for _ in range(3):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        cases += [(name, cut), (name, bytes(flipped)), (name, rng.randbytes(rng.randrange(1, 600)))]
    return cases


@pytest.mark.parametrize("seed", [1, 2])
def test_every_part_ends_scanned_skipped_or_unscannable(seed: int) -> None:
    scanner = Scanner(limits=Limits(timeout_seconds=20))
    for name, data in _mutations(seed):
        kind = sniff(name, data)
        units = list(extract_file(name, data, Limits()))
        assert units, f"seed={seed} {name}: no unit at all ({kind})"
        assert all(isinstance(u, TextUnit | TableUnit | Skipped | Unscannable) for u in units)
        for unit in units:
            if isinstance(unit, Skipped):
                assert unit.kind in {"empty", *fb.IMAGES, "application/applefile",
                                     "application/x-ds-store", "font/ttf"}, (seed, name, unit)
        result = scanner.scan_file(name, data)
        if result.unscannable:
            assert result.verdict.action == "hold", (seed, name)


def test_lzh_with_cp932_names(scanner: Scanner) -> None:
    pytest.importorskip("libarchive")
    result = scanner.scan_file("名簿.lzh", fb.lzh_of({"名簿.csv": CSV, "メモ.txt": b"memo"}))
    assert result.unscannable == [] and result.counts["records"] == 12
    assert {f.part for f in result.findings} == {"名簿.lzh/名簿.csv"}


def test_package_media_and_data_stores_are_read_by_content(scanner: Scanner) -> None:
    docx = fb.add_members(fb.docx_bytes([["件名"], ["お知らせ"]]), {
        "word/media/image1.png": fb.image_bytes("PNG"),
        "word/media/image2.emf": fb.emf_bytes(),
        "word/media/image3.wmf": fb.wmf_bytes(),
        "word/media/image4.png": CSV,  # a csv under an image name is still a csv
    })
    result = scanner.scan_file("通知.docx", docx)
    assert {(s["part"], s["kind"]) for s in result.to_json()["skipped"]} == {
        ("通知.docx/word/media/image1.png", "image/png"),
        ("通知.docx/word/media/image2.emf", "image/emf"),
        ("通知.docx/word/media/image3.wmf", "image/wmf")}
    assert result.counts["records"] == 12
    assert {f.part for f in result.findings} == {"通知.docx/word/media/image4.png"}


def test_plain_office_files_have_nothing_unread(scanner: Scanner) -> None:
    for name in ("a.xlsx", "a.docx"):
        result = scanner.scan_file(name, fb.BUILDERS[f"名簿{name[1:]}"](ROWS))
        assert result.unscannable == [] and result.skipped == [], name


@pytest.mark.parametrize("name", ["名簿_xml.xls", "名簿_html.xls", "連絡先.vcf", "名簿.txt"])
def test_table_readers_draw_on_the_cell_budget(name: str) -> None:
    data = fb.BUILDERS[name](ROWS)
    result = Scanner(limits=Limits(max_cells=10)).scan_file(name, data)
    assert [u.reason for u in result.unscannable] == ["too_large"], name


def _kinds_sniff_can_return() -> set[str]:
    import inspect
    import re

    from dlp_gateway.extract import sniff as sniff_module

    return set(re.findall(r'Kind\("(\w+)"', inspect.getsource(sniff_module)))


@pytest.mark.parametrize("kind", sorted(_kinds_sniff_can_return()))
def test_every_sniffed_kind_ends_in_one_of_three_states(kind: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Force each kind on garbage and on a real file: some unit always comes out, and a
    reader never reads nothing (the safety net of extract_part is never what answers)."""
    from dlp_gateway.extract import files
    from dlp_gateway.extract.sniff import Kind

    monkeypatch.setattr(files, "sniff", lambda *_args: Kind(kind, "x/y", "forced"))
    for data in (random.Random(kind).randbytes(700), CSV):
        units = list(files.extract_file("f.bin", data, Limits()))
        assert units, kind
        assert all(isinstance(u, TextUnit | TableUnit | Skipped | Unscannable) for u in units)
        assert not any(isinstance(u, Skipped) for u in units) or kind == "harmless", kind
        assert files.NOTHING_READ not in {getattr(u, "detail", "") for u in units}, kind


@pytest.mark.parametrize("name", ["a.zip", "a.tar", "a.7z"])
def test_empty_archives_are_skipped_as_empty(scanner: Scanner, name: str) -> None:
    build = {"a.zip": fb.zip_of, "a.tar": fb.tar_of, "a.7z": fb.sevenz_of}[name]
    result = scanner.scan_file(name, build({}))
    assert result.to_json()["skipped"] == [{"part": name, "kind": "empty"}]
    assert result.verdict.action == "pass"


def test_pdf_with_owner_password_only_is_read(scanner: Scanner) -> None:
    from reportlab.lib import pdfencrypt
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("HeiseiMin-W3"))
    out = io.BytesIO()
    page = canvas.Canvas(out, encrypt=pdfencrypt.StandardEncryption("", "owner", canPrint=1))
    page.setFont("HeiseiMin-W3", 10)
    page.drawString(50, 700, "個人番号 1234 5678 9018")
    page.save()
    result = scanner.scan_file("a.pdf", out.getvalue())
    assert result.unscannable == [] and result.counts["my_number"] == 1


def test_pdf_text_as_outlines_is_no_text_layer(scanner: Scanner) -> None:
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    page = canvas.Canvas(out)
    path = page.beginPath()
    path.moveTo(10, 10)
    path.lineTo(100, 100)
    page.drawPath(path)
    page.save()
    result = scanner.scan_file("outlined.pdf", out.getvalue())
    assert reasons(result) == [("outlined.pdf", "no_text_layer")]
    blank = io.BytesIO()
    canvas.Canvas(blank).save()
    assert scanner.scan_file("blank.pdf", blank.getvalue()).unscannable == []


def test_harmless_kinds_come_from_the_patterns_directory(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from dlp_gateway.detect.patterns import DEFAULT_PATTERNS_DIR

    custom = tmp_path / "patterns"
    shutil.copytree(DEFAULT_PATTERNS_DIR, custom)
    toml = (custom / "harmless.toml").read_text(encoding="utf-8")
    (custom / "harmless.toml").write_text(toml.replace('kind = "image/png"', 'kind = "x/png"'),
                                          encoding="utf-8")
    png = fb.image_bytes("PNG")
    assert [s.kind for s in Scanner(custom).scan_file("a.png", png).skipped] == ["x/png"]
    assert [s.kind for s in Scanner().scan_file("a.png", png).skipped] == ["image/png"]


def test_encrypted_rar_member_is_held(scanner: Scanner) -> None:
    pytest.importorskip("libarchive")
    result = scanner.scan_file("a.rar", fb.rar4_encrypted_of({"meibo.csv": CSV}))
    assert reasons(result) == [("a.rar/meibo.csv", "encrypted_archive")]
    assert result.counts["records"] == 0 and result.verdict.action == "hold"


def test_msg_forwarded_inside_msg(scanner: Scanner) -> None:
    inner = "__attach_version1.0_#00000000/"
    embedded = inner + "__substg1.0_3701000D/"
    body = "\n".join(f"被保険者番号 {r[0]} 氏名 {r[1]} 生年月日 {r[2]}" for r in ROWS[1:6])
    data = fb.cfb({
        "__substg1.0_0037001F": "FW: 名簿".encode("utf-16-le"),
        "__substg1.0_1000001F": "転送します".encode("utf-16-le"),
        inner + "__substg1.0_3707001F": "元のメール".encode("utf-16-le"),
        embedded + "__substg1.0_0037001F": "名簿".encode("utf-16-le"),
        embedded + "__substg1.0_1000001F": body.encode("utf-16-le"),
        embedded + "__attach_version1.0_#00000000/__substg1.0_3707001F":
            "名簿.csv".encode("utf-16-le"),
        embedded + "__attach_version1.0_#00000000/__substg1.0_37010102": CSV,
    })
    result = scanner.scan_file("FW.msg", data)
    assert result.unscannable == []
    parts = {f.part for f in result.findings}
    assert parts == {"FW.msg/元のメール.msg", "FW.msg/元のメール.msg/名簿.csv"}
    assert result.counts["records"] == 5 + 12


def test_text_with_an_lzh_signature_is_text(scanner: Scanner) -> None:
    data = b"a,-lh5-,x\r\n" + CSV
    assert sniff("名簿.csv", data).kind == "libarchive"
    result = scanner.scan_file("名簿.csv", data)
    assert result.unscannable == [] and result.counts["records"] == 12
    broken = scanner.scan_file("a.lzh", b"\x20\x00-lh5-" + random.Random(2).randbytes(400))
    assert [u.reason for u in broken.unscannable] == ["corrupt"]


def test_lzh_member_with_bad_crc_is_held_and_still_scanned(scanner: Scanner) -> None:
    pytest.importorskip("libarchive")
    data = bytearray(fb.lzh_of({"名簿.csv": CSV}))
    data[-5] ^= 0x01  # a byte of the member's data (the archive ends with one NUL)
    result = scanner.scan_file("名簿.lzh", bytes(data))
    assert [(u.part, u.reason) for u in result.unscannable] == [("名簿.lzh/名簿.csv", "corrupt")]
    assert "CRC" in result.unscannable[0].detail
    assert result.verdict.action == "hold" and result.counts["records"] >= 11


@pytest.mark.parametrize("text", [
    "令和4年5月20日\n\n延岡市長 様\n\n介護保険課長\n\n下記のとおり通知します。\n以上\n",
    "Dear colleague,\nplease find the attached list of the meeting\nrooms for next week and the\n"
    "schedule of the visits to the care homes in the north district.\nBest regards\n",
    "山田太郎 様\n本日はご来庁ありがとうございました。\n次回は6月1日です。\n",
])
def test_prose_is_not_a_fixed_width_table(text: str) -> None:
    from dlp_gateway.extract.fixedwidth import fixed_width_table

    assert fixed_width_table(text, "a.txt", "a.txt") is None
