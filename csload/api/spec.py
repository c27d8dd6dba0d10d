"""What to send to POST /exports to create a job (csload.api.jobspec checks it against the
contract's rules before it is sent)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from csload.api.models import JobField
from csload.errors import ConfigError
from csload.times import api_text_or_none, midnight

Json = dict[str, Any]


def utc_bound(value: object, what: str) -> datetime | None:
    """A once job's `from` or `to` as an aware UTC datetime: a date is its UTC midnight, a
    naive datetime is read as UTC (the API's days are UTC days). It used to be read in the
    machine's time zone: under UTC+14, `datetime(2026, 11, 20)` exported 2026-11-19 and half
    of 11-20, and a `date` failed with AttributeError (QA, 2026-12-08)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return midnight(value)
    raise ConfigError(f"{what} must be a date or a datetime, not {type(value).__name__}")


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """What to send to POST /exports to create a job. `date_from` and `date_to` (a once
    job's range, `to` excluded) may be given as dates or datetimes; they are kept as aware
    UTC datetimes, a naive datetime read as UTC."""

    name: str
    format: str
    scope: str
    frequency: str
    fields: tuple[JobField, ...]
    device_label: str = "all"
    segment_id: int | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("date_from", "date_to"):
            object.__setattr__(self, name, utc_bound(getattr(self, name), f"JobSpec.{name}"))

    def to_api(self) -> Json:
        frequency: Json = {"value": self.frequency}
        if self.date_from is not None or self.date_to is not None:
            frequency["dateRange"] = {
                "from": api_text_or_none(self.date_from),
                "to": api_text_or_none(self.date_to),
            }
        body: Json = {
            "name": self.name,
            "format": self.format,
            "scope": self.scope,
            "frequency": frequency,
            "fields": [f.to_api() for f in self.fields],
            "deviceLabel": self.device_label,
        }
        if self.segment_id is not None:
            body["segmentId"] = self.segment_id
        return body
