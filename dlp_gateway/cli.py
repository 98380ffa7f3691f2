"""Command-line entry point: argument parsing only; each subcommand lives in commands/."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dlp_gateway.commands import allow as allow_cmd
from dlp_gateway.commands import audit, held, replay, scan, serve, staff, users
from dlp_gateway.commands import db as db_cmd
from dlp_gateway.commands import patterns as patterns_cmd

COMMANDS = (scan, serve, held, users, audit, patterns_cmd, allow_cmd, replay, staff, db_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlp-gateway",
        description="Outbound-email DLP gateway (個人情報漏えい防止ゲートウェイ)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
