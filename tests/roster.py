"""Small seeded rosters (My Number, name, birth date) as text, csv and html.

Shared by the decoding, MIME, Office and fail-closed fuzz tests: every builder
takes a ``random.Random`` so a failing case is reproduced from its seed.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from stdnum.jp import in_ as my_number_check

SURNAMES = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤"]
GIVEN = ["花子", "太郎", "一郎", "美咲", "健太", "陽子", "直樹", "由美", "明美", "和子"]
HEADER = ("個人番号", "氏名", "生年月日")
FILLER = [
    "お世話になっております。市民課の担当です。",
    "下記のとおり資料を送付いたします。ご確認ください。",
    "不明な点がございましたらご連絡ください。",
]


@dataclass(frozen=True)
class Person:
    my_number: str
    name: str
    birth: dt.date

    @property
    def birth_text(self) -> str:
        return f"{self.birth.year}年{self.birth.month}月{self.birth.day}日"


def my_number(rng: random.Random) -> str:
    """A 12-digit My Number with a correct check digit (not all one digit)."""
    while True:
        body = f"{rng.randrange(10**10, 10**11):011d}"
        digits = body + my_number_check.calc_check_digit(body)
        if len(set(digits)) > 1:
            return digits


def people(rng: random.Random, count: int) -> list[Person]:
    out = []
    for i in range(count):
        name = f"{SURNAMES[rng.randrange(10)]}{GIVEN[(i + rng.randrange(10)) % 10]}"
        birth = dt.date(rng.randrange(1935, 2005), rng.randrange(1, 13), rng.randrange(1, 29))
        out.append(Person(my_number(rng), name, birth))
    return out


def roster_rows(persons: list[Person]) -> list[list[str]]:
    return [list(HEADER)] + [[p.my_number, p.name, p.birth_text] for p in persons]


def roster_csv(persons: list[Person], delimiter: str = ",", newline: str = "\r\n") -> str:
    return newline.join(delimiter.join(row) for row in roster_rows(persons)) + newline


def roster_prose(persons: list[Person]) -> str:
    """A letter listing each person on a line: one paragraph, one record per person."""
    lines = [FILLER[0], FILLER[1]]
    lines += [f"個人番号 {p.my_number} 氏名 {p.name} 生年月日 {p.birth_text}" for p in persons]
    return "\n".join(lines) + "\n"


def roster_html(persons: list[Person]) -> str:
    cells = "".join(
        f"<tr><td>{p.my_number}</td><td>{p.name}</td><td>{p.birth_text}</td></tr>"
        for p in persons
    )
    return (
        "<html><head><meta charset=\"utf-8\"><title>名簿</title></head><body>"
        "<p>下記のとおり送付します。</p><table><tr><th>個人番号</th><th>氏名</th>"
        f"<th>生年月日</th></tr>{cells}</table></body></html>"
    )


def damage(data: bytes, rng: random.Random, count: int, start: int = 0,
           end: int | None = None) -> bytes:
    """Insert ``count`` invalid bytes (0xFF / 0x80 / lone lead bytes) in [start, end)."""
    end = len(data) if end is None else end
    out = bytearray(data)
    for _ in range(count):
        pos = rng.randrange(start, max(start + 1, end))
        out[pos:pos] = bytes([rng.choice((0xFF, 0x80, 0xFE, 0xFD))])
        end += 1
    return bytes(out)


_SCANNER = None


def scanner():  # type: ignore[no-untyped-def]
    """One Scanner per test process (loading the dictionary is the slow part)."""
    global _SCANNER
    if _SCANNER is None:
        from dlp_gateway.scan import Scanner

        _SCANNER = Scanner()
    return _SCANNER
