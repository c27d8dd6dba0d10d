"""Backfills of a range against the simulator over real HTTP, its clock driven by the waits."""

from __future__ import annotations

import dataclasses
import itertools
import os
import stat
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

import csload
from csload import BackfillReport, backfill_async
from csload.api.jobspec import InvalidJobSpec, Rule
from csload.backfills.engine import BackfillEvent, BackfillEventKind, BackfillStatus, Window
from csload.config import Settings
from csload.errors import ConfigError
from csload.load.backfill_ledger import BackfillLedger
from csload.load.duckdb import connect
from csload.pipeline.sync import sync_async
from csload.simulator import Simulator
from csload.simulator.outcomes import fail_once_job
from tests.support.bfclock import SimDriver
from tests.support.bfref import (
    FIELDS,
    HIGH,
    assert_same_rows,
    backfill_jobs,
    days,
    lake_query,
    query,
    table_rows,
    truth_rows,
)

FIRST, LAST = date(2026, 10, 30), date(2026, 11, 18)  # 20 days
WINDOWS = [Window(date(2026, 10, 30), date(2026, 11, 6)), Window(date(2026, 11, 6),
           date(2026, 11, 13)), Window(date(2026, 11, 13), date(2026, 11, 19))]


async def run_backfill(settings: Settings, driver: SimDriver, db: Path, *,
                       date_from: date = FIRST, date_to: date = LAST, dry_run: bool = False,
                       on_event: Callable[[BackfillEvent], None] | None = None,
                       ) -> BackfillReport:
    """The 20-day views backfill (or another range), on the simulator's clock."""
    return await backfill_async(
        settings, scope="views", date_from=date_from, date_to=date_to, fields=FIELDS, db=db,
        dry_run=dry_run, sleep=driver.sleep, clock=driver.clock, poll_interval=10,
        on_event=on_event or (lambda _event: None))


def assert_all_days_loaded_once(sim: Simulator, db: Path) -> None:
    """Every day of the range, each row exactly once, equal to the truth of the runs loaded."""
    loaded = query(db, "SELECT job_id, run_id FROM _csload.runs WHERE status = 'loaded'")
    jobs = {job.job_id: job for job in backfill_jobs(sim)}
    want = sorted(row for job_id, _ in loaded for row in truth_rows(sim, jobs[job_id]))
    got = table_rows(db)
    assert_same_rows(got, want)
    assert len({(r[0], r[1]) for r in got}) == len(got), "a row key appears twice"
    assert {r[0] for r in query(db, "SELECT DISTINCT _date FROM views")} == set(days(FIRST, LAST))
    assert any(r[0] > HIGH for r in got) and any(r[2] > HIGH for r in got), \
        "the data must hold UInt64 values above 2^63"


async def test_a_20_day_backfill_makes_3_jobs_and_loads_every_day_once(
        settings: Settings, simulator: Simulator, driver: SimDriver, db_path: Path) -> None:
    report = await run_backfill(settings, driver, db_path)

    assert report.exit_code == 0, report.to_json()
    assert [item.window for item in report.items] == WINDOWS
    assert [item.status for item in report.items] == [BackfillStatus.LOADED] * 3
    jobs = backfill_jobs(simulator)
    assert len(jobs) == 3 and report.jobs_created == [job.job_id for job in jobs]
    for job, window in zip(jobs, WINDOWS, strict=True):
        assert job.date_from == datetime(*window.start.timetuple()[:3], tzinfo=UTC)
        assert job.date_to == datetime(*window.end.timetuple()[:3], tzinfo=UTC)
        assert job.date_to - job.date_from <= timedelta(days=7)
        assert [f.column_name for f in job.fields] == [
            "session_id", "view_number", "user_id", "view_time", "page_url", "user_type",
            "scroll_rate"]
    assert_all_days_loaded_once(simulator, db_path)
    assert report.rows == len(table_rows(db_path)) > 0
    # One run per job, each loaded once, each recorded as loaded in the backfill ledger.
    assert query(db_path, "SELECT count(*), count(DISTINCT job_id) FROM _csload.runs "
                          "WHERE status = 'loaded'") == [(3, 3)]
    assert query(db_path, "SELECT state FROM _csload.backfills ORDER BY window_start") == [
        ("loaded",)] * 3
    # Created one at a time: each job only after the previous one's run had finished.
    for earlier, later in itertools.pairwise(jobs):
        assert later.created_at >= simulator.runs(earlier.job_id)[0].finished_at
    assert driver.waits > 0


