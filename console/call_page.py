"""Call detail: the record, metrics, prompt layer hashes, webhook deliveries, tool calls, leads, the
timeline, and the recording (served from here, with its waveform's peaks); downloads as WAV and JSON.
Everything goes through `call_detail` with the viewer's scope: another business's call is a 404."""
from __future__ import annotations

import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from console.history import duration_s, shown_caller
from console.recordings import peaks, recording_path
from console.timeline import place
from console.web import Viewer, console_of, not_found, render
from storage.console_queries import CallDetail, call_detail, call_in_scope


def _when(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None


def detail_json(detail: CallDetail, caller: str) -> dict[str, Any]:
    call = detail.call
    return {"call_sid": call.call_sid, "business_id": call.business_id, "from": caller, "to": call.to_number,
            "started_at": _when(call.started_at), "ended_at": _when(call.ended_at), "end_reason": call.end_reason,
            "fallback": call.fallback, "transfer_summary": call.transfer_summary, "prompt_hashes": call.prompt_hashes,
            "metrics": call.metrics, "series": call.series, "restarts": call.restarts,
            "caller_language": call.caller_language, "language_switches": call.language_switches,
            "segments": call.segments, "transfer": call.transfer,
            "utterances": [{"seq": u.seq, "role": u.role, "text": u.text, "classification": u.classification,
                            "start_ms": u.start_ms, "end_ms": u.end_ms, "interrupted": u.interrupted,
                            "heard_ms": u.heard_ms} for u in detail.utterances],
            "tool_calls": [{"name": c.name, "arguments": c.arguments, "output": c.output, "status": c.status,
                            "elapsed_ms": c.elapsed_ms, "at": _when(c.created_at)} for c in detail.tool_calls],
            "leads": [{"fields": lead.fields, "created_at": _when(lead.created_at)} for lead in detail.leads],
            "webhooks": [{"id": h.id, "kind": h.kind, "state": h.state, "attempts": h.attempts,
                          "last_error": h.last_error} for h in detail.webhooks]}


async def _detail(request: Request, viewer: Viewer) -> CallDetail:
    detail = await call_detail(console_of(request).sessions, viewer.scope, request.path_params["call_sid"])
    if detail is None:
        raise not_found()
    return detail


async def call_page(request: Request, viewer: Viewer) -> Response:
    detail = await _detail(request, viewer)
    has_recording = recording_path(console_of(request).recordings_dir, detail.call.call_sid) is not None
    return render(request, viewer, "call.html", detail=detail, call=detail.call,
                  caller=shown_caller(viewer, detail.call.from_number), duration=duration_s(detail.call),
                  timeline=place(detail.call, detail.utterances, detail.tool_calls), has_recording=has_recording)


async def call_json(request: Request, viewer: Viewer) -> Response:
    detail = await _detail(request, viewer)
    body = json.dumps(detail_json(detail, shown_caller(viewer, detail.call.from_number)), ensure_ascii=False, indent=2)
    return Response(body, media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{detail.call.call_sid}.json"'})


async def _recording(request: Request, viewer: Viewer) -> tuple[str, Any]:
    call = await call_in_scope(console_of(request).sessions, viewer.scope, request.path_params["call_sid"])
    path = recording_path(console_of(request).recordings_dir, call.call_sid) if call is not None else None
    if call is None or path is None:
        raise not_found()
    return call.call_sid, path


async def call_audio(request: Request, viewer: Viewer) -> Response:
    call_sid, path = await _recording(request, viewer)
    download = request.query_params.get("download") == "1"
    return FileResponse(path, media_type="audio/wav", filename=f"{call_sid}.wav" if download else None,
                        content_disposition_type="attachment" if download else "inline")


async def call_peaks(request: Request, viewer: Viewer) -> Response:
    _, path = await _recording(request, viewer)
    return JSONResponse(await run_in_threadpool(peaks, path))
