"""The ledger of a lake: csload's `_csload.*` tables, kept in the lake as Parquet files.

The ledger is the DuckDB target's (csload.load.ledger: jobs, runs with their status and windows,
parts, tombstones), so both targets share one set of rules and queries. In a lake, each
published version carries a full snapshot of it in `_csload/ledger/<txid>/<table>.parquet`,
named by the version's manifest: data and ledger switch together, which is what makes a lake
sync exactly once. The ledger is small (one row per job, run and part, plus the keys a re-run
removed), so rewriting it whole with each version costs little.

Parquet has no 128-bit integer: `supersede_order` (HUGEINT) is stored as its decimal text and
cast back when read. Anyone can read the snapshot (`csload.connect(parquet=ROOT)` exposes it as
the `_csload.*` tables).

A snapshot is read as data only: each column csload knows is cast to the type of csload's own
ledger table (never to a type or name the file gives), other columns are ignored, and a file
that does not fit is a StoreError naming it.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from csload.errors import StoreError
from csload.lake.fs import LakeFS
from csload.load.ledger import LEDGER_NAMES, LEDGER_SCHEMA
from csload.load.sqltext import quote_ident, sql_str

# The ledger tables (schema LEDGER_SCHEMA of the work database) and their snapshot files,
# named as they were when the tables were `main._csload_*`, so that every lake reads alike.
LEDGER_TABLES = tuple((name, f"_csload_{name}") for name in LEDGER_NAMES)


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    rows = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
        "AND schema_name = ? AND database_name = current_database() "
        "ORDER BY column_index", [table, LEDGER_SCHEMA]).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def _qualified(table: str) -> str:
    return f"{quote_ident(LEDGER_SCHEMA)}.{quote_ident(table)}"


def export_ledger(con: duckdb.DuckDBPyConnection, folder: Path) -> list[str]:
    """Write each ledger table to `folder/<table>.parquet`; returns the file names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for table, stem in LEDGER_TABLES:
        select = ", ".join(
            f"CAST({quote_ident(n)} AS VARCHAR) AS {quote_ident(n)}" if t == "HUGEINT"
            else quote_ident(n) for n, t in _columns(con, table))
        target = folder / f"{stem}.parquet"
        con.execute(f"COPY (SELECT {select} FROM {_qualified(table)}) TO "  # noqa: S608
                    f"{sql_str(str(target))} (FORMAT parquet, COMPRESSION zstd)")
        names.append(target.name)
    return names


def import_ledger(con: duckdb.DuckDBPyConnection, lake: LakeFS, ledger_dir: str) -> None:
    """Replace the ledger tables of `con` with the snapshot in `ledger_dir` of the lake."""
    for table, stem in LEDGER_TABLES:
        rel = f"{ledger_dir}/{stem}.parquet"
        raw = lake.read_bytes(rel)   # small: one GET, rather than a reader's several
        if raw is None:
            raise StoreError(f"lake {lake.root} is damaged: its current version names "
                             f"the ledger file {rel}, which is missing")
        with lake.errors(f"read the ledger ({rel})"):
            data = pq.read_table(pa.BufferReader(raw))
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
            raise StoreError(f"lake {lake.root}: the ledger file {rel} is damaged or was "
                             f"tampered with ({first!r}); restore the lake from a backup") from None
        finally:
            con.unregister("_csload_ledger_src")
