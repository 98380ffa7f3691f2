"""Default policy (DOMAIN.md §7) as data: hold / encrypt / pass and approver roles."""

from __future__ import annotations

import pytest

from dlp_gateway.detect.patterns import PatternError, load_patterns
from dlp_gateway.detect.records import RecordCount
from dlp_gateway.extract.units import Unscannable
from dlp_gateway.policy import decide

POLICY = load_patterns().policy


def verdict(records: int = 0, in_body: int = 0, unscannable: int = 0, **counts: int):  # type: ignore[no-untyped-def]
    full = {"my_number": 0, "insured_number": 0, "name": 0, "birth_date": 0, **counts}
    parts = [Unscannable(f"a{i}.zip", "encrypted_archive") for i in range(unscannable)]
    return decide(POLICY, full, RecordCount(records, in_body), parts)


def test_my_number_needs_ciso() -> None:
    v = verdict(records=1, my_number=1)
    assert (v.action, v.approver_role) == ("hold", "ciso")
    assert "マイナンバー（個人番号） 1件" in v.reasons


def test_ten_records_hold_for_section_head() -> None:
    v = verdict(records=7203, insured_number=7203, name=7203, birth_date=7203)
    assert (v.action, v.approver_role, v.rules) == ("hold", "section_head", ("many_records",))
    assert "被保険者番号 7,203件" in v.reasons


def test_few_records_in_attachments_encrypt() -> None:
    v = verdict(records=9, insured_number=9)
    assert v.action == "encrypt" and v.approver_role is None


def test_record_in_body_holds() -> None:
    assert verdict(records=1, in_body=1, name=1, birth_date=1).action == "hold"


def test_unscannable_holds_with_reason() -> None:
    v = verdict(unscannable=1)
    assert v.action == "hold" and "暗号化された圧縮ファイル" in v.reasons[0]


def test_names_and_dates_alone_pass() -> None:
    assert verdict(name=40, birth_date=3).action == "pass"


def test_broken_policy_file_is_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from dlp_gateway.detect.patterns import DEFAULT_PATTERNS_DIR

    shutil.copytree(DEFAULT_PATTERNS_DIR, tmp_path / "p")
    (tmp_path / "p" / "policy.toml").write_text(
        '[[rules]]\nid="x"\nmetric="nope"\nmin=1\naction="hold"\nreason="r"\n', encoding="utf-8"
    )
    with pytest.raises(PatternError, match="metric"):
        load_patterns(tmp_path / "p")


@pytest.mark.parametrize(("reason", "label"), [
    ("unsupported_format", "対応していない形式"),
    ("no_text_layer", "文字情報のないPDF（スキャン画像）"),
    ("encrypted_pdf", "パスワード付きPDF"),
])
def test_new_unscannable_reasons_hold_with_japanese_labels(reason: str, label: str) -> None:
    full = {"my_number": 0, "insured_number": 0, "name": 0, "birth_date": 0}
    v = decide(POLICY, full, RecordCount(0, 0), [Unscannable("a.bin", reason)])  # type: ignore[arg-type]
    assert v.action == "hold"
    assert any(f"a.bin: {label}" in r for r in v.reasons)


def test_unscannable_ignore_lets_a_reason_through(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from dlp_gateway.detect.patterns import DEFAULT_PATTERNS_DIR

    shutil.copytree(DEFAULT_PATTERNS_DIR, tmp_path / "p")
    file = tmp_path / "p" / "policy.toml"
    text = file.read_text(encoding="utf-8")
    file.write_text(text.replace("unscannable_ignore = []",
                                 'unscannable_ignore = ["no_text_layer"]'), encoding="utf-8")
    policy = load_patterns(tmp_path / "p").policy
    full = {"my_number": 0, "insured_number": 0, "name": 0, "birth_date": 0}
    scan = [Unscannable("scan.pdf", "no_text_layer")]
    assert decide(policy, full, RecordCount(0, 0), scan).action == "pass"
    both = [*scan, Unscannable("a.7z", "encrypted_archive")]
    v = decide(policy, full, RecordCount(0, 0), both)
    assert v.action == "hold" and "検査できない部分 1件" in v.reasons[0]
    file.write_text(text.replace("unscannable_ignore = []", "unscannable_ignore = 3"),
                    encoding="utf-8")
    with pytest.raises(PatternError, match="unscannable_ignore"):
        load_patterns(tmp_path / "p")
