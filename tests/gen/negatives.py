"""Innocent tables from the same generator (hard negatives): they must pass with no findings
of identification codes and no records.

Order/slip/invoice numbers and Web会議 IDs that pass the My Number check digit, マイナンバー
カード reservation lists (予約番号 under a title with the keyword), statistics per 地区, staff
phone lists (names + 内線), masked rosters (******1234) and 13-digit corporate numbers.
Also (independent cases O1-O2): shipping lists and mails whose 4-4-4 tracking numbers pass
the check digit, and マイナンバーカード statistics whose small counts would pass it if
padded to 12 digits.
"""

from __future__ import annotations

import random

from . import names, values
from .build import DISTRICTS, my_number_cells, stats_block
from .grid import Block, Cell, Sheet, title
from .spec import Spec


def staff_name(rng: random.Random) -> str:
    return f"{names.pick_surname(rng).kanji} {names.pick_given(rng, 'mid').kanji}"


def _valid12(spec: Spec, rng: random.Random) -> Cell:
    form = spec.number_form if spec.number_form != "none" else "plain"
    return my_number_cells(values.random_my_number(rng), form, rng)[0]


def order_rows(spec: Spec, rng: random.Random) -> tuple[str, list[str], list[list[Cell]]]:
    label = rng.choice(("注文番号", "伝票番号", "請求書番号", "受注番号", "発注番号"))
    header = [label, "品名", "数量", "単価", "金額", "納品日", "担当者"]
    items = (
        "コピー用紙A4",
        "トナーカートリッジ",
        "ボールペン（黒）",
        "ファイルボックス",
        "封筒 長3",
    )
    rows = []
    for _ in range(spec.n):
        qty, price = rng.randint(1, 50), rng.choice((120, 480, 980, 2400, 15800))
        rows.append(
            [
                _valid12(spec, rng),
                rng.choice(items),
                qty,
                price,
                qty * price,
                f"令和8年{rng.randint(1, 11)}月{rng.randint(1, 28)}日",
                staff_name(rng),
            ]
        )
    return rng.choice(("発注一覧", "納品書", "請求明細")), header, rows


def webid_rows(spec: Spec, rng: random.Random) -> tuple[str, list[str], list[list[Cell]]]:
    header = ["会議名", "開催日", "Web会議ID", "パスコード", "主催者"]
    meetings = ("介護保険運営協議会", "地域ケア会議", "庁内DX推進会議", "定例課長会", "研修会")
    rows = [
        [
            rng.choice(meetings),
            f"令和8年12月{rng.randint(1, 28)}日",
            values.group444(values.random_my_number(rng), rng.choice((" ", "-"))),
            str(rng.randint(100000, 999999)),
            staff_name(rng),
        ]
        for _ in range(spec.n)
    ]
    return "Web会議 予定一覧", header, rows


def reservation_rows(spec: Spec, rng: random.Random) -> tuple[str, list[str], list[list[Cell]]]:
    header = ["予約番号", "氏名", "フリガナ", "予約日時", "電話番号"]
    rows = []
    for _ in range(spec.n):
        s, g = names.pick_surname(rng), names.pick_given(rng, "mid")
        rows.append(
            [
                _valid12(spec, rng),
                f"{s.kanji} {g.kanji}",
                f"{s.reading} {g.reading}",
                f"令和8年12月{rng.randint(1, 28)}日 {rng.randint(9, 16)}:00",
                values.phone(rng),
            ]
        )
    return "マイナンバーカード交付 予約者一覧", header, rows


def staff_rows(spec: Spec, rng: random.Random) -> tuple[str, list[str], list[list[Cell]]]:
    header = ["所属", "氏名", "内線", "直通電話"]
    depts = ("長寿福祉課", "介護保険課", "市民課", "情報政策課", "総務課")
    rows = [
        [
            rng.choice(depts),
            staff_name(rng),
            str(rng.randint(1000, 4999)),
            f"0982-{rng.randint(20, 39)}-{rng.randint(1000, 9999)}",
        ]
        for _ in range(spec.n)
    ]
    return "職員内線番号表", header, rows


MASKS = ("********{}", "＊＊＊＊＊＊＊＊{}", "****-****-{}", "XXXXXXXX{}", "●●●●●●●●{}")


