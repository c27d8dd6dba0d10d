"""What a sync did: per-run outcomes, totals, the exit code, and the progress events it emits."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

EXIT_OK = 0
EXIT_SOME_RUNS_FAILED = 3


class RunStatus(enum.StrEnum):
    LOADED = "loaded"
    FAILED = "failed"
    EXPIRED = "expired"
    PLANNED = "planned"  # --dry-run: would be downloaded and loaded


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
    rows: int = 0
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "runId": self.run_id,
            "table": self.table,
            "status": self.status.value,
            "windowStart": _iso(self.window_start),
            "windowEnd": _iso(self.window_end),
            "parts": self.parts,
            "bytes": self.bytes,
            "rows": self.rows,
            "message": self.message,
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(slots=True, kw_only=True)
class SyncReport:
    """The result of one sync (or of one dry run)."""

    target: str
    dry_run: bool = False
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    runs: list[RunOutcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def of_status(self, status: RunStatus) -> list[RunOutcome]:
        return [run for run in self.runs if run.status is status]

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
    def rows(self) -> int:
        return sum(run.rows for run in self.loaded)

    @property
    def bytes(self) -> int:
        return sum(run.bytes for run in self.runs if run.status is not RunStatus.FAILED)

    @property
    def seconds(self) -> float:
        end = self.finished_at or datetime.now(UTC)
        return (end - self.started_at).total_seconds()

    @property
    def exit_code(self) -> int:
        return EXIT_SOME_RUNS_FAILED if self.failed or self.expired else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "dryRun": self.dry_run,
            "startedAt": _iso(self.started_at),
            "finishedAt": _iso(self.finished_at),
            "seconds": round(self.seconds, 3),
            "runsLoaded": len(self.loaded),
            "runsFailed": len(self.failed),
            "runsExpired": len(self.expired),
            "runsPlanned": len(self.of_status(RunStatus.PLANNED)),
            "rows": self.rows,
            "bytes": self.bytes,
            "exitCode": self.exit_code,
            "warnings": list(self.warnings),
            "runs": [run.to_json() for run in self.runs],
        }


class EventKind(enum.StrEnum):
    PLANNED = "planned"              # runs: how many runs this sync will fetch
    PART_DOWNLOADED = "part"         # one part on disk: bytes
    RUN_LOADED = "run_loaded"        # rows
    RUN_FAILED = "run_failed"
    RUN_EXPIRED = "run_expired"
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


EventSink = Callable[[SyncEvent], None]


def ignore_events(event: SyncEvent) -> None:
    """The default sink: library callers who want no progress."""
