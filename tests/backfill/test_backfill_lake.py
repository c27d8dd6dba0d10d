"""Backfills into a lake of Delta tables (`parquet=ROOT`), against the simulator over real HTTP.

The lake is read back through `csload.connect(parquet=ROOT)` (the manifest's current files and
the lake's `_csload_*` ledger). A lake holds no backfill state of its own: the backfill finds
its jobs again by their names, and what is loaded from the lake's `_csload.runs`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from csload import BackfillReport, backfill_async, read_target_status, sync_async
from csload.backfills.engine import BackfillEvent, BackfillEventKind, BackfillStatus, Window
from csload.cli import main
from csload.config import Settings
from csload.errors import ConfigError, StoreError
from csload.lake import ParquetStore
from csload.load.backfill_ledger import BackfillLedger
from csload.simulator import SimConfig, Simulator
from tests.support.bfclock import SIM_START, SimDriver
from tests.support.bfref import (
    FIELDS,
    HIGH,
    assert_same_rows,
    backfill_jobs,
    days,
    lake_query,
    lake_rows,
    truth_rows,
)
from tests.support.lakeutil import Lake
from tests.support.s3server import S3Server

FIRST, LAST = date(2026, 10, 30), date(2026, 11, 18)  # 20 days: 3 windows
WINDOWS = [Window(date(2026, 10, 30), date(2026, 11, 6)), Window(date(2026, 11, 6),
           date(2026, 11, 13)), Window(date(2026, 11, 13), date(2026, 11, 19))]

# --gaps: 10 days of daily runs, 15-24 November; at 2026-11-25 12:00 the files of the runs of
# 15-17 November are past their 7 days; 20 November is left out of the sync.
EXPIRED = days(date(2026, 11, 15), date(2026, 11, 17))
SKIPPED = date(2026, 11, 20)


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(seed=11, days=10, sessions_per_day=25, start_time=SIM_START)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "lake"


async def run_backfill(settings: Settings, driver: SimDriver, root: str | Path, *,
                       date_from: date = FIRST, date_to: date = LAST, dry_run: bool = False,
                       on_event: Callable[[BackfillEvent], None] | None = None,
                       ) -> BackfillReport:
    return await backfill_async(
        settings, scope="views", date_from=date_from, date_to=date_to, fields=FIELDS,
        parquet=str(root), dry_run=dry_run, sleep=driver.sleep, clock=driver.clock,
        poll_interval=10, on_event=on_event or (lambda _event: None))


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file of a local lake: size and modification time (ns)."""
    found: dict[str, tuple[int, int]] = {}
    for folder, _, names in os.walk(root):
        for name in names:
            stat = (Path(folder) / name).stat()
            found[str((Path(folder) / name).relative_to(root))] = (stat.st_size,
                                                                   stat.st_mtime_ns)
    return found


def assert_lake_holds_the_backfill(sim: Simulator, root: str | Path,
                                   options: dict[str, str] | None = None,
                                   first: date = FIRST, last: date = LAST) -> None:
    """Every day of the range, each row once, equal to the truth of the runs the lake loaded."""
    loaded = lake_query(root, "SELECT job_id, run_id FROM _csload.runs WHERE status = 'loaded'",
                        options=options)
    jobs = {job.job_id: job for job in backfill_jobs(sim)}
    assert {job_id for job_id, _ in loaded} <= set(jobs)
    # One run per job, each loaded once.
    assert len(loaded) == len({job_id for job_id, _ in loaded})
    want = sorted(row for job_id, _ in loaded for row in truth_rows(sim, jobs[job_id]))
    got = lake_rows(root, options=options)
    assert_same_rows(got, want)
    assert len({(r[0], r[1]) for r in got}) == len(got), "a row key appears twice"
    assert {r[0] for r in lake_query(root, "SELECT DISTINCT _date FROM views",
                                     options=options)} == set(days(first, last))
    assert any(r[0] > HIGH for r in got), "the data must hold UInt64 values above 2^63"


def whole_table(root: str | Path) -> list[tuple[Any, ...]]:
    """Every column but `_loaded_at`, in a stable order."""
    return sorted(lake_query(root, "SELECT * EXCLUDE (_loaded_at) FROM views"),
                  key=lambda row: (row[0], row[1]))


# -- a range ------------------------------------------------------------------------------------


