"""`csload status`: what a database holds, read from its ledger (no API call)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from csload.backfill_ledger import BackfillLedger
from csload.errors import StoreError
from csload.ledger import Ledger, RunRecord, TableStats
from csload.load import connect


@dataclass(frozen=True, slots=True)
class JobStatus:
    job_id: int
    name: str
    scope: str
    frequency: str
    table: str
    last_window: tuple[datetime | None, datetime | None] | None
    gaps: tuple[date, ...] = ()


@dataclass(frozen=True, slots=True)
class StoreStatus:
    target: str
    tables: tuple[TableStats, ...]
    jobs: tuple[JobStatus, ...]
    failed: tuple[RunRecord, ...] = field(default=())
    expired: tuple[RunRecord, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        def iso(value: date | datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        def run(record: RunRecord) -> dict[str, Any]:
            return {"jobId": record.job_id, "runId": record.run_id, "table": record.table,
                    "windowStart": iso(record.window_start), "windowEnd": iso(record.window_end),
                    "message": record.message}

        return {
            "target": self.target,
            "tables": [{"table": t.table, "rows": t.rows, "firstDate": iso(t.first_date),
                        "lastDate": iso(t.last_date)} for t in self.tables],
            "jobs": [{"jobId": j.job_id, "name": j.name, "scope": j.scope,
                      "frequency": j.frequency, "table": j.table,
                      "lastWindowStart": iso(j.last_window[0]) if j.last_window else None,
                      "lastWindowEnd": iso(j.last_window[1]) if j.last_window else None,
                      "gaps": [iso(d) for d in j.gaps]} for j in self.jobs],
            "failedRuns": [run(r) for r in self.failed],
            "expiredRuns": [run(r) for r in self.expired],
        }


def read_status(db: str | Path) -> StoreStatus:
    """The status of the csload database at `db` (which must exist)."""
    path = Path(db)
    if not path.is_file():
        raise StoreError(f"no database at {path}: run `csload sync --db {path}` first")
    con = connect(path, read_only=True)
    try:
        ledger = Ledger(con)
        if not ledger.exists():
            raise StoreError(f"{path} is not a csload database (no _csload_runs table)")
        windows = ledger.last_loaded_windows()
        # Days a backfill filled are covered; days whose files expired unloaded are gaps: the
        # same days `csload backfill --gaps` fills.
        gaps = BackfillLedger(con).coverage_gaps()
        jobs = tuple(
            JobStatus(job_id=job_id, name=job.name, scope=job.scope, frequency=job.frequency,
                      table=table, last_window=windows.get(job_id),
                      gaps=tuple(gaps.get(job_id, ())))
            for job_id, (job, table) in sorted(ledger.jobs().items())
        )
        return StoreStatus(target=str(path), tables=tuple(ledger.table_stats()), jobs=jobs,
                           failed=tuple(ledger.failed_runs()),
                           expired=tuple(ledger.expired_runs()))
    finally:
        con.close()


def read_target_status(*, db: str | Path | None = None, parquet: str | None = None,
                       storage_options: Mapping[str, str] | None = None) -> StoreStatus:
    """The status of a DuckDB database (`db`) or of a Parquet lake (`parquet`)."""
    from csload.target import Target

    target = Target.of(db=db, parquet=parquet, storage_options=storage_options)
    if target.parquet is not None:
        from csload.lake import read_lake_status

        return read_lake_status(target.parquet, storage_options=target.storage_options)
    assert target.db is not None
    return read_status(target.db)
