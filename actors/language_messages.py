"""The caller's language (issue 21): what the CallerLanguage core decides from the caller's transcripts.
Class names are unique across actors/*messages.py and actors/settings.py (thespian routes by class name).
"""
from __future__ import annotations

from msgspec import Struct


class CallerLanguageChanged(Struct, frozen=True):
    """CallerLanguage → the call (bridge, judge, record): the caller now speaks `to_language`, one of the
    business's languages; it holds from the caller's next utterance. `evidence` says which words decided."""

    call_id: str
    from_language: str
    to_language: str
    evidence: str
    at: float


class LanguageSwitched(Struct, frozen=True):
    """RealtimeBridge → the gateway (egress): the session now transcribes and answers in `to_language`;
    recorded on the call (language_switches, caller_language) and counted."""

    call_id: str
    from_language: str
    to_language: str
    evidence: str
    at: float
