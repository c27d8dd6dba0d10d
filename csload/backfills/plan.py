"""A backfill's plan: the days asked for, cut into `once` windows of at most 7 days.

Pure functions and values: which days a once job can still export (data retention, days not
over yet), how they are grouped into windows, and the deterministic name of each window's job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from csload.api.checks import check_day, check_job_ids, check_scope
from csload.api.jobspec import DATA_RETENTION_MONTHS, earliest_exportable_day
from csload.api.models import JobField
from csload.api.spec import JobSpec
from csload.errors import ConfigError
from csload.load.backfill_names import JOB_NAME, NAME_PREFIX
from csload.times import midnight

__all__ = [
    "MAX_WINDOW_DAYS",
    "NAME_PREFIX",
    "Template",
    "UnavailableDays",
    "Window",
    "available_days",
    "job_name",
    "split_days",
    "window_of_name",
]

MAX_WINDOW_DAYS = 7


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """Whole UTC days [start, end): what one `once` job exports."""

    start: date
    end: date  # exclusive

    @property
    def last(self) -> date:
        return self.end - timedelta(days=1)

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days)]

    @property
    def label(self) -> str:
        """`2026-11-01..2026-11-07` (both days included)."""
        return f"{self.start}..{self.last}"


@dataclass(frozen=True, slots=True)
class Template:
    """What every once job of one backfill exports: all of the job but its window."""

    scope: str
    format: str
    fields: tuple[JobField, ...]
    device_label: str = "all"
    segment_id: int | None = None
    table: str = ""
    like_job_id: int | None = None

    @property
    def key(self) -> str:
        """A stable hash of what the jobs export and where they load: the plan's identity."""
        canonical = orjson.dumps({
            "scope": self.scope, "format": self.format,
            "fields": [f.to_api() for f in self.fields],
            "deviceLabel": self.device_label, "segmentId": self.segment_id,
            "table": self.table or self.scope,
        }, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()[:16]

    def spec(self, window: Window) -> JobSpec:
        return JobSpec(name=job_name(self, window), format=self.format, scope=self.scope,
                       frequency="once", fields=self.fields, device_label=self.device_label,
                       segment_id=self.segment_id, date_from=midnight(window.start),
                       date_to=midnight(window.end))


def job_name(template: Template, window: Window) -> str:
    """The deterministic name of a backfill job: `csload backfill views 2026-11-01..2026-11-07
    3f2a9c1e`. The same plan gives the same names, so a job whose creation was never recorded
    is found again by its name."""
    return f"{NAME_PREFIX} {template.scope} {window.label} {template.key[:8]}"


def window_of_name(name: str, template: Template) -> Window | None:
    """The window of a job that `job_name` named for `template`; None for any other name."""
    found = JOB_NAME.fullmatch(name)
    if found is None or (found["scope"], found["key"]) != (template.scope, template.key[:8]):
        return None
    try:
        first, last = date.fromisoformat(found["first"]), date.fromisoformat(found["last"])
    except ValueError:
        return None
    return Window(first, last + timedelta(days=1)) if first <= last else None


def split_days(days: Iterable[date], *, anchor: date | None = None,
               max_days: int = MAX_WINDOW_DAYS) -> list[Window]:
    """Consecutive days grouped into windows of at most `max_days`.

    With `anchor`, window boundaries fall every `max_days` days from it (so the windows of a
    range stay the same when days at its edges drop out); else each run of consecutive days
    is cut from its own first day.
    """
    ordered = sorted(set(days))
    windows: list[Window] = []
    start: date | None = None
    previous: date | None = None
    for day in ordered:
        boundary = anchor is not None and (day - anchor).days % max_days == 0
        if (start is None or previous is None or day != previous + timedelta(days=1)
                or (day - start).days >= max_days or boundary):
            if start is not None and previous is not None:
                windows.append(Window(start, previous + timedelta(days=1)))
            start = day
        previous = day
    if start is not None and previous is not None:
        windows.append(Window(start, previous + timedelta(days=1)))
    return windows


@dataclass(frozen=True, slots=True)
class UnavailableDays:
    """Days asked for that no job can export, and why."""

    first: date
    last: date
    reason: str

    def __str__(self) -> str:
        days = str(self.first) if self.first == self.last else f"{self.first}..{self.last}"
        return f"{days}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {"from": self.first.isoformat(), "to": self.last.isoformat(),
                "reason": self.reason}


def _runs_of_days(days: Sequence[date], reason: str) -> list[UnavailableDays]:
    return [UnavailableDays(w.start, w.last, reason)
            for w in split_days(days, max_days=10**6)]


def available_days(days: Iterable[date], now: datetime,
                   retention_months: int = DATA_RETENTION_MONTHS,
                   ) -> tuple[list[date], list[UnavailableDays]]:
    """The days a once job can export now, and the others grouped with the reason."""
    earliest = earliest_exportable_day(now, retention_months)
    today = now.astimezone(UTC).date()
    ok, old, future = [], [], []
    for day in sorted(set(days)):
        if day < earliest:
            old.append(day)
        elif day >= today:
            future.append(day)
        else:
            ok.append(day)
    lost = _runs_of_days(old, f"older than the data retention ({retention_months} months, "
                              f"ASSUMED): the earliest exportable day is {earliest}")
    lost += _runs_of_days(future, "not over yet: a backfill exports whole finished UTC days")
    return ok, lost


def check_backfill_arguments(
    *, scope: object = None, date_from: object = None, date_to: object = None,
    like: object = None, fields: Sequence[object] = (), gaps: bool = False,
    flags: bool = False,
) -> tuple[str | None, date | None, date | None]:
    """The scope and the days of a backfill, checked with what it exports, before anything is
    opened or requested (the CLI's usage errors and the Python API's ConfigErrors alike; with
    `flags`, parameters are named as the CLI's options). Days are `datetime.date`s or
    "YYYY-MM-DD" strings, as for a sync."""
    name = ({"from": "--from", "to": "--to", "scope": "--scope", "like": "--like",
             "fields": "--field", "gaps": "--gaps"} if flags else
            {"from": "date_from", "to": "date_to", "scope": "scope", "like": "like",
             "fields": "fields", "gaps": "gaps=True"})
    first = check_day(date_from, name["from"])
    last = check_day(date_to, name["to"])
    checked = check_scope(scope, name=name["scope"])
    if like is not None:
        check_job_ids([like], name=name["like"])
    given = f"{name['like']} or {name['fields']}"
    if gaps:
        if like is not None or fields:
            raise ConfigError(f"{name['gaps']} copies each daily job's own fields: do not give "
                              f"{given} with it")
    else:
        if first is None or last is None:
            raise ConfigError(f"a backfill needs {name['from']} and {name['to']} "
                              f"(or {name['gaps']})")
        if like is not None and fields:
            raise ConfigError(f"give either {name['like']} JOB_ID or {name['fields']}, "
                              "not both")
        if like is None and not fields:
            raise ConfigError(f"say what to export: {given}")
        if like is None and checked is None:
            raise ConfigError(f"{name['scope']} is required without {name['like']}")
    if first is not None and last is not None and last < first:
        raise ConfigError(f"{name['to']} {last} is before {name['from']} {first}: give the "
                          "first day, then the last")
    return checked, first, last
