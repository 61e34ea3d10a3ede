"""Per-business overrides and lexicon additions: checked at import, applied at call start."""
from __future__ import annotations

from pathlib import Path

import pytest

from actors.settings import AudioSettings, BargeInSettings, VadSettings
from gateway.cli import main
from gateway.config.overrides import audio_for, barge_in_for, check_business, vad_for
from prompts.classifier import TurnLabel, classify, load_lexicon
from storage.businesses import BusinessView, parse_business

BASE = '[business]\nid="shop"\nname="n"\nlanguage="he"\ngreeting="g"\n'


def test_valid_overrides_pass_and_merge_over_the_file_settings() -> None:
    spec = parse_business(BASE + 'fillers=["יאללה"]\n[business.barge_in]\ncandidate_action="pause"\n'
                          'confirm_after_ms=800\n[business.vad]\nsilence_duration_ms=500\n'
                          '[business.audio]\nframe_pacing_ms=20\n')
    assert check_business(spec) == []
    view = BusinessView("shop", "n", "he", "g", "", "", True, [], list(spec.fillers), [],
                        {"barge_in": spec.barge_in, "vad": spec.vad, "audio": spec.audio})
    assert audio_for(AudioSettings(), view).simple_mode is True
    b = barge_in_for(BargeInSettings(), view)
    assert (b.candidate_action, b.confirm_after_ms, b.candidate_ms, b.language_fillers) == ("pause", 800, 240, ("יאללה",))
    assert vad_for(VadSettings(), view).silence_duration_ms == 500


@pytest.mark.parametrize("section, problem", [
    ('[business.barge_in]\ncandidate_action="shout"\n', "business.barge_in"),
    ('[business.barge_in]\nconfirm_after_ms=50\n', "confirm_after_ms"),
    ('[business.barge_in]\nrms_gate=3\n', "rms_gate"),
    ('[business.vad]\nthreshold=1.5\n', "business.vad"),
    ('[business.audio]\nmusic_detector=true\n', "music_detector"),
    ('[business.realtime]\nnoise_reduction="loud"\n', "business.realtime"),
    ('[business.audio]\nframe_pacing_ms=0\n', "frame_pacing_ms"),  # would divide by zero on every delta
    ('[business.realtime]\ngap_buffer_ms=-1\n', "gap_buffer_ms"),
    ('[business.fallback]\nmode="transfer"\n', "transfer_number"),
    ('[business.fallback]\nmode="sing"\n', "business.fallback"),
    ('[business.audio]\nhighpass_hz=100\n', "highpass_hz"),  # would cut into the voice's band: refused at import
    ('[business.audio]\nechoguard=true\n', "echoguard"),
])
def test_bad_overrides_name_the_key(section: str, problem: str) -> None:
    problems = check_business(parse_business(BASE + section))
    assert problems and problem in problems[0]


def test_cli_refuses_a_bad_override_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOLBRIDGE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'o.db'}")
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE + '[business.barge_in]\ncandidate_ms=5\n', encoding="utf-8")
    assert main(["business", "import", str(bad)]) == 2
    assert "candidate_ms" in capsys.readouterr().err
    assert main(["business", "list"]) == 0
    assert capsys.readouterr().out == ""


def test_a_business_extends_the_backchannels() -> None:
    spec = parse_business(BASE + 'backchannels=["יאללה"]\n[business.audio]\nhighpass_hz=180\nrecord=true\n')
    assert check_business(spec) == []
    view = BusinessView("shop", "n", "he", "g", "", "", True, [], [], [], {"audio": spec.audio},
                        backchannels=list(spec.backchannels))
    b = barge_in_for(BargeInSettings(), view)
    assert b.language_backchannels == ("יאללה",)
    lexicon = load_lexicon("he").extended(backchannels=list(b.language_backchannels))
    assert classify("יאללה", lexicon) is TurnLabel.BACKCHANNEL
    assert classify("יאללה", load_lexicon("he")) is TurnLabel.TURN
    audio = audio_for(AudioSettings(), view)
    assert (audio.highpass_hz, audio.record) == (180, True)
