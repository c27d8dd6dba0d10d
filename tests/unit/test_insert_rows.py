"""csload.load.sql.insert_rows: many rows in one statement, values exact."""

from __future__ import annotations

from datetime import date, datetime

import duckdb

from csload.load.sql import insert_rows


def test_insert_rows_keeps_every_value_and_row_order() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (a UBIGINT, b HUGEINT, c VARCHAR, d TIMESTAMP, e DATE)")
    rows = [
        (2**64 - 1, str(2**100), "quote ' and \"dq\"", datetime(2026, 11, 26, 1, 2, 3),
         date(2026, 1, 1)),
        (0, str(-(2**90)), "é ✓ \n line", None, None),
        (None, None, None, datetime(1970, 1, 1), date(2000, 2, 29)),
        *[(i, str(i), f"r{i}", None, None) for i in range(200)],
    ]
    insert_rows(con, "INSERT INTO t", ("UBIGINT", "HUGEINT", "VARCHAR", "TIMESTAMP", "DATE"),
                rows)
    got = con.execute("SELECT a, CAST(b AS VARCHAR), c, d, e FROM t ORDER BY rowid").fetchall()
    assert got == [tuple(r) for r in rows]


def test_insert_rows_with_no_rows_runs_nothing() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (a UBIGINT)")
    insert_rows(con, "INSERT INTO t", ("UBIGINT",), [])
    assert con.execute("SELECT count(*) FROM t").fetchone() == (0,)
