"""Why each finding fired, and why near misses did not (``scan --explain``).

Kept apart from the detectors so they stay fast and simple: this module re-reads
the same input, re-runs the detectors unit by unit, and for each hit re-derives
the context that made it count (keyword and distance, header, check digit, title
rows) from the same patterns. Near misses are 12-digit numbers that pass the My
Number check digit but were not counted, with the reason. Every text is given in
Japanese and English; values are masked as in findings.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

import regex

from dlp_gateway.detect.findings import Finding, mask_number
from dlp_gateway.detect.normalize import LabelIndex, fold, header_matches
from dlp_gateway.detect.numbers import Hit, cell_digits, is_valid_my_number
from dlp_gateway.extract.units import TableUnit, TextUnit, column_letter

_TWELVE = regex.compile(
    r"(?<!\d)(?<!\d[-.])"
    r"(?:(?P<plain>\d{12})|(?P<a>\d{4})(?P<sep>[-. ])(?P<b>\d{4})(?P=sep)(?P<c>\d{4}))"
    r"(?!\d)(?!(?P=sep)\d)"
)
HEADER_ROWS = 30
TYPE_JA = {"my_number": "マイナンバー", "insured_number": "被保険者番号", "name": "氏名",
           "birth_date": "生年月日"}


@dataclass
class Why:
    ja: str
    en: str
    rules: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"ja": self.ja, "en": self.en, "rules": self.rules}


@dataclass
class NearMiss:
    location: str
    masked: str
    ja: str
    en: str

    def to_json(self) -> dict[str, str]:
        return {"location": self.location, "masked": self.masked, "ja": self.ja, "en": self.en}


@dataclass
class Explanation:
    findings: dict[int, Why]  # index into ScanResult.findings -> why
    near_misses: list[NearMiss]
    verdict_ja: str
    verdict_en: str


class Explainer:
    def __init__(self, scanner: Any):
        self.scanner = scanner
        self.engine = scanner.engine
        self.p = scanner.patterns

    def explain(self, units: list[Any], result: Any) -> Explanation:
        whys: dict[tuple[str, str, str], list[Why]] = {}
        misses: list[NearMiss] = []
        for unit in units:
            if isinstance(unit, TextUnit):
                self._text(unit, whys, misses)
            elif isinstance(unit, TableUnit):
                self._table(unit, whys, misses)
        rules = self._rules_by_metric(result)
        out: dict[int, Why] = {}
        for i, finding in enumerate(result.findings):
            queue = whys.get((finding.type, finding.location, finding.masked))
            why = queue.pop(0) if queue else self._fallback(finding)
            why.rules = rules.get(finding.type, []) + rules.get("records", [])
            out[i] = why
        ja, en = self._verdict(result)
        return Explanation(out, misses, ja, en)

    # -- free text ---------------------------------------------------------------------
    def _text(self, unit: TextUnit, whys: dict, misses: list[NearMiss]) -> None:
        text = fold(unit.text)
        header = unit.header
        kind = self.engine.classify(header) if header else None
        hits = self.engine._hits(text, kind, self.engine.free_text_scope(text), header=header)
        lines = [0, *(m.end() for m in regex.finditer(r"\n", text))]

        def location(pos: int) -> str:
            return f"{unit.location}!{unit.line_label}{bisect_right(lines, pos)}"

        labels = {
            "my_number": LabelIndex(self.p.my_number.labels, text),
            "insured_number": LabelIndex(self.p.insured_number.labels, text),
            "birth_date": LabelIndex(self.p.birth_date.labels, text),
        }
        for hit in hits:
            why = self._text_why(hit, text, labels, header)
            whys.setdefault((hit.type, location(hit.start), hit.masked), []).append(why)
        taken = [(h.start, h.end) for h in hits if h.type == "my_number"]
        for m in _TWELVE.finditer(text):
            digits = m.group("plain") or (m.group("a") + m.group("b") + m.group("c"))
            if not is_valid_my_number(digits) or any(s <= m.start() < e for s, e in taken):
                continue
            ja, en = self._my_number_miss(m, labels["my_number"], text)
            misses.append(NearMiss(location(m.start()), mask_number(digits), ja, en))

    def _text_why(self, hit: Hit, text: str, labels: dict[str, LabelIndex],
                  header: str | None) -> Why:
        if hit.type == "my_number":
            return self._my_number_why(hit, labels["my_number"], header)
        if hit.type in ("insured_number", "birth_date"):
            window = (self.p.insured_number.keyword_window if hit.type == "insured_number"
                      else self.p.birth_date.label_window)
            label = labels[hit.type].nearest_before(hit.start, window)
            if label is not None:
                d = hit.start - label.end
                return Why(f"ラベル「{label.word}」が {d} 文字前",
                           f"label '{label.word}' {d} chars before")
            if header:
                return Why(f"見出し「{header}」の下", f"under the header '{header}'")
            if hit.type == "insured_number":
                return Why("記号・番号・枝番の書き方に一致", "written as 記号/番号/枝番")
            after = text[hit.end: hit.end + self.p.birth_date.suffix_window + 4]
            return Why(f"日付の直後に「{after.strip()[:4]}」", f"followed by '{after.strip()[:4]}'")
        if hit.type == "name":
            after = text[hit.end: hit.end + 3]
            honorific = next((h for h in self.p.name.honorifics if after.startswith(h)), None)
            if honorific:
                return Why(f"形態素解析で人名、後ろに敬称「{honorific}」",
                           f"a person's name (SudachiPy) followed by '{honorific}'")
            return Why("形態素解析で人名（生年月日と同じ段落）",
                       "a person's name (SudachiPy), in a paragraph with a birth date")
        id_type = next((t for t in self.p.id_types if t.id == hit.type), None)
        if id_type is not None:
            label = LabelIndex(id_type.labels, text).nearest_before(hit.start,
                                                                    id_type.keyword_window)
            if label is not None:
                d = hit.start - label.end
                return Why(f"{id_type.label}: キーワード「{label.word}」が {d} 文字前",
                           f"{id_type.id}: keyword '{label.word}' {d} chars before")
            return Why(f"{id_type.label}: 見出し「{header}」の下",
                       f"{id_type.id}: under the header '{header}'")
        return Why(f"確からしさ {hit.confidence:.2f}", f"confidence {hit.confidence:.2f}")

    def _my_number_why(self, hit: Hit, labels: LabelIndex, header: str | None) -> Why:
        mn = self.p.my_number
        check = ("検査数字が正しい", "check digit valid")
        label = labels.nearest_before(hit.start, mn.label_window)
        if label is not None:
            d = hit.start - label.end
            return Why(f"{check[0]}。ラベル「{label.word}」が {d} 文字前",
                       f"{check[1]}; label '{label.word}' {d} chars before")
        if header:
            return Why(f"{check[0]}。見出し「{header}」の下",
                       f"{check[1]}; under header '{header}'")
        near = [lb for lb in labels.labels if lb.positive]
        if near:
            best = min(near, key=lambda lb: _distance(lb, hit.start, hit.end))
            d = _distance(best, hit.start, hit.end)
            if d <= mn.keyword_window:
                return Why(f"{check[0]}。キーワード「{best.word}」まで {d} 文字"
                           f"（{mn.keyword_window} 文字以内）",
                           f"{check[1]}; keyword '{best.word}' {d} chars away "
                           f"(within {mn.keyword_window})")
        return Why(f"{check[0]}。4-4-4 の区切り書き"
                   f"（キーワードなし、確からしさ {hit.confidence:.2f}）",
                   f"{check[1]}; written 4-4-4 (no keyword, confidence {hit.confidence:.2f})")

    def _my_number_miss(self, m: regex.Match, labels: LabelIndex, text: str) -> tuple[str, str]:
        mn = self.p.my_number
        label = labels.nearest_before(m.start(), mn.label_window)
        if label is not None and not label.positive:
            d = m.start() - label.end
            return (f"検査数字は正しいが、直前のラベル「{label.word}」({d} 文字前) が"
                    "別の番号を示す",
                    f"check digit valid, but the label '{label.word}' {d} chars before says "
                    "it is another number")
        return (f"検査数字は正しいが、{mn.keyword_window} 文字以内にキーワードがなく、"
                "見出しもなく、4-4-4 の区切りでもない（約 1 割の 12 桁は偶然に検査数字が合う）",
                f"check digit valid, but no keyword within {mn.keyword_window} chars, no "
                "header and not written 4-4-4 (about 1 in 10 random 12-digit numbers pass)")

    # -- tables --------------------------------------------------------------------------
    def _table(self, unit: TableUnit, whys: dict, misses: list[NearMiss]) -> None:
        head = []
        for row in unit.rows():
            head.append(row)
            if len(head) >= HEADER_ROWS:
                break
        headers, header_row = self._headers(head)
        titles = [str(c) for row in head if header_row and row.number < header_row
                  for c in row.cells if isinstance(c, str) and c.strip()]
        found = set()
        for finding in self.engine.scan_table(unit, keep_all=True):  # all: no false misses
            col = _column(finding.location)
            header = headers.get(col) if col is not None else None
            why = self._cell_why(finding, header, header_row, titles)
            whys.setdefault((finding.type, finding.location, finding.masked), []).append(why)
            if finding.type == "my_number":
                found.add(finding.location)
        for row in unit.rows():
            for i, value in enumerate(row.cells):
                digits = cell_digits(value, pad_to=12 if isinstance(value, int) else None)
                if not digits or len(digits) != 12 or not is_valid_my_number(digits):
                    continue
                location = unit.cell_location(row.number, i)
                if location in found:
                    continue
                header = headers.get(column_letter(i) if unit.cell_style == "a1" else i + 1)
                if header and header_matches(header, self.p.my_number.labels.negative):
                    ja = f"検査数字は正しいが、列見出し「{header}」が別の番号を示す"
                    en = (f"check digit valid, but the column header '{header}' "
                          "names another number")
                else:
                    ja = ("検査数字は正しいが、列見出しがマイナンバーでなく、"
                          "列の 12 桁の値のうち検査数字が"
                          f"合う割合が {self.p.my_number.column_checksum_share:.0%} 未満")
                    en = ("check digit valid, but the column has no My Number header and fewer "
                          f"than {self.p.my_number.column_checksum_share:.0%} of its 12-digit "
                          "values pass the check")
                misses.append(NearMiss(location, mask_number(digits), ja, en))

    def _headers(self, head: list) -> tuple[dict[Any, str], int | None]:
        """The first row that names at least one known kind: column -> header text."""
        for row in head:
            kinds = [self.engine.classify(c) for c in row.cells]
            if any(kinds):
                return ({column_letter(i): str(c) for i, c in enumerate(row.cells) if c}
                        | {i + 1: str(c) for i, c in enumerate(row.cells) if c}, row.number)
        return {}, None

    def _cell_why(self, finding: Finding, header: str | None, header_row: int | None,
                  titles: list[str]) -> Why:
        check = finding.type == "my_number"
        ja = ["検査数字が正しい"] if check else []
        en = ["check digit valid"] if check else []
        if header:
            ja.append(f"列見出し「{header}」（{header_row} 行目）の下")
            en.append(f"under the column header '{header}' (row {header_row})")
        elif check:
            ja.append("見出しなし: 列の 12 桁の値のほとんどが検査数字に合う")
            en.append("no header: nearly all 12-digit values of the column pass the check")
        else:
            ja.append(f"セルの文から検出（確からしさ {finding.confidence:.2f}）")
            en.append(f"found in the cell's text (confidence {finding.confidence:.2f})")
        if titles:
            ja.append(f"表題「{titles[0][:30]}」")
            en.append(f"title context '{titles[0][:30]}'")
        return Why("。".join(ja), "; ".join(en))

    # -- verdict -------------------------------------------------------------------------
    def _rules_by_metric(self, result: Any) -> dict[str, list[str]]:
        fired = set(result.verdict.rules) | set(getattr(result.verdict, "monitor", ()))
        out: dict[str, list[str]] = {}
        for rule in self.p.policy.rules:
            if rule.id not in fired:
                continue
            key = "records" if rule.metric.endswith("records") else rule.metric
            label = f"{rule.id}" + (" (monitor)" if rule.monitor else "")
            out.setdefault(key, []).append(label)
        return out

    def _verdict(self, result: Any) -> tuple[str, str]:
        v = result.verdict
        if not v.rules:
            return (f"どのルールにも該当しないため {v.action}", f"no rule fired: {v.action}")
        ids = ", ".join(v.rules)
        ja = f"ルール {ids} により {v.action}（最も強い処置が採用される）"
        en = f"{v.action} by rule(s) {ids} (the strongest action wins)"
        if getattr(v, "monitor", ()):
            m = ", ".join(v.monitor)
            ja += f"。監視中のルール {m} は {v.monitor_action} だが判定に影響しない"
            en += f"; monitor rule(s) {m} would {v.monitor_action} (not enforced)"
        return ja, en

    @staticmethod
    def _fallback(finding: Finding) -> Why:
        return Why(f"確からしさ {finding.confidence:.2f}", f"confidence {finding.confidence:.2f}")


def _distance(label: Any, start: int, end: int) -> int:
    if label.end <= start:
        return start - label.end
    if label.start >= end:
        return label.start - end
    return 0


def _column(location: str) -> Any:
    """'book.xlsx!Sheet1!C7' -> 'C'; 'doc.docx!table1!r3c2' -> 2."""
    cell = location.rsplit("!", 1)[-1]
    m = regex.fullmatch(r"([A-Z]+)\d+", cell)
    if m:
        return m.group(1)
    m = regex.fullmatch(r"r\d+c(\d+)", cell)
    return int(m.group(1)) if m else None