async def test_running_it_again_creates_nothing_and_loads_nothing(
        settings: Settings, simulator: Simulator, driver: SimDriver, db_path: Path) -> None:
    await run_backfill(settings, driver, db_path)
    before = table_rows(db_path)
    again = await run_backfill(settings, driver, db_path)
    assert again.exit_code == 0
    assert [i.status for i in again.items] == [BackfillStatus.ALREADY_LOADED] * 3
    assert again.jobs_created == []
    assert len(backfill_jobs(simulator)) == 3
    assert table_rows(db_path) == before


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("lose_record", [False, True], ids=["recorded", "record-lost"])
async def test_an_interrupted_backfill_resumes_without_a_duplicate_job(
        settings: Settings, simulator: Simulator, driver: SimDriver, db_path: Path,
        lose_record: bool) -> None:
    created: list[int] = []

    def interrupt_at_second_job(event: BackfillEvent) -> None:
        if event.kind is BackfillEventKind.JOB_CREATED:
            assert event.job_id is not None
            created.append(event.job_id)
            if len(created) == 2:
                raise Interrupted

    with pytest.raises(Interrupted):
        await run_backfill(settings, driver, db_path, on_event=interrupt_at_second_job)
    assert len(backfill_jobs(simulator)) == 2
    if lose_record:
        # As if the process died between the create request and the ledger row.
        con = connect(db_path)
        try:
            BackfillLedger(con).forget(created[1])
        finally:
            con.close()

    report = await run_backfill(settings, driver, db_path)

    assert report.exit_code == 0, report.to_json()
    jobs = backfill_jobs(simulator)
    assert len(jobs) == 3, "the second job must be reused, not created again"
    assert [job.job_id for job in jobs[:2]] == created
    assert report.jobs_created == [jobs[2].job_id]
    second = report.items[1]
    assert second.job_id == created[1] and not second.created
    assert second.status is BackfillStatus.LOADED
    assert report.items[0].status in (BackfillStatus.LOADED, BackfillStatus.ALREADY_LOADED)
    assert_all_days_loaded_once(simulator, db_path)
    assert query(db_path, "SELECT count(*) FROM _csload.runs WHERE status = 'loaded'") == [(3,)]
    assert query(db_path, "SELECT job_id FROM _csload.backfills ORDER BY job_id") == [
        (job.job_id,) for job in jobs]


async def test_a_failed_run_is_reported_and_the_rest_loads(
        settings: Settings, simulator: Simulator, driver: SimDriver, db_path: Path) -> None:
    second_start = datetime(2026, 11, 6, tzinfo=UTC)

    def fail_the_second_window(sim: Simulator) -> None:
        for job in sim.jobs:
            if (job.frequency == "once" and job.date_from == second_start
                    and job.once_run_id is not None
                    and sim.run(job.once_run_id).outcome == "SUCCESS"
                    and sim.run_state(job.once_run_id) not in ("SUCCESS", "FAILURE")):
                fail_once_job(sim, job.job_id)

    driver.hooks.append(fail_the_second_window)
    report = await run_backfill(settings, driver, db_path)

    assert report.exit_code == 3
    assert [i.status for i in report.items] == [
        BackfillStatus.LOADED, BackfillStatus.FAILED, BackfillStatus.LOADED]
    failed = report.items[1]
    assert failed.message is not None and "FAILURE" in failed.message
    assert str(failed.job_id) in failed.message
    loaded_days = {r[0] for r in query(db_path, "SELECT DISTINCT _date FROM views")}
    assert loaded_days == set(WINDOWS[0].days) | set(WINDOWS[2].days)
    assert query(db_path, "SELECT state FROM _csload.backfills ORDER BY window_start") == [
        ("loaded",), ("run_failed",), ("loaded",)]

    # Run again once the fault is gone: only the failed window gets a new job.
    driver.hooks.clear()
    again = await run_backfill(settings, driver, db_path)
    assert again.exit_code == 0, again.to_json()
    assert [i.status for i in again.items] == [
        BackfillStatus.ALREADY_LOADED, BackfillStatus.LOADED, BackfillStatus.ALREADY_LOADED]
    assert again.items[1].created and again.items[1].job_id != failed.job_id
    assert len(backfill_jobs(simulator)) == 4
    assert {r[0] for r in query(db_path, "SELECT DISTINCT _date FROM views")} == set(
        days(FIRST, LAST))


