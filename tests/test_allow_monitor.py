"""Allow-lists (values, senders, recipient domains) and per-rule monitor mode."""

from __future__ import annotations

import io
import random
import shutil
from email.message import EmailMessage
from pathlib import Path

import pytest
from stdnum.jp import in_ as my_number_check

from dlp_gateway.cli import main
from dlp_gateway.detect.patterns import DEFAULT_PATTERNS_DIR, check_patterns, load_patterns
from dlp_gateway.detect.records import RecordCount
from dlp_gateway.policy import decide
from dlp_gateway.scan import Scanner

SEED = 1124


def valid_numbers(rng: random.Random, n: int) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        body = "".join(rng.choice("0123456789") for _ in range(11))
        number = body + my_number_check.calc_check_digit(body)
        if len(set(number)) > 1 and number not in out:
            out.append(number)
    return out


def variants(number: str, rng: random.Random) -> str:
    """The same number as people write it: grouped, full-width, spaced."""
    form = rng.choice(["plain", "dash", "space", "wide", "widedash"])
    a, b, c = number[:4], number[4:8], number[8:]
    wide = str.maketrans("0123456789-", "０１２３４５６７８９－")
    return {"plain": number, "dash": f"{a}-{b}-{c}", "space": f"{a} {b} {c}",
            "wide": number.translate(wide), "widedash": f"{a}-{b}-{c}".translate(wide)}[form]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "patterns"
    shutil.copytree(DEFAULT_PATTERNS_DIR, target)
    return target


def _add(copy: Path, value: str, reason: str = "テスト用の番号（総務課）") -> None:
    assert main(["allow", "add-value", value, "--reason", reason, "--patterns", str(copy),
                 "--by", "tester"]) == 0


def _message(body: str, sender: str = "a@city.example.lg.jp",
             to: str = "b@example.com", attachment: tuple[str, bytes] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, "test"
    msg.set_content(body)
    if attachment:
        msg.add_attachment(attachment[1], maintype="text", subtype="csv",
                           filename=attachment[0])
    return msg.as_bytes()


def test_allow_listed_value_is_never_a_finding_in_any_form(copy: Path) -> None:
    rng = random.Random(SEED)
    allowed, other = valid_numbers(rng, 2)
    _add(copy, variants(allowed, rng))
    text = (copy / "allow.toml").read_text(encoding="utf-8")
    assert allowed not in text and allowed[-4:] + "\n" not in text  # hash only
    entry = load_patterns(copy).allow.values[0]
    assert entry.added_by == "tester" and entry.reason.startswith("テスト用") and entry.added_at
    scanner = Scanner(copy)
    for i in range(40):
        shown = variants(allowed, rng)
        raw = _message(f"個人番号：{shown}\n")
        result = scanner.scan_message(raw)
        assert result.findings == [] and result.verdict.action == "pass", (SEED, i, shown)
        raw = _message(f"個人番号：{shown}\nもう一人の個人番号：{variants(other, rng)}\n")
        result = scanner.scan_message(raw)
        assert [f.masked[-4:] for f in result.findings if f.type == "my_number"] == [other[-4:]]


def test_allow_listed_value_in_a_spreadsheet_cell(copy: Path) -> None:
    import openpyxl

    rng = random.Random(SEED + 1)
    numbers = valid_numbers(rng, 4)
    allowed = "0" + numbers[0][1:11]
    allowed += my_number_check.calc_check_digit(allowed)  # a leading zero Excel drops
    _add(copy, allowed)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["個人番号", "氏名"])
    ws.append([int(allowed), "山田太郎"])
    for n in numbers[1:]:
        ws.append([n, "佐藤花子"])
    buf = io.BytesIO()
    wb.save(buf)
    result = Scanner(copy).scan_file("名簿.xlsx", buf.getvalue())
    found = sorted(f.masked[-4:] for f in result.findings if f.type == "my_number")
    assert found == sorted(n[-4:] for n in numbers[1:])


def test_allow_listed_sender_passes(copy: Path) -> None:
    path = copy / "allow.toml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        "senders = []", 'senders = ["kokuho@city.example.lg.jp"]'), encoding="utf-8")
    scanner = Scanner(copy)
    raw = _message("個人番号：123456789018")
    assert scanner.scan_message(raw, ("kokuho@city.example.lg.jp", ["x@y.jp"])).verdict.action \
        == "pass"
    assert scanner.scan_message(raw, ("other@city.example.lg.jp", ["x@y.jp"])).verdict.action \
        == "hold"


SURNAMES = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤"]
GIVEN = ["花子", "太郎", "一郎", "美咲", "健太", "陽子", "直樹", "由美", "翔", "愛"]


