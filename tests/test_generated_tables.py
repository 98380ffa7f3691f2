"""Generated municipal tables and mails (issue 8): exact verdict and counts per seed.

Each case comes from ``tests.gen.make_case(seed)``: one value per dimension (content,
layout, number form, date form, name form, name pool, file type, wrapping, size). The
expected verdict and counts follow from the domain rules, never from the engine.

- ``make test``: 500 seeds (``DLP_GEN_N`` changes the count, ``DLP_GEN_SEED_BASE`` the first).
- ``make fuzz``: 20,000 seeds (``DLP_FUZZ=1``; ``DLP_FUZZ_N`` changes the count).
- Replay one: ``DLP_GEN_SEED=123 .venv/bin/python -m pytest -q tests/test_generated_tables.py``;
  look at it: ``.venv/bin/python -m tests.gen 123 --out /tmp/case --scan``.

Dimension values the engine does not handle yet are listed in KNOWN_GAPS with their issue-8
class; cases that use one are skipped with that reason (see tests/gen/GAPS.md). Empty the
list as fixes land. PDF cases run too (``DLP_GEN_PDF=0`` leaves them out).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import random

import pytest
from stdnum.jp import cn, in_

from dlp_gateway.scan import Scanner
from tests.gen import (
    Case,
    Spec,
    expected_for,
    make_case,
    make_letter_case,
    make_people_letter_case,
    sample_spec,
)
from tests.gen.classes import ISSUE_CLASS
from tests.gen.numforms import KINDS as NUMBER_FORM_KINDS
from tests.gen.numforms import draw_kind, make_number_case
from tests.gen.values import (
    corporate_number,
    format_date,
    my_number_check_digit,
    random_birth,
    random_my_number,
    wareki,
)

# Dimension values that fail on the engine today (tests/gen/GAPS.md), each with its issue-8
# class. A case using any of them is skipped with that reason. Remove entries as fixes land;
# `python -m tests.gen.report` shows what still fails.
_GAP_KEYS: tuple[tuple[str, str], ...] = ()  # every issue-8 class is handled (w8e)
KNOWN_GAPS: dict[tuple[str, str], str] = {key: ISSUE_CLASS[key] for key in _GAP_KEYS}
# combinations that fail although each value alone passes: every pair must match
KNOWN_GAP_COMBOS: dict[tuple[tuple[str, str], ...], str] = {}
PDF_ENABLED = os.environ.get("DLP_GEN_PDF") != "0"  # the PDF reader is on main
LETTER_CASES = 40
PEOPLE_LETTER_CASES = 80


def _seeds(default_n: int, env_n: str) -> list[int]:
    if os.environ.get("DLP_GEN_SEED"):
        return [int(s) for s in os.environ["DLP_GEN_SEED"].split(",")]
    base = int(os.environ.get("DLP_GEN_SEED_BASE", "0"))
    return list(range(base, base + int(os.environ.get(env_n, default_n))))


def gap_of(case: Case) -> str | None:
    dims = case.spec.dims()
    if dims["file_type"] == "pdf" and not PDF_ENABLED:
        return "file_type=pdf: left out by DLP_GEN_PDF=0"
    for key, value in dims.items():
        reason = KNOWN_GAPS.get((key, value))
        if reason:
            return f"KNOWN_GAP {key}={value}: {reason}"
    for pairs, reason in KNOWN_GAP_COMBOS.items():
        if all(dims.get(key) == value for key, value in pairs):
            return f"KNOWN_GAP {' & '.join(f'{k}={v}' for k, v in pairs)}: {reason}"
    return None


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner()


def scan(scanner: Scanner, case: Case) -> dict[str, object]:
    result = (
        scanner.scan_message(case.data)
        if case.is_message
        else scanner.scan_file(case.filename, case.data)
    )
    got: dict[str, object] = {"verdict": result.verdict.action}
    got.update({k: result.counts[k] for k in ("my_number", "insured_number", "records")})
    if case.expected.names is not None:
        got["names"] = result.counts["name"]
    got["_unscannable"] = [u.reason for u in result.unscannable]
    return got


def check(scanner: Scanner, case: Case) -> None:
    reason = gap_of(case)
    if reason:
        pytest.skip(reason)
    got = scan(scanner, case)
    exp = case.expected
    want: dict[str, object] = {
        "verdict": exp.verdict,
        "my_number": exp.my_number,
        "insured_number": exp.insured_number,
        "records": exp.records,
    }
    if exp.names is not None:
        want["names"] = exp.names
    unscannable = got.pop("_unscannable")
    assert got == want, (
        f"\nseed {case.spec.seed}: {case.spec.label()}\n  dims {case.spec.dims()}\n"
        f"  expected {want}\n  got      {got}  unscannable={unscannable}\n"
        f"  replay:  {case.replay()}\n"
        f"  inspect: .venv/bin/python -m tests.gen {case.spec.seed} --out /tmp/case --scan"
        f"{' --letter' if case.spec.axis == 'letter' else ''}"
    )


@pytest.mark.parametrize("seed", _seeds(500, "DLP_GEN_N"))
def test_generated_case(seed: int, scanner: Scanner) -> None:
    check(scanner, make_case(seed))


# Seeds that failed once (sweeps over fresh ranges), replayed by every `make test`. PDF:
# a narrow "１" or one typed space splitting a number (80816, 60373, 2904, 7166, 1660,
# 10310), a last page with one person (60297), a header and one person (219, 1661, 6973),
# a transposed table left of the page (2985, 331), tables stacked with other columns
# (80834, 80902, 10925), a header cell with a line break (797, 10681), a header over digit
# cells (15868), "．" below its line (11524), a header at the foot of a page (6877,
# 11137), the last person above a tally on the next page (161357), a wrapped header beside
# a wide "No." (240463), a header over digit cells and one person (241587), a titled roster
# under statistics (243104), header cells wrapped over one person (243202), tables
# covering each other's gaps (250331), statistics continued at a page's top, then a gap and
# a titled roster (191627), a one-column list with two rows per person (259010),
# a one-column 記号・番号 list (274372).
# HTML body:
# rowspan/colspan (80698), a roster followed by a tally table (9868), a header cell with a
# line break (212046, 219519, 222886), a one-column two-rows list (236748). Layout: 対象者 over
# 氏名 spread over 生年 (120544), a transposed 番号 row under a 被保険者一覧 title (164732),
# a number header over digit cells beside other headers (180995), not a 生年 over 元号 |
# 年 | 月 | 日 (201553).
# Fuzz range: a 被保険者一覧 title over a one-column 番号 list after blank rows (1006927)
# or below statistics (1012085); a PDF roster under statistics of as many columns
# (1012332); a tsv body beside a tally (1014673, 1015920); a transposed name row whose
# reading holds シメイ (1020378); 被保番号 in a form under an insured title (1021780); a
# one-column two-row list of one person in a body (1028191); 番号 | 【氏名】 over 性別, two
# rows per person, names judged on first rows only (1031691).
# Over-protection: a 予約番号 list above statistics read as a form, its check-digit numbers
# taken for My Numbers (234110, 1016371); 生年月日 19490713 under a 被保険者番号 line counted
# as a second insured number (140590); a narrow table glued into a pasted roster's rows
# (220857). Wrong count: an insured number that lost its leading zeros (230810). Under:
# a reading コバヤシ メイ taken for a シメイ header, one cell flipping a list to a form (301024);
# a PDF joining two of a My Number's three 4-digit cells with a space (400255); 姓 | 名
# columns of place-name surnames (宮城, 延岡) not taken for name parts (600792). Counts of a
# statistics table under a roster not taken for insured numbers that lost their zeros (2107558);
# a 4-4-4 number glued into a 電話番号 cell by the joined reading of a pasted table (2106902).
PINNED_SEEDS = (
    219, 331, 797, 1660, 1661, 2904, 2985, 6877, 6973, 7166, 9868, 10310, 10681, 10925, 11137,
    11524, 15868, 60297, 60373, 80698, 80816, 80834, 80902, 120544, 161357, 164732, 180995, 191627,
    201553, 212046, 219519, 222886, 236748, 240463, 241587, 243104, 243202, 250331, 259010,
    274372, 1010415,
    1006927, 1012085, 1012332, 1014673, 1015920, 1020378, 1021780, 1028191, 1031691,
    140590, 220857, 230810, 234110, 301024, 400255, 600792, 1016371, 2106902, 2107558,
)


@pytest.mark.parametrize("seed", PINNED_SEEDS)
def test_pinned_case(seed: int, scanner: Scanner) -> None:
    check(scanner, make_case(seed))


FUZZ_SEEDS = _seeds(20000, "DLP_FUZZ_N") if os.environ.get("DLP_FUZZ") else []


@pytest.mark.fuzz
@pytest.mark.skipif(not FUZZ_SEEDS, reason="set DLP_FUZZ=1 (make fuzz) for 20,000 cases")
@pytest.mark.parametrize("seed", [s + 1_000_000 for s in FUZZ_SEEDS] or [0])
def test_generated_fuzz(seed: int, scanner: Scanner) -> None:
    check(scanner, make_case(seed))


# Number forms from independent realistic mail (tests/gen/numforms.py): 4-4-4 cells under
# generic headers, heading-governed lists, card numbers in text, kanji 記号, kana headers,
# shipping and card-statistics negatives. Seeds apart from the main generator's.
NUMBER_FORM_SEEDS = range(int(os.environ.get("DLP_GEN_NUM_N", "160")))
NUMBER_FORM_FUZZ = [s + 2_000_000 for s in FUZZ_SEEDS[: len(FUZZ_SEEDS) // 4]]


@pytest.mark.parametrize("seed", NUMBER_FORM_SEEDS)
def test_number_form_case(seed: int, scanner: Scanner) -> None:
    check(scanner, make_number_case(seed))


def test_every_number_form_kind_is_generated() -> None:
    kinds = {draw_kind(seed)[0] for seed in NUMBER_FORM_SEEDS}
    assert kinds == set(NUMBER_FORM_KINDS), set(NUMBER_FORM_KINDS) - kinds


@pytest.mark.fuzz
@pytest.mark.skipif(not NUMBER_FORM_FUZZ, reason="set DLP_FUZZ=1 (make fuzz) for 5,000 cases")
@pytest.mark.parametrize("seed", NUMBER_FORM_FUZZ or [0])
def test_number_form_fuzz(seed: int, scanner: Scanner) -> None:
    check(scanner, make_number_case(seed))


@pytest.mark.parametrize("seed", range(LETTER_CASES))
def test_letter_mail_verdict_and_counts(seed: int, scanner: Scanner) -> None:
    """Whole letter-style mails: roster attachment, 〇〇様 opening, signature, display names."""
    case = make_letter_case(seed)
    case.expected = dataclasses.replace(case.expected, names=None)
    check(scanner, case)


@pytest.mark.parametrize("seed", range(LETTER_CASES))
def test_letter_mail_correspondents_are_not_names(seed: int, scanner: Scanner) -> None:
    """counts.name holds only the roster's people, never the addressee or the signature."""
    if ("mail", "letter_names") in KNOWN_GAPS:
        pytest.skip(f"KNOWN_GAP mail=letter_names: {KNOWN_GAPS[('mail', 'letter_names')]}")
    check(scanner, make_letter_case(seed))


