"""Values survive the trip file -> DuckDB exactly: CSV and JSONL, gzip or not, the hard cases."""

from __future__ import annotations

import gzip
import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from csload.api.models import JobField, normalize_identifier
from csload.errors import ConfigError
from csload.load.duckdb import DuckDBStore
from csload.transfer.staged import StagedPart, StagedRun
from tests.support.hard_values import FIELDS, view_rows
from tests.support.partgen import Writer, job, run

DAY = date(2026, 11, 20)

COLUMNS = ", ".join(normalize_identifier(f) for f in FIELDS)


def table_rows(store: DuckDBStore) -> list[tuple[Any, ...]]:
    return store.con.execute(
        f"SELECT {COLUMNS} FROM views ORDER BY session_id, view_number").fetchall()  # noqa: S608


def expected_rows(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    out = [tuple(r[f] for f in FIELDS) for r in rows]
    return sorted(out, key=lambda t: (t[0], t[1]))


@pytest.mark.parametrize("fmt", ["CSV", "JSONL"])
@pytest.mark.parametrize("compress", [True, False])
def test_hard_values_load_exactly(store: DuckDBStore, writer: Writer, fmt: str,
                                  compress: bool) -> None:
    rows = view_rows()
    staged = writer.staged(job(1, fmt=fmt, fields=FIELDS), run(10, 1, DAY),
                           [rows[:5], rows[5:]], compress=compress)
    [outcome] = store.apply([staged])
    assert outcome.status == "loaded" and outcome.rows == len(rows)
    assert table_rows(store) == expected_rows(rows)


@pytest.mark.parametrize("fmt", ["CSV", "JSONL"])
def test_a_row_of_megabytes_loads(store: DuckDBStore, writer: Writer, fmt: str) -> None:
    # DuckDB's CSV reader stops at lines over 2 MB by default: a page URL of 2.2 MB failed its
    # run at every sync, where the same row in JSONL loaded (QA, 2026-12-07).
    rows = view_rows()
    rows[0]["url"] = "https://example.com/?q=" + "x" * 20_000_000
    rows[1]["errors.message"] = ["m" * 1000] * 3000   # 3 MB of array on one line
    staged = writer.staged(job(1, fmt=fmt, fields=FIELDS), run(10, 1, DAY), [rows])
    [outcome] = store.apply([staged])
    assert outcome.status == "loaded", outcome.message
    assert table_rows(store) == expected_rows(rows)


def test_csv_crlf_minute_arrays_and_escaped_controls(store: DuckDBStore, writer: Writer) -> None:
    """\\r\\n line ends, minute-precision timestamps in arrays, `\\n`-style escapes in arrays."""
    rows = view_rows()
    staged = writer.staged(job(1, fields=FIELDS), run(10, 1, DAY), [rows],
                           newline="\r\n", minute_arrays=True, escape_controls=True)
    store.apply([staged])
    assert table_rows(store) == expected_rows(rows)


def test_jsonl_trailing_empty_line(store: DuckDBStore, writer: Writer) -> None:
    rows = view_rows()
    staged = writer.staged(job(1, fmt="JSONL", fields=FIELDS), run(10, 1, DAY), [rows],
                           trailing_blank=True)
    store.apply([staged])
    assert table_rows(store) == expected_rows(rows)


def test_column_types_and_lineage(store: DuckDBStore, writer: Writer) -> None:
    rows = view_rows()
    store.apply([writer.staged(job(7, fields=FIELDS), run(70, 7, DAY), [rows])])
    types = dict(store.con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'views'"
    ).fetchall())
    assert types["session_id"] == "UBIGINT"
    assert types["view_time"] == "TIMESTAMP"
    assert types["errors_message"] == "VARCHAR[]"
    assert types["errors_error_time"] == "TIMESTAMP[]"
    assert types["errors_line_number"] == "BIGINT[]"
    assert types["scroll_rate"] == "FLOAT"
    assert types["_job_id"] == "UBIGINT" and types["_run_id"] == "UBIGINT"
    assert types["_date"] == "DATE" and types["_loaded_at"] == "TIMESTAMP"
    lineage = store.con.execute(
        "SELECT DISTINCT _job_id, _run_id, _date FROM views ORDER BY _date").fetchall()
    # _date is the view's own date (view_time), not the window start, when exported
    assert lineage == [(7, 70, date(2026, 11, 20))]


def test_date_falls_back_to_window_start(store: DuckDBStore, writer: Writer) -> None:
    rows = [{"session_id": 1, "view_number": 1}]
    store.apply([writer.staged(job(1, fields=["session_id", "view_number"]),
                               run(10, 1, date(2026, 11, 23)), [rows])])
    assert store.con.execute("SELECT _date FROM views").fetchall() == [(date(2026, 11, 23),)]


