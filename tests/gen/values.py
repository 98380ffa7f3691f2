"""Values as they are written in municipal files: My Numbers, insured numbers, dates.

The My Number check digit is computed here from DOMAIN.md §3 (weights 6,5,4,3,2,7,6,5,4,3,2
left to right; r = sum mod 11; check = 0 if r <= 1 else 11 - r) and cross-checked against
``stdnum.jp.in_`` in tests/test_generated_tables.py.
"""

from __future__ import annotations

import datetime as dt
import random

MY_NUMBER_WEIGHTS = (6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
FULLWIDTH = str.maketrans(
    "0123456789-.ABCDEFGHIJKLMNOPQRSTUVWXYZ/ ",
    "０１２３４５６７８９－．ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ／　",
)
# dash characters NFKC does not fold (DOMAIN §3): minus, hyphen, en/em dash, bar, long vowel
ODD_DASHES = ("\u2212", "\u2010", "\u2013", "\u2014", "\u2015", "\u30fc")


def my_number_check_digit(base11: str) -> str:
    """The 12th digit of a My Number from its first 11 digits (DOMAIN §3)."""
    r = sum(int(d) * w for d, w in zip(base11, MY_NUMBER_WEIGHTS, strict=True)) % 11
    return "0" if r <= 1 else str(11 - r)


def random_digits(rng: random.Random, n: int, lead_zero: bool | None = None) -> str:
    digits = [str(rng.randrange(10)) for _ in range(n)]
    if lead_zero is True:
        digits[0] = "0"
    elif lead_zero is False:
        digits[0] = str(rng.randrange(1, 10))
    return "".join(digits)


def random_my_number(rng: random.Random, lead_zero: bool | None = None) -> str:
    """A valid My Number (never all one digit)."""
    while True:
        base = random_digits(rng, 11, lead_zero)
        number = base + my_number_check_digit(base)
        if len(set(number)) > 1:
            return number


def random_invalid_12(rng: random.Random) -> str:
    """12 digits whose check digit is wrong (an order number that is not a My Number)."""
    base = random_digits(rng, 11, False)
    good = my_number_check_digit(base)
    return base + str((int(good) + rng.randrange(1, 10)) % 10)


def corporate_number(rng: random.Random) -> str:
    """A 13-digit 法人番号: check digit first, 9 - (sum mod 9), weights 1,2,1,2.. from the right."""
    base = random_digits(rng, 12, False)
    total = sum(int(d) * (1 if i % 2 == 0 else 2) for i, d in enumerate(reversed(base)))
    return str(9 - total % 9) + base


def group444(number: str, sep: str) -> str:
    return sep.join((number[:4], number[4:8], number[8:]))


def fullwidth(text: str) -> str:
    return text.translate(FULLWIDTH)


# -- dates ------------------------------------------------------------------------------
ERAS = (  # kanji, letter, first day, ligature, code (GYYMMDD)
    ("明治", "M", dt.date(1868, 10, 23), "\u337e", 1),
    ("大正", "T", dt.date(1912, 7, 30), "\u337d", 2),
    ("昭和", "S", dt.date(1926, 12, 25), "\u337c", 3),
    ("平成", "H", dt.date(1989, 1, 8), "\u337b", 4),
    ("令和", "R", dt.date(2019, 5, 1), "\u32ff", 5),
)
KANJI_DIGITS = "〇一二三四五六七八九"


def wareki(date: dt.date) -> tuple[str, str, str, int, int]:
    """(era kanji, letter, ligature, code, era year) of a date."""
    for kanji, letter, start, lig, code in reversed(ERAS):
        if date >= start:
            return kanji, letter, lig, code, date.year - start.year + 1
    raise ValueError(date)


def kanji_number(n: int) -> str:
    if n < 10:
        return KANJI_DIGITS[n]
    tens, ones = divmod(n, 10)
    return (
        ("" if tens == 1 else KANJI_DIGITS[tens]) + "十" + ("" if ones == 0 else KANJI_DIGITS[ones])
    )


def gannen_date(rng: random.Random, generation: str) -> dt.date:
    """A birth date in the first year (元年) of an era fitting the generation."""
    era = {"old": 2, "mid": 3, "young": 4}[generation]
    start = ERAS[era][2]
    end = dt.date(start.year, 12, 31)
    return start + dt.timedelta(days=rng.randrange((end - start).days + 1))


def random_birth(rng: random.Random, generation: str) -> dt.date:
    lo, hi = {"old": (1925, 1958), "mid": (1955, 2004), "young": (2019, 2025)}[generation]
    start = dt.date(lo, 1, 1)
    end = dt.date(hi, 3, 31) if generation == "young" else dt.date(hi, 12, 31)
    return start + dt.timedelta(days=rng.randrange((end - start).days + 1))


def fullwidth_kanji(era: str, year: int, month: int, day: int) -> str:
    return f"{era}{fullwidth(str(year))}年{fullwidth(str(month))}月{fullwidth(str(day))}日"


def format_date(date: dt.date, form: str) -> object:
    """One birth date written in ``form``; cell-typed forms return int, date or a list."""
    kanji, letter, lig, code, year = wareki(date)
    ey = "元" if year == 1 else str(year)
    m, d = date.month, date.day
    forms: dict[str, object] = {
        "wareki_kanji": f"{kanji}{ey}年{m}月{d}日",
        "wareki_padded": f"{kanji}{year:02d}年{m:02d}月{d:02d}日",
        "short_dot": f"{letter}{ey}.{m}.{d}",
        "short_dot2": f"{letter}.{year:02d}.{m:02d}.{d:02d}",
        "gannen": f"{letter}{ey}.{m}.{d}" if year == 1 else f"{kanji}{ey}年{m}月{d}日",
        "kanji_numerals": f"{kanji}{'元' if year == 1 else kanji_number(year)}年"
        f"{kanji_number(m)}月{kanji_number(d)}日",
        "fullwidth_short": fullwidth(f"{letter}{year}.{m}.{d}"),
        "fullwidth_kanji": fullwidth_kanji(kanji, year, m, d),
        "ligature": f"{lig}{ey}年{m}月{d}日",
        "iso_slash": f"{date.year}/{m:02d}/{d:02d}",
        "slash_nopad": f"{date.year}/{m}/{d}",
        "iso_hyphen": date.isoformat(),
        "seireki_kanji": f"{date.year}年{m}月{d}日",
        "yyyymmdd": int(date.strftime("%Y%m%d")),
        "era_code": int(f"{code}{year:02d}{m:02d}{d:02d}"),
        "excel_date": date,
        "excel_era_format": date,
        "excel_builtin_era": date,
        "era_columns": [kanji, year, m, d],
        # the year in both calendars: 昭和12年（1937年）3月4日, 1937年（昭和12年）3月4日
        "wareki_paren": f"{kanji}{ey}年（{date.year}年）{m}月{d}日",
        "seireki_paren": f"{date.year}年（{kanji}{ey}年）{m}月{d}日",
        "english": english_date(date),
    }
    return forms[form]


MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")  # fmt: skip


def english_date(date: dt.date) -> str:
    """March 04, 1937 / 4 March 1937 / Mar. 4, 1937 (the spelling varies with the day)."""
    month = MONTHS[date.month - 1]
    spellings = (
        f"{month} {date.day:02d}, {date.year}",
        f"{date.day} {month} {date.year}",
        f"{month[:3]}{'' if month == 'May' else '.'} {date.day}, {date.year}",
    )
    return spellings[date.day % 3]


# -- other values -------------------------------------------------------------------------
TOWNS = (
    "中央町",
    "本町",
    "旭町",
    "緑町",
    "栄町",
    "幸町",
    "東町",
    "西町",
    "南町",
    "北町",
    "松原町",
    "桜ケ丘",
    "若葉台",
    "大貫町",
    "恒富町",
    "出北",
    "山下町",
    "紺屋町",
)
CITIES = ("", "", "延岡市", "宮崎市", "日向市")


def address(rng: random.Random) -> str:
    town = rng.choice(TOWNS)
    if rng.random() < 0.5:
        block = f"{rng.randint(1, 5)}丁目{rng.randint(1, 30)}番{rng.randint(1, 20)}号"
        return f"{rng.choice(CITIES)}{town}{block}"
    return f"{rng.choice(CITIES)}{town}{rng.randint(1, 3000)}-{rng.randint(1, 20)}"


def phone(rng: random.Random) -> str:
    if rng.random() < 0.4:
        return f"090-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"
    return f"0982-{rng.randint(20, 39)}-{rng.randint(1000, 9999)}"


CARE_LEVELS = ("要支援1", "要支援2", "要介護1", "要介護2", "要介護3", "要介護4", "要介護5")
