"""Configuration: config.toml (the single source of truth for audio behaviour) plus environment.

config.toml sections map 1:1 onto settings structs — the call's (actors/settings.py, [conversation] in
actors/agent_messages.py) and the worker's ([server], [tools], [control], below); unknown keys or wrong
types are refused with the key's path. The environment carries secrets and deployment addresses.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated

import msgspec
import structlog
from msgspec import Meta

from actors.agent_messages import ConversationSettings
from actors.settings import AudioSettings, BargeInSettings, RealtimeSettings, TxSettings, VadSettings

REPO_ROOT = Path(__file__).resolve().parent.parent.parent  # gateway/config/__init__.py → the checkout
DEFAULT_REALTIME_URL = "wss://api.openai.com/v1"


class ServerSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    start_timeout_s: Annotated[float, Meta(ge=1.0, le=120.0)] = 10.0  # a stream must send `start` within this
    max_pending_streams: Annotated[int, Meta(ge=1, le=100000)] = 512  # streams open without a `start`, per worker
    max_message_bytes: Annotated[int, Meta(ge=4096, le=1048576)] = 65536
    shutdown_grace_s: Annotated[float, Meta(ge=0.0, le=3600.0)] = 30.0  # SIGTERM: live calls may finish this long
    journal_dir: str = ""  # database write journal; default: <database directory>/journal or ./journal
    db_queue_max: Annotated[int, Meta(ge=10, le=1000000)] = 5000  # writes held in memory before spilling
    heartbeat_s: Annotated[float, Meta(ge=1.0, le=600.0)] = 10.0  # live calls' heartbeat in the database
    worker_lost_after_s: Annotated[float, Meta(ge=5.0, le=3600.0)] = 60.0  # no heartbeat this long: worker_lost
    worker_restarts_per_minute: Annotated[int, Meta(ge=0, le=100)] = 5
    recordings_dir: str = ""  # call recordings ([audio] record = true); default: <database directory>/recordings
    gc_tuning: bool = True  # freeze start-up objects, fewer generation-0 collections (gateway/runtime/gcwatch.py)
    max_calls: Annotated[int, Meta(ge=0, le=100000)] = 0  # per worker, live + starting; 0 = no cap (gateway/admission.py)
    shed_lateness_ms: Annotated[float, Meta(ge=0.0, le=1000.0)] = 40.0  # saturated: ticker p90 lateness; 0 = off


class ControlSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The control plane (gateway/control/, gateway/cli/control.py): a standalone thespian actor system."""

    enabled: bool = False  # config.toml turns it on for `serve`; the tests and the demo run without
    admin_port: Annotated[int, Meta(ge=1, le=65535)] = 1900
    convention: str = ""  # "HOST:PORT" of the leader's actor system (a member host); "" = this host leads
    stats_every_s: Annotated[float, Meta(ge=0.2, le=60.0)] = 1.0
    metrics_dir: str = ""  # prometheus_client's multiprocess directory; default: <tmp>/kolbridge-metrics-<http port>


class ToolPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Operator-level rules for the URLs tenants configure (HTTP tools, webhooks): they are untrusted."""

    allow_private_hosts: bool = False  # loopback/private/link-local targets (tests and the demo's local receivers)
    allow_http: bool = False  # plain http:// (tests and the demo)
    max_answer_bytes: Annotated[int, Meta(ge=1024, le=1048576)] = 65536
    webhook_timeout_s: Annotated[float, Meta(ge=0.5, le=60.0)] = 5.0
    webhook_backoff_initial_s: Annotated[float, Meta(ge=0.1, le=600.0)] = 5.0
    webhook_backoff_max_s: Annotated[float, Meta(ge=1.0, le=86400.0)] = 600.0
    webhook_max_attempts: Annotated[int, Meta(ge=1, le=100)] = 15
    webhook_poll_s: Annotated[float, Meta(ge=0.1, le=60.0)] = 1.0


class FileConfig(msgspec.Struct, forbid_unknown_fields=True):
    server: ServerSettings = ServerSettings()
    conversation: ConversationSettings = ConversationSettings()
    tools: ToolPolicy = ToolPolicy()
    audio: AudioSettings = AudioSettings()
    tx: TxSettings = TxSettings()
    vad: VadSettings = VadSettings()
    realtime: RealtimeSettings = RealtimeSettings()
    barge_in: BargeInSettings = BargeInSettings()
    control: ControlSettings = ControlSettings()


class EnvConfig(msgspec.Struct, frozen=True):
    openai_api_key: str
    realtime_url: str
    database_url: str
    twilio_auth_token: str
    public_url: str
    admin_token: str = ""
    twilio_account_sid: str = ""
    twilio_api_url: str = ""  # default: Twilio's; the tests and the demo point it at a local fake
    twilio_api_key: str = ""  # API key pair: an alternative to the auth token for REST calls
    twilio_api_secret: str = ""


class AppConfig(msgspec.Struct, frozen=True):
    file: FileConfig
    env: EnvConfig
    source: str


class ConfigError(ValueError):
    pass


def find_config(path: str | None) -> Path:
    if path:
        return Path(path)
    here = Path.cwd() / "config.toml"
    return here if here.exists() else REPO_ROOT / "config.toml"


def load_file_config(path: Path) -> FileConfig:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    try:
        return msgspec.convert(data, FileConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def load_env(environ: dict[str, str] | None = None) -> EnvConfig:
    env = os.environ if environ is None else environ
    return EnvConfig(
        openai_api_key=env.get("OPENAI_API_KEY", ""),
        realtime_url=env.get("KOLBRIDGE_REALTIME_URL", DEFAULT_REALTIME_URL),
        database_url=env.get("KOLBRIDGE_DATABASE_URL", f"sqlite+aiosqlite:///{Path.cwd() / 'kolbridge.db'}"),
        twilio_auth_token=env.get("TWILIO_AUTH_TOKEN", ""),
        public_url=env.get("KOLBRIDGE_PUBLIC_URL", "").rstrip("/"),
        admin_token=env.get("KOLBRIDGE_ADMIN_TOKEN", ""),
        twilio_account_sid=env.get("TWILIO_ACCOUNT_SID", ""),
        twilio_api_url=env.get("KOLBRIDGE_TWILIO_API_URL", ""),
        twilio_api_key=env.get("TWILIO_API_KEY", ""),
        twilio_api_secret=env.get("TWILIO_API_SECRET", ""),
    )


def load_config(path: str | None = None, environ: dict[str, str] | None = None) -> AppConfig:
    """The named file, else ./config.toml, else the checkout's; an installed package without either runs on
    the built-in defaults (the same values as config.toml, but the control plane off: tests/test_install.py)."""
    cfg_path = find_config(path)
    if path is None and not cfg_path.exists():
        return AppConfig(FileConfig(), load_env(environ), "built-in defaults (no config.toml)")
    return AppConfig(load_file_config(cfg_path), load_env(environ), str(cfg_path))


def log_audio_mode(audio: AudioSettings, source: str, append_ms: int) -> None:
    """The one AUDIO_MODE line, logged once at startup (with how much caller audio each append carries)."""
    structlog.get_logger("kolbridge").info(
        "AUDIO_MODE", simple_mode=audio.simple_mode, audio_guard_enabled=audio.audio_guard_enabled,
        music_mode_enabled=audio.music_mode_enabled, noise_gate_min_frames=audio.noise_gate_min_frames,
        echo_guard_enabled=audio.echo_guard_enabled, frame_pacing_ms=audio.frame_pacing_ms,
        append_ms=append_ms, config=source)
