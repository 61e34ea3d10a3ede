"""Callers in other languages on the Hebrew garage, end to end over websockets with the fake service (issue
21): after the caller's first long utterance the session is re-configured (transcription pinned to the
caller's language, that language's instruction layer) before the answer is asked; that language's filler
over the AI cuts nothing and gets no answer; its short "no" cuts and is answered; the record keeps the
switch. A Hebrew caller who uses English words never switches."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from gateway.config import FileConfig
from prompts.builder import caller_language_layers
from sim.audio import clip_text, load_clip
from sim.fake_realtime import FakeScript
from sim.twilio_emulator import CallReport, EmulatedCall, Step
from storage.calls import get_call, get_utterances
from tests.conftest import VIRTUAL_CLOCK
from tests.stack import running_stack

pytestmark = VIRTUAL_CLOCK

LAYERS = caller_language_layers("he", ("he", "ar", "ru"))
CALLERS = {
    "ar": ("مرحبا، بدي احجز دور لتصليح السيارة بكرا الصبح", "اممم", "لا"),
    "ru": ("Здравствуйте, мне нужно записаться на ремонт машины завтра утром", "э-э", "нет"),
}


async def a_call(tmp_path: Path, call_sid: str, transcripts: list[str], over_the_ai: list[str]) -> tuple[
        CallReport, Any, dict[str, Any], Any, list[Any]]:
    """The caller asks (a long answer plays), then says each of `over_the_ai` while the AI speaks."""
    question = transcripts[0]
    script = FakeScript(transcripts=transcripts, responses=[(load_clip("greeting"), clip_text("greeting"))],
                        replies={question: (load_clip("long_answer"), clip_text("long_answer")),
                                 transcripts[-1]: (load_clip("alternative"), clip_text("alternative"))})
    clips = {"filler": load_clip("hmm"), "no": load_clip("no")}
    steps = [Step("wait_turns", 1), Step("pause", 0.3), Step("say", load_clip("question"), "question"),
             Step("wait_playing", 1.5)]
    for k, label in enumerate(over_the_ai):
        steps += [Step("say", clips[label], label), Step("pause", 2.0)] if k == 0 else [Step("say", clips[label], label)]
    steps += [Step("wait_turns", 3 if "no" in over_the_ai else 2), Step("pause", 1.5), Step("hangup")]
    async with running_stack(tmp_path, script, file_config=FileConfig()) as stack:
        report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", call_sid, steps,
                                                     wait_timeout_s=40).run(), 120)
        conn = stack.fake.connections[0]
        summary = stack.app.summaries[-1]
        record = await get_call(stack.app.sessions, call_sid)
        utterances = await get_utterances(stack.app.sessions, call_sid)
    return report, conn, summary, record, utterances


@pytest.mark.parametrize("language", ["ar", "ru"])
async def test_a_caller_in_another_language_is_followed_and_their_filler_and_no_are_judged_in_it(
        tmp_path: Path, language: str) -> None:
    question, filler, no = CALLERS[language]
    call_sid = "CA" + language * 16
    report, conn, summary, record, utterances = await a_call(tmp_path, call_sid, [question, filler, no], ["filler", "no"])
    assert report.waits_timed_out == 0
    updates = [(at, event["session"]) for at, event in conn.events if event["type"] == "session.update"]
    assert "language" not in updates[0][1]["audio"]["input"]["transcription"]  # detected until decided
    switched_at, switched = next((at, s) for at, s in updates if s["audio"]["input"]["transcription"].get("language"))
    assert switched["audio"]["input"]["transcription"]["language"] == language
    assert switched["instructions"].endswith(LAYERS[language])
    # the preemptive answer asked before the switch is discarded; both answers are asked of the re-configured session
    creates = [at for at, event in conn.events if event["type"] == "response.create"]
    assert len(creates) == 4 and creates[1] < switched_at <= creates[2]
    assert summary["metrics"]["preemptive_discarded"] == 1
    # the filler over the AI: no cut, no answer; the short "no": one cut, and it is answered
    filler_at, no_at = report.said_at["filler"][0], report.said_at["no"][0]
    assert len(report.clears) == 1 and report.clears[0] > no_at > filler_at
    assert len(report.turns) == 3  # the greeting, the answer to the question, the answer to "no"
    assert [(u.text, u.classification) for u in utterances if u.role == "caller"] == [
        (question, "turn"), (filler, "filler"), (no, "turn")]
    metrics = summary["metrics"]
    assert metrics["caller_language_switches"] == 1 and metrics["barge_in_events"] == 1
    assert record is not None and record.caller_language == language
    assert [(s["from"], s["to"]) for s in record.language_switches] == [("he", language)]
    labels = {"business": "demo-garage", "end_reason": "twilio_stop", "caller_language": language}
    assert (REGISTRY.get_sample_value("kolbridge_calls_total", labels) or 0) >= 1
    assert (REGISTRY.get_sample_value("kolbridge_caller_language_switches_total",
                                      {"business": "demo-garage", "to": language}) or 0) >= 1


async def test_a_hebrew_caller_with_english_words_never_switches(tmp_path: Path) -> None:
    transcripts = ["אני צריך appointment לטיפול מחר בבוקר", "אממ", "זה ה-update של הרכב, ok"]
    report, conn, summary, record, utterances = await a_call(tmp_path, "CA" + "e" * 32, transcripts, ["filler", "no"])
    assert report.waits_timed_out == 0
    languages = [event["session"]["audio"]["input"]["transcription"].get("language")
                 for _, event in conn.events if event["type"] == "session.update"]
    assert languages == [None]  # one configuration: never pinned to another language
    assert summary["metrics"]["caller_language_switches"] == 0
    assert [u.classification for u in utterances if u.role == "caller"] == ["turn", "filler", "turn"]
    assert record is not None and record.caller_language == "he" and record.language_switches == []


async def test_a_returning_arabic_caller_is_greeted_in_arabic_and_heard_in_it_from_the_start(tmp_path: Path) -> None:
    question = CALLERS["ar"][0]
    script = FakeScript(transcripts=[question, "نعم"], responses=[(load_clip("greeting"), clip_text("greeting"))],
                        replies={question: (load_clip("answer"), clip_text("answer")),
                                 "نعم": (load_clip("answer"), clip_text("answer"))})
    steps = [Step("wait_turns", 1), Step("pause", 0.3), Step("say", load_clip("question"), "question"),
             Step("wait_turns", 2), Step("pause", 0.5), Step("hangup")]
    caller = {"from": "+972501234567"}
    async with running_stack(tmp_path, script, file_config=FileConfig()) as stack:
        for call_sid in ("CA" + "1" * 32, "CA" + "2" * 32):
            report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", call_sid, steps, custom=caller,
                                                         wait_timeout_s=40).run(), 120)
            assert report.waits_timed_out == 0
            for _ in range(200):  # the first call's record is written before the second starts
                record = await get_call(stack.app.sessions, call_sid)
                if record is not None and record.ended_at is not None and record.caller_language:
                    break
                await asyncio.sleep(0.01)
        first, second = stack.fake.connections[0], stack.fake.connections[1]
        returning = await get_call(stack.app.sessions, "CA" + "2" * 32)
    assert first.of_type("session.update")[0]["session"]["audio"]["input"]["transcription"].get("language") is None
    opening = second.of_type("session.update")[0]["session"]
    assert opening["audio"]["input"]["transcription"]["language"] == "ar" and opening["instructions"].endswith(LAYERS["ar"])
    assert "أهلا وسهلا، وصلت لكراج التجربة" in second.responses[0]["instructions"]  # the business's Arabic greeting
    assert LAYERS["ar"] in second.responses[0]["instructions"]
    assert len(second.of_type("session.update")) == 1  # already in Arabic: nothing to switch
    assert returning is not None and returning.caller_language == "ar" and returning.language_switches == []