async def test_a_range_into_a_local_lake_loads_every_day_once(
        settings: Settings, simulator: Simulator, driver: SimDriver, root: Path) -> None:
    report = await run_backfill(settings, driver, root)

    assert report.exit_code == 0, report.to_json()
    assert report.target == str(root)
    assert [item.window for item in report.items] == WINDOWS
    assert [item.status for item in report.items] == [BackfillStatus.LOADED] * 3
    jobs = backfill_jobs(simulator)
    assert report.jobs_created == [job.job_id for job in jobs] and len(jobs) == 3
    assert_lake_holds_the_backfill(simulator, root)
    assert report.rows == len(lake_rows(root))
    # The lake's ledger records the three once jobs, by name, and nothing of the backfill's
    # own: no backfill ledger table, no file of its own.
    assert sorted(lake_query(root, "SELECT name, frequency FROM _csload.jobs")) == sorted(
        (job.name, "once") for job in jobs)
    assert lake_query(root, "SELECT count(*) FROM duckdb_tables() "
                            "WHERE table_name IN ('backfills', '_csload_backfills')") == [(0,)]
    assert not [f for f in snapshot(root) if "backfill" in f]

    # Again: everything is found loaded, nothing is created or written.
    before = snapshot(root)
    again = await run_backfill(settings, driver, root)
    assert again.exit_code == 0
    assert [i.status for i in again.items] == [BackfillStatus.ALREADY_LOADED] * 3
    assert [i.job_id for i in again.items] == [job.job_id for job in jobs]
    assert again.jobs_created == [] and len(backfill_jobs(simulator)) == 3
    assert snapshot(root) == before


class Interrupted(Exception):
    pass


@pytest.mark.parametrize(("kind", "nth"), [
    (BackfillEventKind.JOB_CREATED, 2),   # the second job just created
    (BackfillEventKind.LOADING, 2),       # the second run about to be loaded
    (BackfillEventKind.LOADED, 1),        # the first run loaded, the second job on its way
], ids=["second-job-created", "second-load-starting", "first-loaded"])
async def test_an_interrupted_lake_backfill_resumes_without_a_duplicate_job(
        settings: Settings, simulator: Simulator, driver: SimDriver, tmp_path: Path,
        kind: BackfillEventKind, nth: int) -> None:
    root = tmp_path / "lake"
    seen: list[BackfillEvent] = []

    def interrupt(event: BackfillEvent) -> None:
        if event.kind is kind:
            seen.append(event)
            if len(seen) == nth:
                raise Interrupted

    with pytest.raises(Interrupted):
        await run_backfill(settings, driver, root, on_event=interrupt)
    created = [job.job_id for job in backfill_jobs(simulator)]
    assert 1 <= len(created) <= 3

    report = await run_backfill(settings, driver, root)

    assert report.exit_code == 0, report.to_json()
    jobs = backfill_jobs(simulator)
    assert len(jobs) == 3, "a job created before the interruption must be reused"
    assert [job.job_id for job in jobs[:len(created)]] == created
    assert report.jobs_created == [job.job_id for job in jobs[len(created):]]
    assert [i.job_id for i in report.items] == [job.job_id for job in jobs]
    assert {i.status for i in report.items} <= {BackfillStatus.LOADED,
                                                BackfillStatus.ALREADY_LOADED}
    assert_lake_holds_the_backfill(simulator, root)
    assert lake_query(root, "SELECT count(*) FROM _csload.runs WHERE status = 'loaded'") == [
        (3,)]

    # The same lake as a backfill that was never interrupted: a fresh lake, same arguments.
    # (It finds the three jobs by name and loads their runs, creating none.)
    fresh = tmp_path / "fresh"
    reference = await run_backfill(settings, driver, fresh)
    assert reference.jobs_created == [] and len(backfill_jobs(simulator)) == 3
    assert whole_table(root) == whole_table(fresh)


