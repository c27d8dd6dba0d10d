"""What a backfill's result is checked against: the simulator's truth, read back from DuckDB or
from a lake (through `csload.connect(parquet=ROOT)`, which reads each table's Delta log)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb

import csload
from csload.simulator import JobRecord, Simulator

FIELDS = ("session_id", "view_number", "user_id", "view_time", "url:page_url",
          "custom_var:1:user_type", "scroll_rate")
# Compared exactly, row by row (scroll_rate is a Float32: compared with a tolerance).
COLUMNS = ("session_id", "view_number", "user_id", "view_time", "page_url", "user_type")
HIGH = 1 << 63
# The simulator's daily views job, mapped away from `views` (tables=, csload.toml [tables]):
# the backfills of the tests export other fields into the scope's table, which a sync would
# otherwise keep for that job (such a backfill is refused: csload.backfills.tables).
VIEWS_ELSEWHERE = {1121: "daily_views"}


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def backfill_jobs(sim: Simulator) -> list[JobRecord]:
    return [job for job in sim.jobs
            if job.frequency == "once" and job.name.startswith("csload backfill")]


def truth_rows(sim: Simulator, job: JobRecord) -> list[tuple[Any, ...]]:
    """The rows of the job's (single) run, as (key columns..., scroll_rate)."""
    (run,) = sim.runs(job.job_id)
    return sorted((*(row[c] for c in COLUMNS), row["scroll_rate"])
                  for row in sim.truth(job.job_id, run.run_id))


def table_rows(db: Path, table: str = "views", where: str = "true",
               params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return sorted(con.execute(
            f"SELECT {', '.join(COLUMNS)}, scroll_rate FROM {table} WHERE {where}",  # noqa: S608
            params or []).fetchall())
    finally:
        con.close()


def query(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def lake_query(root: str | Path, sql: str, params: list[Any] | None = None,
               options: dict[str, str] | None = None) -> list[tuple[Any, ...]]:
    """Run `sql` on the lake's current version (its tables and its `_csload_*` ledger)."""
    con = csload.connect(parquet=str(root), storage_options=options)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def lake_rows(root: str | Path, table: str = "views", where: str = "true",
              params: list[Any] | None = None,
              options: dict[str, str] | None = None) -> list[tuple[Any, ...]]:
    """`table_rows`, read from a lake."""
    return sorted(lake_query(
        root, f"SELECT {', '.join(COLUMNS)}, scroll_rate FROM {table} WHERE {where}",  # noqa: S608
        params, options))


def assert_same_rows(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> None:
    """Row by row: the exact columns equal, scroll_rate within Float32 precision."""
    assert len(got) == len(want)
    for mine, theirs in zip(got, want, strict=True):
        assert mine[:-1] == theirs[:-1]
        if theirs[-1] is None:
            assert mine[-1] is None
        else:
            assert mine[-1] is not None and abs(mine[-1] - theirs[-1]) < 1e-3
