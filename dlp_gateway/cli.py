"""Command-line entry point: argument parsing only; each subcommand lives in commands/.

Only the module of the command asked for is imported (``dlp-gateway scan`` does not
load the admin web app, Argon2 or the store); ``--help`` and unknown commands build
the whole parser.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

# The modules under dlp_gateway.commands, in the order `--help` lists them.
COMMANDS = ("scan", "serve", "held", "users", "audit", "patterns", "allow", "replay", "staff",
            "db")


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"dlp_gateway.commands.{name}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, just that subcommand (its module alone is imported)."""
    parser = argparse.ArgumentParser(
        prog="dlp-gateway",
        description="Outbound-email DLP gateway (個人情報漏えい防止ゲートウェイ)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        if only is None or name == only:
            _module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    first = args_list[0] if args_list else None
    parser = build_parser(first if first in COMMANDS else None)
    args = parser.parse_args(args_list)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
