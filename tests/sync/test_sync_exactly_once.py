"""`csload.sync` end to end: the simulator over real HTTP, real DuckDB files, row by row.

Every test compares whole tables (every column of every row) with `syncref.expected_tables`:
the simulator's truth of each run, applied in (finished_at, run_id) order. Every test runs
twice: against the contract's guesses, and against what a ClickHouse-based export engine writes
and answers by default (contract section 9: no CSV header, every string quoted, 64-bit integers
as JSON strings, values wider than the guessed widths, pages clamped to 50 and runs listed
oldest first, ...).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

import csload
from csload.config import Settings
from csload.simulator import SimConfig, Simulator
from csload.simulator.rows import WIDENED
from tests.support.syncref import (
    ALL_HARD,
    LEGACY_HARD,
    LEGACY_JOB,
    SESSIONS_JOB,
    VIEWS_HARD,
    VIEWS_JOB,
    assert_db_matches,
    assert_hard_cases,
    assert_table,
    create_job,
    day,
    expected_tables,
    finish_once_job,
    run_of,
    same_fields,
    successful_runs,
    table_names,
    table_rows,
)


@pytest.fixture
def sim_config(dialect_config: SimConfig) -> SimConfig:
    return dialect_config


def snapshot(db: Path) -> dict[str, list[Any]]:
    """Every row of every table, `_loaded_at` and the ledger included."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()]
        return {name: sorted(con.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr)  # noqa: S608
                for name in names}
    finally:
        con.close()


def test_full_sync_of_both_scopes_and_formats_matches_the_truth(
    simulator: Simulator, settings: Settings, db_path: Path
) -> None:
    report = csload.sync(settings, db=db_path)

    runs = successful_runs(simulator)
    # 3 days of the JSONL sessions job and the CSV views job, and the legacy CSV job's run.
    assert len(runs) == 7
    assert {simulator.run(r).job_id for r in runs} == {SESSIONS_JOB, VIEWS_JOB, LEGACY_JOB}
    assert sorted(r.run_id for r in report.loaded) == sorted(runs)
    assert report.exit_code == 0 and not report.failed and not report.expired
    expected = expected_tables(simulator, runs)
    assert_db_matches(db_path, expected)

    sessions = assert_table(db_path, "sessions", expected)
    views = assert_table(db_path, "views", expected)
    # The legacy job exports other sessions fields: a table of its own, so that neither
    # job's runs erase the other's columns.
    legacy = assert_table(db_path, f"sessions_job_{LEGACY_JOB}", expected)
    assert {r["_job_id"] for r in sessions} == {SESSIONS_JOB}
    assert_hard_cases(sessions, ALL_HARD, job=SESSIONS_JOB)
    assert_hard_cases(legacy, LEGACY_HARD, job=LEGACY_JOB,
                      minute_column="app_events_event_time")
    assert_hard_cases(views, VIEWS_HARD, job=VIEWS_JOB, minute_column="errors_error_time")
    # The contract's JSONL job's array timestamps keep their seconds: the minutes above are the
    # CSV's. ClickHouse's JSONL writes them to the minute too.
    minutes = simulator.variants.minute_time_arrays_in_json
    assert any(t.second for r in sessions if r["_job_id"] == SESSIONS_JOB
               for t in r["app_events_event_time"]) is not minutes
    if simulator.variants.wide_integers:
        # Values past the guessed widths (UInt16, UInt32) arrived and loaded exactly.
        def highest(rows: list[dict[str, Any]], column: str) -> int:
            return max(r[column] for r in rows if r[column] is not None)

        assert highest(sessions, "session_number") > WIDENED["session_number"]
        assert highest(views, "view_number") > 65_535
        assert highest(sessions, "session_duration_msec") >= 1 << 32
    # Types come from the schemas: UInt64 stays exact, arrays are lists.
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        types = dict(con.execute(
            "SELECT table_name || '.' || column_name, data_type FROM duckdb_columns() "
            "WHERE schema_name = 'main' AND table_name IN ('sessions', 'views')").fetchall())
    finally:
        con.close()
    assert types["sessions.session_id"] == "UBIGINT"
    assert types["sessions.visitor_id"] == "UBIGINT"
    assert types["sessions.session_transaction_items_product_id_hashed"] == "UBIGINT[]"
    assert types["views.errors_error_time"] == "TIMESTAMP[]"
    assert types["views.error_messages"] == "VARCHAR[]"
    assert types["views.view_time"] == "TIMESTAMP"


