"""The project's catalog as the Export API lists it: the exportable fields of a scope, the
custom variables, the dynamic variable keys seen in a date range. Typed, frozen, and checked
as csload.api.models checks jobs and runs (an answer is untrusted: issue 16)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from csload.api.models import CUSTOM_VAR_POSITIONS, Json, api_int, api_value_text
from csload.errors import ApiError


@dataclass(frozen=True, slots=True)
class Field:
    """One entry of the exportable-fields catalog."""

    name: str
    type: str | None = None
    description: str | None = None

    @classmethod
    def from_api(cls, raw: Any) -> Field:
        if isinstance(raw, str):
            return cls(name=raw)
        if not isinstance(raw, dict) or not raw.get("name"):
            raise ApiError(f"exportable fields: unexpected item {api_value_text(raw)}")
        return cls(name=str(raw["name"]), type=raw.get("type"), description=raw.get("description"))

    def to_json(self) -> Json:
        return {"name": self.name, "type": self.type, "description": self.description}


@dataclass(frozen=True, slots=True)
class CustomVar:
    """A project custom variable (ASSUMED shape: position and name)."""

    position: int
    name: str | None = None

    @classmethod
    def from_api(cls, raw: Any) -> CustomVar:
        if not isinstance(raw, dict):
            raise ApiError(f"custom variables: unexpected item {api_value_text(raw)}")
        position = raw.get("position", raw.get("customVarPosition", raw.get("key")))
        return cls(position=api_int(position, "position", "custom variables",
                                   CUSTOM_VAR_POSITIONS),
                   name=raw.get("name", raw.get("label")))

    def to_json(self) -> Json:
        return {"position": self.position, "name": self.name}


@dataclass(frozen=True, slots=True)
class DynamicVarKey:
    """A dynamic variable key seen in a date range (ASSUMED shape: key and type)."""

    key: str
    type: str | None = None

    @classmethod
    def from_api(cls, raw: Any) -> DynamicVarKey:
        if isinstance(raw, str):
            return cls(key=raw)
        if not isinstance(raw, dict) or not (raw.get("key") or raw.get("name")):
            raise ApiError(f"dynamic variable keys: unexpected item {api_value_text(raw)}")
        return cls(key=str(raw.get("key") or raw.get("name")), type=raw.get("type"))

    def to_json(self) -> Json:
        return {"key": self.key, "type": self.type}
