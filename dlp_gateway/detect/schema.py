"""The one schema of ``patterns/*.toml``: every file, table and key, its type and range.

``patterns check`` and ``load_patterns`` both validate against this, so a new key
is added here once (and read where it is used). Each problem is reported as
``file:line: message``; the line comes from a light scan of the TOML text (the
line of the key, else of its table header), since ``tomllib`` keeps no positions.
"""

from __future__ import annotations

import difflib
import hashlib
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regex

ACTIONS = ("pass", "encrypt", "hold")
ROLES = ("section_head", "ciso")
BUILTIN_METRICS = (
    "my_number",
    "insured_number",
    "name",
    "birth_date",
    "records",
    "body_records",
    "attachment_records",
    "unscannable",
)
PATTERN_FILES = ("my_number", "insured_number", "birth_date", "name")
OPTIONAL_FILES = ("id_types", "allow", "harmless")
ID_TYPE_ID = regex.compile(r"[a-z][a-z0-9_]{1,40}")
HASH_HEX = regex.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Key:
    """One key: ``kind`` is int, float, bool, str, hex, words, ints, regex or rows."""

    kind: str
    required: bool = True
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()


WINDOW = Key("int", lo=0, hi=10_000)
WORDS = Key("words")
OPTIONAL_WORDS = Key("words", required=False)
TEXT_EXAMPLE = {"text": Key("str"), "count": Key("int", lo=0, hi=10_000)}

