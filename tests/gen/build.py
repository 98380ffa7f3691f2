"""Spec -> people -> columns -> a sheet laid out as the spec's layout says."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from . import names, values
from .grid import Block, Cell, Sheet, title, to_halfwidth_kana
from .spec import Spec


@dataclass
class Person:
    surname: names.Surname
    given: names.GivenName
    dob: dt.date
    address: str
    phone: str
    care_level: str
    my_number: str
    care: str
    kouki: str
    kigo: str
    bango: str
    edaban: str

    @property
    def gender(self) -> str:
        return "男" if self.given.gender == "M" else "女"


GENERATION = {
    "mynumber": "mid",
    "care": "old",
    "kouki": "old",
    "health": "mid",
    "id_only": "old",
    "title_bango": "old",
}


def generation(spec: Spec, rng: random.Random) -> str:
    if spec.content == "name_dob":
        return rng.choice(("young", "young", "old", "mid"))
    return GENERATION.get(spec.content, "mid")


def make_person(spec: Spec, rng: random.Random, gen: str) -> Person:
    pool = {"old_kanji": "old_kanji", "place": "place", "kana_word": "kana_word"}
    surname = names.pick_surname(rng, pool.get(spec.name_pool, "common"))
    given = names.pick_given(rng, gen, spec.name_pool)
    dob = (
        values.gannen_date(rng, gen)
        if spec.date_form == "gannen"
        else values.random_birth(rng, gen)
    )
    lead = {"numeric": False, "numeric_lost_zero": True}.get(spec.number_form)
    kigo = (
        f"{rng.randint(10, 99)}-{rng.randint(10, 99)}"
        if rng.random() < 0.5
        else str(rng.randint(100, 99999999))
    )
    return Person(
        surname=surname,
        given=given,
        dob=dob,
        address=values.address(rng),
        phone=values.phone(rng),
        care_level=rng.choice(values.CARE_LEVELS),
        my_number=values.random_my_number(rng, lead),
        care=values.random_digits(rng, 10, lead if lead is not None else rng.random() < 0.6),
        kouki=values.random_digits(rng, 8, lead if lead is not None else rng.random() < 0.3),
        kigo=kigo,
        bango=str(rng.randint(1, 9999999)),
        edaban=f"{rng.randint(0, 3):02d}",
    )


# -- columns -----------------------------------------------------------------------------
ID_HEADERS = {
    "mynumber": (
        "個人番号",
        "マイナンバー",
        "個人番号（マイナンバー）",
        "マイナンバー(個人番号)",
        "共通番号",
    ),
    "care": ("被保険者番号", "被保険者証番号", "被保番号", "保険証番号", "介護保険被保険者番号"),
    "kouki": ("被保険者番号", "後期高齢者医療被保険者番号", "被保番号", "保険証番号"),
    "id_only": ("被保険者番号", "被保険者証番号", "被保番号"),
    "title_bango": ("番号",),
    "health_joined": ("記号番号", "記号・番号", "保険証記号番号"),
}
NAME_HEADERS = (
    "氏名",
    "氏名",
    "名前",
    "お名前",
    "漢字氏名",
    "受給者氏名",
    "世帯主氏名",
    "利用者名",
    "患者名",
    "契約者名",
    "【氏名】",
    "氏名（漢字）",
)
INSURED_NAME_HEADERS = ("被保険者氏名",)
CHILD_NAME_HEADERS = ("児童氏名", "園児氏名")
KANA_HEADERS = ("フリガナ", "フリガナ", "ふりがな", "カナ氏名", "氏名カナ", "カナ", "よみがな")
SPLIT_HEADERS = (("姓", "名"), ("氏", "名"), ("姓（漢字）", "名（漢字）"))
DOB_HEADERS = (
    "生年月日",
    "生年月日",
    "生年月日",
    "誕生日",
    "生年",
    "出生年月日",
    "生年月日（和暦）",
)
# A birth date over columns with headers of their own (date form split_columns): the headers,
# the cells' content (western year, or era + era year) and, for a merged 生年月日 over 年 | 月 |
# 日, the sub-headers below.
SPLIT_DOB_HEADERS: dict[str, tuple[tuple[str, ...], str, tuple[str, ...]]] = {
    "生年|月|日": (("生年", "月", "日"), "western", ()),
    "生年|生月|生日": (("生年", "生月", "生日"), "western", ()),
    "誕生年|月|日": (("誕生年", "月", "日"), "western", ()),
    "元号|生年|月|日": (("元号", "生年", "月", "日"), "era", ()),
    "和暦|生年|月|日": (("和暦", "生年", "月", "日"), "era", ()),
    "生年月日(元号)|年|月|日": (("生年月日(元号)", "年", "月", "日"), "era", ()),
    "生年月日/年|月|日": (("生年月日",), "western", ("年", "月", "日")),
}
JOINED_KANA_HEADERS = ("氏名（フリガナ）", "氏名(ふりがな)", "氏名／フリガナ")
ENGLISH = {
    "mynumber": "My Number",
    "care": "Insured No.",
    "kouki": "Insured No.",
    "id_only": "Insured No.",
    "name": "Name",
    "kana": "Name (Kana)",
    "sei": "Last Name",
    "mei": "First Name",
    "dob": "Date of Birth",
    "gender": "Sex",
    "address": "Address",
    "phone": "Phone",
    "care_level": "Care Level",
    "no": "No.",
    "joined": "Name (Kana)",
}


@dataclass
class Col:
    key: str
    header: str
    width: int = 1
    subs: tuple[str, ...] = ()  # sub-headers below a header spanning several cells
    group: str | None = None  # a merged header above this one (two-row headers)
    parts: tuple[str, ...] = ()  # a header of its own over each cell (生年 | 月 | 日)


def choose_headers(spec: Spec, rng: random.Random) -> dict[str, str]:
    """Header texts, drawn once per case and recorded among its dimensions."""
    h: dict[str, str] = {}
    if spec.content in ID_HEADERS:
        h["id"] = rng.choice(ID_HEADERS[spec.content])
    if spec.content == "health" and spec.number_form.startswith("joined"):
        h["id"] = rng.choice(ID_HEADERS["health_joined"])
    if spec.name_form != "none":
        pool = NAME_HEADERS
        if spec.content in ("care", "kouki", "title_bango"):
            pool = NAME_HEADERS + INSURED_NAME_HEADERS * 3
        if spec.content == "name_dob" and rng.random() < 0.2:
            pool = CHILD_NAME_HEADERS
        h["name"] = rng.choice(pool)
        h["kana"] = rng.choice(KANA_HEADERS)
        h["sei"], h["mei"] = rng.choice(SPLIT_HEADERS)
        h["joined"] = rng.choice(JOINED_KANA_HEADERS)
        if spec.name_form == "kana_only":
            h["kana"] = rng.choice(("カナ氏名", "フリガナ", "氏名カナ"))
    if spec.date_form != "none":
        h["dob"] = rng.choice(DOB_HEADERS)
    if spec.date_form == "split_columns":  # from the split-date stream (spec._split_dates)
        h["dob"] = random.Random(f"split-dates-h-{spec.seed}").choice(sorted(SPLIT_DOB_HEADERS))
    if spec.layout == "english_header":
        h = {k: ENGLISH.get(spec.content if k == "id" else k, v) for k, v in h.items()}
        if "dob" in h:
            h["dob"] = rng.choice(("Date of Birth", "DOB", "Birth Date"))
    return h


def columns(spec: Spec, rng: random.Random) -> list[Col]:
    h = spec.headers
    eng = spec.layout == "english_header"
    cols: list[Col] = []
    if rng.random() < 0.5 and spec.content != "title_bango":
        cols.append(Col("no", "No." if eng else rng.choice(("No.", "連番", "№", "NO"))))
    cols += _id_columns(spec, h, eng)
    cols += _name_columns(spec, h)
    if spec.date_form == "era_columns":
        cols.append(Col("dob", h["dob"], 4, ("元号", "年", "月", "日")))
    elif spec.date_form == "split_columns":
        heads, _content, subs = SPLIT_DOB_HEADERS[h["dob"]]
        width = len(subs) if subs else len(heads)
        if subs:
            cols.append(Col("dob", heads[0], width, subs))
        else:
            cols.append(Col("dob", heads[0], width, parts=heads))
    elif spec.name_form == "with_dob":
        pass  # the birth date is in the name cell: 山田太郎（S12.3.4生）
    elif spec.date_form != "none":
        cols.append(Col("dob", h["dob"]))
    extras = [
        ("gender", "Sex" if eng else "性別"),
        ("address", "Address" if eng else "住所"),
        ("phone", "Phone" if eng else "電話番号"),
    ]
    if spec.content in ("care", "id_only", "title_bango"):
        extras.append(("care_level", "Care Level" if eng else "要介護度"))
    for key, header in extras:
        if rng.random() < 0.6 or (spec.content == "id_only" and key == "care_level"):
            cols.append(Col(key, header))
    return cols


def _id_columns(spec: Spec, h: dict[str, str], eng: bool) -> list[Col]:
    if spec.content == "health":
        if spec.number_form.startswith("joined"):
            return [Col("kigo_bango", h["id"])]
        return [Col("kigo", "記号"), Col("bango", "番号"), Col("edaban", "枝番")]
    if spec.content not in ID_HEADERS:
        return []
    width = {"split3": 3, "digit_cells": 12}.get(spec.number_form, 1)
    return [Col("id", h["id"], width)]


def _name_columns(spec: Spec, h: dict[str, str]) -> list[Col]:
    form = spec.name_form
    if form == "none":
        return []
    if form == "split":
        return [Col("sei", h["sei"]), Col("mei", h["mei"])]
    if form == "joined_kana":
        return [Col("joined", h["joined"])]
    if form == "kana_only":
        return [Col("kana", h["kana"])]
    cols = [Col("name", h["name"])]
    if form == "kana_column":
        cols.append(Col("kana", h["kana"]))
    return cols


# -- cell values ---------------------------------------------------------------------------
def id_cells(spec: Spec, p: Person, rng: random.Random) -> list[Cell]:
    form = spec.number_form
    if spec.content == "mynumber":
        return my_number_cells(p.my_number, form, rng)
    number = {"kouki": p.kouki}.get(spec.content, p.care)
    if form == "fullwidth":
        return [values.fullwidth(number)]
    if form in ("numeric", "numeric_lost_zero"):
        return [int(number)]
    return [number]


def my_number_cells(number: str, form: str, rng: random.Random) -> list[Cell]:
    if form in ("numeric", "numeric_lost_zero"):
        return [int(number)]
    if form == "split3":
        return [number[:4], number[4:8], number[8:]]
    if form == "digit_cells":
        as_int = rng.random() < 0.5
        return [int(d) if as_int else d for d in number]
    seps = {
        "hyphen": "-",
        "space": " ",
        "dot": ".",
        "ideo_space": "\u3000",
        "odd_dash": rng.choice(values.ODD_DASHES),
    }
    if form in seps:
        return [values.group444(number, seps[form])]
    if form == "fullwidth":
        return [values.fullwidth(number)]
    if form == "fullwidth_hyphen":
        return [values.fullwidth(values.group444(number, "-"))]
    return [number]


def kana_text(p: Person, spec: Spec, header: str) -> str:
    text = f"{p.surname.reading} {p.given.reading}"
    if "ふりがな" in header or "よみがな" in header:
        text = "".join(chr(ord(c) - 0x60) if "ァ" <= c <= "ヶ" else c for c in text)
    if spec.layout == "halfwidth_kana_header":
        text = to_halfwidth_kana(text)
    return text


def person_cells(col: Col, p: Person, spec: Spec, idx: int, rng: random.Random) -> list[Cell]:
    full = {"full_nospace": "", "full_ideo": "\u3000"}.get(spec.name_form, " ")
    fw = spec.number_form in ("separate_fullwidth", "joined_fullwidth")
    conv = values.fullwidth if fw else str
    simple: dict[str, Cell] = {
        "no": idx + 1,
        "name": f"{p.surname.kanji}{full}{p.given.kanji}",
        "sei": p.surname.kanji,
        "mei": p.given.kanji,
        "kana": kana_text(p, spec, col.header),
        "joined": f"{p.surname.kanji} {p.given.kanji}（{p.surname.reading} {p.given.reading}）",
        "gender": p.gender,
        "address": p.address,
        "phone": p.phone,
        "care_level": p.care_level,
        "kigo": conv(p.kigo),
        "bango": conv(p.bango),
        "edaban": conv(p.edaban),
    }
    if col.key == "kigo_bango":
        text = f"{p.kigo}・{p.bango}"
        if spec.number_form == "joined_edaban":
            text += f"・{p.edaban}"
        return [conv(text)]
    if col.key == "id":
        return id_cells(spec, p, rng)
    if col.key == "name" and spec.name_form == "with_dob":
        born = ("生", "生まれ", "生")[idx % 3]
        return [f"{simple['name']}（{values.format_date(p.dob, spec.date_form)}{born}）"]
    if col.key == "dob" and spec.date_form == "split_columns":
        kanji, _, _, _, year = values.wareki(p.dob)
        m, d = p.dob.month, p.dob.day
        if SPLIT_DOB_HEADERS[spec.headers["dob"]][1] == "era":
            return [kanji, year, m, d]
        return [p.dob.year, m, d]
    if col.key == "dob":
        value = values.format_date(p.dob, spec.date_form)
        return list(value) if isinstance(value, list) else [value]
    return [simple[col.key]]


# -- layouts ------------------------------------------------------------------------------
def header_text(col: Col, spec: Spec, index: int) -> str:
    text = col.header
    if spec.layout == "circled_header":
        text = chr(0x2460 + index) + text
    elif (
        spec.layout == "header_linebreak"
        and len(text) >= 4
        and col.key in ("id", "dob", "kana", "joined", "name")
    ):
        cut = 4 if text.startswith("被保険者") and len(text) > 4 else len(text) // 2
        text = text[:cut] + "\n" + text[cut:]
    elif spec.layout == "halfwidth_kana_header":
        text = to_halfwidth_kana(text)
    return text


def header_block_rows(cols: list[Col], spec: Spec) -> tuple[list[list[Cell]], list[tuple]]:
    """One or two header rows with their merges (block-relative)."""
    two = any(c.group or c.subs for c in cols)
    top: list[Cell] = []
    bottom: list[Cell] = []
    merges: list[tuple[int, int, int, int]] = []
    c = 0
    prev_group: str | None = None
    group_start = 0
    for i, col in enumerate(cols):
        text = header_text(col, spec, i)
        if col.group:
            if col.group != prev_group:
                group_start = c
                top.append(col.group)
            else:
                top.append(None)
                merges = [m for m in merges if m != (0, group_start, 0, c - 1)]
            merges.append((0, group_start, 0, c + col.width - 1))
            top += [None] * (col.width - 1)
            bottom += [text] + [None] * (col.width - 1)
            if col.width > 1:
                merges.append((1, c, 1, c + col.width - 1))
        elif col.parts:
            top += [text, *col.parts[1:]]
            bottom += [None] * col.width
            if two:
                merges += [(0, c + k, 1, c + k) for k in range(col.width)]
        elif col.subs:
            top += [text] + [None] * (col.width - 1)
            bottom += list(col.subs)
            merges.append((0, c, 0, c + col.width - 1))
        else:
            top += [text] + [None] * (col.width - 1)
            bottom += [None] * col.width
            if two or col.width > 1:
                merges.append((0, c, 1 if two else 0, c + col.width - 1))
        prev_group = col.group
        c += col.width
    return ([top, bottom] if two else [top]), merges


MERGE_GROUPS = {
    "mynumber": "申請者",
    "care": "被保険者",
    "kouki": "被保険者",
    "id_only": "被保険者",
    "title_bango": "被保険者",
    "name_dob": "対象者",
    "health": "保険証",
}


def apply_group(cols: list[Col], spec: Spec) -> None:
    """merged_header: a merged group label over the ID and name columns (被保険者 / 番号)."""
    group = MERGE_GROUPS[spec.content]
    keys = (
        ("kigo", "bango", "edaban")
        if spec.content == "health"
        else ("id", "name", "sei", "mei", "kana", "joined")
    )
    for col in cols:
        if col.key in keys and not col.subs:
            col.group = group
            if group == "被保険者" and col.key == "id":
                col.header = "番号"
            if group == "被保険者" and col.key == "name":
                col.header = "氏名"


def data_row(cols: list[Col], p: Person, spec: Spec, idx: int, rng: random.Random) -> list[Cell]:
    row: list[Cell] = []
    for col in cols:
        row += person_cells(col, p, spec, idx, rng)
    return row


TITLES = {
    "mynumber": "個人番号 提供者一覧",
    "care": "介護保険 要介護認定者一覧",
    "kouki": "後期高齢者医療 被保険者名簿",
    "health": "国民健康保険 資格確認一覧",
    "name_dob": "入所児童名簿",
    "id_only": "要介護認定 更新対象者",
    "title_bango": "介護保険被保険者一覧",
}


def title_rows(spec: Spec, rng: random.Random) -> list[Block]:
    blocks = [title(f"令和{rng.randint(6, 8)}年度 {TITLES.get(spec.content, '一覧')}")]
    if rng.random() < 0.6:
        blocks.append(title(f"作成日：令和8年{rng.randint(1, 11)}月{rng.randint(1, 28)}日"))
    if rng.random() < 0.5:
        blocks.append(
            title(rng.choice(("延岡市 健康福祉部 長寿福祉課", "（取扱注意）", "宮崎市 介護保険課")))
        )
    return blocks


INFO_LABELS = ("作成者", "所属", "担当者", "記入者", "報告者", "基準日", "作成日")
INFO_STAFF = ("山田 太郎", "田中 恵子", "中村 健太", "小林 美咲")
INFO_DEPARTMENTS = ("介護保険課", "長寿福祉課", "市民課", "保険年金課")


def info_rows(spec: Spec) -> tuple[Block, int] | None:
    """「作成者 | 山田 太郎」 label | value rows above the roster and the blank rows after them
    (issue 8, tester class U1), from a stream of their own so other draws keep their cases."""
    info = random.Random(f"info-rows-{spec.seed}")
    if spec.layout not in ("plain", "title_rows") or spec.content == "title_bango":
        return None  # a title's insured meaning across info rows: not covered yet
    if info.random() >= 0.3:
        return None
    rows: list[list[Cell]] = []
    for label in info.sample(INFO_LABELS, info.randint(1, 3)):
        if label in ("基準日", "作成日"):
            day = f"{info.randint(1, 12)}月{info.randint(1, 28)}日"
            value: Cell = f"令和{info.randint(6, 8)}年{day}"
        elif label == "所属":
            value = info.choice(INFO_DEPARTMENTS)
        else:
            value = info.choice(INFO_STAFF + INFO_DEPARTMENTS)
        rows.append([label, value])
    return Block(rows), info.choice((0, 1, 1, 2))


def build_roster(spec: Spec, rng: random.Random, people: list[Person]) -> Sheet:
    sheet = Sheet(rng.choice(("Sheet1", "名簿", "一覧", "R8.11")))
    if spec.content == "title_bango":
        sheet.name = "被保険者一覧"
    cols = columns(spec, rng)
    if spec.layout == "merged_header":
        apply_group(cols, spec)
    row = 0
    if spec.layout == "stats_above":
        row = sheet.add(
            0,
            0,
            stats_block(rng, rng.randint(300, 500) if rng.random() < 0.1 else rng.randint(3, 40)),
        ) + rng.randint(1, 3)
    sheet_name_only = spec.file_type in ("xlsx", "xls") and rng.random() < 0.4
    title_from_content = spec.content == "title_bango" and not sheet_name_only
    if spec.layout in ("title_rows", "stats_above") or title_from_content:
        for block in title_rows(spec, rng):
            row = sheet.add(row, 0, block)
        row += 1
    above = info_rows(spec)
    if above is not None:
        row = sheet.add(row, 0, above[0]) + above[1]
    builders = {"transposed": transposed_block, "two_rows": two_rows_block, "form": form_block}
    build = builders.get(spec.layout, list_block)
    block = build(cols, people, spec, rng)
    if spec.layout == "side_by_side":
        summary = summary_block(rng, people)
        top = row + rng.randint(0, 3)
        sheet.add(top, block.width + rng.randint(1, 2), summary)
    sheet.add(row, 0, block)
    return sheet


ERA_FORMAT = 'ggge"年"m"月"d"日"'
# Excel (Japanese) writes its era date formats as built-in ids 27-36 / 50-58 with no
# <numFmt> definition; openpyxl does not know them. render_xlsx patches this marker to id 57.
BUILTIN_ERA_FORMAT = '[$-411]ggge"年"m"月"d"日";@'


def list_block(cols: list[Col], people: list[Person], spec: Spec, rng: random.Random) -> Block:
    head, head_merges = header_block_rows(cols, spec)
    rows: list[list[Cell]] = [list(r) for r in head]
    merges = list(head_merges)
    page = rng.randint(8, 25) if spec.layout == "repeated_header" else 0
    for i, p in enumerate(people):
        if page and i and i % page == 0:
            if rng.random() < 0.5:
                rows.append([])
            rows.append([f"{TITLES.get(spec.content, '一覧')}（{i // page + 1}ページ）"])
            merges += [(len(rows) + m[0], m[1], len(rows) + m[2], m[3]) for m in head_merges]
            rows += [list(r) for r in head]
        rows.append(data_row(cols, p, spec, i, rng))
    fmt = {"excel_era_format": ERA_FORMAT, "excel_builtin_era": BUILTIN_ERA_FORMAT}.get(
        spec.date_form, "yyyy/mm/dd"
    )
    th_rows = len(head) if rng.random() < 0.5 else 0
    return Block(rows, merges, date_format=fmt, th_rows=th_rows)


def transposed_block(
    cols: list[Col], people: list[Person], spec: Spec, rng: random.Random
) -> Block:
    rows = []
    for i, col in enumerate(cols):
        rows.append(
            [header_text(col, spec, i)]
            + [person_cells(col, p, spec, j, rng)[0] for j, p in enumerate(people)]
        )
    return Block(rows)


ID_KEYS = ("id", "kigo", "bango", "edaban", "kigo_bango", "no")


def two_rows_block(cols: list[Col], people: list[Person], spec: Spec, rng: random.Random) -> Block:
    """Two lines per person: ID, name, birth date above; kana, address, gender below."""
    second_keys = ("kana", "address", "gender", "phone")
    first = [c for c in cols if c.key not in second_keys]
    free = [i for i, c in enumerate(first) if c.key not in ID_KEYS]  # never below an ID
    name_at = next((i for i, c in enumerate(first) if c.key in ("name", "joined")), None)
    free.sort(key=lambda i: (i != name_at, -i))
    second = [c for c in cols if c.key in second_keys][: len(free)]
    slots: list[Col | None] = [None] * len(first)
    for col, at in zip(second, free, strict=False):
        slots[at] = col
    rows = [
        [header_text(c, spec, i) for i, c in enumerate(first)],
        [header_text(c, spec, i) if c else None for i, c in enumerate(slots)],
    ]
    for j, p in enumerate(people):
        rows.append([person_cells(c, p, spec, j, rng)[0] for c in first])
        rows.append([person_cells(c, p, spec, j, rng)[0] if c else None for c in slots])
    return Block(rows)


FORM_TITLES = {
    "mynumber": "個人番号申出書",
    "care": "介護保険 要介護認定・要支援認定申請書",
    "kouki": "後期高齢者医療 被保険者証再交付申請書",
    "health": "国民健康保険 資格取得届",
    "name_dob": "入園申込書",
    "title_bango": "介護保険被保険者一覧 個票",
}


def form_block(cols: list[Col], people: list[Person], spec: Spec, rng: random.Random) -> Block:
    """One person as label | value rows (an application form)."""
    p = people[0]
    rows: list[list[Cell]] = [[FORM_TITLES.get(spec.content, "申請書")], []]
    rows.append(["申請日", f"令和8年{rng.randint(1, 11)}月{rng.randint(1, 28)}日"])
    for i, col in enumerate(cols):
        if col.key == "no":
            continue
        cells = person_cells(col, p, spec, 0, rng)
        label = header_text(col, spec, i)
        if col.key == "dob" and spec.date_form == "era_columns":
            era, y, m, d = cells
            cells = [era, y, "年", m, "月", d, "日"]
        rows.append([label, *cells])
    return Block(rows)


DISTRICTS = (
    "東地区",
    "西地区",
    "南方地区",
    "北川地区",
    "北方地区",
    "島浦地区",
    "岡富地区",
    "恒富地区",
    "伊形地区",
    "東海地区",
    "旭地区",
    "川中地区",
    "南地区",
    "北浦地区",
    "北方町",
    "三川内",
)


def stats_block(rng: random.Random, n_rows: int) -> Block:
    rows: list[list[Cell]] = [["地区", "男", "女", "計"]]
    for i in range(n_rows):
        m, f = rng.randint(0, 900), rng.randint(0, 900)
        name = DISTRICTS[i % len(DISTRICTS)] + ("" if i < len(DISTRICTS) else str(i))
        rows.append([name, m, f, m + f])
    return Block(rows)


def summary_block(rng: random.Random, people: list[Person]) -> Block:
    rows: list[list[Cell]] = [["要介護度", "人数"]]
    for level in values.CARE_LEVELS:
        rows.append([level, sum(1 for p in people if p.care_level == level)])
    rows.append(["合計", len(people)])
    return Block(rows)
