"""`dlp-gateway held list|show|release|reject`: the held-mail queue from the shell.

release/reject record who acted (``--actor``, default ``cli:<os user>``) and put
the outbound mail in the durable queue; a running ``dlp-gateway serve`` (sharing
the data directory) delivers it. These commands do not deliver by themselves.
Role / separation-of-duty checks are the admin page's; the shell is for operators.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sqlite3
import sys

from dlp_gateway.config import (
    ConfigError,
    add_common_arguments,
    config_from_args,
    require_database,
)
from dlp_gateway.timefmt import local

QUEUE_NOTE = (
    "The mail is put in the durable outbound queue; a running `dlp-gateway serve` "
    "using the same data directory delivers it."
)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "held", help="list, show, release or reject held mail",
        description="Inspect and act on held mail. " + QUEUE_NOTE,
    )
    actions = parser.add_subparsers(dest="held_command", required=True, metavar="ACTION")

    p = actions.add_parser("list", help="list held mail")
    add_common_arguments(p)
    p.add_argument("--status",
                   choices=["held", "released", "rejected", "expired", "withdrawn"])
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="json: one object per line")

    p = actions.add_parser("show", help="show one held message (findings masked)")
    add_common_arguments(p)
    p.add_argument("id")

    p = actions.add_parser("release", help="release a held message. " + QUEUE_NOTE,
                           description="Release a held message. " + QUEUE_NOTE)
    add_common_arguments(p)
    p.add_argument("id")
    p.add_argument("--mode", choices=["as_is", "encrypted"], default=None,
                   help="encrypted: AES-256 zip the attachments, password to the sender only "
                   "(default: encrypted when the mail has attachments, as_is when it has none)")
    p.add_argument("--comment", default="", help="reason; required for --mode as_is")
    p.add_argument("--confirm", action="store_true",
                   help="confirm sending unencrypted (required for --mode as_is)")
    p.add_argument("--actor", help="who is acting (default cli:<os user>)")

    p = actions.add_parser("reject", help="reject a held message (sender notified). "
                           + QUEUE_NOTE, description="Reject a held message. " + QUEUE_NOTE)
    add_common_arguments(p)
    p.add_argument("id")
    p.add_argument("--comment", required=True, help="reason, sent to the sender")
    p.add_argument("--actor", help="who is acting (default cli:<os user>)")
    parser.set_defaults(handler=run)


def default_actor() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"cli:{user}"


def run(args: argparse.Namespace) -> int:
    from dlp_gateway.gateway import Gateway, HeldNotFound, HeldStateError, ReleaseError
    from dlp_gateway.ownership import become_data_owner

    try:
        config = require_database(config_from_args(args))
        become_data_owner(config.data_dir)  # files stay the service's (README "One owner")
        gateway = Gateway(config)
    except ConfigError as exc:
        print(f"dlp-gateway held: {exc}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.Error) as exc:
        print(f"dlp-gateway held: cannot open the data directory: {exc}", file=sys.stderr)
        return 1
    try:
        return _dispatch(gateway, args)
    except HeldNotFound:
        print(f"held message not found: {args.id}", file=sys.stderr)
        return 1
    except (HeldStateError, ReleaseError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    except (OSError, sqlite3.Error) as exc:  # e.g. SpoolPermissionError: nothing was changed
        print(f"error: {exc}; nothing was changed", file=sys.stderr)
        return 1
    finally:
        gateway.close()


def _dispatch(gateway, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    command = args.held_command
    if command == "list":
        _list(gateway, args.status, args.format)
    elif command == "show":
        _show(gateway, args.id)
    elif command == "release":
        return _release(gateway, args)
    elif command == "reject":
        if not args.comment.strip():
            print("refused: a comment is required", file=sys.stderr)
            return 1
        held = gateway.reject(args.id, args.actor or default_actor(), args.comment)
        print(f"rejected {held.id} by {held.decided_by}; sender notified")
    return 0


def _release(gateway, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    """The admin page's rules: default mode by attachments; as is needs a confirmation
    and a reason (the statement of who gets how many people's data is printed)."""
    from dlp_gateway.approval import default_mode
    from dlp_gateway.gateway import attachment_names

    held = gateway.held.get(args.id)
    if held.status != "held":
        print(f"refused: held message {held.id} is {held.status}, not held", file=sys.stderr)
        return 1
    mode = args.mode or default_mode(bool(attachment_names(gateway.held.raw(args.id))))
    if mode == "as_is" and not (args.confirm and args.comment.strip()):
        people = (held.counts or {}).get("records", 0)
        print(f"refused: 暗号化せずに送信すると、{people}人分の個人情報が "
              f"{', '.join(held.recipients)} に届きます。--confirm と理由 --comment を"
              "指定してください（送信していません）", file=sys.stderr)
        return 1
    held = gateway.release(args.id, args.actor or default_actor(), mode, args.comment)
    print(f"released {held.id} ({mode}) by {held.decided_by}; queued for delivery")
    return 0


def _list(gateway, status: str | None, fmt: str) -> None:  # type: ignore[no-untyped-def]
    from dlp_gateway.approval import route_for

    for held in gateway.held.list(status):
        # who decides now (a sender outside the directory goes to the CISO, ...)
        routed_to = route_for(gateway, held).role if held.status == "held" else None
        if fmt == "json":
            print(json.dumps({**held.summary_json(), "routed_to": routed_to},
                             ensure_ascii=False))
        else:
            received = local(held.received, gateway.config.timezone)
            role = routed_to or held.approver_role or "-"
            print(f"{held.id}  {received}  {held.status:9}  {role:12}  "
                  f"{held.sender} -> {', '.join(held.recipients)}  {held.subject}")


def _show(gateway, held_id: str) -> None:  # type: ignore[no-untyped-def]
    held = gateway.held.get(held_id)
    data = held.summary_json()
    data.update({
        "rules": held.rules, "sha256": held.sha256, "size": held.size, "scan_id": held.scan_id,
        "counts": held.counts, "unscannable": held.unscannable, "decided_by": held.decided_by,
        "decided_at": held.decided_at, "comment": held.comment,
        "escalated_at": held.escalated_at,
        "sender_name": held.sender_name, "department": held.department,
        "release_mode": held.release_mode,
        "findings": held.findings[:50], "findings_total": len(held.findings),
    })
    print(json.dumps(data, ensure_ascii=False, indent=2))