async def test_dry_run_on_a_lake_changes_nothing_and_takes_no_lock(
        settings: Settings, simulator: Simulator, driver: SimDriver, root: Path) -> None:
    # No lake yet: nothing is created, not even the folder.
    plan = await run_backfill(settings, driver, root, dry_run=True)
    assert [i.window for i in plan.items] == WINDOWS
    assert {i.status for i in plan.items} == {BackfillStatus.PLANNED}
    assert not root.exists()
    assert simulator.stats.requests["create_job"] == 0

    # A lake with the first window loaded, whose lock another writer holds.
    await run_backfill(settings, driver, root, date_from=WINDOWS[0].start,
                       date_to=WINDOWS[0].last)
    before = snapshot(root)
    with ParquetStore.open(str(root)):
        plan = await run_backfill(settings, driver, root, dry_run=True)
    assert [i.status for i in plan.items] == [BackfillStatus.ALREADY_LOADED,
                                              BackfillStatus.PLANNED, BackfillStatus.PLANNED]
    assert simulator.stats.requests["create_job"] == 1
    after = snapshot(root)
    # The other writer's own lock file may have been touched; the dry run wrote nothing else.
    assert {f: v for f, v in after.items() if "lock" not in f} == {
        f: v for f, v in before.items() if "lock" not in f}


# -- gaps ---------------------------------------------------------------------------------------


async def load_with_a_hole(settings: Settings, root: Path, job_id: int) -> None:
    """Sync the daily job into the lake, except one day in the middle."""
    first = await sync_async(settings, parquet=str(root), jobs=(job_id,),
                             until=date(2026, 11, 19))
    assert [r.status.value for r in first.runs].count("expired") == len(EXPIRED)
    await sync_async(settings, parquet=str(root), jobs=(job_id,), since=date(2026, 11, 21))


