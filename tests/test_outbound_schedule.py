"""The callback scheduler's core on a virtual clock (`now` is an argument): calling hours in the business's
time zone with its days off, retries then giving up, the do-not-call list; and the settings' validation."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from gateway.outbound.schedule import Action, CallbackState, Outcome, after_attempt, is_open, next_opening, plan, policy_of
from storage.businesses import BusinessError, parse_business
from storage.outbound import OutboundSpec, outbound_problems

TZ = ZoneInfo("Asia/Jerusalem")
POLICY = policy_of(OutboundSpec(hours="09:00-18:00", timezone="Asia/Jerusalem", days_off=["friday", "saturday", "2026-12-14"],
                                max_attempts=3, retry_after_min=30))
NUMBER = "+972501234567"


def local(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=TZ).astimezone(timezone.utc)


def test_a_callback_due_outside_calling_hours_waits_until_they_open() -> None:
    evening = local(2026, 12, 7, 20, 30)  # Monday 20:30 in Jerusalem (18:30 UTC)
    decision = plan(POLICY, NUMBER, 0, frozenset(), evening)
    assert decision.action is Action.WAIT and decision.at == local(2026, 12, 8, 9, 0)  # Tuesday 09:00 local
    # the clock moves on: still closed at 08:59, dialled at 09:00 and within the hours
    assert plan(POLICY, NUMBER, 0, frozenset(), local(2026, 12, 8, 8, 59)).action is Action.WAIT
    assert plan(POLICY, NUMBER, 0, frozenset(), local(2026, 12, 8, 9, 0)) .action is Action.DIAL
    assert plan(POLICY, NUMBER, 0, frozenset(), local(2026, 12, 8, 17, 59)).action is Action.DIAL
    assert plan(POLICY, NUMBER, 0, frozenset(), local(2026, 12, 8, 18, 0)).action is Action.WAIT


def test_the_hours_are_the_business_time_zone_and_its_days_off_are_skipped() -> None:
    # Thursday 17:30 UTC is 19:30 in Jerusalem: closed, though it is within 09-18 in UTC
    thursday = datetime(2026, 12, 10, 17, 30, tzinfo=timezone.utc)
    assert not is_open(POLICY, thursday)
    # Friday and Saturday are off: the next opening is Sunday 09:00 local (07:00 UTC in winter)
    assert next_opening(POLICY, thursday) == datetime(2026, 12, 13, 7, 0, tzinfo=timezone.utc)
    # a date off (Monday 14 December) is skipped as well: Sunday evening → Tuesday morning
    assert next_opening(POLICY, local(2026, 12, 13, 18, 5)) == local(2026, 12, 15, 9, 0)
    # summer time: 09:00 in Jerusalem is 06:00 UTC in July
    assert next_opening(POLICY, datetime(2026, 7, 6, 3, 0, tzinfo=timezone.utc)) == datetime(2026, 7, 6, 6, 0, tzinfo=timezone.utc)


def test_a_number_on_the_do_not_call_list_is_never_dialled() -> None:
    dnc = frozenset({NUMBER})
    for hours in range(0, 24 * 7, 5):  # at every hour of a week, open or closed
        now = local(2026, 12, 6, 0) + timedelta(hours=hours)
        assert plan(POLICY, NUMBER, 0, dnc, now).action is Action.SKIP_DNC
    assert plan(POLICY, "+972509999999", 0, dnc, local(2026, 12, 8, 10)).action is Action.DIAL


def test_retries_after_busy_or_no_answer_within_hours_then_gives_up() -> None:
    now = local(2026, 12, 8, 17, 45)  # Tuesday 17:45: a retry in 30 min would fall after closing
    first = after_attempt(POLICY, CallbackState.DIALING, 1, Outcome.NO_ANSWER, now)
    assert first is not None and first.state is CallbackState.SCHEDULED and first.at == local(2026, 12, 9, 9, 0)
    second = after_attempt(POLICY, CallbackState.DIALING, 2, Outcome.BUSY, local(2026, 12, 9, 10, 0))
    assert second is not None and second.state is CallbackState.SCHEDULED and second.at == local(2026, 12, 9, 10, 30)
    third = after_attempt(POLICY, CallbackState.DIALING, 3, Outcome.MACHINE, local(2026, 12, 9, 10, 30))
    assert third is not None and third.state is CallbackState.FAILED and third.at is None
    # a lead whose attempts are spent is given up when it comes due again
    assert plan(POLICY, NUMBER, 3, frozenset(), local(2026, 12, 9, 11)).action is Action.GIVE_UP


def test_a_person_answering_ends_it_and_stale_events_change_nothing() -> None:
    now = local(2026, 12, 8, 10)
    done = after_attempt(POLICY, CallbackState.DIALING, 1, Outcome.HUMAN, now)
    assert done is not None and done.state is CallbackState.DONE
    for state in (CallbackState.DONE, CallbackState.FAILED, CallbackState.DNC, CallbackState.NONE):
        assert after_attempt(POLICY, state, 1, Outcome.NO_ANSWER, now) is None
        assert after_attempt(POLICY, state, 1, Outcome.HUMAN, now) is None
    # a call placed by hand for a scheduled lead: its no-answer does not spend the schedule's attempts
    assert after_attempt(POLICY, CallbackState.SCHEDULED, 0, Outcome.NO_ANSWER, now) is None


def test_the_outbound_settings_are_validated_at_import() -> None:
    assert outbound_problems(OutboundSpec(), []) == []
    bad = OutboundSpec(caller_id="0501234567", hours="18:00-09:00", timezone="Mars/Olympus", days_off=["someday"],
                       max_attempts=0, retry_after_min=1, api_token_sha256="xyz")
    problems = " | ".join(outbound_problems(bad, []))
    for field in ("caller_id", "hours", "timezone", "days_off", "max_attempts", "retry_after_min", "api_token_sha256"):
        assert f"business.outbound.{field}" in problems, field
    every_day = OutboundSpec(days_off=["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"])
    assert "every weekday is off" in " ".join(outbound_problems(every_day, []))
    base = '[business]\nid = "b1"\nname = "B"\nlanguage = "he"\ngreeting = "שלום"\n'
    spec = parse_business(base + '[business.outbound]\nhours = "08:30-20:00"\ndays_off = ["saturday"]\n')
    assert spec.outbound.hours == "08:30-20:00" and spec.outbound.amd
    with pytest.raises(BusinessError, match=r"business.outbound.hours"):
        parse_business(base + '[business.outbound]\nhours = "9-5"\n')
