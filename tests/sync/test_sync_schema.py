"""Schema evolution: a job with fields the table lacks gets a table of its own, with nullable
columns typed from the schema; the table it would have changed keeps its columns and rows."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb

import csload
from csload.config import Settings
from csload.simulator import Simulator
from tests.support.syncref import (
    assert_db_matches,
    assert_rows_equal,
    create_job,
    day,
    expected_tables,
    finish_once_job,
    successful_runs,
    table_rows,
)

NEW_COLUMNS = {"url_no_query_param": "VARCHAR", "document_width": "BIGINT",
               "start_render": "BIGINT", "page_title": "VARCHAR"}


def columns(db: Path, table: str) -> dict[str, tuple[str, bool]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT column_name, data_type, is_nullable FROM duckdb_columns() "
            "WHERE schema_name = 'main' AND table_name = ?", [table]).fetchall()
    finally:
        con.close()
    return {name: (dtype, nullable) for name, dtype, nullable in rows}


def test_a_job_with_new_fields_gets_a_table_with_them_and_changes_no_column_of_views(
    simulator: Simulator, settings: Settings, db_path: Path
) -> None:
    csload.sync(settings, db=db_path)
    before = columns(db_path, "views")
    rows_before = table_rows(db_path, "views")[1]
    assert not set(NEW_COLUMNS) & set(before)
    # Three fields the daily views job does not export, and one under a new alias.
    once = create_job(settings, name="views, more fields", fmt="CSV", scope="views",
                      fields=["session_id", "view_number", "view_time", "url_no_query_param",
                              "document_width", "start_render", ("screen_name", "Page Title")],
                      date_from=day("2026-11-24"), date_to=day("2026-11-25"))
    once_run = finish_once_job(simulator, once)

    report = csload.sync(settings, db=db_path)

    assert [(r.run_id, r.table) for r in report.loaded] == [(once_run, f"views_job_{once}")]
    # views: the same columns, the same rows (csload.load.placement: no run erases a column).
    assert columns(db_path, "views") == before
    assert_rows_equal(table_rows(db_path, "views")[1], rows_before, "views")
    # Its own table has its columns, typed from the schema, all nullable.
    mine = columns(db_path, f"views_job_{once}")
    assert {name: mine[name] for name in NEW_COLUMNS} == {
        name: (dtype, True) for name, dtype in NEW_COLUMNS.items()}
    assert set(mine) == {*NEW_COLUMNS, "session_id", "view_number", "view_time", "_job_id",
                         "_run_id", "_date", "_loaded_at"}
    assert_db_matches(db_path, expected_tables(simulator, successful_runs(simulator)))
    _, new = table_rows(db_path, f"views_job_{once}")
    assert new and all(r["document_width"] is not None and r["url_no_query_param"]
                       for r in new)
    assert {r["_date"] for r in new} == {date(2026, 11, 24)}
