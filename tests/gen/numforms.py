"""Number forms seen in realistic municipal mail nobody in the project wrote (issue 8,
independent cases U3-U5 and O1-O2), as seeded cases with their expected result.

``make_number_case(seed)`` draws one kind and builds a file or a whole mail:

- ``grouped_cells``: My Numbers written 4-4-4 in a column whose header names no other
  number (番号, カード番号, 備考): they count as the grouping makes them count in text;
- ``heading_list``: 2-30 insured numbers, one per line, under one heading (or with the
  label line after the list), in a mail body, a txt or docx paragraphs;
- ``card_text``: health-insurance card numbers in text (a kanji or full-width 記号,
  保険証番号, 記号番号は 宮延12・345);
- ``kanji_symbol``: 記号 | 番号 | 枝番 columns whose 記号 is kanji (宮延);
- ``kana_header``: a csv whose headers are half-width kana readings (ﾋﾎｹﾝｼｬﾊﾞﾝｺﾞｳ);
- innocent: ``neg_shipping`` / ``neg_card_stats`` tables and ``neg_shipping_text`` mails
  (``negatives.py``), which must pass.

Drawn apart from ``sample_spec`` so the seeds of the main generator keep their cases.
"""

from __future__ import annotations

import dataclasses
import io
import random

from . import build, cases, names, negatives, render, values
from .cases import Case
from .grid import to_halfwidth_kana
from .spec import Expected, Spec, expected_for

KINDS = {
    "grouped_cells": 3.0,
    "heading_list": 3.0,
    "card_text": 1.5,
    "kanji_symbol": 1.5,
    "kana_header": 1.0,
    "neg_shipping": 1.5,
    "neg_card_stats": 1.5,
    "neg_shipping_text": 1.0,
}
TABLE_FILES = ("xlsx", "xls", "csv_utf8sig", "csv_cp932", "docx", "html_attach", "tsv_body")
GROUPED_FORMS = ("hyphen", "space", "dot", "ideo_space", "odd_dash", "fullwidth_hyphen")
# Headers that name no other number: the grouping is the only context (as in text).
GENERIC_HEADERS = ("番号", "カード番号", "備考", "番号（12桁）", "確認番号")
LAYOUTS = ("plain", "title_rows", "repeated_header", "circled_header")
AXIS = "numforms"


def draw_kind(seed: int) -> tuple[str, random.Random]:
    rng = random.Random(seed * 104729 + 3)
    return rng.choices(list(KINDS), weights=list(KINDS.values()), k=1)[0], rng


def make_number_case(seed: int) -> Case:
    kind, rng = draw_kind(seed)
    return BUILDERS[kind](seed, rng)


def _spec(seed: int, rng: random.Random, content: str, **kw: object) -> Spec:
    file_type = str(kw.pop("file_type", rng.choice(TABLE_FILES)))
    wrap = "mail" if file_type in ("tsv_body", "html_body", "text_body") else rng.choice(
        ("file", "file", "mail", "zip")
    )
    fields: dict[str, object] = {
        "layout": rng.choice(LAYOUTS),
        "number_form": "none",
        "date_form": "none",
        "name_form": "none",
        "name_pool": "common",
        "n": rng.choice((rng.randint(1, 9), rng.randint(10, 40))),
    }
    fields.update(kw)
    return Spec(seed=seed, content=content, file_type=file_type, wrap=wrap, axis=AXIS, **fields)  # type: ignore[arg-type]


def _roster_case(spec: Spec, rng: random.Random, people: list[build.Person]) -> Case:
    sheet = build.build_roster(spec, rng, people)
    filename, data = cases._render(spec, sheet, cases.STEMS.get(spec.content, "一覧"), rng)
    return Case(spec, expected_for(spec), filename, data)