def test_second_sync_downloads_nothing_and_changes_nothing(
    simulator: Simulator, settings: Settings, db_path: Path
) -> None:
    first = csload.sync(settings, db=db_path)
    assert len(first.loaded) == 7
    before = snapshot(db_path)
    storage = simulator.stats.storage_requests
    details = simulator.stats.requests["get_run"]
    assert storage > 0 and details == 7

    second = csload.sync(settings, db=db_path)

    assert second.runs == [] and second.exit_code == 0
    assert simulator.stats.storage_requests == storage
    assert simulator.stats.requests["get_run"] == details
    assert snapshot(db_path) == before

    # A new day: only its two runs are fetched.
    new_runs = simulator.advance_days(1)
    assert len(new_runs) == 2
    third = csload.sync(settings, db=db_path)
    assert sorted(r.run_id for r in third.loaded) == sorted(new_runs)
    parts = sum(len(simulator.part_bodies(simulator.run(r).job_id, r)) for r in new_runs)
    assert simulator.stats.storage_requests == storage + parts
    assert_db_matches(db_path, expected_tables(simulator, successful_runs(simulator)))


def test_rerun_of_a_day_replaces_that_days_rows(
    simulator: Simulator, settings: Settings, db_path: Path
) -> None:
    csload.sync(settings, db=db_path)
    the_day = date(2026, 11, 23)
    old_sessions = run_of(simulator, SESSIONS_JOB, "2026-11-23")
    old_views = run_of(simulator, VIEWS_JOB, "2026-11-23")
    new_sessions = simulator.rerun(SESSIONS_JOB, the_day)
    new_views = simulator.rerun(VIEWS_JOB, the_day)

    report = csload.sync(settings, db=db_path)

    assert sorted(r.run_id for r in report.loaded) == sorted([new_sessions, new_views])
    expected = expected_tables(simulator, successful_runs(simulator))
    assert_db_matches(db_path, expected)

    # The re-run drops sessions, adds some and changes values: all three must show.
    old = {r["session_id"]: r for r in simulator.truth(SESSIONS_JOB, old_sessions)}
    new = {r["session_id"]: r for r in simulator.truth(SESSIONS_JOB, new_sessions)}
    gone, added = set(old) - set(new), set(new) - set(old)
    changed = {k for k in set(old) & set(new)
               if old[k]["session_duration_msec"] != new[k]["session_duration_msec"]}
    assert gone and added and changed
    _, rows = table_rows(db_path, "sessions")
    of_day = [r for r in rows if r["_date"] == the_day]
    assert sorted(r["session_id"] for r in of_day) == sorted(new)
    assert {r["_run_id"] for r in of_day} == {new_sessions}
    by_key = {r["session_id"]: r for r in of_day}
    for key in changed:
        assert by_key[key]["session_duration_msec"] == new[key]["session_duration_msec"]

    old_views_keys = {(r["session_id"], r["view_number"])
                      for r in simulator.truth(VIEWS_JOB, old_views)}
    new_views_keys = {(r["session_id"], r["view_number"])
                      for r in simulator.truth(VIEWS_JOB, new_views)}
    _, view_rows = table_rows(db_path, "views")
    keys = [(r["session_id"], r["view_number"]) for r in view_rows]
    assert len(keys) == len(set(keys))
    assert not (old_views_keys - new_views_keys) & set(keys)
    assert {k for r, k in zip(view_rows, keys, strict=True)
            if r["_date"] == the_day} == new_views_keys