async def test_days_beyond_retention_or_not_over_are_trimmed_with_a_message(
        settings: Settings, simulator: Simulator, driver: SimDriver, db_path: Path) -> None:
    messages: list[str] = []

    def keep(event: BackfillEvent) -> None:
        if event.kind is BackfillEventKind.MESSAGE and event.message:
            messages.append(event.message)

    # Now is 2026-11-25 12:00: 13 months back is 2025-10-25; 2026-11-25 is not over.
    report = await run_backfill(settings, driver, db_path, date_from=date(2025, 10, 20),
                                date_to=date(2025, 10, 27), on_event=keep)

    assert report.exit_code == 0, report.to_json()
    (old,) = report.unavailable
    assert (old.first, old.last) == (date(2025, 10, 20), date(2025, 10, 24))
    assert "retention" in old.reason and "2025-10-25" in old.reason
    assert any("2025-10-20..2025-10-24" in m and "retention" in m for m in messages)
    # Its jobs go to the table it made them for: no mapping in the settings (QA, 2026-12-07).
    placed = [m for m in report.warnings if "-> table views" in m]
    assert placed and all("mapped to this table" in m and "settings" not in m for m in placed)
    # Windows stay 7-day steps from --from (so they do not shift as the retention edge moves
    # day by day and a resumed backfill finds its jobs again): the first one is cut short.
    assert [i.window for i in report.items] == [
        Window(date(2025, 10, 25), date(2025, 10, 27)), Window(date(2025, 10, 27),
                                                               date(2025, 10, 28))]
    jobs = backfill_jobs(simulator)
    assert [(j.date_from, j.date_to) for j in jobs] == [
        (datetime(2025, 10, 25, tzinfo=UTC), datetime(2025, 10, 27, tzinfo=UTC)),
        (datetime(2025, 10, 27, tzinfo=UTC), datetime(2025, 10, 28, tzinfo=UTC))]
    assert {r[0] for r in query(db_path, "SELECT DISTINCT _date FROM views")} == set(
        days(date(2025, 10, 25), date(2025, 10, 27)))

    future = await run_backfill(settings, driver, db_path, date_from=date(2026, 11, 24),
                                date_to=date(2026, 11, 27))
    (not_over,) = future.unavailable
    assert (not_over.first, not_over.last) == (date(2026, 11, 25), date(2026, 11, 27))
    assert "not over" in not_over.reason
    assert [i.window for i in future.items] == [Window(date(2026, 11, 24), date(2026, 11, 25))]


async def test_a_range_entirely_beyond_retention_creates_nothing(
        settings: Settings, simulator: Simulator, driver: SimDriver, db_path: Path) -> None:
    report = await run_backfill(settings, driver, db_path, date_from=date(2025, 1, 1),
                                date_to=date(2025, 1, 31))
    assert report.items == [] and report.exit_code == 0
    assert [(u.first, u.last) for u in report.unavailable] == [
        (date(2025, 1, 1), date(2025, 1, 31))]
    assert simulator.stats.requests["create_job"] == 0


async def test_dry_run_prints_the_plan_and_changes_nothing(
        settings: Settings, simulator: Simulator, driver: SimDriver, db_path: Path) -> None:
    report = await run_backfill(settings, driver, db_path, dry_run=True)
    assert report.dry_run and [i.window for i in report.items] == WINDOWS
    assert {i.status for i in report.items} == {BackfillStatus.PLANNED}
    assert all("create" in i.action for i in report.items)
    assert simulator.stats.requests["create_job"] == 0
    assert not db_path.exists()


async def test_like_copies_a_job_and_loads_into_its_table(
        settings: Settings, simulator: Simulator, driver: SimDriver, db_path: Path) -> None:
    sessions = simulator.job_named("Daily sessions")
    mapped = dataclasses.replace(settings, tables={sessions.job_id: "sessions_all"})
    report = await backfill_async(
        mapped, like=sessions.job_id, date_from=date(2026, 11, 10), date_to=date(2026, 11, 12),
        db=db_path, sleep=driver.sleep, clock=driver.clock, poll_interval=10)

    assert report.exit_code == 0, report.to_json()
    (item,) = report.items
    assert (item.scope, item.table, item.like_job_id) == ("sessions", "sessions_all",
                                                          sessions.job_id)
    (job,) = backfill_jobs(simulator)
    assert job.fields == sessions.fields and job.format == sessions.format
    (run,) = simulator.runs(job.job_id)
    want = sorted(r["session_id"] for r in simulator.truth(job.job_id, run.run_id))
    assert sorted(r[0] for r in query(db_path, "SELECT session_id FROM sessions_all")) == want
    assert want and any(key > HIGH for key in want)


