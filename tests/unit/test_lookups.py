"""csload.load.lookups against a real (in-memory or file) DuckDB: the codes file, the lookup
tables, the column comments (only for new columns) and the custom variables' names."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from csload.api.models import Job, JobField
from csload.errors import ConfigError
from csload.load.columns import Column
from csload.load.ledger import Ledger
from csload.load.lineage import LINEAGE_COLUMNS
from csload.load.lookups import (
    code_tables,
    column_comment,
    describe_from_ledger,
    describe_table,
    ensure_lookups,
    parse_codes,
    record_custom_vars,
)

# Contract section 8, typed in here rather than read from schemas/codes.toml.
DEVICES = [(-1, "all"), (0, "unknown"), (1, "desktop"), (2, "mobile web"), (3, "tablet web"),
           (4, "mobile app"), (5, "tablet app")]
APP_EVENT_TYPES = [(0, "start"), (1, "show"), (2, "hide")]


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    try:
        yield connection
    finally:
        connection.close()


def comments(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str | None]:
    rows = con.execute("SELECT column_name, comment FROM duckdb_columns() "
                       "WHERE schema_name = 'main' AND table_name = ?", [table]).fetchall()
    return {r[0]: r[1] for r in rows}


# -- the codes file and the lookup tables ------------------------------------------------------


def test_the_codes_file_holds_the_contract_codes() -> None:
    tables = {t.table: t for t in code_tables()}
    assert list(tables["device_types"].codes) == DEVICES
    assert set(tables["device_types"].fields) == {("sessions", "device_id"),
                                                  ("views", "device_id")}
    assert list(tables["app_event_types"].codes) == APP_EVENT_TYPES
    assert tables["app_event_types"].fields == (("sessions", "app_events.event_type"),)


def test_lookup_tables_in_their_own_schema_rewritten_whole(
        con: duckdb.DuckDBPyConnection) -> None:
    # A job table named like a lookup table lives in `main`: no clash.
    con.execute("CREATE TABLE device_types (x INTEGER)")
    ensure_lookups(con)
    ensure_lookups(con)   # again: the same rows, not twice
    assert con.execute("SELECT device_id, device FROM codes.device_types ORDER BY device_id"
                       ).fetchall() == DEVICES
    assert con.execute("SELECT event_type, event_type_name FROM codes.app_event_types "
                       "ORDER BY 1").fetchall() == APP_EVENT_TYPES
    assert con.execute("SELECT count(*) FROM main.device_types").fetchone() == (0,)


def lookup(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "table": "device_types", "code_column": "device_id", "label_column": "device",
        "fields": ["views:device_id"], "codes": [{"code": 1, "label": "desktop"}]}
    base.update(changes)
    return base


@pytest.mark.parametrize(("raw", "message"), [
    ({"lookups": []}, "unknown keys ['lookups']"),
    ({"lookup": [lookup(table="Device Types")]}, "table must be a lowercase identifier"),
    ({"lookup": [lookup(fields=["views:no_such_field"])]}, "'views:no_such_field' is not"),
    ({"lookup": [lookup(fields=["device_id"])]}, "is not 'scope:field'"),
    ({"lookup": [lookup(codes=[{"code": 1, "label": "a"}, {"code": 1, "label": "b"}])]},
     "each code once"),
    ({"lookup": [lookup(codes=[{"code": "1", "label": "a"}])]}, "an integer `code`"),
    ({"lookup": [lookup(colour="red")]}, "unknown keys ['colour']"),
    ({"lookup": [lookup(), lookup()]}, "same name"),
])
def test_a_bad_codes_file_is_refused_naming_the_problem(raw: dict[str, Any],
                                                        message: str) -> None:
    with pytest.raises(ConfigError, match=r"codes\.toml") as info:
        parse_codes(raw, "codes.toml")
    assert message in str(info.value)


# -- column comments ----------------------------------------------------------------------------


def test_column_comment_names_field_description_codes_and_family() -> None:
    assert column_comment("views", "url", "page_url") == "field url; page URL"
    device = column_comment("sessions", "device_id", "device_id")
    assert device is not None and device.startswith("device type; -1 all, 0 unknown")
    assert "codes.device_types" in device
    event = column_comment("sessions", "app_events.event_type", "app_events_event_type")
    assert event is not None and "0 start, 1 show, 2 hide" in event
    assert "same app_events item" in event
    assert column_comment("views", "browser_name_not_a_field", "x") is not None
    assert "custom variable" in (column_comment("views", "custom_var", "user_type") or "")
    assert column_comment("views", "scheme", "scheme") is None   # nothing described


def _col(name: str, field: str, dtype: str = "BIGINT") -> tuple[str, Column]:
    return "views", Column(name, name, dtype, field, known=True)


def test_describe_table_comments_new_columns_only(con: duckdb.DuckDBPyConnection) -> None:
    con.execute('CREATE TABLE "views" (device_id BIGINT, page_url VARCHAR, _job_id UBIGINT, '
                "_run_id UBIGINT, _date DATE, _loaded_at TIMESTAMP)")
    columns = [_col("device_id", "device_id"), _col("page_url", "url", "VARCHAR")]
    describe_table(con, "views", columns, None)
    first = comments(con, "views")
    assert "desktop" in (first["device_id"] or "")
    assert first["page_url"] == "field url; page URL"
    assert all(first[name] for name in LINEAGE_COLUMNS)
    assert con.execute("SELECT count(*) FROM codes.device_types").fetchone() == (7,)

    # An analyst's own comment on an existing column survives every later batch.
    con.execute("COMMENT ON COLUMN views.device_id IS 'mine'")
    before = {name: "x" for name in first}
    describe_table(con, "views", columns, before)
    assert comments(con, "views")["device_id"] == "mine"

    con.execute("ALTER TABLE views ADD COLUMN duration_ms BIGINT")
    describe_table(con, "views", [*columns, _col("duration_ms", "view_duration_msec")], before)
    after = comments(con, "views")
    assert after["device_id"] == "mine"
    assert after["duration_ms"] == "field view_duration_msec; time on the page, in milliseconds"


# -- custom variables ---------------------------------------------------------------------------


def _job(job_id: int, scope: str, *fields: JobField) -> Job:
    return Job(job_id=job_id, name=f"job {job_id}", format="CSV", scope=scope,
               frequency="daily", fields=fields)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A database file with a ledger naming two jobs that export custom variables."""
    connection = duckdb.connect(str(tmp_path / "cs.duckdb"))
    ledger = Ledger(connection)
    ledger.ensure()
    now = datetime(2026, 11, 25, tzinfo=UTC)
    ledger.upsert_job(_job(1, "views", JobField("session_id"),
                           JobField("custom_var", alias_name="User Type", custom_var_position=1),
                           JobField("custom_var", custom_var_position=3)), "views", now)
    ledger.upsert_job(_job(2, "sessions", JobField("custom_var", custom_var_position=2)),
                      "sessions", now)
    # Job 3's table was never created (all its runs failed): nothing to comment there.
    ledger.upsert_job(_job(3, "views", JobField("custom_var", custom_var_position=4)),
                      "mobile_views", now)
    connection.execute("CREATE TABLE views (session_id UBIGINT, user_type VARCHAR, "
                       "custom_var_3 VARCHAR)")
    connection.execute("CREATE TABLE sessions (custom_var_2 VARCHAR)")
    try:
        yield connection
    finally:
        connection.close()