def test_a_day_and_its_rerun_in_one_sync_report_what_the_table_gained(
    simulator: Simulator, settings: Settings, db_path: Path
) -> None:
    """A first sync, or one after cron missed a day, loads a day and its re-run together.
    The re-run's rows that replaced the older run's, which was never in the table, were
    counted "replaced", not added: 297 rows the table gained (found by QA, 2026-12-07)."""
    rerun = simulator.rerun(VIEWS_JOB, date(2026, 11, 23))

    report = csload.sync(settings, db=db_path)

    loaded = [r for r in report.loaded if r.job_id == VIEWS_JOB]
    assert rerun in {r.run_id for r in loaded}
    _, rows = table_rows(db_path, "views")
    assert sum(r.added - r.removed for r in loaded) == len(rows) > 0
    assert sum(r.replaced for r in loaded) == 0   # the table held no row before
    [totals] = [t for t in report.job_totals() if t.job_id == VIEWS_JOB]
    assert (totals.added, totals.replaced) == (len(rows), 0)


def test_once_job_over_loaded_days_leaves_one_row_per_key_latest_wins(
    simulator: Simulator, settings: Settings, db_path: Path
) -> None:
    csload.sync(settings, db=db_path)
    # Another format, the daily CSV views job's fields: it shares table views, and its rows
    # replace the daily job's rows of the same keys.
    once = create_job(settings, name="views again", fmt="JSONL", scope="views",
                      fields=same_fields(simulator, VIEWS_JOB),
                      date_from=day("2026-11-23"), date_to=day("2026-11-25"))
    once_run = finish_once_job(simulator, once)

    report = csload.sync(settings, db=db_path)

    assert [r.run_id for r in report.loaded] == [once_run]
    assert [(p.job.job_id, p.table, p.new) for p in report.jobs
            if p.job.job_id == once] == [(once, "views", True)]
    expected = expected_tables(simulator, successful_runs(simulator))
    assert_db_matches(db_path, expected)
    _, rows = table_rows(db_path, "views")
    keys = [(r["session_id"], r["view_number"]) for r in rows]
    assert len(keys) == len(set(keys))
    for row in rows:
        if row["_date"] in (date(2026, 11, 23), date(2026, 11, 24)):
            assert row["_run_id"] == once_run and row["duration_ms"] is not None
        else:
            assert row["_job_id"] == VIEWS_JOB and row["duration_ms"] is not None
    [outcome] = report.loaded
    assert outcome.replaced == sum(r["_date"] in (date(2026, 11, 23), date(2026, 11, 24))
                                   for r in rows) > 0
    assert outcome.added == 0 and outcome.removed == 0
    assert sum(r["_run_id"] == once_run for r in rows) == len(
        simulator.truth(once, once_run)) > 0


