"""What a call's decisions do in the world: its utterances and the agent's tool calls and leads are
recorded, a business's HTTP tool is run, the agent leaves the call (hang up or transfer), and the
business is told (signed webhook notices and the post-call report).

Every effect is written to the call's record through the worker's write queue (utterances, tool calls,
leads, the transfer summary, webhook outbox rows), so a database outage loses none of it. Leaving goes
the one way every call leaves (gateway/leaving.py). AgentActions takes what it needs of the worker as
narrow parts — the write queue's `put`, the tenant HTTP client, the webhook deliverer's wake-up, the
actor engine's `tell`, the Leaver — and of a call what ActingCall names.
"""
from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
import structlog

from actors.agent_messages import LeaveCall, RunTool, SaveLead, ToolCallRecord, ToolDone
from actors.language_messages import LanguageSwitched
from actors.messages import Utterance
from gateway.control import prom
from gateway.fallback import FallbackSettings, fallback_twiml, hangup_twiml, no_answer_message
from gateway.handoff.twiml import caller_conference_twiml
from gateway.handoff.warm import SUMMARY_MAX, handoff_url, move_held_caller, place_leg
from gateway.http_tools import HttpOutcome, Poster, json_text
from gateway.leaving import Exit, FallbackCall, Leaver
from storage.handoffs import segment_seq_base
from storage.writequeue import CallNoteWrite, LanguageSwitchWrite, LeadWrite, ToolCallWrite, TransferWrite, UtteranceWrite, WebhookWrite, Write

RESUMABLE = frozenset({"transferred", "admin_transfer"})  # a part ended so may come back to the agent (issue 23)
log = structlog.get_logger("kolbridge.actions")

TRANSCRIPT_KEPT = 400


@dataclass
class CallNotes:
    """What happened on one call, for the business's post-call report."""

    transcript: list[dict[str, object]] = field(default_factory=list)  # as heard (bounded: TRANSCRIPT_KEPT)
    tool_calls: list[dict[str, object]] = field(default_factory=list)
    lead: dict[str, object] | None = None
    transfer: dict[str, str] | None = None
    language_switches: list[dict[str, object]] = field(default_factory=list)  # {seq, at_ms, from, to, evidence}


class ActingCall(FallbackCall, Protocol):
    """What an action reads of its call (gateway/call.py's CallIO): what the fallback reads, and more."""

    @property
    def notes(self) -> CallNotes: ...
    @property
    def ended(self) -> asyncio.Event: ...
    @property
    def opened_at(self) -> float: ...


def transfer_twiml(number: str, caller_id: str, timeout_s: int, language: str, dial_action: str = "") -> str:
    """Dial the human line; its action URL (POST /dial-done) answers an apology and a hang-up if nobody
    answers, a hang-up if the human did — the fallback's transfer TwiML."""
    settings = FallbackSettings(mode="transfer", transfer_number=number, caller_id=caller_id, dial_timeout_s=timeout_s,
                                message=no_answer_message(language))
    return fallback_twiml(settings, language, "", dial_action)


def tool_answer(outcome: HttpOutcome) -> tuple[str, str]:
    """(output for the model, status) from a business tool's HTTP outcome."""
    if outcome.ok:
        try:
            answer: Any = json.loads(outcome.text) if outcome.text.strip() else {}
            return json_text(answer), "ok"
        except ValueError:
            return json_text({"ok": False, "error": "the tool's answer is not JSON"}), "error"
    status = "timeout" if outcome.error.startswith("timed out") else \
        "refused" if outcome.error.startswith("refused") else "error"
    return json_text({"ok": False, "error": f"the tool failed ({'timeout' if status == 'timeout' else 'error'})"}), status


