"""`dlp-gateway users add|list|disable`: approver and operator accounts.

``add`` reads the password from stdin (first line; prompted twice on a terminal),
so it never appears in the process list or the shell history.
"""

from __future__ import annotations

import argparse
import difflib
import getpass
import json
import sys

from dlp_gateway.config import (
    ConfigError,
    add_common_arguments,
    config_from_args,
    require_database,
)
from dlp_gateway.ownership import open_data_database
from dlp_gateway.store.audit import AuditLog
from dlp_gateway.store.db import Database
from dlp_gateway.store.staff import StaffStore
from dlp_gateway.store.users import ROLES, UserError, UserStore
from dlp_gateway.web.auth import SessionStore


def _common(parser: argparse.ArgumentParser) -> None:
    """--config/--data-dir after the action too (``users add X --data-dir D``)."""
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS)
    parser.add_argument("--data-dir", metavar="DIR", default=argparse.SUPPRESS)
    parser.add_argument("--database-url", metavar="URL", default=argparse.SUPPRESS)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("users", help="manage approver/operator accounts (利用者管理)")
    actions = parser.add_subparsers(dest="users_action", required=True, metavar="ACTION")

    add = actions.add_parser("add", help="add an account (password from stdin)")
    add.add_argument("email")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--department", default=None,
                     help="department (所属); required for section_head")
    add.add_argument("--deputy", action="store_true",
                     help="a deputy (代理) of the section head of --department")
    add.add_argument("--update", action="store_true",
                     help="change an existing account (role, department, deputy, password) "
                     "and enable it again")
    _common(add)

    listing = actions.add_parser("list", help="list accounts")
    listing.add_argument("--format", choices=("text", "json"), default="text")
    _common(listing)

    disable = actions.add_parser("disable", help="disable an account and end its sessions")
    disable.add_argument("email")
    _common(disable)

    add_common_arguments(parser)
    parser.set_defaults(handler=run)


def _operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("パスワード: ")
        if getpass.getpass("パスワード（確認）: ") != first:
            raise UserError("パスワードが一致しません")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        if args.users_action in ("list", "disable"):
            require_database(config)
    except ConfigError as exc:
        print(f"dlp-gateway users: {exc}", file=sys.stderr)
        return 2
    db = open_data_database(config, "users")  # as the data owner (README "One owner")
    try:
        return _ACTIONS[args.users_action](args, db)
    except UserError as exc:
        print(f"dlp-gateway users: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()


def _add(args: argparse.Namespace, db: Database) -> int:
    if args.role == "section_head" and not (args.department or "").strip():
        raise UserError("所属長には所属（--department）を指定してください")
    user = UserStore(db).add(
        args.email, args.role, _read_password(), args.department, deputy=args.deputy,
        update=args.update,
    )
    if args.update:  # old sessions carried the old role and department
        SessionStore(db).delete_for_user(user.email)
    AuditLog(db).append(
        "user_updated" if args.update else "user_added", _operator(), None,
        {"email": user.email, "role": user.role, "department": user.department,
         "deputy": user.deputy},
    )
    dept = f", {user.department}" if user.department else ""
    print(f"{'updated' if args.update else 'added'} {user.email} "
          f"({user.role}{dept}{', deputy' if user.deputy else ''})")
    if user.role == "section_head":
        _warn_unknown_department(db, user.department)
    return 0


def _warn_unknown_department(db: Database, department: str | None) -> None:
    """A head whose department is not in the staff directory approves nobody's mail."""
    known = StaffStore(db).departments()
    if not department or not known or department in known:
        return
    close = difflib.get_close_matches(department, known, n=3, cutoff=0.6)
    hint = f"（似た所属: {'、'.join(close)}）" if close else ""
    print(f"warning: 所属「{department}」は職員名簿にありません{hint}。この所属の職員はいないため、"
          "このアカウントに承認依頼は届きません (department not in the staff directory)",
          file=sys.stderr)


def _list(args: argparse.Namespace, db: Database) -> int:
    for user in UserStore(db).list():
        if args.format == "json":
            print(json.dumps({
                "email": user.email, "role": user.role, "department": user.department,
                "deputy": user.deputy, "enabled": user.enabled, "created_at": user.created_at,
            }, ensure_ascii=False))
        else:
            state = "enabled" if user.enabled else "disabled"
            role = f"{user.role} (deputy)" if user.deputy else user.role
            print(f"{user.email}\t{role}\t{user.department or '-'}\t{state}")
    return 0


def _disable(args: argparse.Namespace, db: Database) -> int:
    users = UserStore(db)
    if not users.disable(args.email):
        raise UserError(f"登録されていません: {args.email}")
    email = args.email.strip().lower()
    SessionStore(db).delete_for_user(email)
    AuditLog(db).append("user_disabled", _operator(), None, {"email": email})
    print(f"disabled {email}")
    return 0


_ACTIONS = {"add": _add, "list": _list, "disable": _disable}
