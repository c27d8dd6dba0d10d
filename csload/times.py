"""Time helpers every stage shares: the current UTC time, a day's midnight, timestamps as text.

Timestamps are always aware and in UTC. Two text forms, each with its readers:

    iso_z        2026-11-14T00:00:00Z, microseconds when there are any: the reports' JSON
                 (`csload sync --json`, `csload backfill --json`)
    api_text     2026-11-14T00:00:00.000Z, always milliseconds: the Export API's own form,
                 in the requests csload sends and in the models' JSON

Nothing here imports from csload: any module may use it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

__all__ = ["api_text", "api_text_or_none", "iso_z", "midnight", "utcnow"]


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def midnight(day: date) -> datetime:
    """The start of `day` in UTC (aware): a whole UTC day's window starts there."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def iso_z(value: datetime | None) -> str | None:
    """The reports' form, ISO 8601 in UTC with "Z" (None stays None)."""
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def api_text(value: datetime | date) -> str:
    """The API's timestamp form: 2026-11-14T00:00:00.000Z (a date is its midnight)."""
    if not isinstance(value, datetime):
        value = midnight(value)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def api_text_or_none(value: datetime | None) -> str | None:
    """`api_text`, None staying None (optional timestamps of the API's objects)."""
    return None if value is None else api_text(value)
