"""A backfill facing a run that does not finish (issue 16): it waited for it forever.

Against the simulator over real HTTP, on its clock (bfclock.SimDriver: every wait moves it).
The simulator runs once jobs one at a time, each through CREATED, RUNNABLE and RUNNING for
`once_state_seconds` each: the first window's job is made slow (2 h a state, 6 h in all), the
next ones normal (10 s a state), and the backfill may wait 4 h for a run.

    finding                                   csload now
    backfill waits with no deadline           a run not finished `max_wait` after its job was
                                              created fails its window alone (job id, how
                                              long, what to do); the others load; exit 3; the
                                              job stays in the ledger and a later backfill
                                              loads it without creating another
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path

import pytest

from csload import BackfillReport, backfill_async
from csload.backfills.engine import BackfillEvent, BackfillEventKind, BackfillStatus, Window
from csload.config import Settings
from csload.errors import ConfigError
from csload.load.backfill_ledger import BackfillLedger
from csload.load.duckdb import connect
from csload.simulator import Simulator
from tests.support.bfclock import SimDriver
from tests.support.bfref import (
    FIELDS,
    assert_same_rows,
    backfill_jobs,
    days,
    query,
    table_rows,
    truth_rows,
)

FIRST, LAST = date(2026, 10, 30), date(2026, 11, 18)  # 20 days: 3 windows
WINDOWS = [Window(date(2026, 10, 30), date(2026, 11, 6)), Window(date(2026, 11, 6),
           date(2026, 11, 13)), Window(date(2026, 11, 13), date(2026, 11, 19))]
HOUR = 3600.0
MAX_WAIT = 4 * HOUR
POLL = 600.0


async def backfill(settings: Settings, driver: SimDriver, db: Path,
                   events: list[BackfillEvent] | None = None,
                   skew: timedelta = timedelta(0)) -> BackfillReport:
    """The 20-day backfill on the simulator's clock (`skew`: the backfill's clock that far
    off it)."""
    return await backfill_async(
        settings, scope="views", date_from=FIRST, date_to=LAST, fields=FIELDS, db=db,
        sleep=driver.sleep, clock=lambda: driver.clock() + skew, poll_interval=POLL,
        max_wait=MAX_WAIT, on_event=(events.append if events is not None else lambda _e: None))


def assert_loaded_exactly(sim: Simulator, db: Path, first: date = FIRST) -> None:
    """The days `first`..LAST, each once, equal to the truth of the runs the ledger says
    loaded, and no other day."""
    loaded = query(db, "SELECT job_id FROM _csload.runs WHERE status = 'loaded'")
    jobs = {job.job_id: job for job in backfill_jobs(sim)}
    want = sorted(row for (job_id,) in loaded for row in truth_rows(sim, jobs[job_id]))
    assert_same_rows(table_rows(db), want)
    got_days = {r[0] for r in query(db, "SELECT DISTINCT _date FROM views")}
    assert got_days == set(days(first, LAST))


@pytest.mark.hostile("backfill waits with no deadline for a run that does not finish",
                     "the window fails after max_wait (job kept, reused by a re-run); "
                     "others load; exit 3")
async def test_hostile_backfill_run_that_does_not_finish_fails_its_window_after_max_wait(
        settings: Settings, simulator: Simulator, driver: SimDriver, db_path: Path) -> None:
    simulator.config.once_state_seconds = 2 * HOUR     # the first job: 6 h to finish

    def normal_speed(sim: Simulator) -> None:           # from the first wait on: 30 s
        sim.config.once_state_seconds = 10.0

    driver.hooks.append(normal_speed)
    events: list[BackfillEvent] = []

    report = await backfill(settings, driver, db_path, events)

    assert report.exit_code == 3, report.to_json()
    assert [item.window for item in report.items] == WINDOWS
    assert [item.status for item in report.items] == [
        BackfillStatus.FAILED, BackfillStatus.LOADED, BackfillStatus.LOADED]
    stuck = report.items[0]
    first_job = backfill_jobs(simulator)[0]
    assert stuck.job_id == first_job.job_id and stuck.created
    (run,) = simulator.runs(first_job.job_id)
    assert stuck.message == (
        f"job {first_job.job_id}: its run {run.run_id} was still RUNNING 4h after the job was "
        "created (max_wait 4h); the job is kept: run the backfill again later and it reuses "
        "this job and loads its run once it finished")
    # It waited exactly max_wait, in polls of poll_interval: no poll after the deadline.
    waits = [e.elapsed for e in events
             if e.kind is BackfillEventKind.WAITING and e.job_id == first_job.job_id]
    assert waits == [i * POLL for i in range(int(MAX_WAIT / POLL) + 1)]
    failed = [e for e in events if e.kind is BackfillEventKind.FAILED]
    assert [(e.job_id, e.message) for e in failed] == [(first_job.job_id, stuck.message)]
    # The other windows loaded exactly; the stuck one loaded nothing.
    assert_loaded_exactly(simulator, db_path, first=WINDOWS[1].start)
    # The job stays in the backfill ledger, waiting, with why this backfill left it.
    con = connect(db_path)
    try:
        records = {r.job_id: r for r in BackfillLedger(con).records()}
    finally:
        con.close()
    assert records[first_job.job_id].state == "created"
    assert records[first_job.job_id].message == stuck.message

    # Later (the simulator's clock is past the first run's end by now): the same backfill
    # reuses that job, loads its run, and creates nothing.
    assert simulator.run_state(run.run_id) == "SUCCESS"
    again = await backfill(settings, driver, db_path)

    assert again.exit_code == 0, again.to_json()
    assert [item.status for item in again.items] == [
        BackfillStatus.LOADED, BackfillStatus.ALREADY_LOADED, BackfillStatus.ALREADY_LOADED]
    assert again.items[0].job_id == first_job.job_id and not again.items[0].created
    assert again.jobs_created == [] and len(backfill_jobs(simulator)) == 3
    assert_loaded_exactly(simulator, db_path)


@pytest.mark.parametrize("skew", [timedelta(days=10), -timedelta(days=10)])
async def test_a_client_clock_far_from_the_servers_times_the_wait_by_its_own_clock(
        settings: Settings, simulator: Simulator, driver: SimDriver, db_path: Path,
        skew: timedelta) -> None:
    """The backfill's clock 10 days off the server's: the jobs it creates are waited for
    max_wait by its own clock. (Timed from the server's createdAt, a clock ahead failed every
    window at once, and one behind waited 10 days longer.)"""
    simulator.config.once_state_seconds = 2 * HOUR     # each run: 6 h, past the 4 h max_wait
    events: list[BackfillEvent] = []

    report = await backfill(settings, driver, db_path, events, skew)

    assert report.exit_code == 3, report.to_json()
    first_job = backfill_jobs(simulator)[0]
    waits = [e.elapsed for e in events
             if e.kind is BackfillEventKind.WAITING and e.job_id == first_job.job_id]
    assert waits == [i * POLL for i in range(int(MAX_WAIT / POLL) + 1)]
    assert report.items[0].status is BackfillStatus.FAILED
    assert "was still RUNNING 4h after the job was created" in (report.items[0].message or "")


@pytest.mark.parametrize("value", [0, -1.0, math.nan, "soon", "-5m"])
async def test_max_wait_must_be_a_positive_duration(
        value: object, settings: Settings, simulator: Simulator, driver: SimDriver,
        db_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_wait"):
        await backfill_async(settings, scope="views", date_from=FIRST, date_to=LAST,
                             fields=FIELDS, db=db_path, sleep=driver.sleep,
                             clock=driver.clock, max_wait=value)  # type: ignore[arg-type]
    # Refused before anything was asked of the API or written.
    assert backfill_jobs(simulator) == [] and not db_path.exists()


async def test_max_wait_takes_a_duration_text_and_infinity(
        settings: Settings, simulator: Simulator, driver: SimDriver, db_path: Path) -> None:
    """'30m' is 30 minutes; math.inf is no deadline (a 10 s-a-state run loads either way)."""
    for value in ("30m", math.inf):
        report = await backfill_async(
            settings, scope="views", date_from=FIRST, date_to=FIRST, fields=FIELDS,
            db=db_path, sleep=driver.sleep, clock=driver.clock, poll_interval=POLL,
            max_wait=value)
        assert report.exit_code == 0, report.to_json()
    assert len(backfill_jobs(simulator)) == 1
