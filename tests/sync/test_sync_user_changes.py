"""A DuckDB target's tables are the user's too (docs/lake.md, "Writing to the tables", says
what a lake does with the same changes): a column the user adds and the rows they delete stay
through later syncs; a re-run of a day replaces that day's rows whole, so its rows have the
added column NULL and the deleted keys back when the new run has them. A table the user drops
or renames is loaded again from its runs. The simulator over real HTTP, a real DuckDB file,
compared with the simulator's truth."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import duckdb
import pytest

import csload
from csload.config import Settings
from csload.errors import StoreError
from csload.simulator import Simulator
from tests.support.bfref import query
from tests.support.syncref import (
    SESSIONS_JOB,
    VIEWS_JOB,
    assert_rows_equal,
    expected_tables,
    successful_runs,
    table_rows,
)

THE_DAY = date(2026, 11, 23)


def run_sql(db: Path, *statements: str) -> None:
    """What a user does to the database by hand, between syncs."""
    with duckdb.connect(str(db)) as con:
        for statement in statements:
            con.execute(statement)


def test_a_column_the_user_adds_and_rows_they_delete_stay_through_a_rerun_of_a_day(
        simulator: Simulator, settings: Settings, db_path: Path) -> None:
    csload.sync(settings, db=db_path)
    run_sql(db_path, "ALTER TABLE views ADD COLUMN note VARCHAR",
            "UPDATE views SET note = 'mine'", "DELETE FROM views WHERE view_number = 1")
    rerun = simulator.rerun(VIEWS_JOB, THE_DAY)

    report = csload.sync(settings, db=db_path)

    assert [r.run_id for r in report.loaded] == [rerun] and not report.refused
    columns, rows = table_rows(db_path, "views")
    want_columns, want = expected_tables(simulator, successful_runs(simulator))["views"]
    assert columns == want_columns | {"note"}
    want = [r for r in want if r["view_number"] != 1 or r["_run_id"] == rerun]
    assert len(want) < len(expected_tables(simulator, successful_runs(simulator))["views"][1])
    assert_rows_equal([{k: v for k, v in r.items() if k != "note"} for r in rows], want,
                      "views")
    assert {r["note"] for r in rows if r["_run_id"] == rerun} == {None}
    assert {r["note"] for r in rows if r["_run_id"] != rerun} == {"mine"}


@pytest.mark.parametrize("how", ["DROP TABLE views", "ALTER TABLE views RENAME TO views_old"])
def test_a_table_the_user_drops_or_renames_is_loaded_again_from_its_runs(
        simulator: Simulator, settings: Settings, db_path: Path,
        caplog: pytest.LogCaptureFixture, how: str) -> None:
    """Before 2026-12-07 the next sync recreated `views` with the new runs only: the ledger
    still counted the dropped table's runs as loaded, and said nothing."""
    csload.sync(settings, db=db_path)
    con = duckdb.connect(str(db_path))
    try:
        views_runs = {int(r[0]) for r in con.execute(
            "SELECT run_id FROM _csload.runs WHERE table_name = 'views' "
            "AND status = 'loaded'").fetchall()}
        kept = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()  # noqa: S608
                for t in ("sessions",)}
        con.execute(how)
    finally:
        con.close()
    assert views_runs

    plan = csload.sync(settings, db=db_path, dry_run=True)
    assert {r.run_id for r in plan.runs} == views_runs   # what the sync will load again

    with caplog.at_level(logging.WARNING, "csload.load"):
        report = csload.sync(settings, db=db_path)
    assert {r.run_id for r in report.loaded} == views_runs
    assert "table views is no longer in" in caplog.text
    expected = expected_tables(simulator, successful_runs(simulator))
    columns, rows = table_rows(db_path, "views")
    assert columns == expected["views"][0]
    assert_rows_equal(rows, expected["views"][1], "views")
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        assert {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()  # noqa: S608
                for t in kept} == kept
        if "RENAME" in how:   # the user's copy stays as they left it
            assert con.execute("SELECT count(*) FROM views_old").fetchone() == (len(rows),)
    finally:
        con.close()

    again = csload.sync(settings, db=db_path)   # and once loaded, not again
    assert not again.loaded


