"""What a sync did: per-run outcomes, totals, the exit code, and the progress events it emits.

`Report` is what every report shares (a sync's here, a backfill's in csload.backfills.report):
the target, the times, the warnings, the exit code rule and the head of the JSON.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from csload.times import iso_z, utcnow

if TYPE_CHECKING:
    from csload.load.placement import Placement

EXIT_OK = 0
EXIT_SOME_RUNS_FAILED = 3


class RunStatus(enum.StrEnum):
    LOADED = "loaded"
    FAILED = "failed"
    EXPIRED = "expired"
    # The run FAILED at Contentsquare: it has no files; recorded in the ledger (status
    # `source_failed`) so that its days count as gaps, which `csload backfill --gaps` fills.
    SOURCE_FAILED = "source_failed"
    PLANNED = "planned"  # --dry-run: would be downloaded and loaded


# Outcomes that make a sync exit with EXIT_SOME_RUNS_FAILED: runs it should have loaded and
# did not. A run that FAILED at Contentsquare is not one: it never had anything to load, and
# no sync could do better; the report lists it (`source_failed`), the ledger keeps it as a
# gap, and `csload status` shows it until a backfill fills its days.
PROBLEMS = (RunStatus.FAILED, RunStatus.EXPIRED)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOutcome:
    job_id: int
    run_id: int
    table: str
    status: RunStatus
    window_start: datetime | None = None
    window_end: datetime | None = None
    parts: int = 0
    bytes: int = 0
    rows: int = 0          # rows in the run's files
    # What loading the run did to the table (csload.load.supersede): rows it added (new keys,
    # or rows of a keyless job), rows already there that its rows replaced (same key, an
    # earlier run), and rows of earlier runs of its job over the same window that it no
    # longer has, removed. Rows are never merged: see csload.placement.
    added: int = 0
    replaced: int = 0
    removed: int = 0
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "runId": self.run_id,
            "table": self.table,
            "status": self.status.value,
            "windowStart": iso_z(self.window_start),
            "windowEnd": iso_z(self.window_end),
            "parts": self.parts,
            "bytes": self.bytes,
            "rows": self.rows,
            "rowsAdded": self.added,
            "rowsReplaced": self.replaced,
            "rowsRemoved": self.removed,
            "message": self.message,
        }


@dataclass(slots=True)
class JobTotals:
    job_id: int
    table: str
    runs: int = 0
    rows: int = 0
    added: int = 0
    replaced: int = 0
    removed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"jobId": self.job_id, "table": self.table, "runsLoaded": self.runs,
                "rows": self.rows, "rowsAdded": self.added, "rowsReplaced": self.replaced,
                "rowsRemoved": self.removed}


@dataclass(slots=True, kw_only=True)
class Report:
    """What a sync's and a backfill's reports share."""

    target: str
    dry_run: bool = False
    started_at: datetime = field(default_factory=utcnow)
    finished_at: datetime | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def incomplete(self) -> bool:
        """Whether some of the work asked for was not done (the exit code says so)."""
        raise NotImplementedError

    @property
    def exit_code(self) -> int:
        """EXIT_SOME_RUNS_FAILED when the report is `incomplete`, else EXIT_OK. A dry run's
        outcomes are predictions: its exit code predicts the real command's."""
        return EXIT_SOME_RUNS_FAILED if self.incomplete else EXIT_OK

    @property
    def seconds(self) -> float:
        end = self.finished_at or utcnow()
        return (end - self.started_at).total_seconds()

    def json_head(self, **fields: Any) -> dict[str, Any]:
        """The JSON's first keys: the target and whether it was a dry run, `fields` (the
        report's own options), then the times."""
        return {"target": self.target, "dryRun": self.dry_run, **fields,
                "startedAt": iso_z(self.started_at), "finishedAt": iso_z(self.finished_at)}


