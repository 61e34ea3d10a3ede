"""A Twilio Media Streams call emulator: the caller's phone and Twilio's playout, on the wire.

Sender: `connected`, `start` (customParameters), then one 160-byte μ-law `media` frame every 20 ms on
an absolute clock — the script's clips when the caller speaks, line noise otherwise — until hang-up
(`stop`). Receiver: `media` is appended to a playout buffer, `mark` queued behind the audio sent
before it, `clear` empties the buffer and echoes every pending mark at once. Player: every 20 ms one
frame is played; marks are echoed when reached. Recorded: every frame's arrival and play time, gaps
in playout (an underrun is a dry buffer with audio resuming within `turn_gap_ms`, i.e. mid-turn),
AI turns (audio followed by `turn_gap_ms` of silence), clears, and a timeline.
Echo (optional, `echo=(delay_ms, loss_db)`): a speakerphone — whatever the player plays comes back on
the caller's line, delayed, attenuated and band-limited (sim.audio.EchoPath), mixed over noise and speech.
"""
from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from sim.audio import FRAME_BYTES, SILENCE, EchoPath, frames_of, mix_noise, mix_pcm, noise_frames


@dataclass
class Step:
    kind: str  # "wait_turns" | "say" | "pause" | "hangup" | "wait_playing" | "dtmf" (value: the digits)
    value: Any = None
    label: str = ""