class AgentActions:
    def __init__(self, put: Callable[[Write], None], http: Poster, wake_webhooks: Callable[[], None],
                 tell: Callable[[str, object], bool], leaver: Leaver,
                 reported_leg: Callable[[str, int], Awaitable[str]]) -> None:
        self.put, self.http, self.wake_webhooks, self.tell, self.leaver = put, http, wake_webhooks, tell, leaver
        self.reported_leg = reported_leg  # (call, attempt) → the leg Twilio reported for it (storage/handoffs.py)

    def utterance(self, call: ActingCall, seq: int, u: Utterance) -> None:
        """A decided utterance: saved, and kept for the report as heard."""
        seq += segment_seq_base(call.profile.segment)  # a later segment's utterances follow the first's
        self.put(UtteranceWrite(call.call_id, seq, u.role, u.text, u.label, u.start_ms, u.end_ms, u.interrupted,
                                u.heard_ms))
        if len(call.notes.transcript) < TRANSCRIPT_KEPT:
            call.notes.transcript.append({"role": u.role, "text": u.text, "label": u.label,
                                          "interrupted": u.interrupted})

    def language_switched(self, call: ActingCall, event: LanguageSwitched) -> None:
        """The caller's language switched: recorded on the call at once (and in its report), counted."""
        switches = call.notes.language_switches
        at_ms = max(0, round((event.at - call.opened_at) * 1000))
        switches.append({"seq": len(switches) + 1, "at_ms": at_ms, "from": event.from_language, "to": event.to_language,
                         "evidence": event.evidence})
        seq = len(switches) + segment_seq_base(call.profile.segment)  # a later segment's follow the first's
        self.put(LanguageSwitchWrite(call.call_id, seq, at_ms, event.from_language, event.to_language, event.evidence))
        prom.language_switched(call.settings.business_id, event.to_language)

    async def run_tool(self, call: ActingCall, command: RunTool) -> None:
        """POST {call_sid, business_id, name, arguments}, signed; the JSON answer (or the failure) goes back."""
        loop = asyncio.get_running_loop()
        agent = call.profile.agent
        tool = next((t for t in agent.tools if t.name == command.name), None)
        if tool is None:
            done = ToolDone(command.tool_call_id, False, json_text({"ok": False, "error": "tool not configured"}),
                            "error", 0, loop.time())
        else:
            body = json_text({"call_sid": call.call_id, "business_id": call.settings.business_id, "name": command.name,
                              "arguments": command.arguments}).encode()
            outcome = await self.http.post(tool.url, body, agent.webhook.secret if agent.webhook else "",
                                           command.timeout_s, {"X-Kolbridge-Tool-Call": command.tool_call_id})
            output, status = tool_answer(outcome)
            if not outcome.ok:
                log.warning("TOOL_FAILED", call_sid=call.call_id, name=command.name, status=status,
                            error=outcome.error[:300], elapsed_ms=outcome.elapsed_ms)
            done = ToolDone(command.tool_call_id, status == "ok", output, status, outcome.elapsed_ms, loop.time())
        if not call.ended.is_set():
            self.tell(call.call_id, done)

    def save_lead(self, call: ActingCall, command: SaveLead) -> None:
        business_id = call.settings.business_id
        self.put(LeadWrite(call.call_id, command.tool_call_id, business_id, dict(command.fields)))
        call.notes.lead = dict(command.fields)
        log.info("LEAD_SAVED", call_sid=call.call_id, business_id=business_id, fields=sorted(command.fields))
        self.notify(call, "lead", {"event": "lead.saved", "call_sid": call.call_id, "business_id": business_id,
                                   "lead": call.notes.lead})

    def tool_record(self, call: ActingCall, record: ToolCallRecord) -> None:
        self.put(ToolCallWrite(call.call_id, record.tool_call_id, record.name, record.arguments, record.output,
                               record.status, record.elapsed_ms))
        call.notes.tool_calls.append({"name": record.name, "arguments": record.arguments, "output": record.output,
                                      "status": record.status, "elapsed_ms": record.elapsed_ms})
        log.info("TOOL_CALL", call_sid=call.call_id, name=record.name, status=record.status, elapsed_ms=record.elapsed_ms)

    def notify(self, call: ActingCall, kind: str, body: dict[str, Any]) -> None:
        """Queue a signed notice to the business's webhook, if it has one (delivered by gateway/webhooks.py)."""
        if call.profile.agent.webhook is None:
            return
        self.put(WebhookWrite(uuid.uuid4().hex, call.settings.business_id, call.call_id, kind, json_text(body)))
        self.wake_webhooks()

    async def leave(self, call: ActingCall, command: LeaveCall) -> None:
        """The AI's last words have played (or an operator hung up): hang up or transfer."""
        if not self.leaver.is_live(call.call_id):
            return
        warm = False
        if command.kind == "transfer":
            twiml, warm = self._transfer_twiml(call, command)
            call.notes.transfer = {"number": command.number, "reason": command.reason, "summary": command.summary}
            self.put(CallNoteWrite(call.call_id, command.summary))
            self.notify(call, "transfer", {"event": "call.transferred", "call_sid": call.call_id,
                                           "business_id": call.settings.business_id, **call.notes.transfer})
        else:
            twiml = hangup_twiml()
        await self.leaver.leave(call.call_id, Exit(
            twiml, command.kind, command.end_reason, command.kind != "transfer", "CALL_LEFT", "LEAVE_REST_FAILED",
            {"kind": command.kind, "end_reason": command.end_reason, "reason": command.reason[:200]}))
        if warm:  # the caller is in the conference: now the human's line may ring
            await self._place_leg(call, command)

    def _transfer_twiml(self, call: ActingCall, command: LeaveCall) -> tuple[str, bool]:
        """(the caller's TwiML, whether a warm leg follows). Cold: `<Dial>` the line (its action decides what
        follows). Warm (REST credentials and a public URL needed): the caller waits in the call's conference;
        the human's leg is placed once they are there (gateway/handoff/warm.py)."""
        profile, attempt = call.profile, call.profile.segment
        transfer = profile.agent.transfer
        if transfer.mode == "warm" and self.leaver.rest is not None and profile.action_base:
            self.put(TransferWrite(call.call_id, attempt, "warm", command.number, status="holding",
                                   summary=command.summary[:SUMMARY_MAX]))
            hold = handoff_url(profile.action_base, "hold", business=profile.business_id, call=call.call_id,
                               attempt=attempt)
            done = handoff_url(profile.action_base, "caller-done", business=profile.business_id, call=call.call_id,
                               attempt=attempt)
            return caller_conference_twiml(call.call_id, hold, done), True
        if transfer.mode == "warm":
            why = "no REST credentials" if self.leaver.rest is None else "no public URL"
            log.warning("WARM_TRANSFER_FELL_BACK_TO_COLD", call_sid=call.call_id, attempt=attempt, reason=why)
            prom.transfer_ended(profile.business_id, "agent:fell_back_to_cold", "not_placed")
        self.put(TransferWrite(call.call_id, attempt, "cold", command.number, status="dialing"))
        return self._cold_twiml(call, command.number), False

    def _cold_twiml(self, call: ActingCall, number: str) -> str:
        transfer = call.profile.agent.transfer
        return transfer_twiml(number, transfer.caller_id, transfer.timeout_s, call.settings.language,
                              call.profile.dial_action("agent"))

    async def _place_leg(self, call: ActingCall, command: LeaveCall) -> None:
        """The human's leg of a warm transfer; one that cannot be placed moves the caller to a cold `<Dial>`."""
        profile, attempt, rest = call.profile, call.profile.segment, self.leaver.rest
        if rest is None:
            return
        spec = msgspec.structs.replace(profile.agent.transfer, number=command.number)
        business_number = profile.caller if profile.direction == "outbound" else profile.called  # a number of ours
        leg, why = await place_leg(rest, spec, profile.action_base, call.call_id, profile.business_id, attempt,
                                   business_number)
        if leg:
            self.put(TransferWrite(call.call_id, attempt, leg_sid=leg, status="queued"))
            log.info("WARM_TRANSFER_PLACED", call_sid=call.call_id, attempt=attempt, leg_sid=leg)
            return
        late = await self._late_leg(call.call_id, attempt)
        if late:  # the create reached Twilio and answered late: its leg rings (or talks) already — keep it
            self.put(TransferWrite(call.call_id, attempt, leg_sid=late))
            log.warning("WARM_LEG_CREATE_LATE", call_sid=call.call_id, attempt=attempt, leg_sid=late, reason=why)
            return
        log.warning("WARM_TRANSFER_FELL_BACK_TO_COLD", call_sid=call.call_id, attempt=attempt, reason=why)
        prom.transfer_ended(profile.business_id, "agent:fell_back_to_cold", "not_placed")
        self.put(TransferWrite(call.call_id, attempt, "cold", status="dialing", outcome="fell_back_to_cold"))
        await move_held_caller(rest, self.put, call.call_id, attempt, self._cold_twiml(call, command.number),
                               "fell_back_to_cold")

    async def _late_leg(self, call_sid: str, attempt: int) -> str:
        """A leg Twilio reported for this attempt although its create failed (it timed out after reaching
        Twilio), or "". Unreadable (the database down): "" — the cold fallback, and a stray leg's first
        report cancels it (gateway/handoff/routes.py)."""
        try:
            return await self.reported_leg(call_sid, attempt)
        except Exception as exc:  # noqa: BLE001 — decided as no leg: the caller still reaches the line
            log.warning("WARM_LEG_LOOKUP_FAILED", call_sid=call_sid, attempt=attempt, error=str(exc)[:200],
                        exc_info=True)
            return ""

    def post_call_report(self, call: ActingCall, reason: str, metrics: dict[str, int]) -> None:
        """One report per part of the call with the agent: `segment` numbers it, `may_resume` says a later
        part may follow (the part ended in a transfer: if nobody takes it, the caller comes back to the agent
        and that part's report continues this one's transcript)."""
        notes = call.notes
        duration = asyncio.get_running_loop().time() - call.opened_at
        self.notify(call, "call_report", {
            "event": "call.ended", "call_sid": call.call_id, "business_id": call.settings.business_id,
            "segment": call.profile.segment,
            "may_resume": reason in RESUMABLE and call.profile.segment < call.profile.agent.transfer.max_attempts,
            "end_reason": reason, "duration_s": round(duration, 1), "caller": call.profile.caller,
            "direction": call.profile.direction, "answered_by": call.profile.answered_by,
            "transcript": list(notes.transcript), "tool_calls": list(notes.tool_calls), "lead": notes.lead,
            "transfer": notes.transfer, "language_switches": list(notes.language_switches), "metrics": metrics})