async def test_a_broken_rule_creates_nothing_not_even_the_database(
        settings: Settings, simulator: Simulator, driver: SimDriver, db_path: Path) -> None:
    with pytest.raises(InvalidJobSpec) as caught:
        await backfill_async(settings, scope="views", date_from=FIRST, date_to=LAST,
                             fields=["session_id", "view_nmber", "custom_var:0"], db=db_path,
                             sleep=driver.sleep, clock=driver.clock)
    assert [p.rule for p in caught.value.problems] == [Rule.UNKNOWN_FIELD, Rule.POSITION]
    assert simulator.stats.requests["create_job"] == 0
    assert not db_path.exists()


async def test_a_backfill_of_other_fields_into_a_new_scope_table_is_refused(
        settings: Settings, simulator: Simulator, driver: SimDriver, db_path: Path) -> None:
    # Found by QA (2026-12-08): on a new database, a backfill of other fields took `views`,
    # and every sync after kept the daily views job in a table of its own.
    settings = dataclasses.replace(settings, tables={})   # the daily job goes to views
    views = simulator.job_named("Daily pageviews").job_id

    with pytest.raises(ConfigError) as caught:
        await run_backfill(settings, driver, db_path)

    assert str(caught.value).startswith(
        f"table 'views' is for the columns of job {views} (Daily pageviews), and the "
        "backfill's fields differ")
    assert "send that job to a table of its own" in str(caught.value)
    assert f"--like {views}" in str(caught.value) and "--table NAME" in str(caught.value)
    assert simulator.stats.requests["create_job"] == 0 and not db_path.exists()
    # Its first sync gives the daily job its scope's table.
    first = await sync_async(settings, db=db_path, jobs=[views])
    assert {p.job.job_id: p.table for p in first.jobs} == {views: "views"}


async def test_a_backfill_of_other_fields_into_a_table_of_other_columns_is_refused(
        settings: Settings, simulator: Simulator, driver: SimDriver, db_path: Path) -> None:
    # The daily views job loaded first: table views holds its columns (csload.load.placement).
    settings = dataclasses.replace(settings, tables={})
    await sync_async(settings, db=db_path, jobs=[simulator.job_named("Daily pageviews").job_id])
    views_before = query(db_path, "SELECT * FROM views ORDER BY ALL")
    creates = simulator.stats.requests["create_job"]

    with pytest.raises(ConfigError) as caught:
        await run_backfill(settings, driver, db_path)

    text = str(caught.value)
    assert "table 'views' holds the columns of job" in text and "--like" in text
    assert "erase" in text and "--table NAME" in text
    assert simulator.stats.requests["create_job"] == creates, "no job created"
    assert query(db_path, "SELECT * FROM views ORDER BY ALL") == views_before
    # With a table of its own, it loads.
    report = await backfill_async(
        settings, scope="views", date_from=date(2026, 11, 10), date_to=date(2026, 11, 11),
        fields=FIELDS, table="views_backfill", db=db_path, sleep=driver.sleep,
        clock=driver.clock, poll_interval=10)
    assert report.exit_code == 0, report.to_json()
    assert query(db_path, "SELECT count(*) FROM views_backfill")[0][0] > 0


async def test_a_backfill_into_a_table_of_the_users_own_is_refused(
        settings: Settings, simulator: Simulator, driver: SimDriver, db_path: Path) -> None:
    """A database of the user's with a `views` table of their own (csload.load.placement)."""
    with duckdb.connect(str(db_path)) as con:
        con.execute("CREATE TABLE views (id INTEGER, note VARCHAR)")
        con.execute("INSERT INTO views VALUES (1, 'precious')")

    with pytest.raises(ConfigError) as caught:
        await run_backfill(settings, driver, db_path)

    text = str(caught.value)
    for word in ["already has a table 'views'", "csload did not make", "--table NAME"]:
        assert word in text, text
    assert simulator.stats.requests["create_job"] == 0, "no job created"
    assert query(db_path, "SELECT * FROM views") == [(1, "precious")]


async def test_a_database_the_backfill_creates_is_private(
        settings: Settings, driver: SimDriver, db_path: Path) -> None:
    # The backfill creates the database (its ledger tables) before the first load: the same
    # way a sync creates one (csload.target), readable by its owner only.
    previous = os.umask(0o022)   # the usual umask: files readable by all
    try:
        report = await run_backfill(settings, driver, db_path, date_from=FIRST, date_to=FIRST)
    finally:
        os.umask(previous)
    assert report.exit_code == 0, report.to_json()
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600


