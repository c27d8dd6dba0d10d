"""A backfill meeting what happens beside it: a scheduled sync while it waits, storage that
dropped its files early, another process holding the database.

Found by QA, 2026-12-07: `csload backfill --table views_archive` interrupted while it waited
(on a lake: still waiting, since a backfill holds no lock there), then the scheduled sync ran:
it placed the backfill's `once` job by the placement rule and loaded its rows into `views`,
and the resumed backfill reported the window "already_loaded", exit 0, in a table that did not
exist. Only the backfill knows its job's table, so a sync loads a backfill's job only when
its target loaded it before, or when asked by id (what the backfill's own sync does).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

import csload
from csload import backfill_async
from csload.backfills.engine import BackfillEvent, BackfillEventKind, BackfillStatus
from csload.config import Settings
from csload.errors import StoreLockedError
from csload.simulator import ServerHandle, Simulator
from tests.support.bfclock import SimDriver
from tests.support.bfref import FIELDS, VIEWS_ELSEWHERE, backfill_jobs
from tests.support.syncref import finish_once_job

DAY = date(2026, 11, 10)


class Interrupted(Exception):
    pass


def interrupt_once_created(event: BackfillEvent) -> None:
    if event.kind is BackfillEventKind.JOB_CREATED:
        raise Interrupted


def target_of(kind: str, tmp_path: Path) -> dict[str, str]:
    return {"db": str(tmp_path / "cs.duckdb")} if kind == "db" else {
        "parquet": str(tmp_path / "lake")}


def reader(where: dict[str, str]) -> duckdb.DuckDBPyConnection:
    if "db" in where:
        return csload.connect(where["db"], read_only=True)
    return csload.connect(parquet=where["parquet"])


@pytest.mark.parametrize("kind", ["db", "lake"])
async def test_a_sync_while_a_backfill_waits_leaves_its_job_to_the_backfill(
        settings: Settings, simulator: Simulator, driver: SimDriver, tmp_path: Path,
        kind: str) -> None:
    where = target_of(kind, tmp_path)

    async def backfill(**options: object) -> csload.BackfillReport:
        return await backfill_async(settings, scope="views", date_from=DAY, date_to=DAY,
                                    fields=FIELDS, table="views_archive", sleep=driver.sleep,
                                    clock=driver.clock, poll_interval=10, **where,
                                    **options)   # type: ignore[arg-type]

    with pytest.raises(Interrupted):
        await backfill(on_event=interrupt_once_created)
    [job] = backfill_jobs(simulator)
    run = finish_once_job(simulator, job.job_id)

    cron = await csload.sync_async(settings, **where)   # type: ignore[arg-type]

    assert run not in {r.run_id for r in cron.runs}
    assert job.job_id not in {p.job.job_id for p in cron.jobs}
    with reader(where) as con:
        assert con.execute("SELECT count(*) FROM _csload.runs WHERE run_id = ?",
                           [run]).fetchone() == (0,)

    resumed = await backfill()

    [item] = resumed.items
    assert (item.status, item.job_id, item.table) == (
        BackfillStatus.LOADED, job.job_id, "views_archive")
    assert resumed.exit_code == 0
    with reader(where) as con:
        rows = con.execute("SELECT count(*) FROM views_archive").fetchone()
        assert rows is not None and rows[0] == len(simulator.truth(job.job_id, run)) > 0
        assert con.execute("SELECT count(*) FROM daily_views WHERE _job_id = ?",
                           [job.job_id]).fetchone() == (0,)
    # Asked for by id, a sync loads it (by the placement rule: a narrow job, its own table).
    other = await csload.sync_async(settings, **where, jobs=[job.job_id])   # type: ignore
    assert other.runs == []   # loaded already, by the backfill


async def test_a_window_whose_files_storage_dropped_early_gets_a_new_job(
        settings: Settings, simulator: Simulator, driver: SimDriver, tmp_path: Path) -> None:
    """Storage may drop a run's files before csload's 7 days (or this clock be behind the
    service's): the sync records the run expired. A backfill run again used to reuse its job
    by the clock alone, and its sync skipped the recorded run: "the sync did not find run
    ...", for good. docs/backfill.md: a window whose files were gone gets a new job."""
    simulator.config.file_retention_days = 0   # gone as soon as the run finishes
    db = tmp_path / "cs.duckdb"

    async def backfill() -> csload.BackfillReport:
        return await backfill_async(settings, scope="views", date_from=DAY, date_to=DAY,
                                    fields=FIELDS, db=db, sleep=driver.sleep,
                                    clock=driver.clock, poll_interval=10)

    first = await backfill()
    [item] = first.items
    assert item.status is BackfillStatus.FAILED and "expired" in (item.message or "")

    again = await backfill()

    [item] = again.items
    assert len(again.jobs_created) == 1 and again.jobs_created != first.jobs_created
    assert "did not find" not in (item.message or "") and "expired" in (item.message or "")
    assert len(backfill_jobs(simulator)) == 2


def holding(db: Path) -> subprocess.Popen[str]:
    """Another process holding the database `db` (made empty) until its stdin closes."""
    duckdb.connect(str(db)).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
         "print('ready', flush=True); sys.stdin.read(); c.close()", str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    return holder


async def test_a_database_another_process_holds_is_refused_with_advice_a_backfill_can_follow(
        settings: Settings, driver: SimDriver, tmp_path: Path) -> None:
    """The lock's advice used to name `csload sync --wait`, which a backfill does not take."""
    db = tmp_path / "cs.duckdb"
    holder = holding(db)
    try:
        with pytest.raises(StoreLockedError) as info:
            await backfill_async(settings, scope="views", date_from=DAY, date_to=DAY,
                                 fields=FIELDS, db=db, sleep=driver.sleep, clock=driver.clock)
    finally:
        holder.communicate("")
    message = str(info.value)
    assert f"PID {holder.pid}" in message and "run the backfill again" in message, message
    assert "CSLOAD_LOCK_WAIT=10m" in message, message   # how to let it wait
    assert "--wait" not in message


async def test_a_backfill_waits_for_the_database_as_lock_wait_says(
        settings: Settings, driver: SimDriver, tmp_path: Path) -> None:
    """It failed at once, [limits] lock_wait / CSLOAD_LOCK_WAIT ignored, while a cron sync
    held the database."""
    db = tmp_path / "cs.duckdb"
    holder = holding(db)
    waiting = dataclasses.replace(settings, limits=dataclasses.replace(settings.limits,
                                                                       lock_wait=60.0))
    events: list[BackfillEvent] = []

    def seen(event: BackfillEvent) -> None:
        events.append(event)
        if event.kind is BackfillEventKind.MESSAGE and "waiting up to" in (event.message or ""):
            holder.communicate("")   # the sync holding it ends

    try:
        report = await backfill_async(waiting, scope="views", date_from=DAY, date_to=DAY,
                                      fields=FIELDS, db=db, sleep=driver.sleep,
                                      clock=driver.clock, on_event=seen)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert any(f"(PID {holder.pid}: python); waiting up to 1m for it to be free"
               in (e.message or "") for e in events), events
    assert report.jobs_created


def opens_for_writing(db: Path) -> subprocess.CompletedProcess[str]:
    """Another process (a cron sync, a notebook) opening the database for writing, then
    letting go."""
    return subprocess.run(
        [sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1]).close()",
         str(db)], capture_output=True, text=True, timeout=60)