@pytest.mark.parametrize("seed", range(PEOPLE_LETTER_CASES))
def test_people_in_letter_body(seed: int, scanner: Scanner) -> None:
    """People a letter is about (山口 勝様 over 生年月日, 【対象者】, 氏名：椎葉　キヨ, ﾔﾏﾀﾞ ﾄﾒ,
    さん in prose, Date of Birth: March 04, 1937) are records and names; the addressee
    opening the letter and the signature are not."""
    check(scanner, make_people_letter_case(seed))


@pytest.mark.fuzz
@pytest.mark.skipif(not FUZZ_SEEDS, reason="set DLP_FUZZ=1 (make fuzz) for 2,000 letters")
@pytest.mark.parametrize("seed", [s + 1_000_000 for s in FUZZ_SEEDS[:2000]] or [0])
def test_people_in_letter_body_fuzz(seed: int, scanner: Scanner) -> None:
    check(scanner, make_people_letter_case(seed))


# -- the generator itself -------------------------------------------------------------------
def test_my_number_check_digit_agrees_with_stdnum() -> None:
    rng = random.Random(8)
    for _ in range(3000):
        base = "".join(str(rng.randrange(10)) for _ in range(11))
        assert my_number_check_digit(base) == in_.calc_check_digit(base)
    assert my_number_check_digit("12345678901") == "8"  # DOMAIN §3: 123456789018
    numbers = [random_my_number(rng, lead_zero=True) for _ in range(500)]
    assert all(in_.is_valid(n) and n[0] == "0" and len(set(n)) > 1 for n in numbers)


