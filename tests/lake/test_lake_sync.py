"""A full sync of the simulator into a lake (local and S3): the lake holds the truth.

Runs are listed and downloaded with the real API client over HTTP from the simulator, then
applied with `ParquetStore` as the pipeline does (batches of ready runs).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from csload.config import Settings
from csload.simulator import Simulator
from tests.support.lakeref import assert_rows_equal, expected, stage_runs
from tests.support.lakeutil import Lake


def assert_lake_holds(lake: Lake, sim: Simulator, run_ids: list[int]) -> None:
    want = expected(sim, run_ids)
    assert set(lake.snapshot().tables) == set(want)
    for table, rows in want.items():
        assert_rows_equal(lake.rows(table), rows, table)
        # a folder-listing reader counts the same rows, each key once
        assert lake.listed(table, "SELECT count(*) FROM t") == [(len(rows),)]


async def test_full_sync_holds_the_truth_and_resync_writes_nothing(
        lake: Lake, simulator: Simulator, settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    staged = await stage_runs(settings, folder)
    run_ids = [s.run.run_id for s in staged]
    assert len(run_ids) == 7   # 3 days x 2 daily jobs + the legacy job's one success
    with lake.open() as store:
        outcomes = store.apply(staged[:3])
        outcomes += store.apply(staged[3:])
    assert [o.status for o in outcomes] == ["loaded"] * len(staged)
    assert_lake_holds(lake, simulator, run_ids)

    # one file per day and table, the DuckDB target's types through csload, Delta's in the log
    snapshot = lake.snapshot()
    for table, entry in snapshot.tables.items():
        assert all(len(files) == 1 for files in entry.files.values()), table
        assert all(f.endswith(".parquet") and "/date=" in f for f in entry.files_of())
    types = dict(snapshot.tables["views"].columns)
    assert types["session_id"] == "UBIGINT" and types["view_time"] == "TIMESTAMP"
    assert types["_date"] == "DATE" and types["_run_id"] == "UBIGINT"
    assert any(t.endswith("[]") for t in types.values())
    delta = {f.name: f.type.type for f in lake.delta("views").schema().fields
             if isinstance(getattr(f.type, "type", None), str)}
    assert delta["session_id"] == "decimal(20,0)" and delta["view_time"] == "timestamp"

    before = lake.files()
    with lake.open() as store:
        again = store.apply(staged)
    assert {o.status for o in again} == {"skipped"}
    assert lake.files() == before

    # a re-run of a day replaces it (a new revision of the day's data)
    views_job = next(s.job for s in staged if s.job.scope == "views")
    rerun = simulator.rerun(views_job.job_id, date(2026, 11, 23))
    more = await stage_runs(settings, folder, [rerun])
    with lake.open() as store:
        [outcome] = store.apply(more)
    assert outcome.status == "loaded"
    assert_lake_holds(lake, simulator, [*run_ids, rerun])

    status = lake.status()
    assert status.target == lake.root
    assert {t.table: t.rows for t in status.tables} == {
        t: len(rows) for t, rows in expected(simulator, [*run_ids, rerun]).items()}
    assert {j.job_id for j in status.jobs} == {s.job.job_id for s in staged}
