"""What a backfill did: one item per window, the days it could not get, and its events."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from csload.backfills.plan import UnavailableDays, Window
from csload.pipeline.report import Report, SyncEvent

__all__ = [
    "BackfillEvent",
    "BackfillEventKind",
    "BackfillItem",
    "BackfillReport",
    "BackfillSink",
    "BackfillStatus",
    "ignore_backfill_events",
]


class BackfillStatus(enum.StrEnum):
    LOADED = "loaded"                  # loaded by this backfill
    ALREADY_LOADED = "already_loaded"  # loaded before (a resumed backfill)
    FAILED = "failed"                  # the API refused the job, its run failed, or its load
    PLANNED = "planned"                # --dry-run: what would be done


@dataclass(frozen=True, slots=True, kw_only=True)
class BackfillItem:
    """One window of a backfill and what became of it."""

    scope: str
    table: str
    window: Window
    status: BackfillStatus
    job_id: int | None = None
    job_name: str = ""
    run_id: int | None = None
    created: bool = False  # this backfill created the job (else it reused one)
    like_job_id: int | None = None
    rows: int = 0
    action: str = ""       # dry run: what would be done
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "scope": self.scope, "table": self.table,
            "from": self.window.start.isoformat(), "to": self.window.last.isoformat(),
            "status": self.status.value, "jobId": self.job_id, "jobName": self.job_name,
            "runId": self.run_id, "created": self.created, "likeJobId": self.like_job_id,
            "rows": self.rows, "action": self.action or None, "message": self.message,
        }


@dataclass(slots=True, kw_only=True)
class BackfillReport(Report):
    """The result of one backfill (or of one dry run)."""

    gaps: bool = False
    items: list[BackfillItem] = field(default_factory=list)
    unavailable: list[UnavailableDays] = field(default_factory=list)
    # Daily jobs whose gaps `--gaps` could not plan (the API's definition unreadable).
    unplanned: list[int] = field(default_factory=list)

    def of_status(self, status: BackfillStatus) -> list[BackfillItem]:
        return [item for item in self.items if item.status is status]

    @property
    def loaded(self) -> list[BackfillItem]:
        return self.of_status(BackfillStatus.LOADED)

    @property
    def failed(self) -> list[BackfillItem]:
        return self.of_status(BackfillStatus.FAILED)

    @property
    def jobs_created(self) -> list[int]:
        return [item.job_id for item in self.items if item.created and item.job_id is not None]

    @property
    def rows(self) -> int:
        return sum(item.rows for item in self.loaded)

    @property
    def incomplete(self) -> bool:
        """When a window failed, or a job's gaps could not be planned (exit 3: a later
        backfill fills them). Days no job can export are warnings, not failures."""
        return bool(self.failed or self.unplanned)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.json_head(gaps=self.gaps),
            "windows": len(self.items), "windowsLoaded": len(self.loaded),
            "windowsAlreadyLoaded": len(self.of_status(BackfillStatus.ALREADY_LOADED)),
            "windowsFailed": len(self.failed), "jobsCreated": self.jobs_created,
            "rows": self.rows, "exitCode": self.exit_code,
            "unavailableDays": [u.to_json() for u in self.unavailable],
            "jobsNotPlanned": list(self.unplanned),
            "warnings": list(self.warnings),
            "items": [item.to_json() for item in self.items],
        }


class BackfillEventKind(enum.StrEnum):
    PLANNED = "planned"            # windows: how many; message: the plan in a line
    JOB_CREATED = "job_created"
    JOB_REUSED = "job_reused"      # message: the job's state
    WAITING = "waiting"            # state, elapsed (seconds since the job was created)
    RUN_FINISHED = "run_finished"  # state
    LOADING = "loading"
    LOADED = "loaded"              # rows
    SKIPPED = "skipped"            # already loaded
    FAILED = "failed"              # message
    MESSAGE = "message"            # a plain line worth showing (trimmed days, warnings)
    SYNC = "sync"                  # sync_event: an event of the sync loading the run


@dataclass(frozen=True, slots=True, kw_only=True)
class BackfillEvent:
    kind: BackfillEventKind
    window: Window | None = None
    scope: str | None = None
    job_id: int | None = None
    run_id: int | None = None
    state: str | None = None
    elapsed: float | None = None
    windows: int = 0
    rows: int = 0
    message: str | None = None
    sync_event: SyncEvent | None = None


BackfillSink = Callable[[BackfillEvent], None]


def ignore_backfill_events(event: BackfillEvent) -> None:
    """The default sink: library callers who want no progress."""
