"""`AppliedRun`: what the load stage's store did with one run of a batch; `UnloadedRun`: a run
the sync could not load, for the store to record.

(The sync's report has its own per-run record, csload.pipeline.report.RunOutcome, built from
this one and the stages before the load.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from csload.api.models import Job, Run
from csload.errors import CsloadError

AppliedStatus = Literal["loaded", "skipped", "failed", "damaged"]


@dataclass(frozen=True, slots=True)
class AppliedRun:
    """What `apply` did with one run. `skipped`: the ledger already had it as loaded.
    `damaged`: nothing done or recorded, because the gzip streams of `error.part_ids` are
    damaged (error is a DamagedDownload): download them again and apply the run again."""

    job_id: int
    run_id: int
    status: AppliedStatus
    rows: int = 0          # rows of the run in the table right after it was applied
    rows_read: int = 0     # rows in its files
    bytes: int = 0
    replaced: int = 0      # rows of other runs that rows of this run replaced (key rule)
    removed: int = 0       # rows of its job's earlier runs its window dropped (window rule)
    error: CsloadError | None = None


@dataclass(frozen=True, slots=True)
class UnloadedRun:
    """A run the sync could not load, as the ledger records it: `failed` (the next sync tries
    it again) or `expired` (its files are gone: a backfill reloads its days). `table`: the
    table its job loads into (None: its scope's)."""

    job: Job
    run: Run
    status: Literal["failed", "expired"]
    message: str
    table: str | None = None
