"""A virtual-clock harness for the TxPacer: responses delivered on a schedule, the worker's 20 ms
ticks, and a Twilio that plays what it is sent in real time and echoes marks when they are reached."""
from __future__ import annotations

import base64
from dataclasses import dataclass, field

from actors.cores.pacer import PacerState, TxPacerCore
from actors.ingress_messages import RtAudioDelta, RtResponseCreated, RtResponseDone, Tick, TwilioMarkIn
from actors.lifecycle_messages import LogLine
from actors.messages import HoldAudio, ReleaseAudio
from actors.wire_messages import ToTwilio, TwMark, TwMedia

CHUNKS = (700, 1337, 160, 2400, 999, 333, 4096)  # the fake service's uneven delta sizes


@dataclass
class Delivery:
    response_id: str
    audio: bytes
    arrivals: list[float]  # one per chunk of CHUNKS, cycled
    hold_at: float | None = None
    release_at: float | None = None


@dataclass
class Outcome:
    underruns: int = 0
    underrun_at: list[float] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    first_sent: dict[str, float] = field(default_factory=dict)  # response → first frame sent
    sent_before_release: int = 0
    need_ms: int = 0


def chunked(audio: bytes) -> list[bytes]:
    out, pos, i = [], 0, 0
    while pos < len(audio):
        out.append(audio[pos:pos + CHUNKS[i % len(CHUNKS)]])
        pos += len(out[-1])
        i += 1
    return out


def real_time(start: float, audio: bytes, speed: float = 1.0, jitter: list[float] | None = None,
              stall: tuple[float, float] | None = None) -> list[float]:
    """Arrival of each chunk: nominal (generation at `speed`× real time) + jitter, never before the previous."""
    times, t, last = [], start, 0.0
    for i, chunk in enumerate(chunked(audio)):
        at = t + (jitter[i % len(jitter)] if jitter else 0.0)
        if stall and t >= stall[0]:
            at += stall[1]
        last = max(last, at)
        times.append(last)
        t += len(chunk) / 8000 / speed
    return times


def clairvoyant_start(delivery: Delivery, frame_bytes: int = 160) -> float:
    """The earliest start from which no frame of `delivery` is late — knowing every arrival in advance:
    frame m plays at start + m·20 ms and exists once the chunk holding its last byte has arrived. No
    real buffer can start earlier without an underrun; the jitter tests report how far ours is above it."""
    ends, pos = [], 0
    for chunk, at in zip(chunked(delivery.audio), delivery.arrivals):
        pos += len(chunk)
        ends.append((pos, at))
    latest, k = 0.0, 0
    for m in range(len(delivery.audio) // frame_bytes):
        last_byte = (m + 1) * frame_bytes
        while ends[k][0] < last_byte:
            k += 1
        latest = max(latest, ends[k][1] - m * frame_bytes / 8000)
    return latest


def simulate(deliveries: list[Delivery], until: float, preroll: tuple[int, int, int] = (40, 400, 300)) -> Outcome:
    pacer = TxPacerCore(PacerState("CA1", "MZ1"), 20, 100, 100, 5000, *preroll)
    events: list[tuple[float, int, object]] = []
    for d in deliveries:
        chunks = chunked(d.audio)
        events.append((d.arrivals[0] - 0.1, 0, RtResponseCreated(d.response_id, d.arrivals[0] - 0.1)))
        if d.hold_at is not None:
            events.append((d.hold_at, 1, HoldAudio(d.response_id, d.hold_at)))
        for chunk, at in zip(chunks, d.arrivals):
            events.append((at, 2, RtAudioDelta(d.response_id, "i" + d.response_id, chunk, at)))
        events.append((d.arrivals[len(chunks) - 1], 3, RtResponseDone(d.response_id, "completed", "", d.arrivals[-1])))
        if d.release_at is not None:
            events.append((d.release_at, 4, ReleaseAudio(d.response_id, d.release_at)))
    k = 0
    while k * 0.02 < until:
        events.append((k * 0.02 + 0.0007, 5, Tick(k * 0.02 + 0.0007)))
        k += 1
    events.sort(key=lambda e: (e[0], e[1]))
    outcome = Outcome()
    play_end = 0.0
    marks: list[tuple[float, str]] = []
    released = {d.response_id: d.release_at for d in deliveries}
    for at, _, msg in events:
        for due in [m for m in marks if m[0] <= at]:
            marks.remove(due)
            pacer.handle(TwilioMarkIn(due[1], due[0]), due[0])
        for action in pacer.handle(msg, at):
            if isinstance(action, LogLine) and action.event == "TX_UNDERRUN":
                outcome.underrun_at.append(at)
            if not isinstance(action, ToTwilio):
                continue
            for event in action.events:
                if isinstance(event, TwMedia):
                    outcome.payloads.append(base64.b64decode(event.media.payload))
                    play_end = max(at, play_end) + 0.02
                    rid = pacer.clock.state.response_id
                    outcome.first_sent.setdefault(rid, at)
                    release = released.get(rid)
                    if release is not None and at < release:
                        outcome.sent_before_release += 1
                elif isinstance(event, TwMark):
                    marks.append((max(at, play_end), event.mark.name))
    outcome.underruns = pacer.s.counters.underruns
    outcome.need_ms = pacer.jitter.s.need_ms
    return outcome