def masked_rows(spec: Spec, rng: random.Random) -> tuple[str, list[str], list[list[Cell]]]:
    label = rng.choice(("個人番号", "マイナンバー", "被保険者番号"))
    mask = rng.choice(MASKS)
    header = [label, "氏名", "フリガナ", "住所"]
    rows = []
    for _ in range(spec.n):
        s, g = names.pick_surname(rng), names.pick_given(rng, "old")
        tail = values.random_digits(rng, 4)
        rows.append(
            [
                mask.format(tail if "＊" not in mask else values.fullwidth(tail)),
                f"{s.kanji} {g.kanji}",
                f"{s.reading} {g.reading}",
                values.address(rng),
            ]
        )
    return "個人番号 確認済一覧（下4桁）", header, rows


def corporate_rows(spec: Spec, rng: random.Random) -> tuple[str, list[str], list[list[Cell]]]:
    header = ["法人番号", "事業者名", "所在地", "代表者氏名", "電話番号"]
    kinds = ("建設", "介護サービス", "福祉会", "商事", "工業")
    rows = []
    for _ in range(spec.n):
        s = names.pick_surname(rng)
        number = values.corporate_number(rng)
        rows.append(
            [
                int(number) if rng.random() < 0.3 else number,
                f"株式会社{s.kanji}{rng.choice(kinds)}",
                values.address(rng),
                staff_name(rng),
                values.phone(rng),
            ]
        )
    return "指定事業者一覧", header, rows


def receipt_rows(spec: Spec, rng: random.Random) -> tuple[str, list[str], list[list[Cell]]]:
    """Names beside dates that are not births (受付日, 交付年月日, 入社日...): no record."""
    date_labels = rng.sample(
        ("受付日", "申請日", "交付年月日", "資格取得年月日", "提出日", "開催日"), 2
    )
    header = ["受付番号", "氏名", "フリガナ", *date_labels, "備考"]
    forms = ("wareki_kanji", "short_dot", "iso_slash", "seireki_kanji", "fullwidth_kanji")
    form = rng.choice(forms)
    rows = []
    for i in range(spec.n):
        s, g = names.pick_surname(rng), names.pick_given(rng, "mid")
        dates = [values.format_date(values.random_birth(rng, "young"), form) for _ in range(2)]
        rows.append(
            [
                f"R8-{i + 1:04d}",
                f"{s.kanji} {g.kanji}",
                f"{s.reading} {g.reading}",
                *dates,
                rng.choice(("", "郵送", "窓口", "再交付")),
            ]
        )
    return "窓口受付一覧", header, rows


SHIPPING_LABELS = (
    "送り状番号",
    "お荷物番号",
    "お問い合わせ番号",
    "追跡番号",
    "追跡No",
    "オーダー番号",
    "ポイントカード番号",
)


def shipping_rows(spec: Spec, rng: random.Random) -> tuple[str, list[str], list[list[Cell]]]:
    """Parcels sent with Yamato-style 12-digit tracking numbers written 4-4-4."""
    header = [rng.choice(SHIPPING_LABELS), "品名", "個数", "発送日", "担当者"]
    sep = rng.choice((" ", "-", "－"))
    items = ("パンフレット", "申請書様式", "封筒 角2", "介護保険証（再交付分）", "広報誌")
    rows = [
        [
            values.group444(values.random_my_number(rng), sep),
            rng.choice(items),
            rng.randint(1, 20),
            f"令和8年{rng.randint(1, 11)}月{rng.randint(1, 28)}日",
            staff_name(rng),
        ]
        for _ in range(spec.n)
    ]
    return rng.choice(("発送一覧", "宅急便 発送控え", "ゆうパック 差出票")), header, rows


def _padded_valid_count(rng: random.Random, high: int) -> int:
    """A count that passes the My Number check digit once padded to 12 digits (19, 18279)."""
    while True:
        n = rng.randint(1, high)
        if values.my_number_check_digit(f"{n:012d}"[:11]) == f"{n:012d}"[11]:
            return n


