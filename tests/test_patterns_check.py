"""`patterns check` / `patterns test`: every schema key, broken on purpose, is reported
at its own file:line; a set with a problem is refused by load_patterns and `scan`."""

from __future__ import annotations

import dataclasses
import random
import shutil
from pathlib import Path

import pytest

from dlp_gateway.cli import main
from dlp_gateway.detect.patterns import (
    DEFAULT_PATTERNS_DIR,
    PatternError,
    check_patterns,
    load_patterns,
)
from dlp_gateway.detect.schema import SCHEMA, LineFinder

WRONG = {"int": '"zwei"', "float": '"half"', "bool": '"yes"', "str": "12", "words": "[1, 2]",
         "ints": '["x"]', "regex": "7", "rows": '"x"'}


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "patterns"
    shutil.copytree(DEFAULT_PATTERNS_DIR, target)
    return target


def _key_line(path: Path, table: str, key: str) -> int:
    finder = LineFinder(path.read_text(encoding="utf-8"))
    return finder.lines[(table, None, key)]


def _replace_value(path: Path, line: int, value: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    key = lines[line - 1].split("=", 1)[0]
    # multi-line arrays: drop the continuation lines of the old value
    end = line
    if lines[line - 1].rstrip().endswith("["):
        while not lines[end].strip().startswith("]"):
            end += 1
        end += 1
    lines[line - 1 : end] = [f"{key}= {value}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


SECTION_KEYS = [
    (stem, key, spec.kind)
    for stem in ("my_number", "insured_number", "birth_date", "name")
    for key, spec in SCHEMA[stem][stem].items()
]


def test_shipped_set_is_clean() -> None:
    assert check_patterns() == []


@pytest.mark.parametrize(("stem", "key", "kind"), SECTION_KEYS)
def test_wrong_type_reported_at_its_line(copy: Path, stem: str, key: str, kind: str) -> None:
    path = copy / f"{stem}.toml"
    line = _key_line(path, stem, key)
    _replace_value(path, line, WRONG[kind])
    problems = check_patterns(copy)
    assert [p.file for p in problems] == [f"{stem}.toml"], problems
    assert problems[0].line == line and problems[0].message.startswith(f"{key}:"), problems
    with pytest.raises(PatternError) as info:
        load_patterns(copy)
    assert f"{stem}.toml:{line}: {key}" in str(info.value)


@pytest.mark.parametrize("stem", ["my_number", "insured_number", "birth_date", "name"])
def test_unknown_and_misspelt_keys(copy: Path, stem: str) -> None:
    rng = random.Random(stem)
    key = rng.choice(sorted(SCHEMA[stem][stem]))
    misspelt = key[:-1] + ("x" if key[-1] != "x" else "y")
    path = copy / f"{stem}.toml"
    text = path.read_text(encoding="utf-8")
    text = text.replace(f"[{stem}]\n", f"[{stem}]\nallow_numbers = [1]\n{misspelt} = 3\n", 1)
    path.write_text(text, encoding="utf-8")
    header = text.splitlines().index(f"[{stem}]") + 1
    got = {(p.line, p.message.split(" in ")[0]) for p in check_patterns(copy)}
    assert (header + 1, "unknown key 'allow_numbers'") in got, got
    assert (header + 2, f"unknown key '{misspelt}'") in got, got
    assert any(f"did you mean '{key}'" in p.message for p in check_patterns(copy))


def test_broken_regex_names_key_line_and_offending_part(copy: Path) -> None:
    path = copy / "insured_number.toml"
    line = _key_line(path, "insured_number", "symbol_number_regex")
    _replace_value(path, line, "'記号\\s*(?P<symbol>[0-9A-Z]+ 番号[0-9]{1,12'")
    (problem,) = check_patterns(copy)
    assert problem.line == line and "regex does not compile" in problem.message
    assert "offending part" in problem.message


def test_toml_syntax_error_has_line(copy: Path) -> None:
    path = copy / "name.toml"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(9, "max_cell_length = = 3")
    path.write_text("\n".join(lines), encoding="utf-8")
    (problem,) = check_patterns(copy)
    assert problem.file == "name.toml" and problem.line == 10 and "syntax" in problem.message


@pytest.mark.parametrize("stem", sorted(SCHEMA))
def test_toml_syntax_error_at_end_of_file_has_its_line(copy: Path, stem: str) -> None:
    path = copy / f"{stem}.toml"
    text = path.read_text(encoding="utf-8").rstrip("\n") + "\n\n[broken\n"
    path.write_text(text, encoding="utf-8")
    (problem,) = check_patterns(copy)
    assert (problem.file, problem.line) == (path.name, text.count("\n"))


def test_a_utf8_bom_is_accepted(copy: Path) -> None:
    """Windows Notepad saves UTF-8 with a BOM; the set must load the same."""
    for path in copy.glob("*.toml"):
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert check_patterns(copy) == []
    shipped, with_bom = load_patterns(DEFAULT_PATTERNS_DIR), load_patterns(copy)
    same = ("directory", "digest")
    assert dataclasses.replace(with_bom, **{k: getattr(shipped, k) for k in same}) == shipped


def test_a_shift_jis_file_is_named_with_its_line(copy: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = copy / "name.toml"
    text = path.read_text(encoding="utf-8")
    first_kanji_line = next(i for i, ln in enumerate(text.splitlines(), 1)
                            if any(ord(c) > 0x7F for c in ln))
    path.write_bytes(text.encode("cp932", errors="replace"))
    (problem,) = check_patterns(copy)
    assert (problem.file, problem.line) == ("name.toml", first_kanji_line)
    assert "UTF-8" in problem.message and "cp932" in problem.message
    with pytest.raises(PatternError, match=r"name\.toml:\d+: not UTF-8"):
        load_patterns(copy)
    sample = copy.parent / "a.txt"
    sample.write_text("本文", encoding="utf-8")
    assert main(["scan", "--patterns", str(copy), str(sample)]) == 2
    assert "UTF-8" in capsys.readouterr().err


def test_out_of_range_thresholds(copy: Path) -> None:
    path = copy / "my_number.toml"
    line = _key_line(path, "my_number", "column_checksum_share")
    _replace_value(path, line, "1.5")
    (problem,) = check_patterns(copy)
    assert problem.line == line and "out of range" in problem.message


def test_policy_references(copy: Path) -> None:
    path = copy / "policy.toml"
    text = path.read_text(encoding="utf-8")
    text = text.replace('metric = "records"', 'metric = "recrods"')
    text = text.replace('approver_role = "section_head"\nreason = "個人情報 {n}人分',
                        'approver_role = "chief"\nreason = "個人情報 {n}人分')
    text = text.replace('id = "records_in_body"', 'id = "my_number"')
    path.write_text(text, encoding="utf-8")
    lines = text.splitlines()
    problems = {p.line: p.message for p in check_patterns(copy)}
    assert "unknown metric 'recrods'" in problems[lines.index('metric = "recrods"') + 1]
    assert "'chief' is not one of" in problems[lines.index('approver_role = "chief"') + 1]
    dup = [i + 1 for i, ln in enumerate(lines) if ln == 'id = "my_number"'][1]
    assert "duplicate rule id" in problems[dup]


def test_unknown_file_is_reported(copy: Path) -> None:
    (copy / "my_numbers.toml").write_text("x = 1\n", encoding="utf-8")
    (problem,) = check_patterns(copy)
    assert problem.file == "my_numbers.toml"


def test_cli_check_exit_codes(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["patterns", "check", str(copy)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK:") and len(out.strip().splitlines()) == 1
    path = copy / "birth_date.toml"
    path.write_text(path.read_text(encoding="utf-8").replace("max_age_years = 120",
                                                             "max_age_years = 0"))
    assert main(["patterns", "check", str(copy)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("birth_date.toml:") and "max_age_years" in out


def test_scan_refuses_a_failing_set(copy: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = copy / "name.toml"
    path.write_text(path.read_text(encoding="utf-8").replace("[name]", "[name]\nmin_count = 2"))
    sample = tmp_path / "a.txt"
    sample.write_text("個人番号：123456789018", encoding="utf-8")
    assert main(["scan", "--patterns", str(copy), str(sample)]) == 2
    err = capsys.readouterr().err
    assert "name.toml:" in err and "min_count" in err


def test_patterns_test_runs_every_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["patterns", "test"]) == 0
    out = capsys.readouterr().out
    patterns = load_patterns()
    total = sum(len(getattr(patterns, k).examples)
                for k in ("my_number", "insured_number", "birth_date", "name"))
    total += len(patterns.policy.examples) + len(patterns.id_examples)
    assert f"{total} passed, 0 failed" in out
    assert patterns.policy.examples, "policy.toml ships examples"


def test_patterns_test_fails_on_a_wrong_example(copy: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with (copy / "my_number.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[[examples]]\ntext = "注文番号 123456789018"\ncount = 1\n')
    with (copy / "policy.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[[examples]]\nname = "wrong"\ntext = "こんにちは"\nverdict = "hold"\n')
    assert main(["patterns", "test", str(copy)]) == 1
    out = capsys.readouterr().out
    fails = [ln for ln in out.splitlines() if ln.startswith("FAIL")]
    assert len(fails) == 2 and "2 failed" in out


def test_lines_after_multiline_table_rows_stay_right(copy: Path) -> None:
    path = copy / "policy.toml"
    with path.open("a", encoding="utf-8") as fh:
        fh.write('\n[[examples]]\nname = "rows"\ntable = [\n  ["氏名", "生年月日"],\n'
                 '  ["山田太郎", "1970/03/02"],\n]\nverdct = "encrypt"\n')
    lines = path.read_text(encoding="utf-8").splitlines()
    problems = check_patterns(copy)
    typo = next(p for p in problems if "verdct" in p.message)
    assert typo.line == lines.index('verdct = "encrypt"') + 1
    assert "did you mean 'verdict'" in typo.message
    assert any("missing key 'verdict'" in p.message for p in problems)


RANDOM_VALUES = ['"x"', "0", "-5", "1.5", "true", "[]", '["a", "a"]', "[1, 2]", "{}",
                 '{a = 1}', '"(?P<x"', '""', "[[1]]", "99999999"]


@pytest.mark.parametrize("seed", range(int(__import__("os").environ.get("DLP_FUZZ_N", "12"))))
def test_random_edits_never_crash_the_checker(copy: Path, seed: int) -> None:
    """Any edit gives problems with file:line or a loadable set; never an exception."""
    rng = random.Random(seed)
    files = sorted(copy.glob("*.toml"))
    for _ in range(rng.randint(1, 4)):
        path = rng.choice(files)
        lines = path.read_text(encoding="utf-8").splitlines()
        keyed = [i for i, ln in enumerate(lines) if "=" in ln and not ln.startswith(("#", " "))]
        if not keyed:
            continue
        i = rng.choice(keyed)
        key = lines[i].split("=", 1)[0]
        if lines[i].rstrip().endswith("["):
            continue
        lines[i] = f"{key}= {rng.choice(RANDOM_VALUES)}"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    problems = check_patterns(copy)
    for p in problems:
        assert p.file.endswith(".toml") and p.line >= 0 and p.message, (seed, p)
    if problems:
        with pytest.raises(PatternError):
            load_patterns(copy)
    else:
        load_patterns(copy)
