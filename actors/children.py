"""The five children of a CallSupervisor: each a ChildShell bound to one pure core."""
from __future__ import annotations

import msgspec

from actors.cores.bridge import BridgeState, RealtimeBridgeCore
from actors.cores.energy import FloorState
from actors.cores.judge import BargeInJudgeCore, JudgeState
from actors.cores.metrics import MetricsCore, MetricsState
from actors.cores.pacer import PacerState, TxPacerCore
from actors.cores.twilio_rx import RxState, TwilioRxCore
from actors.lifecycle_messages import ChildBoot
from actors.settings import CallSettings
from actors.shell import ChildShell, Core, write_log
from prompts.classifier import Lexicon, load_lexicon


def _restore(state_type: type, blob: bytes | None, default: object) -> object:
    return msgspec.msgpack.decode(blob, type=state_type) if blob else default


def make_rx(settings: CallSettings, blob: bytes | None) -> Core:
    state = _restore(RxState, blob, None) or RxState(settings.call_id, floor=FloorState(settings.barge_in.floor_init_db))
    frame_ms = settings.audio.frame_pacing_ms
    return TwilioRxCore(state, settings.barge_in.energy_delta_db,  # type: ignore[arg-type]
                        settings.barge_in.floor_min_db, settings.realtime.gap_buffer_ms // frame_ms, frame_ms,
                        settings.realtime.turn_replay_ms // frame_ms, settings.audio,
                        settings.barge_in.articulation_confirm, settings.barge_in.articulation_rise_db,
                        max(1, settings.realtime.append_ms // frame_ms))


def make_bridge(settings: CallSettings, blob: bytes | None) -> Core:
    state = _restore(BridgeState, blob, BridgeState(settings.call_id))
    return RealtimeBridgeCore(state, settings)  # type: ignore[arg-type]


def make_pacer(settings: CallSettings, blob: bytes | None) -> Core:
    state = _restore(PacerState, blob, PacerState(settings.call_id, settings.stream_sid))
    tx = settings.tx
    return TxPacerCore(state, settings.audio.frame_pacing_ms, tx.tx_lead_ms,  # type: ignore[arg-type]
                       tx.mark_every_ms, tx.status_every_ms, tx.preroll_min_ms, tx.preroll_max_ms,
                       tx.preroll_initial_ms, settings.audio.echo_guard_enabled)


def make_judge(settings: CallSettings, blob: bytes | None) -> Core:
    lexicon = load_lexicon(settings.language).extended(list(settings.barge_in.language_fillers),
                                                       list(settings.barge_in.language_short_words),
                                                       list(settings.barge_in.language_backchannels))
    state = _restore(JudgeState, blob, JudgeState(settings.call_id))
    return BargeInJudgeCore(state, settings.barge_in, lexicon, caller_lexicons(settings, lexicon),  # type: ignore[arg-type]
                            settings.caller_languages.start)


def caller_lexicons(settings: CallSettings, first: Lexicon) -> dict[str, Lexicon]:
    """One lexicon per caller language (none with one language): each language's own, merged with the
    business's words for it; the first language's is the call's lexicon as it always was."""
    spoken = settings.caller_languages
    if not spoken.switching:
        return {}
    return {language: first if index == 0 else load_lexicon(language).extended(
                list(spoken.fillers.get(language, ())), list(spoken.short_words.get(language, ())),
                list(spoken.backchannels.get(language, ())))
            for index, language in enumerate(spoken.languages)}


def make_metrics(settings: CallSettings, blob: bytes | None) -> Core:
    return MetricsCore(_restore(MetricsState, blob, MetricsState(settings.call_id)),  # type: ignore[arg-type]
                       settings.audio.simple_mode, settings.first_caller_language)


class TwilioRx(ChildShell):
    role = "rx"
    factory = staticmethod(make_rx)


class RealtimeBridge(ChildShell):
    role = "bridge"
    factory = staticmethod(make_bridge)


class TxPacer(ChildShell):
    """The sole sender of Twilio `media`/`mark`/`clear` for its call."""

    role = "pacer"
    factory = staticmethod(make_pacer)

    def on_boot(self, boot: ChildBoot) -> None:
        if boot.state is None and isinstance(self.core, TxPacerCore):
            for line in self.core.started():
                write_log(line)  # type: ignore[arg-type]


class BargeInJudge(ChildShell):
    role = "judge"
    factory = staticmethod(make_judge)


class MetricsCollector(ChildShell):
    role = "metrics"
    factory = staticmethod(make_metrics)

    def on_boot(self, boot: ChildBoot) -> None:
        if boot.state is None and isinstance(self.core, MetricsCore):
            self.core.s.started_at = boot.at


CHILD_CLASSES: dict[str, type[ChildShell]] = {
    "rx": TwilioRx, "bridge": RealtimeBridge, "pacer": TxPacer, "judge": BargeInJudge, "metrics": MetricsCollector,
}
