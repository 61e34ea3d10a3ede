"""The command line's subcommands and their arguments, one function each (`db` is declared beside its
handler in gateway/cli/__init__.py)."""
from __future__ import annotations

import argparse
from typing import TypeAlias

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_serve(sub: Subparsers) -> None:
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--config", default=None)
    serve.add_argument("--reuse-port", action="store_true", help="bind with SO_REUSEPORT (several workers)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes sharing the port (SO_REUSEPORT)")


def add_demo(sub: Subparsers) -> None:
    demo = sub.add_parser("demo", help="play a whole Hebrew call offline and print its metrics")
    demo.add_argument("--config", default=None)
    demo.add_argument("--keep", action="store_true",
                      help="keep the demo's calls in ./kolbridge.db (recordings beside it) for `kolbridge console`")


def add_business(sub: Subparsers) -> None:
    business = sub.add_parser("business", help="manage businesses")
    business.add_argument("--config", default=None)
    bsub = business.add_subparsers(dest="business_cmd", required=True)
    imp = bsub.add_parser("import", help="upsert businesses from TOML files")
    imp.add_argument("files", nargs="+")
    bsub.add_parser("list", help="list businesses")
    for name in ("show", "export"):
        shown = bsub.add_parser(name, help=f"{name} a business as a business file (TOML)")
        shown.add_argument("id")


def add_calls(sub: Subparsers) -> None:
    calls = sub.add_parser("calls", help="call records")
    calls.add_argument("--config", default=None)
    csub = calls.add_subparsers(dest="calls_cmd", required=True)
    history = csub.add_parser("history", help="recent calls, newest first")
    history.add_argument("--business", default=None)
    history.add_argument("--json", action="store_true")
    show = csub.add_parser("show", help="one call: record, metrics, utterances")
    show.add_argument("call_sid")
    show.add_argument("--json", action="store_true")
    for name, text in (("live", "every live call of every worker and host (the control plane)"),
                       ("inspect", "everything the control plane knows of one live call"),
                       ("hangup", "end a live call cleanly: its worker hangs up, metrics and record as for a stop")):
        live = csub.add_parser(name, help=text)
        if name != "live":
            live.add_argument("call_sid")
        live.add_argument("--admin-port", type=int, default=None)
        if name == "live":
            live.add_argument("--json", action="store_true")
            live.add_argument("--watch", action="store_true", help="refresh every second (Ctrl-C ends)")
    audio = csub.add_parser("audio", help="a recorded call as a stereo WAV (left the caller, right the AI as played)")
    audio.add_argument("call_sid")
    audio.add_argument("-o", "--output", default=None, help="where to write it (default: CALL_SID.wav)")
    add_retention(csub)
    from gateway.outbound.commands import add_outbound
    add_outbound(csub)  # dial, dnc, callback


def add_actors(sub: Subparsers) -> None:
    actors = sub.add_parser("actors", help="the standalone actor system of the control plane")
    actors.add_argument("--config", default=None)
    asub = actors.add_subparsers(dest="actors_cmd", required=True)
    astart = asub.add_parser("start", help="start it (and the ControlAdmin on the convention leader)")
    astart.add_argument("--admin-port", type=int, default=None)
    astart.add_argument("--convention", default=None, help="LEADER_HOST:PORT: join as a member host")
    for name in ("status", "stop"):
        asub.add_parser(name, help=f"{name} the actor system").add_argument("--admin-port", type=int, default=None)


def add_leads(sub: Subparsers) -> None:
    leads = sub.add_parser("leads", help="leads the agent collected (save_lead)")
    leads.add_argument("--config", default=None)
    lsub = leads.add_subparsers(dest="leads_cmd", required=True)
    llist = lsub.add_parser("list", help="newest first")
    llist.add_argument("--business", default=None)
    llist.add_argument("--json", action="store_true")


def add_prompt(sub: Subparsers) -> None:
    prompt = sub.add_parser("prompt", help="prompts")
    prompt.add_argument("--config", default=None)
    psub = prompt.add_subparsers(dest="prompt_cmd", required=True)
    pshow = psub.add_parser("show", help="the full system prompt a call of this business gets")
    pshow.add_argument("business_id")


def add_audio_check(sub: Subparsers) -> None:
    audio_check = sub.add_parser("audio-check", help="the articulation measure over time for caller audio")
    audio_check.add_argument("file", help="raw 8 kHz μ-law (.ul) or a 16-bit WAV (its left channel)")
    audio_check.add_argument("--config", default=None)
    audio_check.add_argument("--every-ms", type=int, default=100)
    audio_check.add_argument("--syllables", type=int, default=None)
    audio_check.add_argument("--spectral-hz", type=float, default=None)
    audio_check.add_argument("--rise-db", type=float, default=None)


def add_turn_check(sub: Subparsers) -> None:
    check = sub.add_parser("turn-check", help="label transcripts filler/backchannel/turn with a language's lexicon")
    check.add_argument("--lang", default="he")
    check.add_argument("--filler", action="append", default=[], help="extra filler (business addition)")
    check.add_argument("--word", action="append", default=[], help="extra meaningful short word")
    check.add_argument("--backchannel", action="append", default=[], help="extra backchannel (business addition)")
    check.add_argument("texts", nargs="+")


def add_users(sub: Subparsers) -> None:
    users = sub.add_parser("users", help="the operator console's users")
    users.add_argument("--config", default=None)
    usub = users.add_subparsers(dest="users_cmd", required=True)
    add = usub.add_parser("add", help="add a user (the password is asked for, or read from stdin)")
    add.add_argument("email")
    add.add_argument("--role", choices=("admin", "business"), required=True)
    add.add_argument("--business", default=None, help="the business a business user sees (its id)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    usub.add_parser("list", help="every user: email, role, business, state")
    disable = usub.add_parser("disable", help="disable a user (they are signed out at their next request)")
    disable.add_argument("email")


def add_console(sub: Subparsers) -> None:
    console = sub.add_parser("console", help="the operator console (a web server of its own, never in a worker)")
    console.add_argument("--host", default="127.0.0.1")
    console.add_argument("--port", type=int, default=8090)
    console.add_argument("--config", default=None)
    console.add_argument("--admin-port", type=int, default=None, help="the control plane's admin port")
    console.add_argument("--max-failures", type=int, default=5, help="wrong passwords in a row that lock an account")
    console.add_argument("--lock-minutes", type=float, default=15.0, help="how long a locked account stays locked")


def add_retention(csub: Subparsers) -> None:
    """`calls purge` and `calls erase-number`, beside the other `calls` subcommands."""
    csub.add_parser("purge", help="delete recordings and transcripts older than each business's retention_days")
    erase = csub.add_parser("erase-number", help="erase every call, utterance, lead and recording of one caller")
    erase.add_argument("e164")
