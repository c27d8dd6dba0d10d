"""The ledger of a lake: csload's `_csload.*` tables, kept in the lake as a small Delta table.

The ledger is the DuckDB target's (csload.load.ledger: jobs, runs with their status and windows,
parts, tombstones), so both targets share one set of rules and queries. In a lake it is the
Delta table `ROOT/_csload/ledger_table/` (csload.lake.layout), rewritten whole by each published
batch, one row per ledger table: `name` (`_csload_<table>`) and `data` (that table as Parquet
bytes), plus the row `_csload_lake`, the lake's state (csload.lake.state: the version of each
data table the ledger agrees with). The ledger is small (one row per job, run and part, plus
the keys a re-run removed), so rewriting it whole with each batch costs little, and its
commit is the one that makes a batch count: csload.lake.recovery undoes a table commit the
ledger does not know of.

Parquet has no 128-bit integer: `supersede_order` (HUGEINT) is stored as its decimal text and
cast back when read. Anyone can read the snapshot (`csload.connect(parquet=ROOT)` exposes it as
the `_csload.*` tables).

A snapshot is read as data only: each column csload knows is cast to the type of csload's own
ledger table (never to a type or name the file gives), other columns are ignored, and a table
that does not fit is a StoreError naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable

from csload.errors import StoreError
from csload.lake.layout import damaged
from csload.load.ledger_tables import LEDGER_NAMES, LEDGER_SCHEMA
from csload.load.sqltext import quote_ident

if TYPE_CHECKING:
    from csload.lake.fs import LakeFS
    from csload.lake.state import LakeState

# The ledger tables (schema LEDGER_SCHEMA of the work database) and their snapshot files,
# named as they were when the tables were `main._csload_*`, so that every lake reads alike.
LEDGER_TABLES = tuple((name, f"_csload_{name}") for name in LEDGER_NAMES)
STATE_ROW = "_csload_lake"


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    rows = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
        "AND schema_name = ? AND database_name = current_database() "
        "ORDER BY column_index", [table, LEDGER_SCHEMA]).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def _qualified(table: str) -> str:
    return f"{quote_ident(LEDGER_SCHEMA)}.{quote_ident(table)}"


def export_ledger(con: duckdb.DuckDBPyConnection, state: LakeState) -> pa.Table:
    """The ledger's rows for the Delta table: each ledger table as Parquet bytes, and the
    lake's state."""
    rows: dict[str, bytes] = {}
    for table, stem in LEDGER_TABLES:
        select = ", ".join(
            f"CAST({quote_ident(n)} AS VARCHAR) AS {quote_ident(n)}" if t == "HUGEINT"
            else quote_ident(n) for n, t in _columns(con, table))
        data = con.sql(f"SELECT {select} FROM {_qualified(table)}").to_arrow_table()  # noqa: S608
        sink = pa.BufferOutputStream()
        pq.write_table(data, sink, compression="zstd")
        rows[stem] = sink.getvalue().to_pybytes()
    rows[STATE_ROW] = state.to_bytes()
    return rows_table(rows)


def rows_table(rows: Mapping[str, bytes]) -> pa.Table:
    """The ledger table's rows (name, data), as written."""
    return pa.table({"name": pa.array(list(rows), pa.string()),
                     "data": pa.array(list(rows.values()), pa.binary())})


def read_rows(lake: LakeFS, table: DeltaTable) -> dict[str, bytes]:
    """The ledger's rows, by name (a name given twice, or of the wrong type: damaged)."""
    where = f"the ledger of lake {lake.root}"
    with lake.errors("read the ledger"):
        data = pa.table(table.to_pyarrow_table())
    if set(data.column_names) != {"name", "data"}:
        raise damaged(where, "column set", data.column_names)
    rows: dict[str, bytes] = {}
    for name, blob in zip(data.column("name").to_pylist(), data.column("data").to_pylist(),
                          strict=True):
        if not isinstance(name, str) or not isinstance(blob, bytes):
            raise damaged(where, "row", name)
        if name in rows:
            raise StoreError(f"{where} is damaged or was tampered with: row {name!r} is given "
                             "twice; restore the lake from a backup or sync into a new one")
        rows[name] = blob
    return rows


def import_ledger(con: duckdb.DuckDBPyConnection, lake: LakeFS, rows: dict[str, bytes]) -> None:
    """Replace the ledger tables of `con` with the ledger's rows."""
    for table, stem in LEDGER_TABLES:
        raw = rows.get(stem)
        if raw is None:
            raise StoreError(f"lake {lake.root} is damaged: its ledger has no {stem} table")
        try:
            data = pq.read_table(pa.BufferReader(raw))
        except (pa.ArrowException, OSError) as exc:
            raise StoreError(f"lake {lake.root}: the ledger table {stem} is damaged or was "
                             f"tampered with ({str(exc)[:200]!r})") from None
        columns = _columns(con, table)
        present = set(data.column_names)
        select = ", ".join(
            f"CAST(s.{quote_ident(n)} AS {t})" if n in present else f"CAST(NULL AS {t})"
            for n, t in columns)
        con.register("_csload_ledger_src", data)
        try:
            con.execute(f"DELETE FROM {_qualified(table)}")  # noqa: S608
            con.execute(f"INSERT INTO {_qualified(table)} "  # noqa: S608
                        f"SELECT {select} FROM _csload_ledger_src AS s")
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise StoreError(f"lake {lake.root}: the ledger table {stem} is damaged or was "
                             f"tampered with ({first!r}); restore the lake from a backup") from None
        finally:
            con.unregister("_csload_ledger_src")
