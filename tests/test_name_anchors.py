"""Names are analysed only where a person record can form (patterns/name.toml anchor_words).

A paragraph of free text goes to SudachiPy only when it holds an anchor: a birth date or
its label, an ID number or its keyword, or a name label. A policy with a `name` rule
analyses every paragraph. Record counts never depend on the rule: a record needs a name
and a birth date in one paragraph, and a birth date is an anchor.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import random
import shutil
from email.message import EmailMessage
from pathlib import Path

import pytest

from dlp_gateway.detect.engine import DetectionEngine
from dlp_gateway.detect.patterns import DEFAULT_PATTERNS_DIR, Rule, load_patterns
from dlp_gateway.detect.records import count_records
from dlp_gateway.extract.units import TextUnit
from dlp_gateway.scan import Scanner

TODAY = dt.date(2026, 11, 24)
PATTERNS = load_patterns()
NAME_RULE = Rule(id="names", metric="name", min=1, action="hold", reason="氏名 {n}件",
                 approver_role="section_head")
SEEDS = int(os.environ.get("DLP_FUZZ_N", "0")) or 150


def mail(body: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "staff@city.example.lg.jp"
    msg["To"] = "partner@example.com"
    msg["Subject"] = "ご連絡"
    msg.set_content(body)
    return msg.as_bytes()


def names_of(findings: list) -> list[str]:
    return [f.location for f in findings if f.type == "name"]


def test_name_beside_a_birth_date_in_free_text_forms_a_record() -> None:
    scanner = Scanner()
    body = ("お世話になっております。\n\n"
            "先日ご相談のあった件です。山田太郎さん（昭和45年3月2日生）は来月転居予定です。\n\n"
            "よろしくお願いします。\n")
    result = scanner.scan_message(mail(body))
    assert result.counts["name"] == 1 and result.counts["birth_date"] == 1
    assert result.counts["records"] == 1
    assert result.verdict.action == "hold"  # a record in the body


def test_names_without_any_anchor_cost_no_analyser_call() -> None:
    scanner = Scanner()
    assert scanner.engine.names._loaded is None
    body = ("各位\n\n佐藤花子さんと鈴木一郎さんが来週の会議に出席します。"
            "高橋美咲さんは欠席です。\n\n総務課 山田\n")
    result = scanner.scan_message(mail(body))
    assert result.counts["name"] == 0 and result.counts["records"] == 0
    assert result.verdict.action == "pass"
    assert scanner.engine.names._loaded is None  # the dictionary was never even loaded


def test_a_name_label_or_an_id_keyword_lets_its_paragraph_be_analysed() -> None:
    engine = DetectionEngine(PATTERNS, today=TODAY)
    text = ("佐藤花子さんから電話がありました。\n\n"
            "氏名：鈴木一郎\n住所：千葉市中央区1-1\n\n"
            "被保険者番号の件で高橋美咲さんに確認します。\n")
    findings = engine.scan_text(TextUnit(text, "body", "body", in_body=True))
    groups = sorted(f.group for f in findings if f.type == "name")
    assert groups == ["body#para2", "body#para3"]  # not para1: nothing there to anchor it


@pytest.fixture(scope="module")
def name_policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("name-policy") / "patterns"
    shutil.copytree(DEFAULT_PATTERNS_DIR, target)
    with (target / "policy.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[[rules]]\nid = "names"\nmetric = "name"\nmin = 2\naction = "encrypt"\n'
                 'reason = "氏名 {n}件"\n')
    return target


def test_a_policy_with_a_name_rule_analyses_every_paragraph(name_policy_dir: Path) -> None:
    scanner = Scanner(name_policy_dir)
    assert scanner.engine.names_everywhere
    body = "各位\n\n佐藤花子さんと鈴木一郎さんが来週の会議に出席します。\n"
    result = scanner.scan_message(mail(body))
    assert result.counts["name"] == 2
    assert result.verdict.action == "encrypt" and "names" in result.verdict.rules
    assert Scanner().scan_message(mail(body)).counts["name"] == 0  # default policy: none


# -- generated free text: records and verdicts never depend on the rule -----------------
SURNAMES = ["山田", "佐藤", "鈴木", "高橋", "田中", "渡辺", "伊藤", "中村"]
GIVEN = ["太郎", "花子", "一郎", "美咲", "健太", "陽子", "翔", "直美"]
BIRTHS = ["昭和45年3月2日生", "生年月日 平成2年4月1日", "1985/11/20生まれ", "生年月日：S52.7.7",
          "令和元年5月1日生"]
PLAIN = ["来週の定例会議は第二会議室で開催します。", "資料は当日配布します。",
         "ご確認をお願いいたします。", "令和7年11月25日に受付しました。",
         "山田製作所の見積書です。",
         "住所：千葉市中央区1-1", "電話 043-123-4567"]
IDS = ["個人番号 123456789018", "被保険者番号 12345678", "マイナンバーは後日提出します。"]
LABELS = ["氏名：", "お名前 ", "フリガナ ヤマダ タロウ ", "申請者名 "]


def sentence(rng: random.Random) -> str:
    name = rng.choice(SURNAMES) + rng.choice(["", " "]) + rng.choice(GIVEN)
    kind = rng.choices(["plain", "name", "honorific", "birth", "id", "label"],
                       [5, 2, 2, 2, 1, 1])[0]
    if kind == "plain":
        return rng.choice(PLAIN)
    if kind == "name":
        return f"{name}と打ち合わせをしました。"
    if kind == "honorific":
        return f"{rng.choice(SURNAMES)}{rng.choice(['さん', '様'])}に連絡します。"
    if kind == "birth":
        return f"{name}（{rng.choice(BIRTHS)}）"
    if kind == "id":
        return f"{name} {rng.choice(IDS)}"
    return f"{rng.choice(LABELS)}{name}"


def free_text(rng: random.Random) -> str:
    paragraphs = [
        rng.choice(["", "\n"]).join(sentence(rng) + rng.choice(["", "\n"])
                                    for _ in range(rng.randint(1, 5)))
        for _ in range(rng.randint(1, 6))
    ]
    return rng.choice(["\n\n", "\n　\n", "\n\n\n"]).join(paragraphs)


@pytest.fixture(scope="module")
def engines() -> tuple[DetectionEngine, DetectionEngine]:
    everywhere = dataclasses.replace(
        PATTERNS, policy=dataclasses.replace(PATTERNS.policy,
                                             rules=(*PATTERNS.policy.rules, NAME_RULE)))
    return DetectionEngine(PATTERNS, today=TODAY), DetectionEngine(everywhere, today=TODAY)


@pytest.mark.parametrize("seed", range(SEEDS))
def test_records_do_not_depend_on_where_names_are_analysed(
    engines: tuple[DetectionEngine, DetectionEngine], seed: int
) -> None:
    anchored, everywhere = engines
    text = free_text(random.Random(seed))
    unit = TextUnit(text, "body", "body", in_body=True)
    some, every = anchored.scan_text(unit), everywhere.scan_text(unit)
    why = f"seed {seed}: {text!r}"
    assert count_records(some) == count_records(every), why
    assert [f for f in some if f.type != "name"] == [f for f in every if f.type != "name"], why
    assert set(names_of(some)) <= set(names_of(every)), why
    # every name the anchored reading drops stands in a paragraph with no anchor at all
    kept_groups = {f.group for f in some}
    assert all(f.group not in kept_groups for f in every
               if f.type == "name" and f.location not in names_of(some)), why
