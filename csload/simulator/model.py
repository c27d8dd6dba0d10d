"""The simulator's records of jobs and runs, and the timeline that gives their state at a time.

A record stores instants (created, runnable, running, finished); its state is derived from the
clock on each read, so moving the clock is all it takes to move a run along.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

JOB_STATES = ("ACTIVE", "COMPUTING", "COMPLETED", "SUSPENDED", "DELETED")
RUN_STATES = ("CREATED", "RUNNABLE", "RUNNING", "SUCCESS", "FAILURE")
FORMATS = ("CSV", "JSONL")
FREQUENCIES = ("daily", "hourly", "once")
DEVICE_LABELS = ("all", "desktop", "mobile", "tablet")
# device_id values each deviceLabel keeps (contract section 8); "all" keeps every row.
DEVICE_IDS: dict[str, frozenset[int] | None] = {
    "all": None,
    "desktop": frozenset({1}),
    "mobile": frozenset({2, 4}),
    "tablet": frozenset({3, 5}),
}
CUSTOM_VAR = "custom_var"
DYNAMIC_VAR = "dynamic_var"


@dataclass(frozen=True, slots=True)
class SimField:
    """One field of a job, as created."""

    field_name: str
    alias_name: str | None = None
    custom_var_position: int | None = None
    dynamic_var_key: str | None = None

    @property
    def column_name(self) -> str:
        """The column/key in the files: the alias, else a name derived from the field."""
        if self.alias_name:
            return self.alias_name
        if self.field_name == CUSTOM_VAR:
            return f"custom_var_{self.custom_var_position}"
        if self.field_name == DYNAMIC_VAR:
            return f"dynamic_var_{self.dynamic_var_key}"
        return self.field_name

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"fieldName": self.field_name}
        if self.alias_name:
            out["aliasName"] = self.alias_name
        if self.custom_var_position is not None:
            out["customVarPosition"] = self.custom_var_position
        if self.dynamic_var_key is not None:
            out["dynamicVarKey"] = self.dynamic_var_key
        return out


@dataclass
class JobRecord:
    job_id: int
    name: str
    format: str
    scope: str
    frequency: str
    fields: tuple[SimField, ...]
    device_label: str
    segment_id: int | None
    created_at: datetime
    # Only for `once` jobs: the (widened) window.
    date_from: datetime | None = None
    date_to: datetime | None = None
    suspended_at: datetime | None = None
    # daily/hourly: start of the next window that has no run yet.
    next_window: datetime | None = None
    # daily/hourly: how long after a window's end its run is created.
    run_delay: timedelta = timedelta(0)
    # once: when its single run starts (after waiting in the queue) and finishes.
    once_start: datetime | None = None
    once_finish: datetime | None = None
    once_run_id: int | None = None

    def state(self, now: datetime) -> str:
        if self.frequency == "once":
            assert self.once_start is not None and self.once_finish is not None
            if now < self.once_start:
                return "ACTIVE"
            return "COMPUTING" if now < self.once_finish else "COMPLETED"
        if self.suspended_at is not None and now >= self.suspended_at:
            return "SUSPENDED"
        return "ACTIVE"

    @property
    def period(self) -> timedelta:
        return timedelta(hours=1) if self.frequency == "hourly" else timedelta(days=1)


@dataclass
class RunRecord:
    run_id: int
    job_id: int
    # The exported window [start, end), UTC.
    start: datetime
    end: datetime
    created_at: datetime
    runnable_at: datetime
    running_at: datetime
    finished_at: datetime
    outcome: str
    # The data revision of each day the window touches.
    revisions: tuple[tuple[date, int], ...]

    def state(self, now: datetime) -> str:
        if now < self.runnable_at:
            return "CREATED"
        if now < self.running_at:
            return "RUNNABLE"
        if now < self.finished_at:
            return "RUNNING"
        return self.outcome

    def has_files(self, now: datetime) -> bool:
        return self.state(now) == "SUCCESS"

    def files_expire_at(self, retention_days: int) -> datetime:
        return self.finished_at + timedelta(days=retention_days)


def window_days(start: datetime, end: datetime) -> list[date]:
    """The UTC days a window [start, end) touches."""
    first = start.date()
    last = (end - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
