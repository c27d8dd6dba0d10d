"""The hand-off from the transfer stage to the load stage: a run whose parts are all on disk.

    StagedPart, StagedRun   what csload.transfer.stage made and a store applies
    check_run_parts         the cap on the parts one run may list ([limits] max_run_parts),
                            checked before anything of it is downloaded, and again by a store
                            given runs directly (doctor's trial load, tests)
    check_run_times         a run's window and times, which order and replace loaded runs,
                            checked before anything of it is downloaded
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from csload.errors import ConfigError, part_label

if TYPE_CHECKING:
    # Types only: a staged run carries the API's objects as they came.
    from csload.api.models import Job, Run
    from csload.config import Limits


@dataclass(frozen=True, slots=True)
class StagedPart:
    part_id: int
    path: Path
    bytes: int


@dataclass(frozen=True, slots=True)
class StagedRun:
    """A successful run whose parts are all on local disk. `table` defaults to the job's scope."""

    job: Job
    run: Run
    parts: tuple[StagedPart, ...]
    table: str = ""

    def __post_init__(self) -> None:
        if not self.table:
            object.__setattr__(self, "table", self.job.scope)


def check_run_parts(job_id: int, run_id: int, parts: int, limits: Limits) -> None:
    """ConfigError when a run lists more parts than `limits.max_run_parts`."""
    if parts > limits.max_run_parts:
        raise ConfigError(
            f"{part_label(job_id, run_id, None)}: the run lists {parts} parts, more than the "
            f"{limits.max_run_parts} csload loads in one run; raise [limits] max_run_parts "
            "to load it")


# The longest window a run may have, by its job's frequency: a day, an hour, or a `once` range
# of at most 7 days widened to whole days (contract section 4), with room for a service that
# draws a day another way (a project's time zone, a day of daylight saving).
_MAX_WINDOW = {"daily": timedelta(days=2), "hourly": timedelta(days=2)}
_MAX_OTHER_WINDOW = timedelta(days=8)
# How far ahead of this machine's clock a run's times may be (the clock may be behind).
_CLOCK_SKEW = timedelta(days=1)


def check_run_times(job: Job, run: Run, now: datetime) -> None:
    """ConfigError when a run's window or times cannot be those of a real export: a window
    that ends before it starts, or longer than its job's frequency allows; a creation or
    finish time more than a day ahead of `now`; a run of the run list that could not be read
    (`Run.unreadable`). By the window rule, a daily run of
    2000-01-01..2100-01-01 replaced every loaded day of its job (rows removed, exit 0); ordered
    by a finish time in year 9999, a run kept every later re-run from replacing its rows."""
    if run.unreadable is not None:
        raise ConfigError(f"{run.unreadable} (in the API's run list)")
    label = part_label(job.job_id, run.run_id, None)
    problem = None
    if run.start_date is not None and run.end_date is not None:
        length = run.end_date - run.start_date
        longest = _MAX_WINDOW.get(job.frequency, _MAX_OTHER_WINDOW)
        if length <= timedelta(0):
            problem = (f"its window ({run.start_date:%Y-%m-%d %H:%M} to "
                       f"{run.end_date:%Y-%m-%d %H:%M} UTC) ends before it starts")
        elif length > longest:
            spans = (f"{length.days:,} days" if length % timedelta(days=1) == timedelta(0)
                     else f"{length / timedelta(hours=1):,.0f} hours")
            kind = f"{'an' if job.frequency == 'hourly' else 'a'} {job.frequency} run's"
            problem = (f"its window ({run.start_date:%Y-%m-%d %H:%M} to "
                       f"{run.end_date:%Y-%m-%d %H:%M} UTC) spans {spans}, more than {kind} "
                       f"{longest.days} days at most; loaded, it would replace the job's other "
                       "runs over all those days")
    for what, value in (("finished", run.finished_at), ("created", run.created_at)):
        if problem is None and value is not None and value > now + _CLOCK_SKEW:
            # Most often this machine's clock is behind, for every run: say so (QA).
            problem = (f"it was {what} at {value:%Y-%m-%d %H:%M} UTC, ahead of this "
                       f"machine's clock ({now:%Y-%m-%d %H:%M} UTC); loaded, it would count as "
                       "later than every re-run of its days. If this machine's clock is "
                       "behind, set it right (NTP; `csload doctor` compares it with the API's)")
    if problem is not None:
        raise ConfigError(f"{label}: the API's run cannot be an export: {problem}. It is not "
                          "loaded; the next csload sync checks it again")