@dataclass
class CallReport:
    call_sid: str
    frames_sent: int = 0
    caller_audio: bytearray = field(default_factory=bytearray)
    frames_received: int = 0
    received_audio: bytearray = field(default_factory=bytearray)
    played_audio: bytearray = field(default_factory=bytearray)
    arrivals: list[float] = field(default_factory=list)
    run_gaps_ms: list[float] = field(default_factory=list)  # |gap - 20| after each run's lead
    underruns: int = 0
    turns: list[tuple[float, float, int]] = field(default_factory=list)  # start, end, frames played
    clears: list[float] = field(default_factory=list)
    marks_received: int = 0
    marks_echoed: int = 0
    marks_echoed_by_clear: int = 0
    timeline: list[tuple[float, str]] = field(default_factory=list)
    said_at: dict[str, tuple[float, float]] = field(default_factory=dict)  # label -> (start, end)
    close_code: int | None = None
    send_times: list[float] = field(default_factory=list)  # monotonic time of every caller frame sent
    odd_sized_payloads: int = 0  # media payloads that were not exactly one 20 ms frame
    waits_timed_out: int = 0
    t0: float = 0.0

    def gap_stats(self) -> dict[str, float]:
        if not self.run_gaps_ms:
            return {"n": 0, "p50": 0.0, "p99": 0.0, "max": 0.0}
        g = sorted(self.run_gaps_ms)
        n = len(g)
        return {"n": n, "p50": round(g[n // 2], 3), "p99": round(g[min(n - 1, int(n * 0.99))], 3),
                "max": round(g[-1], 3)}


class EmulatedCall:
    def __init__(self, url: str, business_id: str, call_sid: str, script: list[Step], *,
                 noise_level: float = 120.0, turn_gap_ms: int = 600, skip_lead_ms: int = 120,
                 headers: dict[str, str] | None = None, seed: int = 7, wait_timeout_s: float = 30.0,
                 max_seconds: float | None = None, custom: dict[str, str] | None = None,
                 echo: tuple[float, float] | None = None) -> None:
        self.max_seconds = max_seconds
        self.echo = EchoPath(*echo) if echo is not None else None
        self.custom = {"business_id": business_id, **(custom or {})}
        self.wait_timeout_s = wait_timeout_s
        self.url, self.business_id, self.call_sid, self.script = url, business_id, call_sid, script
        self.noise_level, self.turn_gap_s, self.skip_lead_s = noise_level, turn_gap_ms / 1000, skip_lead_ms / 1000
        self.headers = headers or {}
        self.stream_sid = "MZ" + call_sid[2:]
        self.report = CallReport(call_sid)
        self.rng = np.random.default_rng(seed)
        self.to_say: list[bytes] = []
        self.noise_bank: list[bytes] = []  # 5 s of line noise, drawn once, cycled (cheap at 100+ calls)
        self.buffer: list[tuple[str, Any]] = []  # ("frame", bytes) | ("mark", name)
        self.seq = 0
        self.ws: ClientConnection | None = None
        self.hung_up = asyncio.Event()
        self.stopping = False
        self.turns_done = 0
        self.playing_since: float | None = None
        self.turn_frames = 0
        self.dry_since: float | None = None
        self.run_start: float | None = None
        self.last_arrival: float | None = None

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def note(self, text: str) -> None:
        self.report.timeline.append((self.now() - self.report.t0, text))

    async def _send(self, event: dict[str, Any]) -> None:
        self.seq += 1
        await self._send_text(json.dumps({"sequenceNumber": str(self.seq), **event}))

    async def _send_text(self, text: str) -> None:
        if self.ws is not None:
            try:
                await self.ws.send(text)
            except ConnectionClosed:
                self.hung_up.set()

    async def run(self) -> CallReport:
        self.report.t0 = self.now()
        async with connect(self.url, additional_headers=self.headers, max_size=None, compression=None,
                           ping_interval=None) as ws:
            self.ws = ws
            await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
            await self._send({"event": "start", "streamSid": self.stream_sid, "start": {
                "accountSid": "AC" + "0" * 32, "streamSid": self.stream_sid, "callSid": self.call_sid,
                "tracks": ["inbound"], "customParameters": self.custom,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
            self.note("call connected")
            tasks = [asyncio.create_task(self._sender()), asyncio.create_task(self._receiver(ws)),
                     asyncio.create_task(self._player())]
            try:
                try:
                    await asyncio.wait_for(self._run_script(), self.max_seconds)
                except asyncio.TimeoutError:
                    await self._hangup()  # the call's time is up, wherever the script was
            finally:
                self.hung_up.set()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                if self.playing_since is not None:  # the call ended while (or just after) the AI spoke
                    end = self.dry_since if self.dry_since is not None else self.now()
                    self.report.turns.append((self.playing_since - self.report.t0, end - self.report.t0,
                                              self.turn_frames))
                    self.turns_done += 1
            self.report.close_code = ws.close_code
        return self.report

    async def _run_script(self) -> None:
        for step in self.script:
            if self.hung_up.is_set():
                return
            if step.kind == "wait_turns":
                deadline = self.now() + self.wait_timeout_s
                while self.turns_done < int(step.value) and not self.hung_up.is_set():
                    if self.now() > deadline:
                        self.note(f"gave up waiting for AI turn {step.value}")
                        self.report.waits_timed_out += 1
                        break
                    await asyncio.sleep(0.02)
            elif step.kind == "wait_playing":
                while self.playing_since is None and not self.hung_up.is_set():
                    await asyncio.sleep(0.005)
                await asyncio.sleep(float(step.value or 0))
            elif step.kind == "say":
                start = self.now()
                self.note(f"caller says: {step.label}")
                padded = b"".join(frames_of(step.value))
                mixed = mix_noise(padded, self.rng, self.noise_level)  # the whole clip's noise in one draw
                self.to_say.extend(mixed[i:i + FRAME_BYTES] for i in range(0, len(mixed), FRAME_BYTES))
                while self.to_say and not self.hung_up.is_set():
                    await asyncio.sleep(0.02)
                self.report.said_at[step.label] = (start - self.report.t0, self.now() - self.report.t0)
            elif step.kind == "pause":
                try:  # a call that the other side ended does not go on pausing
                    await asyncio.wait_for(self.hung_up.wait(), float(step.value))
                except asyncio.TimeoutError:
                    pass
            elif step.kind == "hangup":
                await self._hangup()
                return
            elif step.kind == "dtmf":
                self.note(f"caller presses {step.value}")
                for digit in str(step.value):
                    await self._send({"event": "dtmf", "streamSid": self.stream_sid,
                                      "dtmf": {"track": "inbound_track", "digit": digit}})
                    await asyncio.sleep(0.15)

    async def _hangup(self) -> None:
        self.stopping = True
        await self._send({"event": "stop", "streamSid": self.stream_sid,
                          "stop": {"accountSid": "AC" + "0" * 32, "callSid": self.call_sid}})
        self.note("caller hangs up")
        await asyncio.sleep(0.05)

    async def _sender(self) -> None:
        t0 = self.now()
        k = 0
        while not self.hung_up.is_set() and not self.stopping:
            if self.to_say:
                frame = self.to_say.pop(0)
            else:
                if not self.noise_bank:
                    self.noise_bank = noise_frames(self.rng, self.noise_level, 250)
                frame = self.noise_bank[k % len(self.noise_bank)]
            if self.echo is not None:
                echoed = self.echo.echo_at(self.now())
                if echoed is not None:
                    frame = mix_pcm(frame, echoed)
            self.report.frames_sent += 1
            self.report.caller_audio.extend(frame)
            self.report.send_times.append(self.now())
            self.seq += 1  # Twilio's media event, written out directly (json.dumps per frame was a tenth of the generator)
            await self._send_text(
                f'{{"sequenceNumber":"{self.seq}","event":"media","streamSid":"{self.stream_sid}","media":'
                f'{{"track":"inbound","chunk":"{k + 1}","timestamp":"{k * 20}",'
                f'"payload":"{base64.b64encode(frame).decode("ascii")}"}}}}')
            k += 1
            delay = t0 + k * 0.02 - self.now()
            if delay > 0:
                await asyncio.sleep(delay)

    async def _receiver(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                event = json.loads(raw)
                kind = event.get("event")
                now = self.now()
                if kind == "media":
                    payload = base64.b64decode(event["media"]["payload"])
                    if len(payload) != FRAME_BYTES:
                        self.report.odd_sized_payloads += 1  # Twilio plays any size; we account per 20 ms
                    for frame in frames_of(payload):
                        self._frame_arrived(frame, now)
                elif kind == "mark":
                    self.report.marks_received += 1
                    name = event["mark"]["name"]
                    if self.buffer:
                        self.buffer.append(("mark", name))
                    else:
                        await self._echo(name)
                elif kind == "clear":
                    self.report.clears.append(now - self.report.t0)
                    self.note("twilio clear (playout emptied)")
                    pending = [v for k, v in self.buffer if k == "mark"]
                    self.buffer.clear()
                    self.run_start = None
                    if self.playing_since is not None:
                        self.report.turns.append((self.playing_since - self.report.t0, now - self.report.t0,
                                                  self.turn_frames))
                        self.turns_done += 1
                        self.playing_since, self.dry_since = None, None
                    for name in pending:
                        self.report.marks_echoed_by_clear += 1
                        await self._echo(name)
        except ConnectionClosed:
            pass
        finally:
            if not self.stopping and not self.hung_up.is_set():
                self.note("stream closed by the bridge")
            self.hung_up.set()

    def _frame_arrived(self, payload: bytes, now: float) -> None:
        self.report.frames_received += 1
        self.report.received_audio.extend(payload)
        self.report.arrivals.append(now)
        if not self.buffer and self.playing_since is None:
            self.run_start = now
        elif self.run_start is not None and now - self.run_start > self.skip_lead_s and self.last_arrival is not None:
            self.report.run_gaps_ms.append(abs((now - self.last_arrival) * 1000 - 20.0))
        self.last_arrival = now
        self.buffer.append(("frame", payload))

    async def _echo(self, name: str) -> None:
        self.report.marks_echoed += 1
        await self._send({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})

    async def _player(self) -> None:
        t0 = self.now()
        k = 0
        while not self.hung_up.is_set():
            k += 1
            delay = t0 + k * 0.02 - self.now()
            if delay > 0:
                await asyncio.sleep(delay)
            now = self.now()
            while self.buffer and self.buffer[0][0] == "mark":
                await self._echo(self.buffer.pop(0)[1])
            if self.echo is not None:
                self.echo.push(self.buffer[0][1] if self.buffer else SILENCE, now)
            if self.buffer:
                _, frame = self.buffer.pop(0)
                self.report.played_audio.extend(frame)
                if self.playing_since is None:
                    self.playing_since = now
                    self.turn_frames = 0
                    self.note("AI audio starts playing")
                elif self.dry_since is not None:
                    self.report.underruns += 1
                    self.note(f"UNDERRUN: playout dry for {(now - self.dry_since) * 1000:.0f} ms mid-turn")
                self.dry_since = None
                self.turn_frames += 1  # marks queued behind this frame echo on the next tick, once it has played
            elif self.playing_since is not None:
                if self.dry_since is None:
                    self.dry_since = now
                elif now - self.dry_since >= self.turn_gap_s:
                    self.report.turns.append((self.playing_since - self.report.t0, self.dry_since - self.report.t0,
                                              self.turn_frames))
                    self.note(f"AI audio stopped ({self.turn_frames * 20} ms played)")
                    self.turns_done += 1
                    self.playing_since, self.dry_since = None, None
