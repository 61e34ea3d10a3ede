"""A backchannel over the AI end to end (issue 9): the caller says "כן" while the long answer plays —
the answer goes on unbroken (no clear, no cancel, no truncate), no answer is given to the "כן", and the
caller's words stay in the conversation (not deleted) and in the call record, labelled."""
from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.config import FileConfig
from sim.audio import clip_text, load_clip
from sim.fake_realtime import FakeScript
from sim.twilio_emulator import EmulatedCall, Step
from storage.calls import get_utterances
from tests.conftest import VIRTUAL_CLOCK
from tests.stack import running_stack

# whole calls on the virtual clock (tests/virtual_time.py): the loop's time jumps to the next timer when
# no socket is ready, so the calls take the CPU they cost, not their length in real time
pytestmark = VIRTUAL_CLOCK

CALL = "CA" + "b" * 32


async def test_yes_said_mid_sentence_neither_cuts_nor_gets_an_answer(tmp_path: Path) -> None:
    question = clip_text("question")
    script = FakeScript(transcripts=[question, "כן כן"],
                        responses=[(load_clip("greeting"), clip_text("greeting"))],
                        replies={question: (load_clip("long_answer"), clip_text("long_answer")),
                                 "כן כן": (load_clip("alternative"), clip_text("alternative"))})
    steps = [Step("wait_turns", 1), Step("pause", 0.3), Step("say", load_clip("question"), "q1"),
             Step("wait_playing", 1.5), Step("say", load_clip("no"), "yes over the AI"),
             Step("wait_turns", 2), Step("pause", 1.5), Step("hangup")]
    async with running_stack(tmp_path, script, file_config=FileConfig()) as stack:
        report = await asyncio.wait_for(EmulatedCall(stack.stream_url, "demo-garage", CALL, steps,
                                                     wait_timeout_s=40).run(), 120)
        conn = stack.fake.connections[0]
        metrics = stack.app.summaries[-1]["metrics"]
        utterances = await get_utterances(stack.app.sessions, CALL)
    said_at = report.said_at["yes over the AI"][0]
    assert report.waits_timed_out == 0
    assert report.clears == []  # nothing was cut
    kinds = [e["type"] for _, e in conn.events]
    assert "response.cancel" not in kinds and "conversation.item.truncate" not in kinds
    answer_turn = report.turns[1]
    assert answer_turn[0] < said_at < answer_turn[1]  # one unbroken AI turn across the "כן"
    assert len(report.turns) == 2  # greeting + the answer: the "כן" got no answer of its own
    assert "conversation.item.delete" not in kinds  # the "כן" stays in the conversation for the model
    assert [u.classification for u in utterances if u.role == "caller"] == ["turn", "backchannel"]
    assert metrics["backchannels"] == 1 and metrics["barge_in_events"] == 0