def _roster_csv(n: int) -> bytes:
    rows = ["氏名,生年月日"] + [
        f"{SURNAMES[i % 10]}{GIVEN[(i * 3) % 10]},1970/03/{1 + i % 28:02d}" for i in range(n)
    ]
    return ("\r\n".join(rows) + "\r\n").encode("utf-8")


def test_recipient_domain_lowers_only_as_policy_says(copy: Path) -> None:
    allow = copy / "allow.toml"
    allow.write_text(allow.read_text(encoding="utf-8").replace(
        "recipient_domains = []", 'recipient_domains = ["kokuho-rengo.example.jp"]'),
        encoding="utf-8")
    raw = _message("名簿です", attachment=("名簿.csv", _roster_csv(12)))
    trusted = ("a@city.example.lg.jp", ["jimu@kokuho-rengo.example.jp"])
    mixed = ("a@city.example.lg.jp", ["jimu@kokuho-rengo.example.jp", "x@example.com"])
    assert Scanner(copy).scan_message(raw, trusted).verdict.action == "hold"  # policy silent
    policy = copy / "policy.toml"
    policy.write_text(policy.read_text(encoding="utf-8").replace(
        'reason = "個人情報 {n}人分（10人分以上）"',
        'reason = "個人情報 {n}人分（10人分以上）"\nallowed_recipient_action = "encrypt"'),
        encoding="utf-8")
    assert check_patterns(copy) == []
    scanner = Scanner(copy)
    assert scanner.scan_message(raw, trusted).verdict.action == "encrypt"
    assert scanner.scan_message(raw, mixed).verdict.action == "hold"
    sub = ("a@city.example.lg.jp", ["b@sub.kokuho-rengo.example.jp"])
    assert scanner.scan_message(raw, sub).verdict.action == "encrypt"
    # the My Number rule has no allowed_recipient_action: still a hold
    assert scanner.scan_message(_message("個人番号：123456789018"), trusted).verdict.action \
        == "hold"


def test_allowed_recipient_action_may_only_lower(copy: Path) -> None:
    policy = copy / "policy.toml"
    policy.write_text(policy.read_text(encoding="utf-8").replace(
        'reason = "添付ファイルに個人情報 {n}人分（暗号化して送信）"',
        'reason = "添付ファイルに個人情報 {n}人分（暗号化して送信）"\n'
        'allowed_recipient_action = "hold"'), encoding="utf-8")
    [problem] = check_patterns(copy)
    assert "may only lower" in problem.message and problem.file == "policy.toml"


def test_clear_value_in_allow_file_is_refused(copy: Path) -> None:
    with (copy / "allow.toml").open("a", encoding="utf-8") as fh:
        fh.write('\n[[values]]\nhash = "123456789018"\nadded_by = "a"\nadded_at = "b"\n'
                 'reason = "c"\n')
    messages = [p.message for p in check_patterns(copy)]
    assert any("64 hex digits" in m for m in messages) and any("salt" in m for m in messages)


# -- monitor mode per rule ------------------------------------------------------------------
def _policy(copy: Path, monitor_rule: str) -> None:
    policy = copy / "policy.toml"
    text = policy.read_text(encoding="utf-8")
    text = text.replace(f'id = "{monitor_rule}"\n', f'id = "{monitor_rule}"\nmonitor = true\n')
    policy.write_text(text, encoding="utf-8")


@pytest.mark.parametrize("seed", range(6))
def test_monitor_rule_is_computed_but_not_enforced(copy: Path, seed: int) -> None:
    rng = random.Random(seed)
    _policy(copy, "many_records")
    policy = load_patterns(copy).policy
    enforced = load_patterns(DEFAULT_PATTERNS_DIR).policy
    n = rng.randint(10, 500)
    in_body = rng.choice([0, 0, 1])
    counts = {"my_number": 0, "insured_number": 0, "name": n, "birth_date": n, "records": n}
    v = decide(policy, counts, RecordCount(n, in_body), [])
    full = decide(enforced, counts, RecordCount(n, in_body), [])
    assert full.action == "hold" and "many_records" in full.rules
    assert v.monitor == ("many_records",) and v.monitor_action == "hold", seed
    assert "many_records" not in v.rules
    assert v.action == ("hold" if in_body else "encrypt"), (seed, n, in_body)



def test_scan_without_envelope_reads_addresses_with_the_strict_parser() -> None:
    """A forged-comma From never names an allow-listed sender (no envelope: CLI scans)."""
    from dlp_gateway.scan import envelope_from_headers

    plain = envelope_from_headers(b"From: Yamada <a@city.example.lg.jp>\r\n"
                                  b"To: b@example.com, c@example.org\r\n\r\nbody")
    assert plain == ("a@city.example.lg.jp", ["b@example.com", "c@example.org"])
    forged = envelope_from_headers(b'From: "x@allowed.example,"@evil.example\r\n'
                                   b"To: b@example.com\r\n\r\nbody")
    assert forged[0] == ""