def test_corporate_numbers_are_valid_13_digits() -> None:
    rng = random.Random(9)
    assert all(cn.is_valid(corporate_number(rng)) for _ in range(1000))


def test_birth_dates_are_plausible_and_eras_valid() -> None:
    rng = random.Random(10)
    today = dt.date(2026, 11, 24)
    for generation in ("old", "mid", "young"):
        for _ in range(500):
            dob = random_birth(rng, generation)
            assert dob < today and 0 <= today.year - dob.year <= 120
    assert wareki(dt.date(1989, 1, 7))[:2] == ("昭和", "S")
    assert wareki(dt.date(1989, 1, 8))[0] == "平成" and wareki(dt.date(1989, 1, 8))[4] == 1
    assert format_date(dt.date(1970, 3, 2), "kanji_numerals") == "昭和四十五年三月二日"
    assert format_date(dt.date(1989, 4, 1), "gannen") == "H元.4.1"
    assert format_date(dt.date(1970, 3, 2), "era_code") == 3450302
    assert format_date(dt.date(2019, 5, 1), "ligature") == "\u32ff元年5月1日"


def test_expected_follows_the_default_policy() -> None:
    def spec(**kw: object) -> Spec:
        base = dict(
            seed=0,
            content="care",
            layout="plain",
            number_form="plain",
            date_form="wareki_kanji",
            name_form="full_space",
            name_pool="common",
            file_type="xlsx",
            wrap="file",
            n=5,
        )
        base.update(kw)
        return Spec(**base)  # type: ignore[arg-type]

    assert expected_for(spec()).verdict == "encrypt"
    assert expected_for(spec(n=10)).verdict == "hold"
    assert expected_for(spec(n=1, file_type="tsv_body")).verdict == "hold"
    assert expected_for(spec(content="mynumber", n=1)).verdict == "hold"
    assert expected_for(spec(content="mynumber", n=3)).my_number == 3
    assert expected_for(spec(content="name_dob", date_form="none")).verdict == "pass"
    assert expected_for(spec(content="neg_order", n=30)).verdict == "pass"
    assert expected_for(spec(layout="form", n=1)).records == 1