def test_a_column_the_user_retypes_fails_the_runs_that_load_it_saying_how_to_undo_it(
        simulator: Simulator, settings: Settings, db_path: Path) -> None:
    csload.sync(settings, db=db_path)
    with duckdb.connect(str(db_path)) as con:
        con.execute("ALTER TABLE views ALTER COLUMN duration_ms SET DATA TYPE VARCHAR")
    rerun = simulator.rerun(VIEWS_JOB, THE_DAY)

    report = csload.sync(settings, db=db_path)

    [failed] = report.failed
    assert failed.run_id == rerun and not report.loaded
    advice = 'ALTER TABLE "views" ALTER COLUMN "duration_ms" SET DATA TYPE BIGINT'
    assert "column 'duration_ms' of table 'views' is VARCHAR" in (failed.message or "")
    assert advice in (failed.message or "")
    with duckdb.connect(str(db_path)) as con:
        con.execute(advice)
    assert [r.run_id for r in csload.sync(settings, db=db_path).loaded] == [rerun]
    columns, rows = table_rows(db_path, "views")
    want_columns, want = expected_tables(simulator, successful_runs(simulator))["views"]
    assert columns == want_columns
    assert_rows_equal(rows, want, "views")


def test_tables_of_the_users_own_in_the_database_are_never_loaded_into(
        simulator: Simulator, settings: Settings, db_path: Path) -> None:
    """`csload sync --db warehouse.duckdb`, a database of the user's that already has a table
    `views` and a view `sessions` of their own. Before 2026-12-07 the sync added the job's
    columns to their table in its transaction and failed on DuckDB's "Binder Error: Table
    "sessions" does not have a column with name "_job_id"  Did you mean: "model"". Now the jobs
    placed there are refused, saying what to write in csload.toml, and nothing of the user's
    changes; the mapping advised loads them."""
    with duckdb.connect(str(db_path)) as con:
        con.execute("CREATE TABLE views (id INTEGER, note VARCHAR)")
        con.execute("INSERT INTO views VALUES (1, 'precious')")
        con.execute("CREATE VIEW sessions AS SELECT 42 AS answer")
    mapped = {job: f"{scope}_job_{job}"
              for job, scope in ((VIEWS_JOB, "views"), (SESSIONS_JOB, "sessions"))}
    advice = {job: f'[tables] {job} = "{table}"' for job, table in mapped.items()}

    for dry_run in (True, False):
        report = csload.sync(settings, db=db_path, dry_run=dry_run)
        refused = {p.job.job_id: p.refused or "" for p in report.refused}
        assert set(refused) == set(advice), refused
        for job, line in advice.items():
            for word in ["already has a table", "that csload did not make", line]:
                assert word in refused[job], refused[job]
        assert {simulator.run(r.run_id).job_id for r in report.runs} == {1119}
    with duckdb.connect(str(db_path), read_only=True) as con:
        assert con.execute("SELECT * FROM views").fetchall() == [(1, "precious")]
        assert con.execute("SELECT * FROM sessions").fetchall() == [(42,)]

    # What the refusal says to write: the jobs load into those tables, the user's stay
    report = csload.sync(settings, db=db_path, tables=mapped)
    assert not report.refused and report.loaded
    expected = expected_tables(simulator, successful_runs(simulator), mapped)
    for table in mapped.values():
        columns, rows = table_rows(db_path, table)
        assert columns == expected[table][0]
        assert_rows_equal(rows, expected[table][1], table)
    with duckdb.connect(str(db_path), read_only=True) as con:
        assert con.execute("SELECT * FROM views").fetchall() == [(1, "precious")]


