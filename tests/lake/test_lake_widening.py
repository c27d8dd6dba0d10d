"""A database that an older csload made, with integers at the catalog's guessed widths
(USMALLINT, UINTEGER, ...), takes a value wider than those: the next load widens the columns to
BIGINT in place and every earlier value stays as it was. A lake has no narrow integer at all
(Delta Lake has no unsigned types): it writes them as BIGINT.

The older csload is this one with its schemas narrowed (the type mapping it had), patched in
for the first load only.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from csload.api.schemas import ScopeSchema, load_schema
from csload.load.duckdb import DuckDBStore
from csload.transfer.staged import StagedRun
from tests.support.lakeutil import Lake
from tests.support.partgen import Writer, job, run

D1 = date(2026, 11, 20)
D2 = date(2026, 11, 21)
FIELDS = ["session_id", "view_number", "view_time", "window_width", "errors.line_number"]
# What csload loaded each narrow integer as, before BIGINT.
OLD_TYPES = {"UInt8": "UTINYINT", "UInt16": "USMALLINT", "UInt32": "UINTEGER",
             "Int8": "TINYINT", "Int16": "SMALLINT", "Int32": "INTEGER"}


def old_schema(scope: str) -> ScopeSchema:
    schema = load_schema(scope)

    def narrow(source_type: str, duckdb_type: str) -> str:
        base = source_type.removeprefix("Array(").removeprefix("Nullable(").rstrip(")")
        old = OLD_TYPES.get(base)
        if old is None:
            return duckdb_type
        return old + "[]" if source_type.startswith("Array(") else old

    return dataclasses.replace(schema, fields=tuple(
        dataclasses.replace(f, duckdb_type=narrow(f.source_type, f.duckdb_type))
        for f in schema.fields))


def vrow(sid: int, vn: int, day: date, width: int, lines: list[int]) -> dict[str, Any]:
    return {"session_id": sid, "view_number": vn,
            "view_time": datetime(day.year, day.month, day.day, 12),
            "window_width": width, "errors.line_number": lines}


OLD_ROWS = [vrow(1, 1, D1, 1280, [3]), vrow(1, 2, D1, 65_535, [])]
# Past USMALLINT (view_number, window_width) and UINTEGER (line numbers).
WIDE_ROWS = [vrow(2, 70_000, D2, 100_000, [1 << 32]), vrow(3, 1, D2, 800, [7])]
QUERY = ("SELECT session_id, view_number, window_width, errors_line_number FROM {t} "
         "ORDER BY session_id, view_number")


def expected() -> list[tuple[Any, ...]]:
    return sorted((r["session_id"], r["view_number"], r["window_width"], r["errors.line_number"])
                  for r in OLD_ROWS + WIDE_ROWS)


def types_of(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    query = f'SELECT column_name, column_type FROM (DESCRIBE "{table}")'  # noqa: S608
    return dict(con.execute(query).fetchall())


def test_an_older_database_is_widened_in_place(tmp_path: Path, writer: Writer,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    db_path = tmp_path / "older.duckdb"
    with monkeypatch.context() as patch:
        patch.setattr("csload.load.columns.load_schema", old_schema)
        with DuckDBStore.open(db_path) as store:
            store.apply([writer.staged(job(1, fields=FIELDS), run(10, 1, D1), [OLD_ROWS])])
            assert types_of(store.con, "views")["view_number"] == "USMALLINT"
    with DuckDBStore.open(db_path) as store:
        [wide] = store.apply([StagedRun(*_staged(writer))])
        assert wide.status == "loaded", wide.error
        types = types_of(store.con, "views")
        got = store.con.execute(QUERY.format(t="views")).fetchall()
    assert (types["view_number"], types["window_width"], types["errors_line_number"]) == (
        "BIGINT", "BIGINT", "BIGINT[]")
    assert got == expected()


def _staged(writer: Writer) -> tuple[Any, ...]:
    staged = writer.staged(job(1, fields=FIELDS), run(11, 1, D2), [WIDE_ROWS])
    return (staged.job, staged.run, staged.parts)


def test_a_lake_stores_narrow_integers_as_bigint_and_takes_wider_values(
        lake: Lake, writer: Writer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Delta has no unsigned integers: a column loaded at a narrow width (an older schema)
    is written as BIGINT from the start (csload.lake.types), so a wider value needs no
    rewrite. (A lake an older csload wrote is widened by its upgrade: test_lake_upgrade.)"""
    with monkeypatch.context() as patch:
        patch.setattr("csload.load.columns.load_schema", old_schema)
        with lake.open() as store:
            store.apply([writer.staged(job(1, fields=FIELDS), run(10, 1, D1), [OLD_ROWS])])
    con = lake.connect()
    try:
        assert types_of(con, "views")["view_number"] == "BIGINT"
    finally:
        con.close()
    delta = {f.name: f.type.type for f in lake.delta("views").schema().fields
             if isinstance(getattr(f.type, "type", None), str)}
    assert delta["view_number"] == "long"

    with lake.open() as store:
        [wide] = store.apply([StagedRun(*_staged(writer))])
        assert wide.status == "loaded", wide.error

    con = lake.connect()
    try:
        types = types_of(con, "views")
        got = con.execute(QUERY.format(t="views")).fetchall()
    finally:
        con.close()
    assert (types["view_number"], types["window_width"], types["errors_line_number"]) == (
        "BIGINT", "BIGINT", "BIGINT[]")
    assert got == expected()
    # A Delta reader of the log sees the same rows.
    assert sorted(lake.listed("views", QUERY.format(t="t"))) == expected()