@dataclass(slots=True, kw_only=True)
class SyncReport(Report):
    """The result of one sync (or of one dry run)."""

    runs: list[RunOutcome] = field(default_factory=list)
    # The table of each job the sync selected, and why (csload.load.placement); refused jobs had
    # none of their runs loaded.
    jobs: list[Placement] = field(default_factory=list)

    @property
    def refused(self) -> list[Placement]:
        return [p for p in self.jobs if p.refused]

    def job_totals(self) -> list[JobTotals]:
        """Per job with runs in this report: runs loaded and what their rows did."""
        totals: dict[int, JobTotals] = {}
        for run in self.loaded:
            item = totals.setdefault(run.job_id, JobTotals(run.job_id, run.table))
            item.runs += 1
            item.rows += run.rows
            item.added += run.added
            item.replaced += run.replaced
            item.removed += run.removed
        return [totals[k] for k in sorted(totals)]

    def final(self) -> list[RunOutcome]:
        """Each run's last outcome, in the order the runs first appear in `runs`.

        A run can have more than one outcome in a sync (a run whose load failed and that was
        applied again, once its damaged parts were downloaded again, say): only the last one
        says what the target holds. `loaded`, `failed`, `expired`, `source_failed`, the
        totals, `exit_code` and `to_json` all read these, so they always agree.
        """
        last: dict[int, RunOutcome] = {}
        for run in self.runs:
            last[run.run_id] = run   # a dict keeps the key's first place, with the last value
        return list(last.values())

    def of_status(self, status: RunStatus) -> list[RunOutcome]:
        return [run for run in self.final() if run.status is status]

    @property
    def loaded(self) -> list[RunOutcome]:
        return self.of_status(RunStatus.LOADED)

    @property
    def failed(self) -> list[RunOutcome]:
        return self.of_status(RunStatus.FAILED)

    @property
    def expired(self) -> list[RunOutcome]:
        return self.of_status(RunStatus.EXPIRED)

    @property
    def source_failed(self) -> list[RunOutcome]:
        return self.of_status(RunStatus.SOURCE_FAILED)

    @property
    def problems(self) -> list[RunOutcome]:
        """The runs this sync should have loaded and did not: failed or expired (see
        PROBLEMS). A dry run's outcomes are predictions: its exit code predicts the sync's."""
        return [run for run in self.final() if run.status in PROBLEMS]

    @property
    def rows(self) -> int:
        return sum(run.rows for run in self.loaded)

    @property
    def bytes(self) -> int:
        return sum(run.bytes for run in self.final() if run.status is not RunStatus.FAILED)

    @property
    def incomplete(self) -> bool:
        """Exactly when `problems` is not empty, or a job is `refused` with runs left to load
        (they are not loaded either)."""
        return bool(self.problems or any(p.unloaded != 0 for p in self.refused))

    def to_json(self) -> dict[str, Any]:
        return {
            **self.json_head(),
            "seconds": round(self.seconds, 3),
            "runsLoaded": len(self.loaded),
            "runsFailed": len(self.failed),
            "runsExpired": len(self.expired),
            "runsSourceFailed": len(self.source_failed),
            "runsPlanned": len(self.of_status(RunStatus.PLANNED)),
            "rows": self.rows,
            "bytes": self.bytes,
            "exitCode": self.exit_code,
            "warnings": list(self.warnings),
            "jobs": [p.to_json() for p in self.jobs],
            "jobTotals": [t.to_json() for t in self.job_totals()],
            "runs": [run.to_json() for run in self.final()],
        }


class EventKind(enum.StrEnum):
    PLANNED = "planned"              # runs in all; message: per table (planned_event)
    PART_DOWNLOADED = "part"         # one part on disk: bytes
    # The writer starts applying a batch of staged runs to `table` (runs, parts, bytes): the
    # load and its commit, one transaction, until the batch's RUN_* events.
    LOADING = "loading"
    RUN_LOADED = "run_loaded"        # rows
    RUN_FAILED = "run_failed"
    RUN_EXPIRED = "run_expired"
    # A run that FAILED at Contentsquare, now recorded in the ledger (committed) as a gap;
    # message: what happened. Not a run of the plan: it had nothing to load.
    RUN_SOURCE_FAILED = "run_source_failed"
    MESSAGE = "message"              # a plain line worth showing (a skipped job, ...)


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncEvent:
    kind: EventKind
    job_id: int | None = None
    run_id: int | None = None
    runs: int = 0
    parts: int = 0
    bytes: int = 0
    rows: int = 0
    message: str | None = None
    table: str | None = None


EventSink = Callable[[SyncEvent], None]


def ignore_events(event: SyncEvent) -> None:
    """The default sink: library callers who want no progress."""


def planned_event(tables: list[str]) -> SyncEvent:
    """PLANNED for runs that load into `tables` (one name per run): how many in all, and per
    table. Their parts and bytes are not known yet: only a run's detail lists its files."""
    per_table: dict[str, int] = {}
    for table in tables:
        per_table[table] = per_table.get(table, 0) + 1
    return SyncEvent(kind=EventKind.PLANNED, runs=len(tables),
                     message=", ".join(f"{name} {count}"
                                       for name, count in sorted(per_table.items())) or None)
