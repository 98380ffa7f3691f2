"""`dlp-gateway serve`: the relay, the outbound queue and the admin page in one process."""

from __future__ import annotations

import argparse
import asyncio
import sys

from dlp_gateway.config import ConfigError, add_common_arguments, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "serve",
        help="run the SMTP relay and the admin page",
        description="SMTP relay (scan -> pass / hold / encrypt), durable outbound queue and "
        "approver admin page, in one process. Flags override the --config file.",
    )
    add_common_arguments(parser)
    parser.add_argument("--listen", metavar="HOST:PORT", help="SMTP listener (127.0.0.1:10025)")
    parser.add_argument(
        "--upstream", metavar="HOST:PORT|maildir:PATH",
        help="where released mail goes: a smarthost, or a local Maildir (maildir:./data/maildir)",
    )
    parser.add_argument("--admin-listen", metavar="HOST:PORT", help="admin page (127.0.0.1:8025)")
    parser.add_argument("--log-level", default="INFO", help="logging level (INFO)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dlp_gateway.server import configure_logging, serve_forever

    try:
        config = config_from_args(
            args, listen=args.listen, upstream=args.upstream, admin_listen=args.admin_listen
        )
    except ConfigError as exc:
        print(f"dlp-gateway serve: {exc}", file=sys.stderr)
        return 2
    from dlp_gateway.detect.patterns import check_patterns, resolve_dir

    problems = check_patterns(config.patterns_dir)
    if problems:  # no half-started gateway: refuse before anything listens
        for problem in problems:
            print(f"{resolve_dir(config.patterns_dir)}/{problem}", file=sys.stderr)
        print(f"dlp-gateway serve: {len(problems)} error(s) in the patterns set; not starting",
              file=sys.stderr)
        return 2
    configure_logging(args.log_level)
    from dlp_gateway.store.db import StorageError

    try:
        asyncio.run(serve_forever(config))
    except StorageError as exc:  # read-only or missing data directory: say so, no traceback
        print(f"dlp-gateway serve: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. port in use
        print(f"dlp-gateway serve: {exc}", file=sys.stderr)
        return 1
    return 0
