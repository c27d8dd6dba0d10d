"""The statements of one batch's transaction, on the store's connection (csload.load.duckdb
runs them in order, inside one transaction).

    ensure_table       the table made to fit the batch's columns (created, columns added,
                       types widened); a clash fails the run that brings it
    create_run_tables  the temp tables that map each part file to its run, and every run to
                       its order
    insert_group       one reader statement: a group of parts into the table, lineage included
    run_counts         rows per run of the batch in the table
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import duckdb

from csload.errors import ConfigError
from csload.load import sql
from csload.load.columns import widens
from csload.load.failures import PartFailed
from csload.load.ledger import naive_utc
from csload.load.lineage import LINEAGE_COLUMNS
from csload.load.sqltext import quote_ident
from csload.load.supersede import run_order

if TYPE_CHECKING:   # annotations only: this module runs no code of csload.load.batch
    from csload.load.batch import PendingRun, ReadGroup

TEMP_TABLES = ("_csload_map", "_csload_ord", "_csload_bkeys", "_csload_drop", "_csload_losers")

# What a target refuses in a job's column names (csload.load.hooks): a reason, or None.
ColumnCheck = Callable[[int, set[str]], ConfigError | None]


def ensure_table(con: duckdb.DuckDBPyConnection, table: str, batch: list[PendingRun],
                 groups: list[ReadGroup], column_problem: ColumnCheck) -> None:
    """Create the table or make it fit every column the batch loads."""
    for item in batch:
        names = {c.name for c in item.layout.columns}
        names |= {c.name for g in groups if item in g.pending for c in g.columns}
        problem = column_problem(item.layout.job_id, names)
        if problem is not None:
            raise PartFailed(item.run_id, problem)
    wanted: dict[str, str] = {}
    # Each job's own columns, then the columns its files bring (unknown ones as text).
    brought = [*((item.run_id, item.layout.columns) for item in batch),
               *((g.pending[0].run_id, g.columns) for g in groups)]
    for run_id, columns in brought:
        for col in columns:
            if wanted.setdefault(col.name, col.duckdb_type) != col.duckdb_type:
                raise PartFailed(run_id, ConfigError(
                    f"column {col.name!r} of table {table!r} would be both "
                    f"{wanted[col.name]} and {col.duckdb_type}: map one job to another "
                    "table or give the field another alias"))
    existing = sql.table_columns(con, table)
    if existing is None:
        defs = [f"{quote_ident(n)} {t}" for n, t in wanted.items()]
        defs += [f"{quote_ident(n)} {t}" for n, t in LINEAGE_COLUMNS.items()]
        con.execute(f"CREATE TABLE {quote_ident(table)} ({', '.join(defs)})")
        return
    for name, dtype in wanted.items():
        have = existing.get(name)
        if have is None:
            con.execute(f"ALTER TABLE {quote_ident(table)} ADD COLUMN "
                        f"{quote_ident(name)} {dtype}")
        elif widens(have, dtype):
            con.execute(f"ALTER TABLE {quote_ident(table)} ALTER COLUMN "
                        f"{quote_ident(name)} SET DATA TYPE {dtype}")
        elif have != dtype:
            group = next(g for g in groups if any(c.name == name for c in g.columns))
            raise PartFailed(group.pending[0].run_id, ConfigError(
                f"column {name!r} of table {table!r} is {have}, but job "
                f"{group.pending[0].layout.job_id} loads it as {dtype}: map the job "
                "to another table or give the field another alias; if you changed the "
                f"column yourself, give it its type back (ALTER TABLE {quote_ident(table)} "
                f"ALTER COLUMN {quote_ident(name)} SET DATA TYPE {dtype})"))


def create_run_tables(con: duckdb.DuckDBPyConnection, table: str, batch: list[PendingRun]
                      ) -> None:
    """`_csload_map` (part file -> job, run, window start) and `_csload_ord` (the order of
    every run whose rows may be in the table, batch included)."""
    con.execute("CREATE OR REPLACE TEMP TABLE _csload_map (file VARCHAR, job_id UBIGINT, "
                "run_id UBIGINT, window_start DATE)")
    rows = []
    for item in batch:
        start = item.staged.run.start_date
        for p in item.files:
            rows.append((p.path, item.layout.job_id, item.run_id,
                         start.astimezone(UTC).date() if start else None))
    sql.insert_rows(con, "INSERT INTO _csload_map",
                    ("VARCHAR", "UBIGINT", "UBIGINT", "DATE"), rows)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _csload_ord AS SELECT run_id, supersede_order AS ord "
        "FROM _csload.runs WHERE status = 'loaded' AND table_name = ?", [table])
    sql.insert_rows(con, "INSERT INTO _csload_ord", ("UBIGINT", "HUGEINT"),
                    [(item.run_id, str(run_order(item.staged.run))) for item in batch])


def drop_temp(con: duckdb.DuckDBPyConnection) -> None:
    for name in TEMP_TABLES:
        con.execute(f"DROP TABLE IF EXISTS temp.{name}")


def insert_group(con: duckdb.DuckDBPyConnection, table: str, group: ReadGroup,
                 loaded_at: datetime, json_memory_limit: str | None, memory_limit: str) -> None:
    """Insert one group's parts. JSONL runs under `json_memory_limit` (None: the base cap),
    set back to `memory_limit` once the statement succeeded."""
    layout = group.pending[0].layout
    keys = layout.key_columns or ()
    values = [f"{sql.select_value(c, group.csv, check=True, key=c.name in keys)} AS "
              f"{quote_ident(c.name)}" for c in group.columns]
    date_col = next((c for c in group.columns if c.name == layout.date_column), None)
    if date_col is not None:
        date_expr = f"COALESCE(CAST(f.{quote_ident(date_col.source)} AS DATE), m.window_start)"
    else:
        date_expr = "m.window_start"
    files = [p.path for p in group.files]
    reader = (sql.read_csv(files, group.columns, group.gzip, header=group.header,
                           newline=group.newline)
              if group.csv
              else sql.read_json(files, group.columns, group.gzip))
    raised = None if group.csv else json_memory_limit
    if raised is not None:
        con.execute(f"SET memory_limit = '{raised}'")
    con.execute(
        f"INSERT INTO {quote_ident(table)} BY NAME "  # noqa: S608
        f"SELECT {', '.join(values)}, m.job_id AS _job_id, m.run_id AS _run_id, "
        f"{date_expr} AS _date, CAST(? AS TIMESTAMP) AS _loaded_at "
        f"FROM {reader} AS f JOIN _csload_map AS m "
        f"ON f.{quote_ident(sql.FILE_COLUMN)} = m.file",
        [naive_utc(loaded_at)],
    )
    if raised is not None:
        # After a failed statement the transaction refuses any SET: the store restores the
        # cap once it has rolled back.
        con.execute(f"SET memory_limit = '{memory_limit}'")


def run_counts(con: duckdb.DuckDBPyConnection, table: str, ids: str) -> dict[int, int]:
    """Rows per run among the runs `ids` (a comma-separated list of run ids)."""
    rows = con.execute(
        f"SELECT _run_id, count(*) FROM {quote_ident(table)} WHERE _run_id IN ({ids}) "  # noqa: S608
        "GROUP BY _run_id").fetchall()
    return {int(r[0]): int(r[1]) for r in rows}
