"""`dlp-gateway allow add-value VALUE --reason TEXT [--patterns DIR]` and `allow list`.

The value is normalised (digits only for a number) and stored in
``patterns/allow.toml`` as a salted HMAC-SHA256, with who added it, when and why;
the value itself is never written anywhere. ``VALUE`` may be ``-`` to read it from
standard input (keeps a My Number out of the shell history). A running gateway
picks the change up by its patterns reload.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import secrets
import sys
from pathlib import Path

from dlp_gateway.config import ConfigError, load_config
from dlp_gateway.detect.allow import normalise, value_hash
from dlp_gateway.detect.patterns import (
    DEFAULT_PATTERNS_DIR,
    PatternError,
    check_patterns,
    load_patterns,
    resolve_dir,
)

HEADER = """# Allow-lists (許可リスト): see docs/patterns.md. Values are salted hashes only.

senders = []
recipient_domains = []
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("allow", help="manage allow-lists (patterns/allow.toml)")
    actions = parser.add_subparsers(dest="allow_command", required=True, metavar="ACTION")
    add = actions.add_parser("add-value", help="allow-list one value (stored as a salted hash)")
    add.add_argument("value", metavar="VALUE", help="the value, or - to read it from stdin")
    add.add_argument("--reason", required=True, metavar="TEXT", help="why it is allowed")
    add.add_argument("--patterns", metavar="DIR",
                     help="patterns directory (default: patterns_dir of --config)")
    add.add_argument("--config", metavar="FILE", help="TOML configuration file (patterns_dir)")
    add.add_argument("--by", metavar="WHO", help="who adds it (default: the login name)")
    add.set_defaults(handler=run_add)
    show = actions.add_parser("list", help="show the allow-lists (hashes, never values)")
    show.add_argument("--patterns", metavar="DIR",
                      help="patterns directory (default: patterns_dir of --config, or bundled)")
    show.add_argument("--config", metavar="FILE", help="TOML configuration file (patterns_dir)")
    show.set_defaults(handler=run_list)


def run_add(args: argparse.Namespace) -> int:
    value = sys.stdin.readline().strip() if args.value == "-" else args.value
    if not normalise(value):
        print("dlp-gateway allow: empty value", file=sys.stderr)
        return 2
    if not args.reason.strip():
        print("dlp-gateway allow: --reason must say why", file=sys.stderr)
        return 2
    try:
        chosen = args.patterns or _configured_dir(args.config)
    except ConfigError as exc:
        print(f"dlp-gateway allow: {exc}", file=sys.stderr)
        return 2
    directory = resolve_dir(chosen)
    if chosen is None and directory.resolve() == DEFAULT_PATTERNS_DIR.resolve():
        print("dlp-gateway allow: 同梱のパターン（パッケージの一部で、更新時に上書きされます）"
              "には書き込みません。コピーを作り（cp -r "
              f"{DEFAULT_PATTERNS_DIR.resolve()} /etc/dlp-gateway/patterns）、gateway.toml の "
              "patterns_dir に設定して --patterns DIR か --config FILE を指定してください "
              "(refusing to write into the bundled patterns; give --patterns or --config)",
              file=sys.stderr)
        return 2
    problems = check_patterns(directory)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print("dlp-gateway allow: fix the patterns set first", file=sys.stderr)
        return 2
    path = directory / "allow.toml"
    added = add_value(path, value, args.reason.strip(), args.by or _who())
    if added is None:
        print("already allow-listed (登録済み)")
        return 0
    problems = check_patterns(directory)
    if problems:  # never leave a set behind that the gateway would refuse
        path.write_text(added[1], encoding="utf-8")
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1
    print(f"added {added[0][:12]}… to {path} (許可リストに追加しました)")
    return 0


def add_value(path: Path, value: str, reason: str, who: str) -> tuple[str, str] | None:
    """Append a ``[[values]]`` entry; returns (hash, previous text), None if present."""
    original = path.read_text(encoding="utf-8") if path.exists() else ""
    text = original or HEADER
    allow = load_patterns(path.parent).allow if original else None
    salt = allow.salt if allow and allow.salt else ""
    if not salt:
        salt = secrets.token_hex(16)
        text = f'salt = "{salt}"  # per-installation salt for the value hashes\n' + text
    digest = value_hash(salt, value)
    if allow and digest in allow.hashes:
        return None
    at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    entry = (f"\n[[values]]\nhash = \"{digest}\"\nadded_by = {json.dumps(who, ensure_ascii=False)}"
             f"\nadded_at = \"{at}\"\nreason = {json.dumps(reason, ensure_ascii=False)}\n")
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(text.rstrip("\n") + "\n" + entry, encoding="utf-8")
    os.replace(tmp, path)
    return digest, original


def _configured_dir(config_file: str | None) -> Path | None:
    return load_config(config_file).patterns_dir if config_file else None


def run_list(args: argparse.Namespace) -> int:
    try:
        allow = load_patterns(args.patterns or _configured_dir(args.config)).allow
    except (ConfigError, PatternError) as exc:
        print(f"dlp-gateway allow: {exc}", file=sys.stderr)
        return 2
    print(f"senders: {', '.join(sorted(allow.senders)) or '-'}")
    print(f"recipient_domains: {', '.join(sorted(allow.recipient_domains)) or '-'}")
    for v in allow.values:
        print(f"value {v.hash[:12]}…\t{v.added_at}\t{v.added_by}\t{v.reason}")
    return 0


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return os.environ.get("USER", "unknown")