async def test_a_backfill_waiting_for_its_run_leaves_the_database_to_other_processes(
        settings: Settings, simulator: Simulator, driver: SimDriver, tmp_path: Path) -> None:
    """It held the file open for its whole wait (up to max_wait, 24 h): every scheduled sync,
    `csload status` and notebook meanwhile failed "in use" (found 2026-12-07)."""
    db = tmp_path / "cs.duckdb"
    others: list[subprocess.CompletedProcess[str]] = []
    driver.hooks.append(lambda sim: others.append(opens_for_writing(db)) if not others
                        else None)

    report = await backfill_async(settings, scope="views", date_from=DAY, date_to=DAY,
                                  fields=FIELDS, db=db, sleep=driver.sleep,
                                  clock=driver.clock, poll_interval=10)

    [other] = others
    assert other.returncode == 0, other.stderr
    [item] = report.items
    [job] = backfill_jobs(simulator)
    (run,) = simulator.runs(job.job_id)
    assert item.status is BackfillStatus.LOADED
    assert item.rows == len(simulator.truth(job.job_id, run.run_id)) > 0


async def test_a_backfill_waits_for_a_process_holding_the_database_when_its_run_is_ready(
        settings: Settings, simulator: Simulator, driver: SimDriver, tmp_path: Path) -> None:
    """A cron sync running when the backfill's run finishes: the backfill waits for the
    database (it no longer holds it while it waits), then records and loads the run."""
    db = tmp_path / "cs.duckdb"
    holders: list[subprocess.Popen[str]] = []
    driver.hooks.append(lambda sim: holders.append(holding(db)) if not holders else None)
    events: list[BackfillEvent] = []

    def seen(event: BackfillEvent) -> None:
        events.append(event)
        if event.kind is BackfillEventKind.MESSAGE and "waiting up to" in (event.message or ""):
            holders[0].communicate("")   # the cron sync ends

    try:
        report = await backfill_async(settings, scope="views", date_from=DAY, date_to=DAY,
                                      fields=FIELDS, db=db, sleep=driver.sleep,
                                      clock=driver.clock, poll_interval=10, on_event=seen)
    finally:
        for holder in holders:
            if holder.poll() is None:
                holder.kill()
                holder.wait()
    [holder] = holders
    assert any(f"(PID {holder.pid}: python); waiting up to" in (e.message or "")
               for e in events), events
    [item] = report.items
    [job] = backfill_jobs(simulator)
    (run,) = simulator.runs(job.job_id)
    assert (item.status, report.exit_code) == (BackfillStatus.LOADED, 0)
    assert item.rows == len(simulator.truth(job.job_id, run.run_id)) > 0


