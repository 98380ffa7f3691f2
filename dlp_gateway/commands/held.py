"""`dlp-gateway held list|show|release|reject`: the held-mail queue from the shell.

release/reject act for exactly one approver (``--actor EMAIL``): an enabled account
that holds a deciding role, under the same rules as the admin page (no deciding on
your own mail, the CISO's holds need the CISO, a release counts as one approval of
the number the rules require). A list such as ``"a@x, b@x"`` is refused. The
outbound mail goes to the durable queue; a running ``dlp-gateway serve`` (sharing
the data directory) delivers it. These commands do not deliver by themselves.
"""

from __future__ import annotations

import argparse
import json
import sys

from dlp_gateway.config import (
    ConfigError,
    add_common_arguments,
    config_from_args,
    require_database,
)
from dlp_gateway.store.db import DB_ERRORS
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
                        "(default: encrypted when the mail has attachments, as_is when none)")
    p.add_argument("--confirm", action="store_true",
                   help="needed with as_is: you confirm sending it unencrypted (and --comment)")
    p.add_argument("--comment", default="")
    p.add_argument("--actor", required=True, metavar="EMAIL",
                   help="the one approver acting (an account with a deciding role)")

    p = actions.add_parser("reject", help="reject a held message (sender notified). "
                           + QUEUE_NOTE, description="Reject a held message. " + QUEUE_NOTE)
    add_common_arguments(p)
    p.add_argument("id")
    p.add_argument("--comment", required=True, help="reason, sent to the sender")
    p.add_argument("--actor", required=True, metavar="EMAIL",
                   help="the one approver acting (an account with a deciding role)")
    parser.set_defaults(handler=run)


class ActorError(ValueError):
    """--actor is not exactly one existing account with a deciding role."""


def resolve_actor(gateway, actor: str):  # type: ignore[no-untyped-def]
    """The one enabled user ``actor`` names; raise ActorError otherwise."""
    from dlp_gateway.mail.addresses import AddressError, parse_mailbox

    try:
        address = parse_mailbox(actor.strip()).addr_spec
    except AddressError as exc:
        raise ActorError(f"--actor must be exactly one account address ({exc})") from exc
    user = gateway.users.get(address)
    if user is None or not user.enabled:
        raise ActorError(f"--actor {address}: no enabled account with this address")
    return user


def run(args: argparse.Namespace) -> int:
    from dlp_gateway.approval import ApprovalRefused
    from dlp_gateway.gateway import Gateway, HeldNotFound, HeldStateError, ReleaseError
    from dlp_gateway.ownership import become_data_owner

    try:
        config = require_database(config_from_args(args))
        become_data_owner(config.data_dir)  # files stay the service's (README "One owner")
        gateway = Gateway(config)
    except ConfigError as exc:
        print(f"dlp-gateway held: {exc}", file=sys.stderr)
        return 2
    except (OSError, *DB_ERRORS) as exc:
        print(f"dlp-gateway held: cannot open the data directory: {exc}", file=sys.stderr)
        return 1
    try:
        return _dispatch(gateway, args)
    except HeldNotFound:
        print(f"held message not found: {args.id}", file=sys.stderr)
        return 1
    except (HeldStateError, ReleaseError, ActorError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    except ApprovalRefused as exc:
        print(f"refused: {exc.message}", file=sys.stderr)
        return 1
    except (OSError, *DB_ERRORS) as exc:  # e.g. SpoolPermissionError: nothing was changed
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
        from dlp_gateway.approval import Approvals

        user = resolve_actor(gateway, args.actor)
        Approvals(gateway).reject(user.email, user.role, args.id, args.comment)
        held = gateway.held.get(args.id)
        print(f"rejected {held.id} by {held.decided_by}; sender notified")
    return 0


def _release(gateway, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    """The admin page's rules: default mode by attachments; as is needs a confirmation
    and a reason (the statement of who gets how many people's data is printed)."""
    from dlp_gateway.approval import Approvals, default_mode
    from dlp_gateway.gateway import attachment_names

    user = resolve_actor(gateway, args.actor)  # one existing approver (issue 10)
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
    outcome = Approvals(gateway).approve(user.email, user.role, args.id, mode, args.comment,
                                         confirm=args.confirm)
    if not outcome.released:
        print(f"approved {args.id} by {user.email} ({outcome.count} of "
              f"{outcome.required} approvals); still held")
        return 0
    held = gateway.held.get(args.id)
    print(f"released {held.id} ({outcome.mode}) by {held.decided_by}; queued for delivery")
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