def cli_status_gaps(root: Path, monkeypatch: pytest.MonkeyPatch) -> dict[int, list[str]]:
    """The gaps `csload status --parquet ROOT --json` reports, per job (no API call)."""
    import orjson

    monkeypatch.chdir(root.parent)
    result = CliRunner().invoke(main, ["status", "--parquet", str(root), "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {job["jobId"]: job["gaps"] for job in orjson.loads(result.stdout)["jobs"]}


async def test_gaps_of_a_lake_are_the_ones_status_reports_and_get_filled(
        settings: Settings, simulator: Simulator, driver: SimDriver, root: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    settings = dataclasses.replace(settings, tables={})   # the daily job in views
    views = simulator.job_named("Daily pageviews")
    await load_with_a_hole(settings, root, views.job_id)
    want = [*EXPIRED, SKIPPED]
    assert cli_status_gaps(root, monkeypatch) == {views.job_id: [str(d) for d in want]}

    # A dry run plans exactly those days, while another writer holds the lake: no lock taken.
    before = snapshot(root)
    with ParquetStore.open(str(root)):
        plan = await backfill_async(settings, gaps=True, parquet=str(root), dry_run=True,
                                    sleep=driver.sleep, clock=driver.clock, poll_interval=10)
    assert [i.window for i in plan.items] == [
        Window(EXPIRED[0], date(2026, 11, 18)), Window(SKIPPED, date(2026, 11, 21))]
    assert {i.status for i in plan.items} == {BackfillStatus.PLANNED}
    assert simulator.stats.requests["create_job"] == 0
    assert {f: v for f, v in snapshot(root).items() if "lock" not in f} == {
        f: v for f, v in before.items() if "lock" not in f}

    report = await backfill_async(settings, gaps=True, parquet=str(root), sleep=driver.sleep,
                                  clock=driver.clock, poll_interval=10)

    assert report.exit_code == 0, report.to_json()
    assert [i.window for i in report.items] == [i.window for i in plan.items]
    assert [i.status for i in report.items] == [BackfillStatus.LOADED] * 2
    jobs = backfill_jobs(simulator)
    assert len(jobs) == 2
    for job in jobs:
        assert job.fields == views.fields and job.format == views.format
        assert (job.device_label, job.segment_id) == (views.device_label, views.segment_id)
    # Covered now, as `csload status --parquet` sees it, and as --gaps does.
    assert cli_status_gaps(root, monkeypatch) == {views.job_id: [],
                                                  **{job.job_id: [] for job in jobs}}
    (status_job,) = [j for j in read_target_status(parquet=str(root)).jobs
                     if j.job_id == views.job_id]
    assert status_job.gaps == ()
    assert lake_query(root, "SELECT DISTINCT _date FROM views ORDER BY 1") == [
        (d,) for d in days(date(2026, 11, 15), date(2026, 11, 24))]
    for job in jobs:
        (run,) = simulator.runs(job.job_id)
        truth = sorted((r["session_id"], r["view_number"], r["user_id"])
                       for r in simulator.truth(job.job_id, run.run_id))
        got = sorted(lake_query(root, "SELECT session_id, view_number, user_id FROM views "
                                      "WHERE _job_id = ?", [job.job_id]))
        assert got == truth and got
    assert lake_query(root, "SELECT count(*) = count(DISTINCT (session_id, view_number)) "
                            "FROM views") == [(True,)]

    # Nothing is missing any more: a second run creates nothing and writes nothing.
    before = snapshot(root)
    again = await backfill_async(settings, gaps=True, parquet=str(root), sleep=driver.sleep,
                                 clock=driver.clock, poll_interval=10)
    assert again.items == [] and again.exit_code == 0
    assert len(backfill_jobs(simulator)) == 2
    assert snapshot(root) == before


async def test_gaps_need_a_lake(settings: Settings, driver: SimDriver, root: Path) -> None:
    with pytest.raises(ConfigError, match="no csload lake"):
        await backfill_async(settings, gaps=True, parquet=str(root), sleep=driver.sleep,
                             clock=driver.clock, poll_interval=10)
    assert not root.exists()


async def test_db_and_parquet_together_are_refused(settings: Settings, root: Path,
                                                   tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not both"):
        await backfill_async(settings, scope="views", date_from=FIRST, date_to=LAST,
                             fields=FIELDS, db=tmp_path / "cs.duckdb", parquet=str(root))


async def test_a_lake_folder_of_the_users_files_or_a_bad_table_name_is_refused_before_any_job(
        settings: Settings, simulator: Simulator, driver: SimDriver, root: Path) -> None:
    """The backfill's new table would be made in a folder holding the user's files (its vacuum
    deletes them: csload.lake.recovery.refuse_others_files), or under a name csload does not
    give a table: both refused before a `once` job is created (the load refused them after)."""
    (root / "views").mkdir(parents=True)
    (root / "views" / "exports.csv").write_text("session_id\n1\n")
    with pytest.raises(StoreError, match=r"folder views, .*\('exports.csv'\)"):
        await run_backfill(settings, driver, root)
    for table in ("../views", "Views"):
        with pytest.raises(ConfigError, match="invalid table name"):
            await backfill_async(settings, scope="views", date_from=FIRST, date_to=LAST,
                                 fields=FIELDS, parquet=str(root), table=table,
                                 sleep=driver.sleep, clock=driver.clock)
    assert simulator.stats.requests["create_job"] == 0
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == [
        "views", "views/exports.csv"]


async def test_a_field_named_date_is_refused_before_any_job(
        settings: Settings, simulator: Simulator, driver: SimDriver, root: Path) -> None:
    """A lake's partition column is `date`: a backfill exporting a field under that name would
    create its jobs and then see each of their runs refused by the sync."""
    with pytest.raises(ConfigError, match=r"column 'Date' \(named 'date'\) is the lake's "
                                          r"partition column.*--field NAME:ALIAS"):
        await backfill_async(settings, scope="views", date_from=FIRST, date_to=LAST,
                             fields=["session_id", "view_number", "url:Date"],
                             parquet=str(root), sleep=driver.sleep, clock=driver.clock)
    assert simulator.stats.requests["create_job"] == 0


# -- S3 -----------------------------------------------------------------------------------------


async def test_a_backfill_into_an_s3_lake_resumes_and_holds_the_truth(
        settings: Settings, simulator: Simulator, driver: SimDriver, s3_server: S3Server,
        request: pytest.FixtureRequest) -> None:
    lake = Lake.s3(s3_server, request.node.name)
    s3 = dataclasses.replace(settings, lake=s3_server.options)
    first, last = WINDOWS[0].start, WINDOWS[1].last   # 14 days: 2 windows

    def interrupt_at_second_job(event: BackfillEvent) -> None:
        if event.kind is BackfillEventKind.JOB_CREATED and len(backfill_jobs(simulator)) == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        await run_backfill(s3, driver, lake.root, date_from=first, date_to=last,
                           on_event=interrupt_at_second_job)
    report = await run_backfill(s3, driver, lake.root, date_from=first, date_to=last)

    assert report.exit_code == 0, report.to_json()
    assert report.target == lake.root
    jobs = backfill_jobs(simulator)
    assert len(jobs) == 2 and report.jobs_created == []
    assert_lake_holds_the_backfill(simulator, lake.root, s3_server.options, first, last)
    # The lake's own ledger connection gives the coverage `csload status` shows.
    con = lake.connect()
    try:
        assert BackfillLedger(con).backfill_jobs() == {
            job.job_id: (job.name, "views") for job in jobs}
    finally:
        con.close()