# file -> table -> keys.  "[[x]]" names an array of tables.
SCHEMA: dict[str, dict[str, dict[str, Key]]] = {
    "my_number": {
        "my_number": {
            "keywords": WORDS,
            "keyword_window": WINDOW,
            "headers": WORDS,
            "negative_labels": WORDS,
            "label_window": WINDOW,
            "column_checksum_share": Key("float", lo=0.1, hi=1.0),
            "column_min_values": Key("int", lo=1, hi=1000),
            "column_plain_headers": OPTIONAL_WORDS,
            "sub_headers": OPTIONAL_WORDS,
            "mask_characters": Key("str", required=False),
        },
        "[[examples]]": TEXT_EXAMPLE,
    },
    "insured_number": {
        "insured_number": {
            "keywords": WORDS,
            "keyword_window": WINDOW,
            "headers": WORDS,
            "negative_labels": WORDS,
            "text_lengths": Key("ints", lo=4, hi=20),
            "cell_min_digits": Key("int", lo=1, hi=30),
            "cell_max_digits": Key("int", lo=1, hi=30),
            "symbol_number_regex": Key("regex"),
            "card_labels": OPTIONAL_WORDS,
            "card_value_regex": Key("regex", required=False),
            "title_words": OPTIONAL_WORDS,
            "title_negative_words": OPTIONAL_WORDS,
            "title_plain_headers": OPTIONAL_WORDS,
            "title_lengths": Key("ints", required=False, lo=4, hi=20),
            "sub_headers": OPTIONAL_WORDS,
            "mask_characters": Key("str", required=False),
            "lost_zero_column_share": Key("float", required=False, lo=0.1, hi=1.0),
        },
        "[[examples]]": TEXT_EXAMPLE,
    },
    "birth_date": {
        "birth_date": {
            "labels": WORDS,
            "headers": WORDS,
            "suffixes": WORDS,
            "range_connectors": OPTIONAL_WORDS,
            "negative_labels": WORDS,
            "label_window": WINDOW,
            "suffix_window": WINDOW,
            "max_age_years": Key("int", lo=1, hi=150),
            "part_headers": OPTIONAL_WORDS,
            "split_era_headers": OPTIONAL_WORDS,
            "split_year_headers": OPTIONAL_WORDS,
            "split_plain_year_headers": OPTIONAL_WORDS,
            "split_month_headers": OPTIONAL_WORDS,
            "split_day_headers": OPTIONAL_WORDS,
        },
        "[[examples]]": TEXT_EXAMPLE,
    },
    "name": {
        "name": {
            "headers": WORDS,
            "header_suffixes": WORDS,
            "part_headers": WORDS,
            "kana_headers": WORDS,
            "negative_headers": WORDS,
            "honorifics": WORDS,
            "organisation_suffixes": WORDS,
            "max_cell_length": Key("int", lo=2, hi=200),
            "other_headers": OPTIONAL_WORDS,
            "sub_headers": OPTIONAL_WORDS,
            "kanji_variants": OPTIONAL_WORDS,
            "value_labels": OPTIONAL_WORDS,
            "value_stopwords": OPTIONAL_WORDS,
            "surname_followers": OPTIONAL_WORDS,
            "signoff_labels": OPTIONAL_WORDS,
            "signature_separators": OPTIONAL_WORDS,
            "signature_words": OPTIONAL_WORDS,
            "anchor_words": OPTIONAL_WORDS,
        },
        "[[examples]]": TEXT_EXAMPLE,
    },
    "policy": {
        "": {
            "default_action": Key("str", required=False, choices=ACTIONS),
            "unscannable_ignore": Key("words", required=False),
        },
        "[[rules]]": {
            "id": Key("str"),
            "metric": Key("str"),  # BUILTIN_METRICS + id types, checked in _check_policy
            "min": Key("int", lo=1, hi=10_000_000),
            "action": Key("str", choices=ACTIONS),
            "reason": Key("str"),
            "approver_role": Key("str", required=False, choices=ROLES),
            "approvals_required": Key("int", required=False, lo=1, hi=5),
            "monitor": Key("bool", required=False),
            "allowed_recipient_action": Key("str", required=False, choices=ACTIONS),
        },
        "[[examples]]": {
            "name": Key("str"),
            "text": Key("str", required=False),
            "table": Key("rows", required=False),
            "attachment": Key("str", required=False),
            "sender": Key("str", required=False),
            "recipients": Key("words", required=False),
            "verdict": Key("str", choices=ACTIONS),
        },
    },
    "harmless": {
        "[[harmless]]": {"kind": Key("str"), "magic": Key("hex"), "check": Key("str")},
    },
    "id_types": {
        "[[id_types]]": {
            "id": Key("str"),
            "label": Key("str"),
            "regex": Key("regex"),
            "keywords": WORDS,
            "keyword_window": WINDOW,
            "headers": WORDS,
            "negative_labels": OPTIONAL_WORDS,
            "record": Key("bool", required=False),
            "confidence": Key("float", required=False, lo=0.1, hi=1.0),
        },
        "[[examples]]": {**TEXT_EXAMPLE, "type": Key("str")},
    },
    "allow": {
        "": {
            "salt": Key("str", required=False),
            "senders": OPTIONAL_WORDS,
            "recipient_domains": OPTIONAL_WORDS,
        },
        "[[values]]": {
            "hash": Key("str"),
            "added_by": Key("str"),
            "added_at": Key("str"),
            "reason": Key("str"),
        },
    },
}


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class LineFinder:
    """Where a key or table header sits in TOML text (1-based lines)."""

    _HEADER = regex.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_\-.]+)\s*\]\]?\s*(?:#.*)?$")
    _KEY = regex.compile(r"""^\s*(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_\-]+))\s*=""")

    def __init__(self, text: str):
        self.lines: dict[tuple[str, int | None, str | None], int] = {}
        table, index = "", None
        counts: dict[str, int] = {}
        for n, line in enumerate(text.splitlines(), 1):
            header = self._HEADER.match(line)
            if header and not self._KEY.match(line):
                table = header.group(2)
                if header.group(1) == "[[":
                    index = counts.get(table, 0)
                    counts[table] = index + 1
                else:
                    index = None
                self.lines.setdefault((table, index, None), n)
                continue
            key = self._KEY.match(line)
            if key:
                name = key.group(1) or key.group(2) or key.group(3)
                self.lines.setdefault((table, index, name), n)

    def line(self, table: str, index: int | None = None, key: str | None = None) -> int:
        for probe in ((table, index, key), (table, index, None)):
            if probe in self.lines:
                return self.lines[probe]
        return 1


@dataclass
class FileData:
    name: str  # "my_number.toml"
    data: dict[str, Any]
    lines: LineFinder


class Checker:
    """Validates a patterns directory against SCHEMA; collects every problem."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.problems: list[Problem] = []
        self.files: dict[str, FileData] = {}

    def add(self, file: FileData | str, line: int, message: str) -> None:
        name = file.name if isinstance(file, FileData) else file
        self.problems.append(Problem(name, line, message))

    def run(self) -> list[Problem]:
        if not self.directory.is_dir():
            self.add(str(self.directory), 0, "patterns directory not found")
            return self.problems
        for stem in SCHEMA:
            self._read(stem)
        for stem, fd in self.files.items():
            self._check_file(stem, fd)
        self._check_extra_files()
        if "policy" in self.files:
            self._check_policy(self.files["policy"])
        if "id_types" in self.files:
            self._check_id_types(self.files["id_types"])
        if "allow" in self.files:
            self._check_allow(self.files["allow"])
        self._check_insured()
        return sorted(set(self.problems))

    # -- reading ------------------------------------------------------------------
    def _read(self, stem: str) -> None:
        path = self.directory / f"{stem}.toml"
        name = path.name
        try:
            text = read_patterns_text(path)
        except FileNotFoundError:
            if stem not in OPTIONAL_FILES:
                self.add(name, 0, "missing patterns file")
            return
        except PatternsEncodingError as exc:
            self.add(name, exc.line, str(exc))
            return
        except OSError as exc:
            self.add(name, 0, f"cannot read: {exc}")
            return
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            line = _decode_error_line(str(exc))
            self.add(name, line, f"TOML syntax error: {exc}")
            return
        self.files[stem] = FileData(name, data, LineFinder(text))

    def _check_extra_files(self) -> None:
        for path in sorted(self.directory.glob("*.toml")):
            if path.stem not in SCHEMA:
                self.add(path.name, 1, f"unknown patterns file (known: {', '.join(SCHEMA)})")

    # -- generic schema walk ----------------------------------------------------------
    def _check_file(self, stem: str, fd: FileData) -> None:
        tables = SCHEMA[stem]
        top_keys = set(tables.get("", {}))
        for key, value in fd.data.items():
            if key in top_keys:
                continue
            spec_name = f"[[{key}]]" if isinstance(value, list) else key
            if spec_name in tables or key in tables:
                continue
            known = sorted({t.strip("[]") for t in tables if t} | top_keys)
            self.add(fd, fd.lines.line(key if isinstance(value, dict | list) else "", None,
                                       None if isinstance(value, dict | list) else key),
                     _unknown(key, known, f"{stem}.toml"))
        for table, keys in tables.items():
            if table == "":
                self._check_table(fd, "", None, fd.data, keys)
            elif table.startswith("[["):
                self._check_array(fd, table.strip("[]"), keys)
            elif table not in fd.data:
                self.add(fd, 1, f"missing [{table}] table")
            elif not isinstance(fd.data[table], dict):
                self.add(fd, fd.lines.line("", None, table), f"'{table}' must be a table")
            else:
                self._check_table(fd, table, None, fd.data[table], keys)

    def _check_array(self, fd: FileData, table: str, keys: dict[str, Key]) -> None:
        items = fd.data.get(table, [])
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            self.add(fd, fd.lines.line("", None, table), f"'{table}' must be [[{table}]] tables")
            return
        for index, item in enumerate(items):
            self._check_table(fd, table, index, item, keys)

    def _check_table(
        self, fd: FileData, table: str, index: int | None, values: dict[str, Any],
        keys: dict[str, Key],
    ) -> None:
        if index is not None:
            named = values.get("id") or values.get("name")
            where = f"[[{table}]] " + (f"'{named}'" if isinstance(named, str) else f"#{index + 1}")
        else:
            where = f"[{table}]" if table else "top level"
        for key, value in values.items():
            if table == "" and isinstance(value, dict | list) and key not in keys:
                continue  # sub-tables are checked by _check_file
            if key not in keys:
                self.add(fd, fd.lines.line(table, index, key), _unknown(key, list(keys), where))
                continue
            message = check_value(keys[key], value)
            if message:
                self.add(fd, fd.lines.line(table, index, key), f"{key}: {message}")
        for key, spec in keys.items():
            if spec.required and key not in values:
                self.add(fd, fd.lines.line(table, index), f"{where}: missing key '{key}'")

    # -- cross-key rules ----------------------------------------------------------------
    def id_type_ids(self) -> list[str]:
        fd = self.files.get("id_types")
        items = fd.data.get("id_types", []) if fd else []
        return [i["id"] for i in items if isinstance(i, dict) and isinstance(i.get("id"), str)]

    def _check_policy(self, fd: FileData) -> None:
        metrics = (*BUILTIN_METRICS, *self.id_type_ids())
        seen: set[str] = set()
        for i, rule in enumerate(_items(fd.data, "rules")):
            rid = rule.get("id")
            if isinstance(rid, str):
                if rid in seen:
                    self.add(fd, fd.lines.line("rules", i, "id"), f"duplicate rule id '{rid}'")
                seen.add(rid)
            label = f"rule '{rid}'" if isinstance(rid, str) else f"rule #{i + 1}"
            metric = rule.get("metric")
            if isinstance(metric, str) and metric not in metrics:
                self.add(fd, fd.lines.line("rules", i, "metric"),
                         f"{label}: unknown metric '{metric}' (known: {', '.join(metrics)})")
            if rule.get("action") == "hold" and "approver_role" not in rule:
                self.add(fd, fd.lines.line("rules", i, "action"),
                         f"{label}: a hold rule needs approver_role ({' or '.join(ROLES)})")
            lowered = rule.get("allowed_recipient_action")
            action = rule.get("action")
            if (lowered in ACTIONS and action in ACTIONS
                    and ACTIONS.index(lowered) > ACTIONS.index(action)):
                self.add(fd, fd.lines.line("rules", i, "allowed_recipient_action"),
                         f"{label}: allowed_recipient_action may only lower the action")
            reason = rule.get("reason")
            if isinstance(reason, str):
                self._check_reason(fd, i, label, reason)
        for i, ex in enumerate(_items(fd.data, "examples")):
            if "text" not in ex and "table" not in ex:
                self.add(fd, fd.lines.line("examples", i), "policy example needs text or table")

    def _check_reason(self, fd: FileData, i: int, label: str, reason: str) -> None:
        import string

        try:
            fields = {f for _t, f, _s, _c in string.Formatter().parse(reason) if f is not None}
        except ValueError as exc:
            self.add(fd, fd.lines.line("rules", i, "reason"), f"{label}: reason: {exc}")
            return
        unknown = fields - {"n", "details", "breakdown"}
        if unknown:
            self.add(fd, fd.lines.line("rules", i, "reason"),
                     f"{label}: reason uses unknown placeholder(s) "
                     f"{', '.join('{' + f + '}' for f in sorted(unknown))} "
                     "(known: {n}, {details}, {breakdown})")

    def _check_id_types(self, fd: FileData) -> None:
        seen: set[str] = set()
        for i, item in enumerate(_items(fd.data, "id_types")):
            tid = item.get("id")
            if not isinstance(tid, str):
                continue
            line = fd.lines.line("id_types", i, "id")
            if not ID_TYPE_ID.fullmatch(tid):
                self.add(fd, line, f"id '{tid}': use lower-case letters, digits and _")
            elif tid in BUILTIN_METRICS or tid in seen:
                self.add(fd, line, f"id '{tid}' is already taken")
            seen.add(tid)
        for i, ex in enumerate(_items(fd.data, "examples")):
            kind = ex.get("type")
            if isinstance(kind, str) and kind not in seen:
                self.add(fd, fd.lines.line("examples", i, "type"),
                         f"example type '{kind}' is not an id_types id")

    def _check_allow(self, fd: FileData) -> None:
        for key, test, what in (("senders", lambda s: "@" in s, "a mail address"),
                                ("recipient_domains", lambda s: "@" not in s and "." in s,
                                 "a domain (no @)")):
            for value in fd.data.get(key, []) if isinstance(fd.data.get(key), list) else []:
                if isinstance(value, str) and not test(value):
                    self.add(fd, fd.lines.line("", None, key), f"{key}: '{value}' is not {what}")
        values = _items(fd.data, "values")
        if values and not isinstance(fd.data.get("salt"), str):
            self.add(fd, 1, "values need a salt (use `dlp-gateway allow add-value`)")
        for i, item in enumerate(values):
            digest = item.get("hash")
            if isinstance(digest, str) and not HASH_HEX.fullmatch(digest):
                self.add(fd, fd.lines.line("values", i, "hash"),
                         "hash must be 64 hex digits (never the value itself)")

    def _check_insured(self) -> None:
        fd = self.files.get("insured_number")
        table = fd.data.get("insured_number") if fd else None
        if not isinstance(table, dict):
            return
        lo, hi = table.get("cell_min_digits"), table.get("cell_max_digits")
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            self.add(fd, fd.lines.line("insured_number", None, "cell_min_digits"),  # type: ignore[arg-type]
                     "cell_min_digits must not exceed cell_max_digits")


def check_value(spec: Key, value: Any) -> str | None:
    """A message when ``value`` does not fit ``spec``, else None."""
    kind = spec.kind
    if kind == "int" or (kind == "float" and isinstance(value, int)):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be an integer, not {_type(value)}" if kind == "int" else (
                f"must be a number, not {_type(value)}")
        return _range(spec, value)
    if kind == "float":
        if not isinstance(value, float):
            return f"must be a number, not {_type(value)}"
        return _range(spec, value)
    if kind == "bool":
        return None if isinstance(value, bool) else f"must be true or false, not {_type(value)}"
    if kind == "hex":
        if not isinstance(value, str) or not regex.fullmatch(r"(?:[0-9A-Fa-f]{2}\s*)*", value):
            return "must be hex bytes such as \"89 50 4E 47\" (may be empty)"
        return None
    if kind == "str":
        if not isinstance(value, str):
            return f"must be a string, not {_type(value)}"
        if not value.strip():
            return "must not be empty"
        if spec.choices and value not in spec.choices:
            return f"'{value}' is not one of {', '.join(spec.choices)}"
        return None
    if kind == "words":
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            return "must be a list of non-empty strings"
        dupes = sorted({v for v in value if value.count(v) > 1})
        return f"duplicate entries: {', '.join(dupes)}" if dupes else None
    if kind == "ints":
        if not isinstance(value, list) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            return "must be a non-empty list of integers"
        bad = [v for v in value if _range(spec, v)]
        return f"{bad[0]} is out of range {spec.lo:g}..{spec.hi:g}" if bad else None
    if kind == "regex":
        if not isinstance(value, str):
            return f"must be a string, not {_type(value)}"
        return regex_problem(value)
    if kind == "rows":
        if not isinstance(value, list) or not all(isinstance(r, list) for r in value):
            return "must be a list of rows (lists of cells)"
        return None
    raise AssertionError(kind)


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` does not compile, showing the offending part, or None."""
    try:
        regex.compile(pattern)
    except regex.error as exc:
        pos = exc.pos if exc.pos is not None else len(pattern)
        part = pattern[max(0, pos - 12): pos + 12]
        return (f"regex does not compile: {exc.msg} at position {pos}: "
                f"...{part}... (offending part: '{pattern[pos:pos + 12] or '<end>'}')")
    return None


def _range(spec: Key, value: float) -> str | None:
    if (spec.lo is not None and value < spec.lo) or (spec.hi is not None and value > spec.hi):
        return f"{value} is out of range {spec.lo:g}..{spec.hi:g}"
    return None


def _unknown(key: str, known: list[str], where: str) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown key '{key}' in {where}{hint}"


def _type(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def _items(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = data.get(key, [])
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


class PatternsEncodingError(ValueError):
    """A patterns file that is not UTF-8 text (an editor saved it as Shift_JIS, say)."""

    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.line = line


def read_patterns_text(path: Path) -> str:
    """A patterns file as text: UTF-8, with a leading BOM (Windows Notepad) accepted."""
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        hint = ""
        try:
            raw.decode("cp932")
            hint = " (it looks like Shift_JIS/cp932)"
        except UnicodeDecodeError:
            pass
        raise PatternsEncodingError(
            f"not UTF-8 text{hint}: save the file as UTF-8 / "
            f"UTF-8 で保存し直してください (byte {exc.start})", line
        ) from None


def _decode_error_line(message: str) -> int:
    m = regex.search(r"line (\d+)", message)
    return int(m.group(1)) if m else 1


def check_directory(directory: Path) -> list[Problem]:
    """Every problem in a patterns directory (empty: the set is valid)."""
    return Checker(directory).run()


def set_digest(directory: Path) -> str:
    """SHA-256 over the names and bytes of the set's TOML files (the set's identity)."""
    h = hashlib.sha256()
    for path in sorted(directory.glob("*.toml")):
        h.update(path.name.encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def iter_files(directory: Path) -> Iterator[Path]:
    yield from sorted(directory.glob("*.toml"))
