"""Which jobs and runs a sync should load, given what the ledger already holds. Pure functions."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date

from csload.api.checks import check_job_ids, check_scope, check_window
from csload.api.models import Job, Run
from csload.api.schemas import SCOPES
from csload.errors import ConfigError
from csload.load.supersede import run_order

SUPPORTED_FORMATS = ("CSV", "JSONL")


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
        if job.unreadable:   # refused by the placement, which says why (and exits 3)
            chosen.append(job)
        elif job.scope not in SCOPES:
            skipped.append(SkippedJob(job, f"scope {job.scope!r} is not supported"))
        elif job.format not in SUPPORTED_FORMATS:
            skipped.append(SkippedJob(job, f"format {job.format!r} is not supported"))
        else:
            chosen.append(job)
    return chosen, skipped


def in_window(run: Run, selection: Selection) -> bool:
    if run.start_date is None:
        return selection.since is None and selection.until is None
    day = run.start_date.astimezone(UTC).date()
    if selection.since is not None and day < selection.since:
        return False
    return not (selection.until is not None and day > selection.until)


def select_runs(runs: Iterable[Run], done: Collection[int], selection: Selection) -> list[Run]:
    """Successful runs not yet in the ledger (loaded, or recorded expired), in the order in
    which they supersede each other (csload.load.supersede.run_order): the later run wins."""
    fresh = [
        run for run in runs
        if run.state == "SUCCESS" and run.run_id not in done and in_window(run, selection)
    ]
    return sorted(fresh, key=run_order)


def missing_jobs(selection: Selection, found: Sequence[Job]) -> list[int]:
    """Job ids the user named that the API does not list."""
    seen = {job.job_id for job in found}
    return [job_id for job_id in selection.job_ids if job_id not in seen]


def check_jobs_listed(selection: Selection, found: Sequence[Job]) -> None:
    """ConfigError naming the job ids the user named that the API does not list."""
    missing = missing_jobs(selection, found)
    if missing:
        raise ConfigError(f"no such export job: {', '.join(map(str, missing))}")