@pytest.mark.parametrize(("change", "says", "undo"), [
    (["CREATE UNIQUE INDEX mine ON views (session_id, view_number)"],
     "a constraint on the table (a PRIMARY KEY, a UNIQUE index, a NOT NULL column: yours?)",
     ["DROP INDEX mine"]),
    (["ALTER TABLE views ADD COLUMN reviewed BOOLEAN", "UPDATE views SET reviewed = false",
      "ALTER TABLE views ALTER COLUMN reviewed SET NOT NULL"],
     "ALTER TABLE ... ALTER COLUMN ... DROP NOT NULL",
     ["ALTER TABLE views ALTER COLUMN reviewed DROP NOT NULL"]),
    (["ALTER TABLE views ALTER COLUMN view_number TYPE UTINYINT",
      "CREATE INDEX mine ON views (view_number)"],
     "an index on it (yours?) stops DuckDB: drop the index, sync, then create it again",
     ["DROP INDEX mine"]),
    (["ALTER TABLE views RENAME COLUMN _date TO load_date"],
     "the table has no column _date (renamed or dropped?)",
     ["ALTER TABLE views RENAME COLUMN load_date TO _date"]),
])
def test_a_change_of_the_users_that_stops_the_load_is_said_with_the_way_out(
        simulator: Simulator, settings: Settings, db_path: Path, change: list[str], says: str,
        undo: list[str]) -> None:
    """Each failed every later sync with DuckDB's words only ("Duplicate key ... violates
    primary key constraint", "Cannot alter entry", "does not have a column with name _date")
    while status and doctor said nothing was wrong (QA, 2026-12-08)."""
    csload.sync(settings, db=db_path)
    run_sql(db_path, *change)
    simulator.rerun(VIEWS_JOB, THE_DAY)

    with pytest.raises(StoreError) as raised:
        csload.sync(settings, db=db_path)
    assert "loading into table 'views' failed" in str(raised.value)
    assert says in str(raised.value), raised.value
    if "_date" in says:   # status said "a bug in csload"
        with pytest.raises(StoreError, match="table 'views' has no column _date"):
            csload.status(db=db_path)

    run_sql(db_path, *undo)
    assert not csload.sync(settings, db=db_path).failed
    _columns, rows = table_rows(db_path, "views")
    want_columns, want = expected_tables(simulator, successful_runs(simulator))["views"]
    assert_rows_equal([{k: v for k, v in r.items() if k in want_columns} for r in rows], want,
                      "views")


def test_a_table_renamed_in_another_case_is_still_csloads(
        simulator: Simulator, settings: Settings, db_path: Path) -> None:
    """`ALTER TABLE views RENAME TO Views`: DuckDB's names ignore case, so it is the same
    table to every query. It was taken for dropped: its runs forgotten, then every sync
    failed with "Table with name "views" already exists!" (QA, 2026-12-08)."""
    csload.sync(settings, db=db_path)
    run_sql(db_path, "ALTER TABLE views RENAME TO Views")
    simulator.rerun(VIEWS_JOB, THE_DAY)

    report = csload.sync(settings, db=db_path)

    assert not report.failed and len(report.loaded) == 1, report.to_json()
    _columns, rows = table_rows(db_path, "views")
    want = expected_tables(simulator, successful_runs(simulator))["views"][1]
    assert_rows_equal(rows, want, "views")
    [views] = [t for t in csload.status(db=db_path).tables if t.table == "views"]
    assert views.rows == len(want)


def test_a_view_put_in_a_tables_place_is_refused_and_forgets_nothing(
        simulator: Simulator, settings: Settings, db_path: Path) -> None:
    """`views` renamed and a view of the old name put in its place: its runs were forgotten
    (taken for a dropped table), then every sync failed with "views is not an table"."""
    csload.sync(settings, db=db_path)
    run_sql(db_path, "ALTER TABLE views RENAME TO views_raw",
            "CREATE VIEW views AS SELECT * FROM views_raw WHERE view_number > 1")
    simulator.rerun(VIEWS_JOB, THE_DAY)

    with pytest.raises(StoreError) as raised:
        csload.sync(settings, db=db_path)
    assert "views is a view (yours?), and csload loads into tables" in str(raised.value)
    [(kept,)] = query(db_path, "SELECT count(*) FROM _csload.runs WHERE status = 'loaded' "
                               "AND table_name = 'views'")
    assert kept > 0
    # the way out the message gives
    run_sql(db_path, "ALTER VIEW views RENAME TO views_filtered",
            "ALTER TABLE views_raw RENAME TO views")
    assert not csload.sync(settings, db=db_path).failed
    _columns, rows = table_rows(db_path, "views")
    assert_rows_equal(rows, expected_tables(simulator, successful_runs(simulator))["views"][1],
                      "views")
