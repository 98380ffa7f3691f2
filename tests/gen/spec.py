"""A case's dimensions (the spec), sampled from a seed, and the result the domain rules expect.

Every case is one value per dimension. About a third of the cases vary ONE dimension from
the baseline (a plain xlsx care roster) so a failure points at its cause; the rest draw
every dimension at random. Incompatible draws are repaired (``_repair``), never dropped,
so a seed always gives a case.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

POSITIVE_CONTENT = ("mynumber", "care", "kouki", "health", "name_dob", "id_only", "title_bango")
NEGATIVE_CONTENT = (
    "neg_order",
    "neg_webid",
    "neg_reservation",
    "neg_stats",
    "neg_staff",
    "neg_masked",
    "neg_corporate",
    "neg_receipts",
)
LAYOUTS = (
    "plain",
    "title_rows",
    "merged_header",
    "header_linebreak",
    "circled_header",
    "halfwidth_kana_header",
    "english_header",
    "repeated_header",
    "stats_above",
    "side_by_side",
    "transposed",
    "two_rows",
    "form",
)
MY_NUMBER_FORMS = (
    "plain",
    "hyphen",
    "space",
    "dot",
    "ideo_space",
    "odd_dash",
    "fullwidth",
    "fullwidth_hyphen",
    "numeric",
    "numeric_lost_zero",
    "split3",
    "digit_cells",
)
INSURED_FORMS = ("plain", "fullwidth", "numeric", "numeric_lost_zero")
HEALTH_FORMS = ("separate", "separate_fullwidth", "joined", "joined_fullwidth", "joined_edaban")
DATE_FORMS = (
    "wareki_kanji",
    "wareki_padded",
    "short_dot",
    "short_dot2",
    "gannen",
    "kanji_numerals",
    "fullwidth_short",
    "fullwidth_kanji",
    "ligature",
    "iso_slash",
    "slash_nopad",
    "iso_hyphen",
    "seireki_kanji",
    "yyyymmdd",
    "era_code",
    "excel_date",
    "excel_era_format",
    "excel_builtin_era",
    "era_columns",
    "wareki_paren",
    "seireki_paren",
    "english",
    "split_columns",
)
# Date forms and the name form added after the seeded draws existed: drawn from a second
# random stream (``_late_forms``) so every older seed keeps its case (PINNED_SEEDS).
LATE_DATE_FORMS = ("wareki_paren", "seireki_paren", "english")
LATE_NAME_FORMS = ("with_dob",)
# The birth date over columns with headers of their own (生年 | 月 | 日, 元号 | 生年 | 月 | 日,
# 生年月日(元号) | 年 | 月 | 日, 生年月日 over 年 | 月 | 日), added later still: a stream of its own
# (``_split_dates``). Its header variant is drawn in build.choose_headers from that stream too.
SPLIT_DATE_FORMS = ("split_columns",)
SPLIT_DATE_LAYOUTS = (
    "plain", "title_rows", "circled_header", "repeated_header", "stats_above", "header_linebreak",
)  # fmt: skip
NAME_FORMS = (
    "full_space",
    "full_nospace",
    "full_ideo",
    "split",
    "joined_kana",
    "kana_column",
    "kana_only",
    "with_dob",
)
NAME_POOLS = ("common", "old_kanji", "place", "hiragana", "kana_word")
FILE_TYPES = (
    "xlsx",
    "xls",
    "csv_utf8",
    "csv_utf8sig",
    "csv_cp932",
    "csv_eucjp",
    "docx",
    "html_attach",
    "html_body",
    "tsv_body",
    "pdf",
)
WRAPS = ("file", "mail", "zip")  # zip: the file zipped, attached to a mail
BODY_TYPES = ("html_body", "tsv_body", "text_body")
EXCEL_TYPES = ("xlsx", "xls")

BASELINE = {
    "content": "care",
    "layout": "plain",
    "number_form": "plain",
    "date_form": "wareki_kanji",
    "name_form": "full_space",
    "name_pool": "common",
    "file_type": "xlsx",
    "wrap": "file",
}
AXES = {
    "content": POSITIVE_CONTENT + NEGATIVE_CONTENT,
    "layout": LAYOUTS,
    "number_form": MY_NUMBER_FORMS + HEALTH_FORMS,
    "date_form": tuple(
        f for f in DATE_FORMS if f not in LATE_DATE_FORMS and f not in SPLIT_DATE_FORMS
    ),
    "name_form": tuple(f for f in NAME_FORMS if f not in LATE_NAME_FORMS),
    "name_pool": NAME_POOLS,
    "file_type": FILE_TYPES,
    "wrap": WRAPS,
}
# weights for the fully random draws: ordinary things are common, odd ones still appear
WEIGHTS = {
    "layout": {"plain": 4, "title_rows": 3},
    "file_type": {"xlsx": 5, "csv_cp932": 2, "docx": 2, "tsv_body": 1.5},
    "name_pool": {"common": 5},
    "name_form": {"full_space": 3, "kana_column": 3},
}


@dataclass
class Spec:
    seed: int
    content: str
    layout: str
    number_form: str
    date_form: str  # "none": no birth-date column
    name_form: str  # "none": no name column
    name_pool: str
    file_type: str
    wrap: str
    n: int
    axis: str = "random"  # the one dimension varied from the baseline, or "random"
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def negative(self) -> bool:
        return self.content.startswith("neg_")

    @property
    def in_body(self) -> bool:
        return self.file_type in BODY_TYPES

    @property
    def rows_bucket(self) -> str:
        if self.n == 1:
            return "1"
        return "2-9" if self.n < 10 else ("10-40" if self.n <= 40 else "large")

    def dims(self) -> dict[str, str]:
        out = {
            "content": self.content,
            "layout": self.layout,
            "number_form": self.number_form,
            "date_form": self.date_form,
            "name_form": self.name_form,
            "name_pool": self.name_pool,
            "file_type": self.file_type,
            "wrap": self.wrap,
            "rows": self.rows_bucket,
        }
        out.update({f"header:{k}": v for k, v in sorted(self.headers.items())})
        return out

    def label(self) -> str:
        return (
            f"{self.seed}-{self.content}-{self.layout}-{self.number_form}-{self.date_form}"
            f"-{self.name_form}-{self.file_type}-{self.wrap}-n{self.n}"
        )


@dataclass(frozen=True)
class Expected:
    verdict: str
    my_number: int
    insured_number: int
    records: int
    names: int | None = None  # asserted only where the case says (letter mails)


def expected_for(spec: Spec) -> Expected:
    """The domain rules (DOMAIN §3-§7, README "Default policy") applied to what was generated."""
    if spec.negative:
        return Expected("pass", 0, 0, 0)
    people = spec.n
    my_number = people if spec.content == "mynumber" else 0
    insured = people if spec.content in ("care", "kouki", "health", "id_only", "title_bango") else 0
    has_name_and_dob = spec.name_form != "none" and spec.date_form != "none"
    records = people if (my_number or insured or has_name_and_dob) else 0
    if my_number or records >= 10 or (records and spec.in_body):
        verdict = "hold"
    elif records:
        verdict = "encrypt"
    else:
        verdict = "pass"
    return Expected(verdict, my_number, insured, records)


# -- sampling ---------------------------------------------------------------------------------
def _pick(rng: random.Random, axis: str, values: tuple[str, ...]) -> str:
    weights = WEIGHTS.get(axis, {})
    return rng.choices(values, weights=[weights.get(v, 1.0) for v in values], k=1)[0]


def _number_forms(content: str) -> tuple[str, ...]:
    if content in ("mynumber", "neg_order", "neg_webid", "neg_reservation"):
        return MY_NUMBER_FORMS if content == "mynumber" else MY_NUMBER_FORMS[:8]
    if content == "health":
        return HEALTH_FORMS
    if content in ("care", "kouki", "id_only", "title_bango"):
        return INSURED_FORMS
    return ("none",)


def _rows(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.15:
        return 1
    if roll < 0.5:
        return rng.randint(2, 9)
    if roll < 0.99:
        return rng.randint(10, 40)
    return rng.randint(200, 600)


def sample_spec(seed: int) -> Spec:
    rng = random.Random(seed)
    values = dict(BASELINE)
    axis = "random"
    if rng.random() < 0.35:
        axis = rng.choice(sorted(AXES))
        values[axis] = rng.choice([v for v in AXES[axis] if v != BASELINE[axis]])
    else:
        values["content"] = (
            rng.choice(NEGATIVE_CONTENT)
            if rng.random() < 0.3
            else _pick(rng, "content", POSITIVE_CONTENT)
        )
        for name in ("layout", "date_form", "name_form", "name_pool", "file_type", "wrap"):
            values[name] = _pick(rng, name, AXES[name])
        values["number_form"] = _pick(rng, "number_form", _number_forms(values["content"]))
        if values["content"] in ("mynumber", "care", "kouki", "health", "title_bango"):
            if rng.random() < 0.25:
                values["date_form"] = "none"
            if rng.random() < 0.1:
                values["name_form"] = "none"
    if axis in ("date_form", "name_form", "name_pool") and rng.random() < 0.7:
        values["content"] = "name_dob"  # so the verdict depends on reading the name and date
    spec = Spec(seed=seed, n=_rows(rng), axis=axis, **values)
    _repair(spec, rng)
    _late_forms(spec)
    _split_dates(spec)
    return spec


# layouts and files where a name cell may carry its birth date: 山田太郎（S12.3.4生）
_WITH_DOB_LAYOUTS = ("plain", "title_rows", "circled_header", "repeated_header", "stats_above")
_STRING_DATE_FORMS = DATE_FORMS[:13]  # written as text (not Excel dates, codes or columns)


def _late_forms(spec: Spec) -> None:
    """The later date and name forms, from their own stream so older seeds keep their case."""
    late = random.Random(f"late-forms-{spec.seed}")
    if spec.file_type == "pdf":
        return  # (the PDF cases pinned for their layout keep their case)
    if spec.date_form in _STRING_DATE_FORMS and late.random() < 0.12:
        spec.date_form = late.choice(LATE_DATE_FORMS)
    if (
        spec.name_form in ("full_space", "full_nospace", "full_ideo")
        and spec.date_form in _STRING_DATE_FORMS + LATE_DATE_FORMS[:2]
        and spec.layout in _WITH_DOB_LAYOUTS
        and late.random() < 0.1
    ):
        spec.name_form = "with_dob"


def _split_dates(spec: Spec) -> None:
    """A birth date over 生年 | 月 | 日 columns, from its own stream (older seeds keep theirs)."""
    split = random.Random(f"split-dates-{spec.seed}")
    if spec.file_type == "pdf" or spec.negative or spec.name_form == "with_dob":
        return
    if (
        spec.date_form in (*_STRING_DATE_FORMS, "era_columns")
        and spec.layout in SPLIT_DATE_LAYOUTS
        and split.random() < 0.1
    ):
        spec.date_form = "split_columns"


def _repair(spec: Spec, rng: random.Random) -> None:
    """Make the draw a file that can exist (documented per rule), keeping the varied axis."""
    if spec.axis == "number_form" and spec.number_form not in INSURED_FORMS:
        spec.content = "health" if spec.number_form in HEALTH_FORMS else "mynumber"
    forms = _number_forms(spec.content)
    if spec.number_form not in forms:
        spec.number_form = "plain" if "plain" in forms else forms[0]
    if spec.content == "neg_webid" and spec.axis != "file_type" and rng.random() < 0.5:
        spec.file_type = "text_body"
    if spec.file_type == "text_body" and spec.content != "neg_webid":
        spec.file_type = "tsv_body"
    if spec.in_body:
        spec.wrap = "mail"  # a table in the body is a mail by definition
    if spec.negative:
        if spec.layout not in (
            "plain",
            "title_rows",
            "repeated_header",
            "circled_header",
            "header_linebreak",
            "side_by_side",
        ):
            spec.layout = "title_rows"
        spec.date_form = "none"
        spec.name_form = "none"
        return
    if spec.content in ("name_dob",):
        if spec.date_form == "none":
            spec.date_form = "wareki_kanji"
        if spec.name_form == "none":
            spec.name_form = "full_space"
    if spec.content == "id_only":
        spec.name_form = "none"
        spec.date_form = "none"
    if spec.layout == "english_header" and spec.content in ("health", "title_bango"):
        spec.content = "care"
        spec.number_form = "plain"
    if spec.layout == "form":
        spec.n = 1
    if spec.layout == "transposed":
        spec.n = min(spec.n, 15)
    if spec.layout in ("transposed", "two_rows"):
        if spec.number_form in ("split3", "digit_cells"):
            spec.number_form = "plain"
        if spec.number_form in ("separate", "separate_fullwidth"):
            spec.number_form = "joined"
        if spec.date_form == "era_columns":
            spec.date_form = "wareki_kanji"
        if spec.name_form == "split":
            spec.name_form = "full_space"
    if spec.layout == "halfwidth_kana_header" and spec.name_form in (
        "full_space",
        "full_nospace",
        "full_ideo",
        "split",
    ):
        spec.name_form = "kana_column"
    if spec.date_form == "excel_builtin_era" and spec.file_type == "xls":
        spec.date_form = "excel_era_format"
    excel_forms = ("excel_date", "excel_era_format", "excel_builtin_era")
    if spec.date_form in excel_forms and spec.file_type not in EXCEL_TYPES:
        spec.date_form = "iso_slash"
    if spec.in_body and spec.n > 40:
        spec.n = 40
