"""`kolbridge users add|list|disable`: the operator console's accounts (storage/users.py), each change in the
audit log under the operating-system user who ran the command."""
from __future__ import annotations

import argparse
import getpass
import sys

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.audit import record_audit
from storage.users import UserError, add_user, list_users, set_disabled


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise UserError("the two passwords differ")
    return first


async def users_command(args: argparse.Namespace, sessions: async_sessionmaker[AsyncSession]) -> int:
    try:
        if args.users_cmd == "add":
            user = await add_user(sessions, args.email, args.role, args.business, read_password(args.password_stdin))
            await record_audit(sessions, cli_actor(), "user_add", user.business_id, user.email, {"role": user.role})
            print(f"added {user.email} ({user.role}{' of ' + user.business_id if user.business_id else ''})")
        elif args.users_cmd == "disable":
            if not await set_disabled(sessions, args.email):
                raise UserError(f"no user {args.email}")
            await record_audit(sessions, cli_actor(), "user_disable", None, args.email)
            print(f"disabled {args.email}")
        else:
            for user in await list_users(sessions):
                print(f"{user.email}\t{user.role}\t{user.business_id or '-'}\t{'disabled' if user.disabled else 'active'}")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
