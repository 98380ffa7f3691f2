"""Japanese surnames and given names with their readings, weighted by frequency.

Surnames: the ~100 most common (rank order of national surveys; weight ~ 1/rank^0.8,
which approximates the published counts: 佐藤 about 1.8 million, 菊地 about 0.2
million), old-kanji variants (髙橋, 山﨑, 渡邉, 齋藤) and surnames that are also place
names (千葉, 長野, 福島). Given names: older-generation names (care and late-stage
medical rosters; with the katakana names of the Meiji-Taisho generation, トメ, ハツエ,
ミツ子, and names the dictionary does not know as given names, 末吉, 重信), middle
generation, children (nursery lists) and hiragana-only names.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_COMMON = """
佐藤 サトウ|鈴木 スズキ|高橋 タカハシ|田中 タナカ|伊藤 イトウ|渡辺 ワタナベ|山本 ヤマモト|
中村 ナカムラ|小林 コバヤシ|加藤 カトウ|吉田 ヨシダ|山田 ヤマダ|佐々木 ササキ|山口 ヤマグチ|
松本 マツモト|井上 イノウエ|木村 キムラ|林 ハヤシ|斎藤 サイトウ|清水 シミズ|山崎 ヤマザキ|森 モリ|
池田 イケダ|橋本 ハシモト|阿部 アベ|石川 イシカワ|山下 ヤマシタ|中島 ナカジマ|石井 イシイ|
小川 オガワ|前田 マエダ|岡田 オカダ|長谷川 ハセガワ|藤田 フジタ|後藤 ゴトウ|近藤 コンドウ|
村上 ムラカミ|遠藤 エンドウ|青木 アオキ|坂本 サカモト|斉藤 サイトウ|福田 フクダ|太田 オオタ|
西村 ニシムラ|藤井 フジイ|金子 カネコ|岡本 オカモト|藤原 フジワラ|中野 ナカノ|三浦 ミウラ|
原田 ハラダ|中川 ナカガワ|松田 マツダ|竹内 タケウチ|小野 オノ|田村 タムラ|中山 ナカヤマ|
和田 ワダ|石田 イシダ|森田 モリタ|上田 ウエダ|原 ハラ|内田 ウチダ|柴田 シバタ|酒井 サカイ|
宮崎 ミヤザキ|横山 ヨコヤマ|高木 タカギ|安藤 アンドウ|宮本 ミヤモト|大野 オオノ|小島 コジマ|
谷口 タニグチ|今井 イマイ|工藤 クドウ|高田 タカダ|増田 マスダ|丸山 マルヤマ|杉山 スギヤマ|
村田 ムラタ|大塚 オオツカ|新井 アライ|小山 コヤマ|平野 ヒラノ|藤本 フジモト|河野 コウノ|
上野 ウエノ|野口 ノグチ|武田 タケダ|松井 マツイ|千葉 チバ|岩崎 イワサキ|菅原 スガワラ|
木下 キノシタ|久保 クボ|佐野 サノ|野村 ノムラ|松尾 マツオ|市川 イチカワ|菊地 キクチ|
甲斐 カイ|黒木 クロキ|河野 カワノ|日高 ヒダカ|長友 ナガトモ|児玉 コダマ
"""

_OLD_KANJI = """
髙橋 タカハシ|山﨑 ヤマサキ|髙田 タカダ|渡邉 ワタナベ|渡邊 ワタナベ|齋藤 サイトウ|齊藤 サイトウ|
吉﨑 ヨシザキ|宮﨑 ミヤザキ|髙木 タカギ|濱田 ハマダ|澤田 サワダ|廣瀬 ヒロセ|櫻井 サクライ
"""

_PLACE = """
千葉 チバ|長野 ナガノ|福島 フクシマ|秋田 アキタ|岡山 オカヤマ|熊本 クマモト|宮城 ミヤギ|
奈良 ナラ|福井 フクイ|山形 ヤマガタ|富山 トミヤマ|延岡 ノベオカ
"""

# kanji, reading, gender (M/F), generation (old/mid/young)
_GIVEN = """
正 タダシ M old|清 キヨシ M old|茂 シゲル M old|勇 イサム M old|博 ヒロシ M old|
実 ミノル M old|進 ススム M old|和夫 カズオ M old|正雄 マサオ M old|一郎 イチロウ M old|
三郎 サブロウ M old|義雄 ヨシオ M old|昭 アキラ M old|武 タケシ M old|幸雄 ユキオ M old|
幸子 サチコ F old|和子 カズコ F old|節子 セツコ F old|洋子 ヨウコ F old|恵子 ケイコ F old|
京子 キョウコ F old|久子 ヒサコ F old|美代子 ミヨコ F old|文子 フミコ F old|千代子 チヨコ F old|
ハル ハル F old|キヨ キヨ F old|トシ トシ F old|ミツ ミツ F old|静子 シズコ F old|
花子 ハナコ F old|貞子 サダコ F old|
太郎 タロウ M mid|健太 ケンタ M mid|直樹 ナオキ M mid|翔 ショウ M mid|大輔 ダイスケ M mid|
拓也 タクヤ M mid|誠 マコト M mid|隆 タカシ M mid|浩 ヒロシ M mid|修 オサム M mid|
聡 サトシ M mid|健一 ケンイチ M mid|和也 カズヤ M mid|
美咲 ミサキ F mid|陽子 ヨウコ F mid|由美 ユミ F mid|愛 アイ F mid|恵 メグミ F mid|
裕子 ユウコ F mid|明美 アケミ F mid|美穂 ミホ F mid|真由美 マユミ F mid|智子 トモコ F mid|
直美 ナオミ F mid|佳奈 カナ F mid|香奈 カナ F mid|加奈子 カナコ F mid|若菜 ワカナ F mid|
香苗 カナエ F mid|
蓮 レン M young|陽翔 ハルト M young|蒼 アオイ M young|湊 ミナト M young|悠真 ユウマ M young|
大和 ヤマト M young|樹 イツキ M young|颯太 ソウタ M young|
陽葵 ヒマリ F young|凛 リン F young|結菜 ユイナ F young|芽依 メイ F young|紬 ツムギ F young|
結愛 ユア F young|杏 アン F young|莉子 リコ F young|
"""

# old-fashioned given names (people born before about 1935), katakana or kanji the
# dictionary does not know as given names
_OLD_FASHIONED = """
トメ トメ F old|ウメ ウメ F old|マツ マツ F old|カメ カメ F old|イネ イネ F old|スミ スミ F old|
タケ タケ F old|ツル ツル F old|シズ シズ F old|ハツエ ハツエ F old|ミツ子 ミツコ F old|
キミ子 キミコ F old|末吉 スエキチ M old|重信 シゲノブ M old|留吉 トメキチ M old|寅吉 トラキチ M old|
松太郎 マツタロウ M old|亀太郎 カメタロウ M old
"""

# hiragana-only given names (written and read the same)
_HIRAGANA = """
さくら F young|ひなた F young|はるか F young|ゆい F young|あおい F young|こはる F young|
ひまり F young|めい F young|かな F young|みお F young|そうた M young|ゆうと M young|
はると M young|いつき M young|あさひ M young|
きよ F old|はる F old|ふみ F old|とし F old|よし F old|ちよ F old|しず F old|まつ F old
"""


@dataclass(frozen=True, slots=True)
class Surname:
    kanji: str
    reading: str
    kind: str  # common | old_kanji | place


@dataclass(frozen=True, slots=True)
class GivenName:
    kanji: str
    reading: str
    gender: str  # M | F
    generation: str  # old | mid | young
    hiragana: bool = False


def _pairs(block: str) -> list[tuple[str, ...]]:
    items = [p.strip() for p in block.replace("\n", "").split("|")]
    return [tuple(p.split()) for p in items if p]


COMMON_SURNAMES = [Surname(k, r, "common") for k, r in _pairs(_COMMON)]
OLD_KANJI_SURNAMES = [Surname(k, r, "old_kanji") for k, r in _pairs(_OLD_KANJI)]
PLACE_SURNAMES = [Surname(k, r, "place") for k, r in _pairs(_PLACE)]
SURNAME_WEIGHTS = [1.0 / (rank + 1) ** 0.8 for rank in range(len(COMMON_SURNAMES))]

OLD_FASHIONED_GIVEN = [GivenName(k, r, g, gen) for k, r, g, gen in _pairs(_OLD_FASHIONED)]
GIVEN_NAMES = [GivenName(k, r, g, gen) for k, r, g, gen in _pairs(_GIVEN)] + OLD_FASHIONED_GIVEN


def hira_to_kata(text: str) -> str:
    return "".join(chr(ord(c) + 0x60) if "ぁ" <= c <= "ゖ" else c for c in text)


HIRAGANA_GIVEN = [GivenName(k, hira_to_kata(k), g, gen, True) for k, g, gen in _pairs(_HIRAGANA)]


def pick_surname(rng: random.Random, pool: str = "common") -> Surname:
    """A surname; ``pool`` forces old-kanji or place-name surnames for some people."""
    if pool == "old_kanji" and rng.random() < 0.5:
        return rng.choice(OLD_KANJI_SURNAMES)
    if pool == "place" and rng.random() < 0.5:
        return rng.choice(PLACE_SURNAMES)
    if pool == "kana_word" and rng.random() < 0.4:
        return COMMON_SURNAMES[3]  # 田中 タナカ: the reading holds the header word カナ
    if pool == "common" and rng.random() < 0.03:
        return rng.choice(OLD_KANJI_SURNAMES + PLACE_SURNAMES)
    return rng.choices(COMMON_SURNAMES, weights=SURNAME_WEIGHTS, k=1)[0]


def pick_given(rng: random.Random, generation: str, pool: str = "common") -> GivenName:
    """A given name of the generation; ``pool`` hiragana forces hiragana-only names."""
    if pool == "hiragana" and rng.random() < 0.7:
        names = [g for g in HIRAGANA_GIVEN if g.generation == generation] or HIRAGANA_GIVEN
        return rng.choice(names)
    if pool == "kana_word" and rng.random() < 0.5:
        return rng.choice([g for g in GIVEN_NAMES if "カナ" in g.reading])
    names = [g for g in GIVEN_NAMES if g.generation == generation]
    if rng.random() < 0.05:
        names = names + [g for g in HIRAGANA_GIVEN if g.generation == generation]
    return rng.choice(names)
