"""When a scheduled callback may be dialled, and what each attempt's outcome makes of it. Pure: no clock
(`now` is an argument), no socket, no database — the scheduler shell (gateway/outbound/scheduler.py)
reads the due leads and the do-not-call list, asks `plan`, carries out the decision, and reports each
attempt's outcome to `after_attempt`.

Theory of operation. A lead's callback is a small state machine (`leads.callback_status`):

    ""  ──schedule──▶ scheduled ──due, hours open──▶ dialing ──human answered──▶ done
                        ▲  │                           │
                        │  └─number on the DNC list──▶ dnc (never dialled)
                        └──busy / no answer / machine / failed, attempts < max── │ ──attempts = max──▶ failed

`plan` decides for a due `scheduled` lead: a DNC number is skipped for good (dnc); attempts already spent
give up (failed); outside the calling hours it waits for their next opening (the business's time zone,
its weekdays and dates off); else dial now. `after_attempt` applies the transition table below to an
attempt's outcome: the state a late or repeated event finds decides, so a status callback that arrives
after the lead moved on changes nothing. A retry is never placed sooner than `retry_after_min`, and
never outside the calling hours.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import Enum
from zoneinfo import ZoneInfo

from storage.outbound import OutboundSpec, parse_days_off, parse_hours

HORIZON_DAYS = 370  # how far ahead an opening is looked for (validated settings always find one within a week)


class CallbackState(str, Enum):
    NONE = ""
    SCHEDULED = "scheduled"
    DIALING = "dialing"
    DONE = "done"
    FAILED = "failed"
    DNC = "dnc"


class Outcome(str, Enum):
    """What an attempt came to: Twilio's AnsweredBy / CallStatus, or our own dial's failure."""

    HUMAN = "human"  # a person answered: the agent talked to them
    MACHINE = "machine"  # an answering machine: the voicemail message was left
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"  # Twilio could not place it
    CANCELED = "canceled"
    DIAL_ERROR = "dial_error"  # our calls.create failed (maybe never reached Twilio)


class Action(str, Enum):
    DIAL = "dial"
    WAIT = "wait"  # not before `at`
    SKIP_DNC = "skip_dnc"
    GIVE_UP = "give_up"


@dataclass(frozen=True)
class CallingPolicy:
    """`[business.outbound]` as the core needs it (built by `policy_of` from validated settings)."""

    start_min: int
    end_min: int
    zone: ZoneInfo
    weekdays_off: frozenset[int]
    dates_off: frozenset[date]
    max_attempts: int
    retry_after: timedelta


@dataclass(frozen=True)
class Decision:
    action: Action
    at: datetime | None = None  # DIAL: now; WAIT: the next opening


@dataclass(frozen=True)
class Transition:
    state: CallbackState
    at: datetime | None = None  # the next try (SCHEDULED)
    attempts: int = 0


def policy_of(spec: OutboundSpec) -> CallingPolicy:
    start, end = parse_hours(spec.hours)
    weekdays, dates = parse_days_off(spec.days_off)
    return CallingPolicy(start, end, ZoneInfo(spec.timezone), weekdays, dates, spec.max_attempts,
                         timedelta(minutes=spec.retry_after_min))


def next_opening(policy: CallingPolicy, now: datetime) -> datetime:
    """`now` if the calling hours are open, else the moment they next open (aware, in UTC's terms as `now`)."""
    local = now.astimezone(policy.zone)
    for offset in range(HORIZON_DAYS):
        day = local.date() + timedelta(days=offset)
        if day.weekday() in policy.weekdays_off or day in policy.dates_off:
            continue
        opens = _local(day, policy.start_min, policy.zone)
        closes = _local(day, policy.end_min, policy.zone)
        if local < opens:
            return opens.astimezone(now.tzinfo)
        if local < closes:
            return now
    raise ValueError("no calling hours within a year")


def is_open(policy: CallingPolicy, now: datetime) -> bool:
    return next_opening(policy, now) == now


def _local(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    if minutes >= 24 * 60:
        return datetime.combine(day + timedelta(days=1), time(0), zone)
    return datetime.combine(day, time(minutes // 60, minutes % 60), zone)


def plan(policy: CallingPolicy, number: str, attempts: int, dnc: frozenset[str], now: datetime) -> Decision:
    """What to do with a due, scheduled callback now."""
    if number in dnc:
        return Decision(Action.SKIP_DNC)
    if attempts >= policy.max_attempts:
        return Decision(Action.GIVE_UP)
    opening = next_opening(policy, now)
    return Decision(Action.DIAL, now) if opening == now else Decision(Action.WAIT, opening)


def _retry(policy: CallingPolicy, attempts: int, now: datetime) -> Transition:
    if attempts >= policy.max_attempts:
        return Transition(CallbackState.FAILED, None, attempts)
    return Transition(CallbackState.SCHEDULED, next_opening(policy, now + policy.retry_after), attempts)


RETRIED = (Outcome.MACHINE, Outcome.BUSY, Outcome.NO_ANSWER, Outcome.FAILED, Outcome.CANCELED, Outcome.DIAL_ERROR)


def after_attempt(policy: CallingPolicy, state: CallbackState, attempts: int, outcome: Outcome,
                  now: datetime) -> Transition | None:
    """The transition an attempt's outcome makes (`attempts` counts this one), or None: the event is stale
    (the lead is no longer being dialled) and changes nothing.

    | state     | human | machine, busy, no-answer, failed, canceled, dial error           |
    | dialing   | done  | scheduled at the next opening after retry_after (failed at max)  |
    | any other | —     | —                                                                |
    A human answer from `scheduled` also ends it (done): a call placed by `calls dial` for a lead, or a
    status that arrived before our own write.
    """
    if outcome is Outcome.HUMAN:
        return Transition(CallbackState.DONE, None, attempts) if state in (CallbackState.DIALING, CallbackState.SCHEDULED) else None
    if state is CallbackState.DIALING and outcome in RETRIED:
        return _retry(policy, attempts, now)
    return None