def test_once_job_without_key_fields_replaces_its_own_rows_by_window(
    simulator: Simulator, settings: Settings, db_path: Path
) -> None:
    # No session_id: a table of its own (its columns differ from table sessions'); a re-run
    # of one of its days replaces exactly its rows of that day.
    once = create_job(settings, name="durations", fmt="CSV", scope="sessions",
                      fields=["session_date", "country_code", "device_id",
                              ("session_duration_msec", "Duration (ms)")],
                      date_from=day("2026-11-22"), date_to=day("2026-11-25"))
    first = finish_once_job(simulator, once)
    csload.sync(settings, db=db_path)
    rerun = simulator.rerun(once, date(2026, 11, 23))

    report = csload.sync(settings, db=db_path)

    assert [r.run_id for r in report.loaded] == [rerun]
    expected = expected_tables(simulator, successful_runs(simulator))
    assert_db_matches(db_path, expected)
    _, mine = table_rows(db_path, f"sessions_job_{once}")
    assert {r["_job_id"] for r in mine} == {once}
    assert "session_id" not in mine[0]
    [outcome] = report.loaded
    assert outcome.removed == sum(r["session_date"] == date(2026, 11, 23)
                                  for r in simulator.truth(once, first)) > 0
    assert (outcome.added, outcome.replaced) == (len(simulator.truth(once, rerun)), 0)
    first_truth = simulator.truth(once, first)
    rerun_truth = simulator.truth(once, rerun)
    assert len(rerun_truth) != sum(r["session_date"] == date(2026, 11, 23) for r in first_truth)
    by_run: dict[tuple[int, date], int] = {}
    for row in mine:
        by_run[(row["_run_id"], row["_date"])] = by_run.get((row["_run_id"], row["_date"]), 0) + 1
    assert by_run == {
        (first, date(2026, 11, 22)): sum(r["session_date"] == date(2026, 11, 22)
                                         for r in first_truth),
        (first, date(2026, 11, 24)): sum(r["session_date"] == date(2026, 11, 24)
                                         for r in first_truth),
        (rerun, date(2026, 11, 23)): len(rerun_truth),
    }
    # The alias became a column by the naming rule; the daily jobs' rows are untouched.
    assert all(r["duration_ms_"] is not None for r in mine)
    _, daily = table_rows(db_path, "sessions")
    assert {r["_job_id"] for r in daily} == {SESSIONS_JOB}
    assert len(daily) == sum(len(simulator.truth(SESSIONS_JOB, r.run_id))
                             for r in simulator.runs(SESSIONS_JOB))


def test_older_run_applied_after_a_newer_one_does_not_overwrite_it(
    simulator: Simulator, settings: Settings, db_path: Path
) -> None:
    once = create_job(settings, name="views again", fmt="JSONL", scope="views",
                      fields=same_fields(simulator, VIEWS_JOB),
                      date_from=day("2026-11-23"), date_to=day("2026-11-24"))
    once_run = finish_once_job(simulator, once)
    # The once run (newest) first, then the daily runs, which are older.
    first = csload.sync(settings, db=db_path, jobs=[once])
    assert [r.run_id for r in first.loaded] == [once_run]

    second = csload.sync(settings, db=db_path)

    assert len(second.loaded) == 7
    assert_db_matches(db_path, expected_tables(simulator, successful_runs(simulator)))
    _, rows = table_rows(db_path, "views")
    of_day = [r for r in rows if r["_date"] == date(2026, 11, 23)]
    assert of_day and {r["_run_id"] for r in of_day} == {once_run}
    once_keys = {(r["session_id"], r["view_number"]) for r in simulator.truth(once, once_run)}
    assert {(r["session_id"], r["view_number"]) for r in of_day} == once_keys
    # The report counts the rows the run's files held; the ledger, those that stayed.
    daily_run = run_of(simulator, VIEWS_JOB, "2026-11-23")
    outcome = next(r for r in second.loaded if r.run_id == daily_run)
    assert outcome.rows == len(simulator.truth(VIEWS_JOB, daily_run)) > 0
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        assert con.execute("SELECT status, rows_read, rows FROM _csload.runs WHERE run_id = ?",
                           [daily_run]).fetchone() == ("loaded", outcome.rows, 0)
    finally:
        con.close()


def test_original_run_loaded_after_its_rerun_changes_nothing(
    simulator: Simulator, settings: Settings, db_path: Path
) -> None:
    original = run_of(simulator, SESSIONS_JOB, "2026-11-23")
    rerun = simulator.rerun(SESSIONS_JOB, date(2026, 11, 23))
    # The original fails once (a part that does not parse), so it is applied after its re-run.
    simulator.faults.corrupt_part = (original, 1)
    first = csload.sync(settings, db=db_path)
    assert [r.run_id for r in first.failed] == [original]
    assert rerun in {r.run_id for r in first.loaded}
    simulator.faults.corrupt_part = None

    second = csload.sync(settings, db=db_path)

    assert [r.run_id for r in second.loaded] == [original]
    assert_db_matches(db_path, expected_tables(simulator, successful_runs(simulator)))
    _, rows = table_rows(db_path, "sessions")
    assert not any(r["_run_id"] == original for r in rows)
    gone = ({r["session_id"] for r in simulator.truth(SESSIONS_JOB, original)}
            - {r["session_id"] for r in simulator.truth(SESSIONS_JOB, rerun)})
    assert gone and not gone & {r["session_id"] for r in rows}