def test_custom_vars_recorded_as_a_table_and_as_comments(
        store: duckdb.DuckDBPyConnection) -> None:
    hostile = "page's \"category\"; DROP TABLE views; --"
    variables = [(1, "user_type"), (2, "ab_test"), (3, hostile), (4, "cart_status"),
                 (5, None)]
    assert record_custom_vars(store, variables) == 3
    assert record_custom_vars(store, variables) == 3   # again: replaced, not appended
    rows = store.execute("SELECT position, name, table_name, column_name FROM codes.custom_vars "
                         "ORDER BY position, table_name").fetchall()
    assert rows == [(1, "user_type", "views", "user_type"),
                    (2, "ab_test", "sessions", "custom_var_2"),
                    (3, hostile, "views", "custom_var_3"),
                    (4, "cart_status", None, None),
                    (5, None, None, None)]
    assert comments(store, "views")["custom_var_3"] == f"custom variable 3: {hostile}"
    assert comments(store, "views")["user_type"] == "custom variable 1: user_type"
    assert comments(store, "sessions")["custom_var_2"] == "custom variable 2: ab_test"
    assert store.execute("SELECT count(*) FROM views").fetchone() == (0,)


def test_custom_vars_without_a_ledger(con: duckdb.DuckDBPyConnection) -> None:
    assert record_custom_vars(con, [(1, "user_type")]) == 0
    assert con.execute("SELECT * FROM codes.custom_vars").fetchall() == [
        (1, "user_type", None, None)]


def test_describe_from_ledger_comments_views_over_the_tables(
        store: duckdb.DuckDBPyConnection) -> None:
    store.execute("ALTER TABLE views ADD COLUMN _run_id UBIGINT")
    describe_from_ledger(store)
    views = comments(store, "views")
    assert views["session_id"] is not None and "session" in views["session_id"]
    assert "custom variable" in (views["user_type"] or "")
    # A lake's connection has no codes.custom_vars (the comment sent readers there).
    assert "codes.custom_vars" not in (views["user_type"] or "")
    assert "`csload custom-vars` lists them" in (views["user_type"] or "")
    assert "run that delivered the row" in (views["_run_id"] or "")