def grouped_cells(seed: int, rng: random.Random) -> Case:
    spec = _spec(
        seed, rng, "mynumber",
        number_form=rng.choice(GROUPED_FORMS),
        date_form=rng.choice(("wareki_kanji", "iso_slash", "short_dot", "none")),
        name_form=rng.choice(("full_space", "kana_column", "none")),
    )
    spec.headers = build.choose_headers(spec, rng)
    spec.headers["id"] = rng.choice(GENERIC_HEADERS)
    gen = build.generation(spec, rng)
    return _roster_case(spec, rng, [build.make_person(spec, rng, gen) for _ in range(spec.n)])


SYMBOLS = ("宮延", "延岡", "日向", "愛知", "東国", "高鍋")


def kanji_symbol(seed: int, rng: random.Random) -> Case:
    spec = _spec(
        seed, rng, "health",
        number_form=rng.choice(("separate", "separate_fullwidth", "joined")),
        date_form=rng.choice(("wareki_kanji", "none")),
        name_form="full_space",
    )
    spec.headers = build.choose_headers(spec, rng)
    gen = build.generation(spec, rng)
    people = []
    for _ in range(spec.n):
        p = build.make_person(spec, rng, gen)
        symbol = rng.choice(SYMBOLS) + rng.choice(("", str(rng.randint(1, 99))))
        people.append(
            dataclasses.replace(p, kigo=symbol, bango=str(rng.randint(1000, 9999999)))
        )
    return _roster_case(spec, rng, people)


def kana_header(seed: int, rng: random.Random) -> Case:
    """A host-system csv export: half-width kana headers, kana names, yyyymmdd dates."""
    spec = _spec(seed, rng, "care", file_type="csv_cp932", number_form="plain",
                 date_form="yyyymmdd", name_form="kana_only", layout="halfwidth_kana_header")
    spec.wrap = "file"
    header = [rng.choice(("ﾋﾎｹﾝｼｬﾊﾞﾝｺﾞｳ", "ﾋﾎｹﾝｼｬｼｮｳﾊﾞﾝｺﾞｳ", "ﾎｹﾝｼｮｳﾊﾞﾝｺﾞｳ")), "ｼﾒｲ", "ｾｲﾈﾝｶﾞｯﾋﾟ"]
    insurer = rng.random() < 0.5
    if insurer:
        header.insert(0, "ﾎｹﾝｼｬﾊﾞﾝｺﾞｳ")  # the insurer's number: not a person's
    lines = [",".join(header)]
    for _ in range(spec.n):
        s, g = names.pick_surname(rng), names.pick_given(rng, "old")
        dob = values.random_birth(rng, "old")
        row = [
            values.random_digits(rng, 10, True),
            to_halfwidth_kana(f"{s.reading} {g.reading}"),
            dob.strftime("%Y%m%d"),
        ]
        lines.append(",".join((["452037"] if insurer else []) + row))
    data = ("\r\n".join(lines) + "\r\n").encode("cp932")
    return Case(spec, expected_for(spec), "kaigo_export.csv", data)


HEADINGS = (
    "認定結果一覧（被保険者番号・判定結果・有効期間終了）",
    "後期高齢者医療 保険料 還付対象者（被保険者番号）",
    "【被保険者番号】",
    "被保険者番号：",
    "介護保険被保険者番号 一覧",
)
TAILS = ("要介護1", "要介護3", "要支援2", "還付額 2,948円", "R8.10.31", "更新")


