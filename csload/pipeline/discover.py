"""Which jobs and runs a sync should load, given what the ledger already holds. Pure functions."""

from __future__ import annotations

import difflib
import numbers
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from csload.api.models import Job, Run
from csload.api.schemas import SCOPES
from csload.errors import ConfigError

SUPPORTED_FORMATS = ("CSV", "JSONL")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, kw_only=True)
class Selection:
    """What the user asked to sync: all jobs, or some; all run windows, or a range of days."""

    job_ids: tuple[int, ...] = ()
    scope: str | None = None
    since: date | None = None  # first day of a run window to load (inclusive)
    until: date | None = None  # last day of a run window to load (inclusive)

    @classmethod
    def checked(cls, *, jobs: object = (), scope: object = None, since: object = None,
                until: object = None, flags: bool = False) -> Selection:
        """The selection of user input, every value checked (ConfigError naming the parameter
        and the value); `flags` names them as the CLI's options (--job, --since...)."""
        prefix = "--" if flags else ""
        first, last = check_window(since, until, flags=flags)
        return cls(job_ids=check_job_ids(jobs, name=f"{prefix}job" if flags else "jobs"),
                   scope=check_scope(scope, name=f"{prefix}scope"), since=first, until=last)


def check_day(value: object, name: str) -> date | None:
    """A day given as a `datetime.date` or an ISO "YYYY-MM-DD" string (None: not given)."""
    if value is None:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_DAY.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"{name} must be a day (a datetime.date or 'YYYY-MM-DD'), got {value!r}")


def check_window(since: object, until: object, *, flags: bool = False
                 ) -> tuple[date | None, date | None]:
    """`since` and `until` as days, refused when `since` is after `until`."""
    prefix = "--" if flags else ""
    first = check_day(since, f"{prefix}since")
    last = check_day(until, f"{prefix}until")
    if first is not None and last is not None and first > last:
        raise ConfigError(f"{prefix}since {first} is after {prefix}until {last}: "
                          "no run window can start between them")
    return first, last


def check_scope(scope: object, *, name: str = "scope") -> str | None:
    """One of SCOPES, or None (every scope)."""
    if scope is None or (isinstance(scope, str) and scope in SCOPES):
        return scope
    hint = ""
    if isinstance(scope, str):
        close = difflib.get_close_matches(scope.strip().lower(), SCOPES, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
    raise ConfigError(f"{name} must be one of {', '.join(SCOPES)}, got {scope!r}{hint}")


def check_job_ids(jobs: object, *, name: str = "jobs") -> tuple[int, ...]:
    """Job ids: a collection of positive integers."""
    if isinstance(jobs, (str, bytes)) or not isinstance(jobs, Iterable):
        raise ConfigError(f"{name} must be a list of job ids (positive integers), got {jobs!r}")
    out: list[int] = []
    for job in jobs:
        if isinstance(job, bool) or not isinstance(job, numbers.Integral) or job < 1:
            raise ConfigError(f"{name}: a job id is a positive integer, got {job!r}")
        out.append(int(job))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SkippedJob:
    job: Job
    reason: str


def select_jobs(jobs: Iterable[Job], selection: Selection) -> tuple[list[Job], list[SkippedJob]]:
    """The jobs to sync, and the ones left out with why (unknown scope or format)."""
    chosen: list[Job] = []
    skipped: list[SkippedJob] = []
    for job in jobs:
        if selection.job_ids and job.job_id not in selection.job_ids:
            continue
        if selection.scope and job.scope != selection.scope:
            continue
        if job.scope not in SCOPES:
            skipped.append(SkippedJob(job, f"scope {job.scope!r} is not supported"))
        elif job.format not in SUPPORTED_FORMATS:
            skipped.append(SkippedJob(job, f"format {job.format!r} is not supported"))
        else:
            chosen.append(job)
    return chosen, skipped


def run_order(run: Run) -> tuple[datetime, int]:
    """The order in which runs supersede each other: by finish time, then by id."""
    return (run.finished_at or run.created_at or _EPOCH, run.run_id)


def in_window(run: Run, selection: Selection) -> bool:
    if run.start_date is None:
        return selection.since is None and selection.until is None
    day = run.start_date.astimezone(UTC).date()
    if selection.since is not None and day < selection.since:
        return False
    return not (selection.until is not None and day > selection.until)


def select_runs(runs: Iterable[Run], done: Collection[int], selection: Selection) -> list[Run]:
    """Successful runs not yet in the ledger (loaded, or recorded expired), oldest first."""
    fresh = [
        run for run in runs
        if run.state == "SUCCESS" and run.run_id not in done and in_window(run, selection)
    ]
    return sorted(fresh, key=run_order)


def missing_jobs(selection: Selection, found: Sequence[Job]) -> list[int]:
    """Job ids the user named that the API does not list."""
    seen = {job.job_id for job in found}
    return [job_id for job_id in selection.job_ids if job_id not in seen]