def test_two_backfills_of_a_database_at_once_make_one_job_per_window(
        live_sim: tuple[Simulator, ServerHandle], tmp_path: Path) -> None:
    """Each job is created with the database held, after looking in its ledger for a job an
    other backfill made for the window meanwhile: the second backfill reuses the first's jobs
    (it used to be kept out by the first one's holding the file for its whole run)."""
    sim, handle = live_sim
    db = tmp_path / "cs.duckdb"
    duckdb.connect(str(db)).close()   # a database of the user's: it exists (no sync yet)
    (tmp_path / "csload.toml").write_text("[tables]\n" + "".join(   # conftest's settings
        f'{job} = "{table}"\n' for job, table in VIEWS_ELSEWHERE.items()))
    env = {**os.environ, **dict(line.split("=", 1)
                                for line in sim.config.env_lines(handle.base_url)),
           "CSLOAD_LOCK_WAIT": "2m"}
    first = datetime.now(UTC).date() - timedelta(days=11)
    last = first + timedelta(days=8)   # two windows
    command = [sys.executable, "-m", "csload", "backfill", "--scope", "views",
               "--from", str(first), "--to", str(last), "--db", str(db),
               "--poll-interval", "0.01", *(a for f in FIELDS for a in ("--field", f))]
    both = [subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in both]

    assert [p.returncode for p in both] == [0, 0], outputs
    jobs = backfill_jobs(sim)
    assert len(jobs) == 2, [(j.job_id, j.name) for j in jobs]
    with duckdb.connect(str(db), read_only=True) as con:
        loaded = con.execute("SELECT count(*), count(DISTINCT _date) FROM views").fetchone()
    expected = sum(len(sim.truth(j.job_id, r.run_id)) for j in jobs for r in sim.runs(j.job_id))
    assert loaded == (expected, 9)