def test_every_dimension_value_is_generated() -> None:
    """500 seeds reach every layout, form, pool and file type (so none silently vanishes)."""
    seen: dict[str, set[str]] = {}
    for seed in range(500):
        for key, value in sample_spec(seed).dims().items():
            seen.setdefault(key, set()).add(value)
    from tests.gen.spec import (
        DATE_FORMS,
        FILE_TYPES,
        HEALTH_FORMS,
        LAYOUTS,
        MY_NUMBER_FORMS,
        NAME_FORMS,
        NAME_POOLS,
        NEGATIVE_CONTENT,
        POSITIVE_CONTENT,
        WRAPS,
    )

    for key, values in (
        ("layout", LAYOUTS),
        ("date_form", DATE_FORMS),
        ("name_form", NAME_FORMS),
        ("name_pool", NAME_POOLS),
        ("file_type", FILE_TYPES),
        ("wrap", WRAPS),
        ("content", POSITIVE_CONTENT + NEGATIVE_CONTENT),
        ("number_form", MY_NUMBER_FORMS + HEALTH_FORMS),
    ):
        assert set(values) <= seen[key], (key, set(values) - seen[key])


def test_builtin_era_date_cells_are_written_as_japanese_excel_does() -> None:
    """excel_builtin_era: numFmtId 57 with no <numFmt> entry, which openpyxl reads as ints."""
    import io
    import zipfile

    import openpyxl

    spec = Spec(seed=3, content="name_dob", layout="plain", number_form="none",
                date_form="excel_builtin_era", name_form="full_space", name_pool="common",
                file_type="xlsx", wrap="file", n=4)
    case = make_case(3, spec)
    styles = zipfile.ZipFile(io.BytesIO(case.data)).read("xl/styles.xml").decode()
    assert 'numFmtId="57"' in styles and "ggge" not in styles
    ws = openpyxl.load_workbook(io.BytesIO(case.data)).active
    rows = list(ws.iter_rows(values_only=True))  # info rows (作成者 | …) may come first
    top = next(i for i, row in enumerate(rows) if spec.headers["dob"] in row)
    dob_col = rows[top].index(spec.headers["dob"])
    assert all(isinstance(row[dob_col], int) for row in rows[top + 1 :])
