"""DuckDB's memory cap as DuckDB shows it: what the memory tests compare."""

from __future__ import annotations

import duckdb


def cap_of(con: duckdb.DuckDBPyConnection) -> str:
    """The connection's memory_limit setting, as DuckDB shows it."""
    row = con.execute("SELECT current_setting('memory_limit')").fetchone()
    assert row is not None
    return str(row[0])


def shown(value: str) -> str:
    """How DuckDB shows a memory_limit of `value`."""
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = '{value}'")
        return cap_of(con)
    finally:
        con.close()
