"""`kolbridge calls dial | dnc | callback`: outbound calls from the command line.

`calls dial --business ID --to +972… [--lead N] [--purpose TEXT] [--public-url URL]` places the call as
`POST /outbound/calls` does (gateway/outbound/dialer.py) with this process's Twilio credentials
(TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN or an API key pair) and KOLBRIDGE_PUBLIC_URL — the address
Twilio's webhooks reach the gateway at. Exit 0 when Twilio accepted the call (its sid is printed), 3 when
the number is on the do-not-call list, 2 for any other refusal.
`calls dnc add|remove|list --business ID [NUMBER] [--reason TEXT]` keeps the do-not-call list;
`calls callback LEAD --at ISO-TIME` schedules a lead's callback (placed by `serve`'s scheduler).
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.config import AppConfig
from gateway.fallback import TwilioRest
from gateway.outbound.dialer import Dialer, DialRequest, public_base
from storage.callbacks import schedule_callback
from storage.outbound import dnc_add, dnc_list, dnc_remove


def add_outbound(csub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dial = csub.add_parser("dial", help="place an outbound call: the agent talks to whoever answers")
    dial.add_argument("--business", required=True)
    dial.add_argument("--to", required=True, help="the number to call (E.164)")
    dial.add_argument("--lead", type=int, default=None, help="the lead this call follows up (its details brief the agent)")
    dial.add_argument("--purpose", default="", help="why we call, in a sentence (the agent says it)")
    dial.add_argument("--public-url", default="", help="where Twilio reaches the gateway (default KOLBRIDGE_PUBLIC_URL)")
    dnc = csub.add_parser("dnc", help="the do-not-call list of a business")
    dnc.add_argument("action", choices=("add", "remove", "list"))
    dnc.add_argument("number", nargs="?", default="")
    dnc.add_argument("--business", required=True)
    dnc.add_argument("--reason", default="")
    callback = csub.add_parser("callback", help="schedule a lead's callback (serve's scheduler places it)")
    callback.add_argument("lead", type=int)
    callback.add_argument("--at", required=True, help="ISO time, e.g. 2026-12-06T10:00+02:00 (no zone: UTC)")


def rest_of(config: AppConfig) -> TwilioRest | None:
    env = config.env
    if env.twilio_account_sid and env.twilio_api_key and env.twilio_api_secret:
        return TwilioRest(env.twilio_account_sid, env.twilio_api_secret, env.twilio_api_url, env.twilio_api_key)
    if env.twilio_account_sid and env.twilio_auth_token:
        return TwilioRest(env.twilio_account_sid, env.twilio_auth_token, env.twilio_api_url)
    return None


async def outbound_command(args: argparse.Namespace, config: AppConfig, sessions: async_sessionmaker[AsyncSession]) -> int:
    if args.calls_cmd == "dial":
        base = public_base(args.public_url or config.env.public_url)
        result = await Dialer(sessions, rest_of(config), base).dial(
            DialRequest(args.business, args.to, args.lead, args.purpose, "cli"))
        if result.created:
            print(f"placed {result.call_sid} to {args.to} for {args.business}")
            return 0
        print(f"error: not dialled ({result.outcome}): {result.detail}", file=sys.stderr)
        return 3 if result.outcome == "dnc" else 2
    if args.calls_cmd == "callback":
        at = datetime.fromisoformat(args.at)
        at = at if at.tzinfo else at.replace(tzinfo=timezone.utc)
        if not await schedule_callback(sessions, args.lead, at.astimezone(timezone.utc)):
            print(f"error: no lead {args.lead}", file=sys.stderr)
            return 2
        print(f"lead {args.lead}: callback scheduled at {at.isoformat()}")
        return 0
    return await dnc_command(args, sessions)


async def dnc_command(args: argparse.Namespace, sessions: async_sessionmaker[AsyncSession]) -> int:
    if args.action == "list":
        for row in await dnc_list(sessions, args.business):
            print(f"{row.number}\t{row.added_at:%Y-%m-%d %H:%M}\t{row.reason}")
        return 0
    if not args.number:
        print("error: a number is needed", file=sys.stderr)
        return 2
    if args.action == "add":
        added = await dnc_add(sessions, args.business, args.number, args.reason)
        print(f"{args.number}: {'added to' if added else 'already on'} {args.business}'s do-not-call list")
        return 0
    removed = await dnc_remove(sessions, args.business, args.number)
    print(f"{args.number}: {'removed from' if removed else 'not on'} {args.business}'s do-not-call list")
    return 0