def heading_list(seed: int, rng: random.Random) -> Case:
    file_type = rng.choice(("text_body", "txt", "docx"))
    n = rng.randint(2, 30)
    digits = rng.choice((8, 10))
    spec = _spec(seed, rng, "kouki" if digits == 8 else "care", file_type=file_type, n=n,
                 layout="heading_after" if rng.random() < 0.35 else "heading_before",
                 number_form="plain")
    bullet = rng.choice(("", "・", "- ", "※", "1. "))
    items = []
    for i in range(n):
        lead = bullet.replace("1", str(i + 1))
        number = values.random_digits(rng, digits, digits == 10)
        items.append(f"{lead}{number}{rng.choice(('　', ' ', '  '))}{rng.choice(TAILS)}")
    heading = rng.choice(HEADINGS)
    gap = "\n" if rng.random() < 0.5 else ""
    if spec.layout == "heading_after":
        text = "下記の方の結果をお知らせします。\n\n" + "\n".join(items) + f"\n{gap}（{heading}）\n"
    else:
        text = f"{heading}\n{gap}" + "\n".join(items) + f"\n\n以上{n}件\n"
    if file_type == "text_body":
        filename, data = "message.eml", render.mail_with_text(text, rng)
    elif file_type == "txt":
        filename, data = "一覧.txt", text.encode(rng.choice(("cp932", "utf-8")))
    else:
        filename, data = "一覧.docx", _docx_paragraphs(text.split("\n"))
    in_body = file_type == "text_body"
    verdict = "hold" if in_body or n >= 10 else "encrypt"
    return Case(spec, Expected(verdict, 0, n, n), filename, data)


def _docx_paragraphs(lines: list[str]) -> bytes:
    import docx

    document = docx.Document()
    for line in lines:
        document.add_paragraph(line)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def card_text(seed: int, rng: random.Random) -> Case:
    spec = _spec(seed, rng, "health", file_type="text_body", n=1, layout="text")
    wide = rng.random() < 0.5
    conv = values.fullwidth if wide else str
    symbol = rng.choice(SYMBOLS) if rng.random() < 0.7 else ""
    a, b = rng.randint(1, 99), rng.randint(10, 99999)
    number, branch = rng.randint(100, 99999), f"{rng.randint(0, 3):02d}"
    line = rng.choice(
        (
            f"記号　{symbol}{conv(str(a))}{conv('-')}{conv(str(b))}　番号　{conv(str(number))}"
            f"　枝番　{conv(branch)}",
            f"記号 {symbol}{conv(str(a))} 番号 {conv(str(number))}",
            f"記号：{symbol + ' ' if symbol else ''}{conv(str(b))} 番号：{conv(str(number))}",
            f"被保険者証の記号番号は {symbol}{conv(str(a))}・{conv(str(number))} です。",
            f"保険証番号 {symbol}{conv(str(a))}-{conv(str(number))} の方の認定証を発行しました。",
            f"保険証番号：{conv(str(rng.randint(1000000, 9999999)))}",
        )
    )
    text = f"お世話になります。\n受診者の保険資格について確認をお願いします。\n{line}\n"
    return Case(spec, Expected("hold", 0, 1, 1), "message.eml", render.mail_with_text(text, rng))


def negative_table(seed: int, rng: random.Random, content: str) -> Case:
    spec = _spec(seed, rng, content, layout=rng.choice(("plain", "title_rows", "repeated_header")))
    sheet = negatives.build_negative(spec, rng)
    filename, data = cases._render(spec, sheet, rng.choice(("一覧", "資料", "R8集計")), rng)
    return Case(spec, expected_for(spec), filename, data)


def neg_shipping_text(seed: int, rng: random.Random) -> Case:
    spec = _spec(seed, rng, "neg_shipping", file_type="text_body", n=1, layout="text")
    data = render.mail_with_text(negatives.shipping_text(rng), rng)
    return Case(spec, expected_for(spec), "message.eml", data)


BUILDERS = {
    "grouped_cells": grouped_cells,
    "heading_list": heading_list,
    "card_text": card_text,
    "kanji_symbol": kanji_symbol,
    "kana_header": kana_header,
    "neg_shipping": lambda seed, rng: negative_table(seed, rng, "neg_shipping"),
    "neg_card_stats": lambda seed, rng: negative_table(seed, rng, "neg_card_stats"),
    "neg_shipping_text": neg_shipping_text,
}
