"""seed -> Case: the spec, the bytes (a file or a whole mail) and the expected result."""

from __future__ import annotations

import random
from dataclasses import dataclass

from . import build, names, negatives, render, values
from .spec import Expected, Spec, expected_for, sample_spec

STEMS = {
    "mynumber": "個人番号一覧",
    "care": "介護保険_認定者一覧",
    "kouki": "後期高齢者名簿",
    "health": "国保資格一覧",
    "name_dob": "児童名簿",
    "id_only": "更新対象者",
    "title_bango": "被保険者一覧",
}


@dataclass
class Case:
    spec: Spec
    expected: Expected
    filename: str  # the file name, or "message.eml" for a whole mail
    data: bytes

    @property
    def is_message(self) -> bool:
        return self.filename.endswith(".eml")

    def replay(self) -> str:
        if self.spec.axis == "people_letter":
            return (
                ".venv/bin/python -m pytest -q 'tests/test_generated_tables.py::"
                f"test_people_in_letter_body[{self.spec.seed}]'"
            )
        if self.spec.axis == "letter":
            return (
                ".venv/bin/python -m pytest -q 'tests/test_generated_tables.py::"
                f"test_letter_mail_verdict_and_counts[{self.spec.seed}]'"
            )
        if self.spec.axis == "numforms":
            return (
                ".venv/bin/python -m pytest -q 'tests/test_generated_tables.py::"
                f"test_number_form_case[{self.spec.seed}]'"
            )
        return (
            f"DLP_GEN_SEED={self.spec.seed} .venv/bin/python -m pytest -q "
            f"tests/test_generated_tables.py"
        )


def make_case(seed: int, spec: Spec | None = None) -> Case:
    spec = spec or sample_spec(seed)
    rng = random.Random(seed * 7919 + 17)
    spec.headers = build.choose_headers(spec, rng)
    if spec.negative:
        sheet = negatives.build_negative(spec, rng)
    else:
        gen = build.generation(spec, rng)
        people = [build.make_person(spec, rng, gen) for _ in range(spec.n)]
        sheet = build.build_roster(spec, rng, people)
    stem = STEMS.get(spec.content, rng.choice(("一覧", "資料", "R8集計")))
    filename, data = _render(spec, sheet, stem, rng)
    return Case(spec, expected_for(spec), filename, data)


def _render(spec: Spec, sheet, stem: str, rng: random.Random) -> tuple[str, bytes]:
    if spec.file_type == "text_body":
        return "message.eml", render.mail_with_text(negatives.webid_text(rng), rng)
    if spec.in_body:
        return "message.eml", render.mail_with_body_table(sheet, spec.file_type, rng)
    try:
        filename, data = render.render_file(sheet, spec.file_type, stem, rng)
    except UnicodeEncodeError:  # e.g. 髙 or ㍼ in EUC-JP: such a file is saved as UTF-8
        spec.file_type = "csv_utf8sig"
        filename, data = render.render_file(sheet, spec.file_type, stem, rng)
    if spec.wrap == "zip":
        filename, data = render.zip_file(filename, data, rng)
    if spec.wrap in ("mail", "zip"):
        return "message.eml", render.mail_with_attachment(filename, data, rng)
    return filename, data


def make_letter_case(seed: int) -> Case:
    """A whole letter-style mail (〇〇様 opening, signature, display names) with a roster
    attachment; ``expected.names`` counts only the people in the roster (DOMAIN §6: the
    correspondents are not data about people)."""
    rng = random.Random(seed)
    with_names = rng.random() < 0.6
    spec = Spec(
        seed=seed,
        content="care",
        layout=rng.choice(("plain", "title_rows")),
        number_form="plain",
        date_form="wareki_kanji",
        name_form="full_space" if with_names else "none",
        name_pool="common",
        file_type=rng.choice(("xlsx", "csv_cp932", "docx")),
        wrap="mail",
        n=rng.randint(1, 30),
        axis="letter",
    )
    case = make_case(seed, spec)
    case.expected = Expected(
        case.expected.verdict,
        case.expected.my_number,
        case.expected.insured_number,
        case.expected.records,
        names=spec.n if with_names else 0,
    )
    return case


def make_people_letter_case(seed: int) -> Case:
    """A letter whose body names one to three people (a 様 line over a birth date, 対象者
    labels, 氏名：椎葉　キヨ, ﾔﾏﾀﾞ ﾄﾒ, prose, English), old-fashioned given names half the
    time: each person is one record and one name; the addressee and signature are not."""
    rng = random.Random(seed * 31 + 5)
    n = rng.choice((1, 1, 2, 3))
    people = []
    for _ in range(n):
        surname = names.pick_surname(rng)
        old = rng.random() < 0.5
        given = rng.choice(names.OLD_FASHIONED_GIVEN) if old else names.pick_given(rng, "old")
        dob = values.random_birth(rng, "old")
        style = rng.choice(render.PERSON_STYLES)
        people.append(render.person_text(style, surname, given, dob, rng))
    spec = Spec(
        seed=seed,
        content="name_dob",
        layout="plain",
        number_form="none",
        date_form="wareki_kanji",
        name_form="full_space",
        name_pool="common",
        file_type="text_body",
        wrap="mail",
        n=n,
        axis="people_letter",
    )
    expected = Expected("hold", 0, 0, n, names=n)
    return Case(spec, expected, "message.eml", render.mail_with_people(people, rng))
