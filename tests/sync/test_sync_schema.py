"""Schema evolution: a job with fields the table lacks adds nullable columns, drops nothing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
from syncref import (
    VIEWS_JOB,
    assert_db_matches,
    create_job,
    day,
    expected_tables,
    finish_once_job,
    successful_runs,
    table_rows,
)

import csload
from csload.config import Settings
from csload.simulator import Simulator

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


def test_a_job_with_new_fields_adds_nullable_columns_and_drops_none(
    simulator: Simulator, settings: Settings, db_path: Path
) -> None:
    csload.sync(settings, db=db_path)
    before = columns(db_path, "views")
    assert not set(NEW_COLUMNS) & set(before)
    # Three fields the daily views job does not export, and one under a new alias.
    once = create_job(settings, name="views, more fields", fmt="CSV", scope="views",
                      fields=["session_id", "view_number", "view_time", "url_no_query_param",
                              "document_width", "start_render", ("screen_name", "Page Title")],
                      date_from=day("2026-11-24"), date_to=day("2026-11-25"))
    once_run = finish_once_job(simulator, once)

    report = csload.sync(settings, db=db_path)

    assert [r.run_id for r in report.loaded] == [once_run]
    after = columns(db_path, "views")
    assert {name: after[name] for name in before} == before
    assert {name: after[name] for name in set(after) - set(before)} == {
        name: (dtype, True) for name, dtype in NEW_COLUMNS.items()}
    assert_db_matches(db_path, expected_tables(simulator, successful_runs(simulator)))
    _, rows = table_rows(db_path, "views")
    old = [r for r in rows if r["_job_id"] == VIEWS_JOB]
    new = [r for r in rows if r["_run_id"] == once_run]
    assert old and new
    assert all(r[name] is None for r in old for name in NEW_COLUMNS)
    assert {r["_date"] for r in old} == {date(2026, 11, 22), date(2026, 11, 23)}
    assert all(r["document_width"] is not None and r["url_no_query_param"] for r in new)
    # The once job's window replaced the daily rows of the 24th by key.
    assert {r["_date"] for r in new} == {date(2026, 11, 24)}
