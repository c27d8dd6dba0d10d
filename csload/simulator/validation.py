"""Create-job validation (contract section 4): a request body in, a JobDraft or a 400 out.

Each rule's message names the offending parameter. Beyond the contract's list, the simulator
also refuses an empty field list, a custom_var without position, a dynamic_var without key and
two fields that would produce the same column (the files would be ambiguous otherwise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from csload.api.schemas import SCOPES, load_schema
from csload.simulator.model import (
    CUSTOM_VAR,
    DEVICE_LABELS,
    DYNAMIC_VAR,
    FORMATS,
    FREQUENCIES,
    SimField,
)
from csload.simulator.variables import CUSTOM_VAR_POSITIONS

MAX_ONCE_SPAN = timedelta(days=7)


class ValidationError(Exception):
    """The request is invalid; the message goes to the client as errorMessage."""


@dataclass(frozen=True, slots=True)
class JobDraft:
    name: str
    format: str
    scope: str
    frequency: str
    fields: tuple[SimField, ...]
    device_label: str
    segment_id: int | None
    date_from: datetime | None
    date_to: datetime | None


# A time of day after the date: what tells a timestamp from a bare date.
_HAS_TIME = re.compile(r"\d[T ]\d{2}:\d{2}")


def parse_instant(value: Any, what: str, *, timestamps_only: bool = False) -> datetime:
    """An ISO 8601 timestamp (naive means UTC) or a bare date (midnight UTC).

    `timestamps_only` refuses the bare date, as a server may that only takes full timestamps
    (contract section 9, point 8).
    """
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{what} must be an ISO 8601 date string")
    text = value.strip()
    if timestamps_only and not _HAS_TIME.search(text):
        raise ValidationError(f"{what} must be a full ISO 8601 timestamp "
                              f"(2026-11-14T00:00:00.000Z), got {value!r}")
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{what} is not a valid ISO 8601 date string: {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def floor_day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def ceil_day(moment: datetime) -> datetime:
    floored = floor_day(moment)
    return floored if floored == moment else floored + timedelta(days=1)


def retention_start(now: datetime, months: int) -> datetime:
    """Midnight UTC of the day `months` calendar months before `now` (clamped to month end)."""
    year, month = divmod(now.year * 12 + now.month - 1 - months, 12)
    month += 1
    day = now.day
    while True:
        try:
            return datetime(year, month, day, tzinfo=UTC)
        except ValueError:
            day -= 1


def _choice(body: dict[str, Any], key: str, allowed: tuple[str, ...], default: str | None = None,
            what: str | None = None) -> str:
    value = body.get(key, default)
    if value not in allowed:
        name = what or key
        raise ValidationError(f"{name} {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def _frequency(body: dict[str, Any]) -> tuple[str, Any]:
    raw = body.get("frequency")
    if isinstance(raw, str):
        raw = {"value": raw}
    if not isinstance(raw, dict):
        raise ValidationError("frequency must be an object with a value")
    value = _choice(raw, "value", FREQUENCIES, what="frequency.value")
    return value, raw.get("dateRange")


def _date_range(raw: Any, now: datetime, retention_months: int) -> tuple[datetime, datetime]:
    if not isinstance(raw, dict) or raw.get("from") in (None, "") or raw.get("to") in (None, ""):
        raise ValidationError("frequency.dateRange with from and to is required when "
                              "frequency.value is 'once'")
    start = parse_instant(raw["from"], "frequency.dateRange.from")
    end = parse_instant(raw["to"], "frequency.dateRange.to")
    if end <= start:
        raise ValidationError("frequency.dateRange.to must be after frequency.dateRange.from")
    # Exports work in whole UTC days: the span limit applies to what is really exported.
    start, end = floor_day(start), ceil_day(end)
    if end - start > MAX_ONCE_SPAN:
        raise ValidationError(
            f"frequency.dateRange covers {(end - start).days} whole days: at most 7 days apart"
        )
    earliest = retention_start(now, retention_months)
    if start < earliest:
        raise ValidationError(
            f"frequency.dateRange.from is older than the data retention ({retention_months} "
            f"months): the earliest exportable day is {earliest:%Y-%m-%d}"
        )
    return start, end


def _position(value: Any, where: str) -> int:
    if isinstance(value, bool) or value is None:
        raise ValidationError(f"{where}.customVarPosition is required for custom_var "
                              f"(an integer from 1 to 20)")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or value not in CUSTOM_VAR_POSITIONS:
        raise ValidationError(f"{where}.customVarPosition must be between 1 and 20, got {value!r}")
    return value


def _fields(raw: Any, scope: str) -> tuple[SimField, ...]:
    if not isinstance(raw, list) or not raw:
        raise ValidationError("fields must be a non-empty list")
    catalog = load_schema(scope)
    seen: set[str] = set()
    columns: set[str] = set()
    out: list[SimField] = []
    for index, item in enumerate(raw):
        where = f"fields[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("fieldName"), str):
            raise ValidationError(f"{where}.fieldName is required")
        name = item["fieldName"]
        if name not in catalog and name not in (CUSTOM_VAR, DYNAMIC_VAR):
            raise ValidationError(f"{where}.fieldName {name!r} is not an exportable field of "
                                  f"scope {scope!r}")
        if name in seen and name not in (CUSTOM_VAR, DYNAMIC_VAR):
            raise ValidationError(f"fieldName {name!r} is given more than once")
        seen.add(name)
        alias = item.get("aliasName")
        if alias is not None and not isinstance(alias, str):
            raise ValidationError(f"{where}.aliasName must be a string")
        position = _position(item.get("customVarPosition"), where) if name == CUSTOM_VAR else None
        key = None
        if name == DYNAMIC_VAR:
            key = item.get("dynamicVarKey")
            if not isinstance(key, str) or not key:
                raise ValidationError(f"{where}.dynamicVarKey is required for dynamic_var")
        spec = SimField(field_name=name, alias_name=alias or None,
                        custom_var_position=position, dynamic_var_key=key)
        if spec.column_name in columns:
            raise ValidationError(f"{where}: column {spec.column_name!r} would appear twice "
                                  f"in the files")
        columns.add(spec.column_name)
        out.append(spec)
    return tuple(out)


def parse_job_request(body: Any, now: datetime, retention_months: int) -> JobDraft:
    """Validate a POST /exports body; raise ValidationError naming the first problem."""
    if not isinstance(body, dict):
        raise ValidationError("the request body must be a JSON object")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("name must not be empty")
    fmt = _choice(body, "format", FORMATS)
    scope = _choice(body, "scope", SCOPES)
    frequency, date_range = _frequency(body)
    date_from = date_to = None
    if frequency == "once":
        date_from, date_to = _date_range(date_range, now, retention_months)
    device_label = _choice(body, "deviceLabel", DEVICE_LABELS, default="all")
    segment = body.get("segmentId")
    if segment is not None and (isinstance(segment, bool) or not isinstance(segment, int | str)
                                or not str(segment).isdigit() or int(segment) < 1):
        raise ValidationError(f"segmentId must be a positive integer, got {segment!r}")
    return JobDraft(
        name=name,
        format=fmt,
        scope=scope,
        frequency=frequency,
        fields=_fields(body.get("fields"), scope),
        device_label=device_label,
        segment_id=None if segment is None else int(segment),
        date_from=date_from,
        date_to=date_to,
    )
