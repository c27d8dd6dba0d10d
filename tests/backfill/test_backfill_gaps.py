"""`backfill --gaps`: the days missing from a daily job's coverage, found and filled."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from csload import backfill_async, read_status, sync_async
from csload.backfills.engine import BackfillStatus, Window
from csload.config import Settings
from csload.load.backfill_ledger import BackfillLedger
from csload.load.duckdb import connect
from csload.simulator import SimConfig, Simulator
from tests.support.bfclock import SIM_START, SimDriver
from tests.support.bfref import backfill_jobs, days, query

# 10 days of daily runs, 15-24 November; at 2026-11-25 12:00 the files of the runs of 15-17
# November are past their 7 days.
FIRST_DAY, LAST_DAY = date(2026, 11, 15), date(2026, 11, 24)
EXPIRED = days(date(2026, 11, 15), date(2026, 11, 17))
SKIPPED = date(2026, 11, 20)


@pytest.fixture
def sim_config() -> SimConfig:
    return SimConfig(seed=11, days=10, sessions_per_day=25, start_time=SIM_START)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The daily jobs in their scope's tables: the gaps are theirs, filled with copies."""
    return dataclasses.replace(settings, tables={})


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


# -- the coverage rule, on a hand-made loader ledger (the tables both targets have) -------------


def test_coverage_counts_backfill_copies_by_their_name_fields_and_table() -> None:
    """A loaded run of a backfill job (a `once` job named as a backfill) covers a daily job's
    days when it has the daily job's scope, fields (in any order) and table. Read from
    `_csload.jobs` and `_csload.runs` only, as a lake's ledger connection has no
    `_csload.backfills`."""
    import duckdb

    from csload.api.models import Job, JobField, Run
    from csload.load.ledger import Ledger, run_row

    fields = (JobField("session_id"), JobField("view_number"), JobField("url", "page_url"))
    now = datetime(2026, 11, 25, tzinfo=UTC)
    con = duckdb.connect()
    ledger = Ledger(con)
    ledger.ensure()
    run_ids = iter(range(1000, 2000))

    def job(job_id: int, name: str, frequency: str, table: str = "views",
            scope: str = "views", job_fields: tuple[JobField, ...] = fields) -> None:
        ledger.upsert_job(Job(job_id=job_id, name=name, format="JSONL", scope=scope,
                              frequency=frequency, fields=job_fields), table, now)

    def run(job_id: int, first: date, last: date, status: str = "loaded") -> None:
        start = datetime(first.year, first.month, first.day, tzinfo=UTC)
        end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
        ledger.record_runs([run_row(Run(run_id=next(run_ids), job_id=job_id, state="SUCCESS",
                                        start_date=start, end_date=end, finished_at=end),
                                    "views", status, rows_read=1, rows=1, nbytes=1, parts=1,
                                    started=now, finished=now, message=None)])

    daily = 1
    job(daily, "Daily pageviews", "daily")
    for day in (1, 2, 9, 10):
        run(daily, date(2026, 11, day), date(2026, 11, day))
    # Days 3..8 are missing. Each of the jobs below delivers one of them (or tries to).
    job(2, "csload backfill views 2026-11-03..2026-11-03 0123abcd", "once")       # counts
    run(2, date(2026, 11, 3), date(2026, 11, 3))
    job(3, "csload backfill views 2026-11-04..2026-11-04 0123abcd", "once",       # counts:
        job_fields=tuple(reversed(fields)))                                       # any order
    run(3, date(2026, 11, 4), date(2026, 11, 4))
    job(4, "csload backfill views 2026-11-05..2026-11-05 0123abcd", "once",       # another
        table="views_copy")                                                       # table
    run(4, date(2026, 11, 5), date(2026, 11, 5))
    job(5, "Last week by hand", "once")                                           # not named
    run(5, date(2026, 11, 6), date(2026, 11, 6))                                  # as backfill
    job(6, "csload backfill views 2026-11-07..2026-11-07 0123abcd", "once",       # other fields
        job_fields=fields[:2])
    run(6, date(2026, 11, 7), date(2026, 11, 7))
    job(7, "csload backfill views 2026-11-08..2026-11-08 0123abcd", "once")       # not loaded
    run(7, date(2026, 11, 8), date(2026, 11, 8), status="failed")

    assert BackfillLedger(con).coverage_gaps() == {daily: days(date(2026, 11, 5),
                                                               date(2026, 11, 8))}
    assert BackfillLedger(con).coverage_gaps("sessions") == {}
    assert set(BackfillLedger(con).backfill_jobs()) == {2, 3, 4, 6, 7}
    con.close()