def test_row_removed_by_a_rerun_is_not_resurrected_by_an_older_run(
    simulator: Simulator, settings: Settings, db_path: Path
) -> None:
    # A once job over today (so older than the daily run of today), loaded last: a session the
    # daily run had and its re-run dropped must not come back from the once job's rows.
    once = create_job(settings, name="today so far", fmt="CSV", scope="sessions",
                      fields=same_fields(simulator, SESSIONS_JOB),
                      date_from=day("2026-11-25"), date_to=day("2026-11-26"))
    once_run = finish_once_job(simulator, once)
    simulator.advance(17 * 3600)  # 26 Nov 05:00: the daily runs of the 25th have finished
    daily = run_of(simulator, SESSIONS_JOB, "2026-11-25")
    assert simulator.run_state(daily) == "SUCCESS"
    csload.sync(settings, db=db_path, jobs=[SESSIONS_JOB])
    rerun = simulator.rerun(SESSIONS_JOB, date(2026, 11, 25))
    assert [r.run_id for r in csload.sync(settings, db=db_path, jobs=[SESSIONS_JOB]).loaded] \
        == [rerun]

    last = csload.sync(settings, db=db_path)

    assert once_run in {r.run_id for r in last.loaded}
    assert_db_matches(db_path, expected_tables(simulator, successful_runs(simulator)))
    early = {r["session_id"] for r in simulator.truth(once, once_run)}
    dropped = ({r["session_id"] for r in simulator.truth(SESSIONS_JOB, daily)}
               - {r["session_id"] for r in simulator.truth(SESSIONS_JOB, rerun)})
    resurrectable = early & dropped
    assert resurrectable, "the scenario needs a session of the once run the re-run dropped"
    _, rows = table_rows(db_path, "sessions")
    assert not resurrectable & {r["session_id"] for r in rows}
    assert not any(r["_run_id"] == once_run for r in rows)
    assert table_names(db_path) == {"sessions", "views", f"sessions_job_{LEGACY_JOB}"}


def test_runs_supersede_by_finish_time_not_by_id(
    simulator: Simulator, settings: Settings, db_path: Path
) -> None:
    # 26 Nov 04:05: the daily runs of the 25th started at 04:00 and 04:03 and run until ~04:21.
    # A once job over the 25th created now gets a higher run id but finishes first (04:05:30):
    # the daily run is the later word on every key.
    simulator.advance(16 * 3600 + 5 * 60)
    once = create_job(settings, name="quick look", fmt="JSONL", scope="sessions",
                      fields=same_fields(simulator, SESSIONS_JOB),
                      date_from=day("2026-11-25"), date_to=day("2026-11-26"))
    once_run = finish_once_job(simulator, once)
    simulator.advance(3600)
    daily = run_of(simulator, SESSIONS_JOB, "2026-11-25")
    assert simulator.run_state(daily) == "SUCCESS"
    assert once_run > daily
    assert simulator.run(once_run).finished_at < simulator.run(daily).finished_at

    csload.sync(settings, db=db_path)

    assert_db_matches(db_path, expected_tables(simulator, successful_runs(simulator)))
    _, rows = table_rows(db_path, "sessions")
    of_day = [r for r in rows if r["_date"] == date(2026, 11, 25)]
    assert of_day and {r["_run_id"] for r in of_day} == {daily}
    assert not any(r["_run_id"] == once_run for r in rows)
