"""`backfill --gaps`: the days missing from a daily job's coverage, found and filled."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from bfref import backfill_jobs, days, query
from conftest import SIM_START, SimDriver

from csload import backfill_async, read_status, sync_async
from csload.backfill_engine import BackfillStatus, Window
from csload.backfill_ledger import BackfillLedger
from csload.config import Settings
from csload.load import connect
from csload.simulator import SimConfig, Simulator

# 10 days of daily runs, 15-24 November; at 2026-11-25 12:00 the files of the runs of 15-17
# November are past their 7 days.
FIRST_DAY, LAST_DAY = date(2026, 11, 15), date(2026, 11, 24)
EXPIRED = days(date(2026, 11, 15), date(2026, 11, 17))
SKIPPED = date(2026, 11, 20)


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(seed=11, days=10, sessions_per_day=25, start_time=SIM_START)


def coverage_gaps(db: Path, scope: str | None = None) -> dict[int, list[date]]:
    con = connect(db, read_only=True)
    try:
        return BackfillLedger(con).coverage_gaps(scope)
    finally:
        con.close()


async def load_with_a_hole(settings: Settings, db: Path, job_id: int) -> None:
    """Sync the daily job, except one day in the middle."""
    first = await sync_async(settings, db=db, jobs=(job_id,), until=date(2026, 11, 19))
    assert [r.status.value for r in first.runs].count("expired") == len(EXPIRED)
    await sync_async(settings, db=db, jobs=(job_id,), since=date(2026, 11, 21))


async def test_gaps_are_found_and_filled(settings: Settings, simulator: Simulator,
                                         driver: SimDriver, db_path: Path) -> None:
    views = simulator.job_named("Daily pageviews")
    await load_with_a_hole(settings, db_path, views.job_id)

    # `csload status` reports the same gaps that --gaps fills: the interior hole and the days
    # whose files expired before they were loaded.
    (status_job,) = read_status(db_path).jobs
    assert status_job.gaps == (*EXPIRED, SKIPPED)
    assert coverage_gaps(db_path) == {views.job_id: [*EXPIRED, SKIPPED]}

    report = await backfill_async(settings, gaps=True, scope="views", db=db_path,
                                  sleep=driver.sleep,
                                  clock=driver.clock, poll_interval=10)

    assert report.exit_code == 0, report.to_json()
    assert [i.window for i in report.items] == [
        Window(EXPIRED[0], date(2026, 11, 18)), Window(SKIPPED, date(2026, 11, 21))]
    assert [i.status for i in report.items] == [BackfillStatus.LOADED] * 2
    jobs = backfill_jobs(simulator)
    assert len(jobs) == 2
    for job in jobs:
        # A copy of the daily job: same fields and filters, format and scope.
        assert job.fields == views.fields and job.format == views.format
        assert (job.device_label, job.segment_id) == (views.device_label, views.segment_id)
    assert coverage_gaps(db_path) == {}
    # Every day is in the table now, the gap days with exactly the once runs' rows.
    assert {r[0] for r in query(db_path, "SELECT DISTINCT _date FROM views")} == set(
        days(FIRST_DAY, LAST_DAY))
    for job in jobs:
        (run,) = simulator.runs(job.job_id)
        truth = sorted((r["session_id"], r["view_number"], r["user_id"])
                       for r in simulator.truth(job.job_id, run.run_id))
        got = sorted(query(db_path, "SELECT session_id, view_number, user_id FROM views "
                                    "WHERE _job_id = ?", [job.job_id]))
        assert got == truth and got
    assert query(db_path, "SELECT count(*) = count(DISTINCT (session_id, view_number)) "
                          "FROM views") == [(True,)]

    # Nothing is missing any more: a second run creates nothing.
    again = await backfill_async(settings, gaps=True, db=db_path,
                                 sleep=driver.sleep,
                                  clock=driver.clock, poll_interval=10)
    assert again.items == [] and again.exit_code == 0
    assert len(backfill_jobs(simulator)) == 2


async def test_gaps_respect_the_scope_and_the_range(settings: Settings, simulator: Simulator,
                                                    driver: SimDriver, db_path: Path) -> None:
    views = simulator.job_named("Daily pageviews")
    await load_with_a_hole(settings, db_path, views.job_id)

    none = await backfill_async(settings, gaps=True, scope="sessions", db=db_path,
                                sleep=driver.sleep,
                                  clock=driver.clock, poll_interval=10)
    assert none.items == [] and simulator.stats.requests["create_job"] == 0

    only_hole = await backfill_async(settings, gaps=True, db=db_path, date_from=SKIPPED,
                                     date_to=SKIPPED, sleep=driver.sleep,
                                  clock=driver.clock, poll_interval=10)
    assert [i.window for i in only_hole.items] == [Window(SKIPPED, date(2026, 11, 21))]
    (job,) = backfill_jobs(simulator)
    assert job.date_from == datetime(2026, 11, 20, tzinfo=UTC)
    assert coverage_gaps(db_path) == {views.job_id: EXPIRED}


async def test_gaps_need_a_database(settings: Settings, driver: SimDriver,
                                    db_path: Path) -> None:
    from csload.errors import ConfigError

    with pytest.raises(ConfigError, match="no database"):
        await backfill_async(settings, gaps=True, db=db_path,
                             sleep=driver.sleep,
                                  clock=driver.clock, poll_interval=10)
    assert not db_path.exists()
