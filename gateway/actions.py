"""What the agent's decisions do in the world: run a business's HTTP tool, save a lead, hang up or
transfer through Twilio, and tell the business (signed webhook notices and the post-call report).

Every effect is also written to the call's record through the worker's write queue (tool calls,
leads, the transfer summary, webhook outbox rows), so a database outage loses none of it.
Hang-up and transfer: Twilio's REST API when the worker has credentials (`Calls/{sid}` update with
`Status=completed`, or TwiML `<Dial>`), else — and when the REST call fails — the stream is closed and
Twilio fetches the same TwiML from the stream's `<Connect action>` URL (/stream-ended).
"""
from __future__ import annotations

import asyncio
import json
import uuid
from typing import TYPE_CHECKING, Any

import structlog

from actors.agent_messages import LeaveCall, RunTool, SaveLead, ToolCallRecord, ToolDone
from gateway.fallback import FallbackSettings, fallback_twiml, hangup_twiml
from gateway.http_tools import json_text
from storage.writequeue import CallNoteWrite, LeadWrite, ToolCallWrite, WebhookWrite

if TYPE_CHECKING:
    from gateway.app import App
    from gateway.call import CallIO

log = structlog.get_logger("kolbridge.actions")

NO_ANSWER = {"he": "מצטערים, אין כרגע נציג פנוי. נחזור אליך בהקדם. תודה ולהתראות.",
             "en": "Sorry, no one is available right now. We will call you back soon. Goodbye."}
TRANSCRIPT_KEPT = 400


def transfer_twiml(number: str, caller_id: str, timeout_s: int, language: str) -> str:
    """Dial the human line; if nobody answers, an apology and a hang-up (never dead air) — the fallback's
    transfer TwiML with the no-answer message."""
    settings = FallbackSettings(mode="transfer", transfer_number=number, caller_id=caller_id, dial_timeout_s=timeout_s,
                                message=NO_ANSWER.get(language, NO_ANSWER["en"]))
    return fallback_twiml(settings, language)


async def run_tool(app: "App", call: "CallIO", command: RunTool) -> None:
    """POST {call_sid, business_id, name, arguments}, signed; the JSON answer (or the failure) goes back."""
    loop = asyncio.get_running_loop()
    tool = next((t for t in call.agent.tools if t.name == command.name), None)
    secret = call.agent.webhook.secret if call.agent.webhook else ""
    if tool is None:
        done = ToolDone(command.tool_call_id, False, json_text({"ok": False, "error": "tool not configured"}),
                        "error", 0, loop.time())
    else:
        body = json_text({"call_sid": call.call_id, "business_id": call.settings.business_id, "name": command.name,
                          "arguments": command.arguments}).encode()
        outcome = await app.tenant_http.post(tool.url, body, secret, command.timeout_s,
                                             {"X-Kolbridge-Tool-Call": command.tool_call_id})
        if outcome.ok:
            try:
                answer: Any = json.loads(outcome.text) if outcome.text.strip() else {}
                output, status = json_text(answer), "ok"
            except ValueError:
                output, status = json_text({"ok": False, "error": "the tool's answer is not JSON"}), "error"
        else:
            status = "timeout" if outcome.error.startswith("timed out") else \
                "refused" if outcome.error.startswith("refused") else "error"
            output = json_text({"ok": False, "error": f"the tool failed ({'timeout' if status == 'timeout' else 'error'})"})
            log.warning("TOOL_FAILED", call_sid=call.call_id, name=command.name, status=status, error=outcome.error[:300],
                        elapsed_ms=outcome.elapsed_ms)
        done = ToolDone(command.tool_call_id, status == "ok", output, status, outcome.elapsed_ms, loop.time())
    if not call.ended.is_set():
        app.engine.tell(call.call_id, done)


def save_lead(app: "App", call: "CallIO", command: SaveLead) -> None:
    business_id = call.settings.business_id
    app.writes.put(LeadWrite(call.call_id, command.tool_call_id, business_id, dict(command.fields)))
    call.lead = dict(command.fields)
    log.info("LEAD_SAVED", call_sid=call.call_id, business_id=business_id, fields=sorted(command.fields))
    notify(app, call, "lead", {"event": "lead.saved", "call_sid": call.call_id, "business_id": business_id,
                               "lead": call.lead})


def tool_record(app: "App", call: "CallIO", record: ToolCallRecord) -> None:
    app.writes.put(ToolCallWrite(call.call_id, record.tool_call_id, record.name, record.arguments, record.output,
                                 record.status, record.elapsed_ms))
    call.tool_calls.append({"name": record.name, "arguments": record.arguments, "output": record.output,
                            "status": record.status, "elapsed_ms": record.elapsed_ms})
    log.info("TOOL_CALL", call_sid=call.call_id, name=record.name, status=record.status, elapsed_ms=record.elapsed_ms)


def notify(app: "App", call: "CallIO", kind: str, body: dict[str, Any]) -> None:
    """Queue a signed notice to the business's webhook, if it has one (delivered by gateway/webhooks.py)."""
    if call.agent.webhook is None:
        return
    app.writes.put(WebhookWrite(uuid.uuid4().hex, call.settings.business_id, call.call_id, kind, json_text(body)))
    app.webhooks.wake()


async def leave(app: "App", call: "CallIO", command: LeaveCall) -> None:
    """The AI's last words have played: hang up or transfer, then end our side of the call."""
    if call.call_id not in app.calls:
        return
    if command.kind == "transfer":
        transfer = call.agent.transfer
        twiml = transfer_twiml(command.number, transfer.caller_id, transfer.timeout_s, call.settings.language)
        call.transfer = {"number": command.number, "reason": command.reason, "summary": command.summary}
        app.writes.put(CallNoteWrite(call.call_id, command.summary))
        notify(app, call, "transfer", {"event": "call.transferred", "call_sid": call.call_id,
                                       "business_id": call.settings.business_id, **call.transfer})
    else:
        twiml = hangup_twiml()
    how = "action"
    if app.twilio_rest is not None:
        try:
            if command.kind == "transfer":
                await app.twilio_rest.redirect(call.call_id, twiml)
            else:
                await app.twilio_rest.hang_up(call.call_id)
            how = "rest"
        except Exception as exc:  # noqa: BLE001 — the action URL still answers with the same TwiML
            log.error("LEAVE_REST_FAILED", call_sid=call.call_id, kind=command.kind, error=str(exc)[:300], exc_info=True)
    app.remember_after_stream(call.call_id, twiml)
    log.warning("CALL_LEFT", call_sid=call.call_id, kind=command.kind, end_reason=command.end_reason, via=how,
                reason=command.reason[:200])
    await app.end_call(call, command.end_reason, f"{command.kind}:{how}", twiml)


def post_call_report(app: "App", call: "CallIO", reason: str, metrics: dict[str, int]) -> None:
    duration = asyncio.get_running_loop().time() - call.opened_at
    notify(app, call, "call_report", {
        "event": "call.ended", "call_sid": call.call_id, "business_id": call.settings.business_id,
        "end_reason": reason, "duration_s": round(duration, 1), "caller": call.caller,
        "transcript": list(call.transcript), "tool_calls": list(call.tool_calls), "lead": call.lead,
        "transfer": call.transfer, "metrics": metrics})
