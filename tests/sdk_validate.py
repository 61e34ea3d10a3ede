"""Validate outgoing Realtime client events against the openai SDK's own models, strictly.

The SDK models accept unknown fields silently, so after `model_validate` every nested model's
`model_extra` is checked: any field the SDK does not know is a failure.
"""
from __future__ import annotations

import typing
from typing import Any

from openai.types.realtime import RealtimeClientEvent
from pydantic import BaseModel


def _models() -> dict[str, type[BaseModel]]:
    union = typing.get_args(RealtimeClientEvent)[0]
    table: dict[str, type[BaseModel]] = {}
    for model in typing.get_args(union):
        kind = typing.get_args(model.model_fields["type"].annotation)[0]
        table[kind] = model
    return table


CLIENT_EVENT_MODELS = _models()


def _extras(value: Any, path: str) -> list[str]:
    found: list[str] = []
    if isinstance(value, BaseModel):
        for key in (value.model_extra or {}):
            found.append(f"{path}.{key}")
        for name in type(value).model_fields:
            found.extend(_extras(getattr(value, name), f"{path}.{name}"))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found.extend(_extras(item, f"{path}[{i}]"))
    elif isinstance(value, dict):
        for key, item in value.items():
            found.extend(_extras(item, f"{path}.{key}"))
    return found


def validate_client_event(event: dict[str, Any]) -> BaseModel:
    kind = event.get("type")
    model = CLIENT_EVENT_MODELS.get(str(kind))
    if model is None:
        raise AssertionError(f"{kind!r} is not a Realtime client event")
    parsed = model.model_validate(event)
    extras = _extras(parsed, str(kind))
    if extras:
        raise AssertionError(f"unknown fields in {kind}: {extras}")
    return parsed
