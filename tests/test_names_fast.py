"""NameFinder skips tokens by POS id (issue 13): the same names as asking every token
its part of speech, on seeded text (rosters in prose, honorifics, organisation words,
names split by spaces, text without names)."""

from __future__ import annotations

import os
import random

from dlp_gateway.detect.names import NameFinder
from dlp_gateway.detect.normalize import fold
from dlp_gateway.detect.patterns import load_patterns
from tests.roster import FILLER, people, roster_prose

N = int(os.environ.get("DLP_FUZZ_N", "0")) or 40
EXTRAS = ["山田様", "佐藤 花子さん", "田中製作所", "鈴木一郎殿", "渡辺　美咲", "ジョン・スミス氏",
          "千葉 太郎", "高橋商店", "伊藤さんへ", "小林課長", "会議室", "中村"]


def _text(rng: random.Random) -> str:
    parts = [roster_prose(people(rng, rng.randint(0, 15)))]
    parts += [rng.choice(EXTRAS) + rng.choice(["", "。", "\n", " と ", "、"])
              for _ in range(rng.randint(0, 20))]
    parts += [rng.choice(FILLER) for _ in range(rng.randint(0, 5))]
    rng.shuffle(parts)
    return fold("".join(parts))


def test_pos_id_skip_finds_what_asking_every_token_finds():
    finder = NameFinder(load_patterns(None).name)
    finder.load()
    known = finder._pos_count
    assert known > 0 and finder._name_pos  # the dictionary's surname and given-name ids
    rng = random.Random(4242)
    texts = [_text(rng) for _ in range(N)]
    fast = [finder.find(t) for t in texts]
    finder._pos_count = 0  # every token asked for its part of speech, as before
    try:
        slow = [finder.find(t) for t in texts]
    finally:
        finder._pos_count = known
    for i, (a, b) in enumerate(zip(fast, slow, strict=True)):
        assert a == b, f"seed 4242 text {i}: {texts[i][:200]!r}"
    assert sum(len(h) for h in fast) > N  # names were found, not only skipped
