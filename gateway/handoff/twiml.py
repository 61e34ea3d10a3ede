"""The TwiML of a handoff (issue 23), and the words the caller, the human and the model get.

- The caller's side of a warm transfer: `<Dial action><Conference waitUrl startConferenceOnEnter=false
  endConferenceOnExit=true>kb-<CallSid></Conference></Dial>` — held (music or a holding line, from the
  waitUrl) until the human joins; when the human leaves, the conference ends for both.
- The human's leg (its Url, once answered): the whisper (`<Say>` the agent's summary in the business's
  language and voice), then `<Redirect>` to /handoff/join, which puts them in the same conference (it
  starts as they enter) — a human who hangs up during the whisper never joined.
- Back to the agent: `<Connect action=/stream-ended><Stream>` with the call's signed parameters and its
  segment number and reason, so the worker that takes the stream resumes the call.
"""
from __future__ import annotations

from collections.abc import Mapping

from twilio.twiml.voice_response import Dial, VoiceResponse

from gateway.fallback import DEFAULT_VOICES
from gateway.prewarm import stream_twiml

# one track of Twilio's public classical hold-music bucket (the files its default waitUrl twimlet plays): an
# audio file, so `<Play>` can play it — the twimlet itself answers TwiML, which `<Play>` cannot
TWILIO_HOLD_MUSIC = "http://com.twilio.music.classical.s3.amazonaws.com/BusyStrings.mp3"
HOLDING_LINE = {"he": "אנא הישארו על הקו, אני מעביר אתכם לנציג.", "en": "Please stay on the line, I'm connecting you to a representative."}
WHISPER_INTRO = {"he": "שיחה מועברת מהנציג הדיגיטלי. סיכום:", "en": "A call transferred by the AI agent. Summary:"}
WHY = {"busy": "the line was busy", "no-answer": "nobody answered", "failed": "the call to the representative could not be placed",
       "canceled": "the call to the representative was cancelled"}


def conference_name(call_sid: str) -> str:
    return f"kb-{call_sid}"


def _voice(language: str) -> tuple[str, str]:
    return DEFAULT_VOICES.get(language, DEFAULT_VOICES["en"])


def caller_conference_twiml(call_sid: str, hold_url: str, done_url: str) -> str:
    response = VoiceResponse()
    dial = Dial(action=done_url or None, method="POST" if done_url else None)
    dial.conference(conference_name(call_sid), wait_url=hold_url, wait_method="POST", start_conference_on_enter=False,
                    end_conference_on_exit=True, beep=False)
    response.append(dial)
    return str(response)


def whisper_twiml(language: str, summary: str, whisper: bool, join_url: str) -> str:
    """The human's leg once answered: the summary, then on to `join_url` (/handoff/join) — reached only if
    they stayed for it, which is how the record knows the human joined (not just picked up)."""
    response = VoiceResponse()
    if whisper:
        voice, say_language = _voice(language)
        text = f"{WHISPER_INTRO.get(language, WHISPER_INTRO['en'])} {summary.strip() or '—'}"
        response.say(text, voice=voice, language=say_language)
    response.redirect(join_url, method="POST")
    return str(response)


def join_twiml(call_sid: str) -> str:
    """The human enters the call's conference, which starts as they do and ends when they leave."""
    response = VoiceResponse()
    dial = Dial()
    dial.conference(conference_name(call_sid), start_conference_on_enter=True, end_conference_on_exit=True, beep=False)
    response.append(dial)
    return str(response)


def hold_twiml(hold: str, language: str, hold_url: str, hold_message: str) -> str:
    """The caller's waitUrl: one play of the music, or the holding line then a pause — Twilio asks again
    when the document ends, so the hold goes on for as long as the caller waits."""
    response = VoiceResponse()
    if hold == "agent":
        voice, say_language = _voice(language)
        response.say(hold_message or HOLDING_LINE.get(language, HOLDING_LINE["en"]), voice=voice, language=say_language)
        response.pause(length=8)
    else:
        response.play(hold_url or TWILIO_HOLD_MUSIC)
    return str(response)


def back_to_agent_twiml(token: str, stream_url: str, http_base: str, call_sid: str, business_id: str, caller: str,
                        callee: str, segment: int, reason: str, carried: Mapping[str, str] | None = None) -> str:
    """`carried`: what the call's first stream was given beyond its route (an outbound call's facts), signed again."""
    extra = {**(carried or {}), "segment": str(segment), "resume_reason": reason}
    return stream_twiml(token, stream_url, http_base, call_sid, business_id, caller, callee, extra)


def resume_note(reason: str) -> str:
    """What the model is told when the caller is back (a system item, and the first answer's instructions)."""
    why = WHY.get(reason, "the transfer did not go through")
    return (f"[The transfer to a person did not go through: {why}. The caller is back with you on the same call.] "
            "Tell the caller this in one or two short sentences in the language of the conversation, and offer "
            "another way: take their details for a callback (save_lead) or a message. Do not transfer again unless "
            "they insist.")
