"""The package as a user installs it: `pip install .` (not editable), then `kolbridge demo` from another
directory — the example business, the lexicons, the clips and the migrations all come from the installed
package; with no config.toml anywhere the built-in defaults run (the same values as config.toml)."""
from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import msgspec
import pytest

from gateway.config import REPO_ROOT, FileConfig


def test_the_built_in_defaults_are_config_toml() -> None:
    """Without a config.toml an installed kolbridge runs on the Structs' defaults: they must not drift."""
    shipped = msgspec.to_builtins(msgspec.convert(tomllib.loads((REPO_ROOT / "config.toml").read_text("utf-8")),
                                                  FileConfig))
    defaults = msgspec.to_builtins(FileConfig())
    shipped["control"]["enabled"] = defaults["control"]["enabled"]  # on for `serve` from config.toml only
    assert shipped == defaults


@pytest.mark.realtime
def test_a_non_editable_install_plays_the_demo_from_another_directory(tmp_path: Path) -> None:
    target = tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                            "--target", str(target), str(REPO_ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-c", "import gateway, sim, kolbridge_examples; print(gateway.__file__)"],
                           capture_output=True, text=True, cwd=elsewhere, env=env, timeout=60)
    assert where.stdout.strip().startswith(str(target)), where.stdout + where.stderr
    demo = subprocess.run([sys.executable, "-m", "gateway.cli", "demo"], capture_output=True, text=True,
                          cwd=elsewhere, env=env, timeout=240)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    assert "CALL_METRICS" in demo.stdout and (elsewhere / "demo-call.wav").stat().st_size > 100_000
    # this is also the suite's demo call in real time, over real sockets, as a user runs it (tests/test_e2e.py
    # plays the same call on the virtual clock with every assertion): what the caller heard and what was kept
    out = demo.stdout
    assert "underruns 0," in out and "(byte-identical: True)" in out, out[-3000:]
    metrics = dict(pair.split("=") for pair in next(line for line in out.splitlines()
                                                     if line.startswith("CALL_METRICS ")).split()[1:])
    assert metrics["frames_in"] == metrics["frames_forwarded"] and metrics["frames_dropped"] == "0", metrics
    assert (metrics["stt_utterances"], metrics["filler_only"], metrics["short"], metrics["barge_in_events"]) == \
        ("6", "2", "3", "1"), metrics
    assert "transferred" in out  # the stored record: the caller asked for a person and was transferred
    # the second, Arabic caller: followed into Arabic, the filler ignored, the "لا" answered — and recorded
    arabic = out[out.index("a second caller, in Arabic"):]
    assert "caller language: he → ar at" in arabic and "اممم [filler]" in arabic and "لا [turn]" in arabic, arabic[-3000:]
