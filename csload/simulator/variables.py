"""The project's custom and dynamic variables: definitions, and the value each row has.

Values are a hash of (seed, row identity, variable), not drawn from the day's random stream, so
a row's value does not depend on which variables a job asks for.
"""

from __future__ import annotations

from datetime import date, timedelta

from csload.simulator.hashing import derive_seed, mix64
from csload.simulator.vocab import CUSTOM_VARS, DYNAMIC_VARS

CUSTOM_VAR_POSITIONS = range(1, 21)


def custom_var_definitions() -> list[tuple[int, str]]:
    """(position, name) of the custom variables defined on the project."""
    return [(position, name) for position, (name, _) in sorted(CUSTOM_VARS.items())]


def dynamic_var_keys(first: date, last: date) -> list[tuple[str, str]]:
    """(key, type) of the dynamic variables seen on any day of [first, last]."""
    if last < first:
        return []
    span = min(7, (last - first).days + 1)
    weekdays = {(first + timedelta(days=i)).weekday() for i in range(span)}
    return [
        (key, kind)
        for key, (kind, _, days) in DYNAMIC_VARS.items()
        if days is None or weekdays & set(days)
    ]


def _row_hash(seed: int, session_id: int, view_number: int, salt: int) -> int:
    return mix64(seed ^ mix64(session_id ^ mix64((view_number << 32) ^ salt)))


class VariableValues:
    """The values of custom and dynamic variables for one seed."""

    def __init__(self, seed: int) -> None:
        self._seed = derive_seed("variables", seed)
        self._key_salts = {key: derive_seed("dynamic", key) for key in DYNAMIC_VARS}

    def custom(self, session_id: int, view_number: int, position: int) -> str | None:
        definition = CUSTOM_VARS.get(position)
        if definition is None:
            return None
        h = _row_hash(self._seed, session_id, view_number, position)
        if h % 4 == 0:
            return None
        values = definition[1]
        return values[(h >> 8) % len(values)]

    def dynamic(self, session_id: int, view_number: int, key: str, day: date) -> str | None:
        definition = DYNAMIC_VARS.get(key)
        if definition is None:
            return None
        _, values, days = definition
        if days is not None and day.weekday() not in days:
            return None
        h = _row_hash(self._seed, session_id, view_number, self._key_salts[key])
        if h % 3 == 0:
            return None
        return values[(h >> 8) % len(values)]
