"""One window of a backfill's plan, as the backfill resolves it and works it through
(csload.backfills.work): its phase, the job and run found or made for it, what it reports."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from csload.api.models import Job, Run
from csload.backfills.plan import Template, Window, job_name
from csload.backfills.report import BackfillItem, BackfillStatus

__all__ = ["Phase", "Piece"]


class Phase(enum.Enum):
    CREATE = "create"
    WAIT = "wait"
    LOAD = "load"
    DONE = "done"


@dataclass(slots=True)
class Piece:
    """One window of the plan, as it is resolved and worked through."""

    template: Template
    window: Window
    phase: Phase = Phase.CREATE
    job: Job | None = None
    run: Run | None = None
    loaded_run: int | None = None
    # When this backfill created the job, by its own clock (the wait's start: see `wait`);
    # None for a job it found (made by an earlier backfill) or has not created yet.
    created_here_at: datetime | None = None
    state: str | None = None
    # Jobs made for this window before whose run cannot deliver (failed, or files gone).
    unusable: set[int] = field(default_factory=set)

    @property
    def created(self) -> bool:
        """Whether this backfill created the piece's job."""
        return self.created_here_at is not None

    @property
    def name(self) -> str:
        return job_name(self.template, self.window)

    def item(self, status: BackfillStatus, **values: Any) -> BackfillItem:
        job_id = self.job.job_id if self.job is not None else None
        run_id = self.run.run_id if self.run is not None else self.loaded_run
        base: dict[str, Any] = {
            "scope": self.template.scope, "table": self.template.table,
            "window": self.window, "status": status, "job_id": job_id,
            "job_name": self.name, "run_id": run_id, "created": self.created,
            "like_job_id": self.template.like_job_id,
        }
        base.update(values)
        return BackfillItem(**base)

    def stub_job(self, job_id: int) -> Job:
        """A job the API no longer lists but whose run was loaded: enough to report it."""
        t = self.template
        return Job(job_id=job_id, name=self.name, format=t.format, scope=t.scope,
                   frequency="once", fields=t.fields)