async def test_like_a_narrower_job_the_target_has_not_seen_loads_where_a_sync_would(
        settings: Settings, simulator: Simulator, driver: SimDriver, db_path: Path) -> None:
    """On a new database, `--like` the legacy job (8 fields) used to load into `sessions`, the
    scope's table; the next sync then put the main daily job (48 fields) into a table of its
    own, `sessions_job_<id>`, as if a colleague's narrow job had been synced first. It goes
    where `csload sync` places the legacy job now."""
    legacy = simulator.job_named("Legacy sessions (CSV)")
    report = await backfill_async(
        settings, like=legacy.job_id, date_from=date(2026, 11, 10),
        date_to=date(2026, 11, 11), db=db_path, sleep=driver.sleep, clock=driver.clock,
        poll_interval=10)

    assert report.exit_code == 0, report.to_json()
    (item,) = report.items
    assert item.table == f"sessions_job_{legacy.job_id}"
    synced = await sync_async(settings, db=db_path)
    assert not synced.refused, [p.refused for p in synced.refused]
    tables = {p.job.job_id: p.table for p in synced.jobs}
    assert tables[simulator.job_named("Daily sessions").job_id] == "sessions"
    assert tables[legacy.job_id] == item.table


@pytest.mark.parametrize("kind", ["db", "lake"])
async def test_the_same_backfill_a_day_later_exports_only_the_days_it_had_not_loaded(
        settings: Settings, simulator: Simulator, driver: SimDriver, tmp_path: Path,
        kind: str) -> None:
    """Found by QA, 2026-12-07: the windows are cut from the days exportable now, so the same
    command with a range reaching past today, run again the next day, cut 11-23..11-25 where
    it had loaded 11-23..11-24, and exported and loaded both days again (without the row key
    among the fields, their rows were then in the table twice; three times a day later)."""
    where = {"db": str(tmp_path / "cs.duckdb")} if kind == "db" else {
        "parquet": str(tmp_path / "lake")}
    keyless = ("user_id", "view_time", "url:page_url")

    async def backfill() -> BackfillReport:
        return await backfill_async(   # type: ignore[arg-type]
            settings, scope="views", date_from=date(2026, 11, 23), date_to=date(2026, 11, 28),
            fields=keyless, table="page_hits", sleep=driver.sleep, clock=driver.clock,
            poll_interval=10, **where)

    first = await backfill()   # the clock at 11-25 12:00: 11-23 and 11-24 are over
    simulator.advance(24 * 3600)
    events: list[BackfillEvent] = []
    again = await backfill_async(   # type: ignore[arg-type]
        settings, scope="views", date_from=date(2026, 11, 23), date_to=date(2026, 11, 28),
        fields=keyless, table="page_hits", sleep=driver.sleep, clock=driver.clock,
        poll_interval=10, on_event=events.append, **where)

    assert [(i.window, i.status) for i in first.items] == [
        (Window(date(2026, 11, 23), date(2026, 11, 25)), BackfillStatus.LOADED)]
    assert [(i.window, i.status) for i in again.items] == [
        (Window(date(2026, 11, 25), date(2026, 11, 26)), BackfillStatus.LOADED)]
    assert any("2026-11-23..2026-11-24: loaded by job" in (e.message or "") for e in events)
    jobs = backfill_jobs(simulator)
    assert len(jobs) == 2
    want = sum(len(simulator.truth(j.job_id, r.run_id)) for j in jobs
               for r in simulator.runs(j.job_id))
    sql = "SELECT count(*), count(DISTINCT _date) FROM page_hits"
    got = query(Path(where["db"]), sql) if kind == "db" else lake_query(where["parquet"], sql)
    assert got == [(want, 3)]


async def test_status_forgets_an_unfinished_job_whose_days_a_later_run_of_the_backfill_loaded(
        settings: Settings, simulator: Simulator, driver: SimDriver, db_path: Path) -> None:
    """Found by QA, 2026-12-07: a backfill stopped at its max_wait, and the same backfill over
    a wider range loaded those days through another window; `status` listed the first job as
    unfinished for good, with advice that did nothing."""
    simulator.config.once_state_seconds = 3600.0   # the first job's run takes 3 h
    stopped = await backfill_async(settings, scope="views", date_from=date(2026, 11, 10),
                                   date_to=date(2026, 11, 10), fields=FIELDS, db=db_path,
                                   sleep=driver.sleep, clock=driver.clock, poll_interval=10,
                                   max_wait=60)
    [late] = backfill_jobs(simulator)
    assert [i.status for i in stopped.items] == [BackfillStatus.FAILED]
    assert [b.job_id for b in csload.status(db=db_path).unfinished] == [late.job_id]
    simulator.config.once_state_seconds = 10.0

    wider = await run_backfill(settings, driver, db_path, date_from=date(2026, 11, 9),
                               date_to=date(2026, 11, 10))

    assert [i.status for i in wider.items] == [BackfillStatus.LOADED]
    assert csload.status(db=db_path).unfinished == ()