def card_stats_rows(spec: Spec, rng: random.Random) -> tuple[str, list[str], list[list[Cell]]]:
    """Monthly マイナンバーカード statistics per district: counts under headers that
    contain 個人番号 / マイナンバー without being My Number headers."""
    word = rng.choice(("個人番号カード", "マイナンバーカード"))
    header = ["地区", f"{word}申請件数", f"{word}交付件数", "交付率"]
    rows = []
    for i in range(max(spec.n, 3)):
        applied = _padded_valid_count(rng, 40000)
        issued = rng.randint(0, applied)
        if rng.random() < 0.7:
            issued = _padded_valid_count(rng, applied)
        district = DISTRICTS[i % len(DISTRICTS)] + ("" if i < len(DISTRICTS) else str(i))
        rows.append([district, applied, issued, f"{100 * issued / applied:.1f}%"])
    return f"{word}交付状況（地区別）", header, rows


def shipping_text(rng: random.Random) -> str:
    """A supplier's dispatch notice: a 4-4-4 tracking number that passes the check digit."""
    number = values.group444(values.random_my_number(rng), rng.choice(("-", " ")))
    line = rng.choice(
        (
            f"送り状番号：{number}",
            f"お荷物番号：{number}",
            f"お問い合わせ番号 {number}",
            f"追跡No：{number}",
            f"ヤマト運輸 {number}（宅急便コンパクト）にて発送しました。",
            f"ゆうパック {number} で本日発送しております。",
            f"佐川急便 お問合せ番号 {number}",
            f"オーダー番号 {number}",
            f"ポイントカード番号：{number}",
        )
    )
    return (
        "延岡市役所 介護保険課 御中\n\nいつもお世話になっております。\n"
        f"ご注文の品を発送いたしました。\n{line}\n到着予定：11月{rng.randint(1, 28)}日\n\n"
        "株式会社ひむか事務機 営業部\n"
    )


def stats_only(spec: Spec, rng: random.Random) -> tuple[str, list[str], list[list[Cell]]]:
    block = stats_block(rng, min(spec.n, len(DISTRICTS) * 2))
    return "地区別 要介護認定者数（令和8年10月末現在）", block.rows[0], block.rows[1:]


BUILDERS = {
    "neg_order": order_rows,
    "neg_webid": webid_rows,
    "neg_reservation": reservation_rows,
    "neg_staff": staff_rows,
    "neg_masked": masked_rows,
    "neg_corporate": corporate_rows,
    "neg_stats": stats_only,
    "neg_receipts": receipt_rows,
    "neg_shipping": shipping_rows,
    "neg_card_stats": card_stats_rows,
}


def build_negative(spec: Spec, rng: random.Random) -> Sheet:
    heading, header, rows = BUILDERS[spec.content](spec, rng)
    if spec.layout == "circled_header":
        header = [chr(0x2460 + i) + h for i, h in enumerate(header)]
    elif spec.layout == "header_linebreak":
        header = [h[: len(h) // 2] + "\n" + h[len(h) // 2 :] if len(h) >= 4 else h for h in header]
    sheet = Sheet("Sheet1")
    row = 0
    if spec.layout != "plain" or spec.content in ("neg_reservation", "neg_masked"):
        row = sheet.add(0, 0, title(heading)) + 1
    body: list[list[Cell]] = [list(header)]
    page = rng.randint(8, 20) if spec.layout == "repeated_header" else 0
    for i, r in enumerate(rows):
        if page and i and i % page == 0:
            body.append(list(header))
        body.append(r)
    block = Block(body)
    if spec.layout == "side_by_side":
        sheet.add(row, block.width + 1, stats_block(rng, rng.randint(2, 6)))
    sheet.add(row, 0, block)
    return sheet


def webid_text(rng: random.Random) -> str:
    """A meeting invitation whose 4-4-4 ID passes the My Number check digit."""
    mid = values.group444(values.random_my_number(rng), rng.choice((" ", "-")))
    return (
        f"関係各位\n\nお疲れ様です。{staff_name(rng)}です。\n"
        f"令和8年12月{rng.randint(1, 28)}日の地域ケア会議はWeb会議で開催します。\n\n"
        f"Web会議ID: {mid}\nパスコード: {rng.randint(100000, 999999)}\n\n"
        "当日は10分前までに入室をお願いします。\n"
    )