def test_sessions_date_field(store: DuckDBStore, writer: Writer) -> None:
    rows = [{"session_id": 1, "session_date": date(2026, 11, 19),
             "app_events.event_time": [datetime(2026, 11, 19, 23, 59)]}]
    the_job = job(2, scope="sessions", fmt="JSONL",
                  fields=["session_id", "session_date", "app_events.event_time"])
    store.apply([writer.staged(the_job, run(20, 2, DAY), [rows])])
    assert store.con.execute(
        "SELECT session_id, _date, app_events_event_time FROM sessions").fetchall() == [
        (1, date(2026, 11, 19), [datetime(2026, 11, 19, 23, 59)])]


def test_empty_and_header_only_parts(store: DuckDBStore, writer: Writer, tmp_path: Path
                                     ) -> None:
    the_job = job(1, fields=["session_id", "view_number"])
    staged = writer.staged(the_job, run(10, 1, DAY), [[], [{"session_id": 1, "view_number": 1}]])
    empty = tmp_path / "empty.gz"
    empty.write_bytes(gzip.compress(b""))
    zero = tmp_path / "zero"
    zero.write_bytes(b"")
    staged = StagedRun(the_job, staged.run, (*staged.parts, StagedPart(3, empty, 20),
                                             StagedPart(4, zero, 0)))
    [outcome] = store.apply([staged])
    assert outcome.status == "loaded" and outcome.rows == 1
    assert store.ledger.runs()[0].parts == 4


def test_empty_jsonl_run(store: DuckDBStore, writer: Writer) -> None:
    staged = writer.staged(job(1, fmt="JSONL", fields=["session_id"]), run(10, 1, DAY), [[]])
    [outcome] = store.apply([staged])
    assert outcome.status == "loaded" and outcome.rows == 0
    assert store.loaded_runs() == {10}


def test_aliases_variables_and_unknown_fields(store: DuckDBStore, writer: Writer,
                                             caplog: pytest.LogCaptureFixture) -> None:
    fields = [
        JobField("session_id", alias_name="Session ID"),
        JobField("view_number", alias_name="vn"),
        JobField("custom_var", custom_var_position=3),
        JobField("dynamic_var", dynamic_var_key="Page Type"),
        JobField("brand_new_field"),
        JobField("url", alias_name='x"; DROP TABLE views; --'),
    ]
    the_job = job(1, fields=fields)
    rows = [{"Session ID": 5, "vn": 2, "custom_var_3": "cv", "dynamic_var_Page Type": "home",
             "brand_new_field": "42", 'x"; DROP TABLE views; --': "evil"}]
    with caplog.at_level(logging.WARNING, logger="csload.load"):
        [outcome] = store.apply([writer.staged(the_job, run(10, 1, DAY), [rows])])
    assert outcome.status == "loaded"
    assert "brand_new_field" in caplog.text
    got = store.con.execute(
        'SELECT session_id, vn, custom_var_3, dynamic_var_page_type, brand_new_field, '
        'x_drop_table_views_ FROM views').fetchall()
    assert got == [(5, 2, "cv", "home", "42", "evil")]
    types = dict(store.con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'views'"
    ).fetchall())
    assert types["session_id"] == "UBIGINT" and types["brand_new_field"] == "VARCHAR"


@pytest.mark.parametrize("fields", [
    [JobField("url", alias_name="A.B"), JobField("path", alias_name="a_b")],
    [JobField("url", alias_name="_mine")],
    [JobField("url", alias_name="-x")],
])
def test_bad_column_names_fail_the_run(store: DuckDBStore, writer: Writer,
                                       fields: list[JobField]) -> None:
    staged = writer.staged(job(1, fields=fields), run(10, 1, DAY), [[]])
    [outcome] = store.apply([staged])
    assert outcome.status == "failed" and isinstance(outcome.error, ConfigError)


def test_new_field_adds_a_nullable_column(store: DuckDBStore, writer: Writer) -> None:
    first = job(1, fields=["session_id", "view_number"])
    second = job(2, fmt="JSONL", fields=["session_id", "view_number", "url"])
    store.apply([writer.staged(first, run(10, 1, DAY), [[{"session_id": 1, "view_number": 1}]])])
    store.apply([writer.staged(second, run(20, 2, DAY),
                               [[{"session_id": 2, "view_number": 1, "url": "u"}]])])
    assert store.con.execute(
        "SELECT session_id, url, _job_id FROM views ORDER BY 1").fetchall() == [
        (1, None, 1), (2, "u", 2)]


def test_custom_table_and_type_conflict(store: DuckDBStore, writer: Writer) -> None:
    a = job(1, fields=[("url", "thing")])
    b = job(2, fields=[("view_number", "thing")])
    out = store.apply([writer.staged(a, run(10, 1, DAY), [[{"thing": "t"}]], table="mine")])
    assert out[0].status == "loaded"
    [failed] = store.apply([writer.staged(b, run(20, 2, DAY), [[{"thing": 3}]], table="mine")])
    assert failed.status == "failed" and "thing" in str(failed.error)
    assert store.con.execute("SELECT thing FROM mine").fetchall() == [("t",)]


def test_normalize_identifier() -> None:
    assert normalize_identifier("app_events.event_type") == "app_events_event_type"
    assert normalize_identifier("Page  Type!") == "page_type_"
    assert normalize_identifier("É") == "_"
