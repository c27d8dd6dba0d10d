"""The key rule and the window rule in SQL, inside a batch's transaction, after its rows are
inserted (csload.load.supersede states the rules; csload.load.duckdb runs these steps).

Fact tables have no PRIMARY KEY or UNIQUE constraint (measured on DuckDB: a bulk load into a
table with one is several times slower, and the index's memory is unbounded). Instead:

1. Key rule (`apply_key_rule`): the batch's keys are collected; if none repeats within the
   batch and none exists in the table or among tombstones (the common case: new days), nothing
   more is done. Else every row carrying one of those keys competes and only the row of the
   latest run survives (`QUALIFY row_number() OVER (PARTITION BY key ORDER BY run order
   DESC)`); losers are deleted by `rowid`.
2. Window rule (`apply_window_rule`): rows of runs that a later run of the same job re-exported
   are deleted; their keys are remembered as tombstones so that an older run applied late
   cannot bring them back.

`key_groups` and `keyed_rows` are also what the lake uses to find the partitions holding a
batch's keys (csload.lake.work).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import duckdb

from csload.errors import ConfigError
from csload.load import sql
from csload.load.columns import JobLayout, job_layout
from csload.load.ledger import Ledger
from csload.load.sqltext import quote_ident
from csload.load.supersede import window_drops

if TYPE_CHECKING:   # annotations only: this module runs no code of csload.load.batch
    from csload.load.batch import PendingRun

# Key column names -> the ids of the table's jobs that export that key.
KeyGroups = dict[tuple[str, ...], list[int]]


def key_groups(con: duckdb.DuckDBPyConnection, ledger: Ledger, table: str,
               layouts: Iterable[JobLayout]) -> KeyGroups:
    """Jobs of the table that export the row key (the batch's `layouts` and every job the
    ledger maps to the table), grouped by the key's column names."""
    by_job = {layout.job_id: layout for layout in layouts}
    for job_id, (job, job_table) in ledger.jobs().items():
        if job_table == table and job_id not in by_job:
            try:
                by_job[job_id] = job_layout(job)
            except ConfigError:
                continue
    columns = sql.table_columns(con, table) or {}
    groups: KeyGroups = {}
    for job_id, layout in sorted(by_job.items()):
        # A job recorded only as failed may have no columns in the table yet.
        if layout.key_columns and all(c in columns for c in layout.key_columns):
            groups.setdefault(layout.key_columns, []).append(job_id)
    return groups


def batch_key_groups(groups: KeyGroups, layouts: Iterable[JobLayout]) -> KeyGroups:
    """The groups of `groups` whose key some job of the batch exports."""
    keys = {layout.key_columns for layout in layouts}
    return {cols: jobs for cols, jobs in groups.items() if cols in keys}


def keyed_rows(table: str, groups: KeyGroups, where: str) -> str:
    """SELECT k0, k1, run_id, rid of the table's keyed rows matching `where` (on t)."""
    selects = []
    for cols, job_ids in groups.items():
        k0 = f"CAST(t.{quote_ident(cols[0])} AS UBIGINT)"
        k1 = f"CAST(t.{quote_ident(cols[1])} AS UBIGINT)" if len(cols) > 1 else "0::UBIGINT"
        not_null = " AND ".join(f"t.{quote_ident(c)} IS NOT NULL" for c in cols)
        jobs = ", ".join(str(j) for j in job_ids)
        selects.append(
            f"SELECT {k0} AS k0, {k1} AS k1, t._run_id AS run_id, t.rowid AS rid "  # noqa: S608
            f"FROM {quote_ident(table)} AS t "
            f"WHERE t._job_id IN ({jobs}) AND {not_null} AND ({where})")
    return " UNION ALL ".join(selects)


def apply_key_rule(con: duckdb.DuckDBPyConnection, ledger: Ledger, table: str,
                   batch: Sequence[PendingRun], ids: str) -> dict[int, int] | None:
    """Per key, keep the latest run's row. None when no row was deleted; else, per run
    of the batch, how many rows of other runs its rows replaced."""
    layouts = [item.layout for item in batch]
    groups = key_groups(con, ledger, table, layouts)
    batch_groups = batch_key_groups(groups, layouts)
    if not batch_groups:
        return None
    batch_keys = keyed_rows(table, batch_groups, f"t._run_id IN ({ids})")
    existing = keyed_rows(table, groups, f"t._run_id NOT IN ({ids})")
    tomb = "SELECT k0, k1 FROM _csload.tombstones WHERE table_name = ?"
    # The common case, every key of the batch new, is checked without materializing the
    # batch's keys (that took as long as the check itself: 0.2 s per 2M rows).
    row = con.execute(
        f"""SELECT count(*) FROM (SELECT 1 FROM ({batch_keys})
                                  GROUP BY k0, k1 HAVING count(*) > 1)""").fetchone()  # noqa: S608
    assert row is not None
    if row[0] == 0 and _has_earlier_keys(con, table, ids):
        row = con.execute(
            f"""SELECT count(*) FROM (SELECT k0, k1 FROM ({existing}) UNION ALL {tomb}) AS e
                SEMI JOIN ({batch_keys}) AS b ON e.k0 = b.k0 AND e.k1 = b.k1""",  # noqa: S608
            [table]).fetchone()
        assert row is not None
    if row[0] == 0:
        return None   # every key of the batch is new: nothing to supersede
    con.execute(f"CREATE OR REPLACE TEMP TABLE _csload_bkeys AS {batch_keys}")
    # Every row with a batch key competes; per key the latest run's row survives (the
    # first by rowid among one run's duplicates). A tombstone that wins removes them all.
    # The losers are kept aside with the winning run, to count what each run replaced.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE _csload_losers AS
            SELECT rid, run_id, winner FROM (
                SELECT *, first_value(run_id) OVER win AS winner,
                       row_number() OVER win AS place
                FROM (
                SELECT b.k0, b.k1, b.rid, b.run_id, o.ord FROM _csload_bkeys AS b
                JOIN _csload_ord AS o ON o.run_id = b.run_id
                UNION ALL
                SELECT e.k0, e.k1, e.rid, e.run_id, o.ord FROM ({existing}) AS e
                JOIN _csload_ord AS o ON o.run_id = e.run_id
                SEMI JOIN _csload_bkeys AS b ON e.k0 = b.k0 AND e.k1 = b.k1
                UNION ALL
                SELECT s.k0, s.k1, NULL, NULL, s.supersede_order
                FROM _csload.tombstones AS s
                SEMI JOIN _csload_bkeys AS b ON s.k0 = b.k0 AND s.k1 = b.k1
                WHERE s.table_name = ?
                )
                WINDOW win AS (PARTITION BY k0, k1 ORDER BY ord DESC, rid ASC NULLS LAST)
            )
            WHERE place > 1 AND rid IS NOT NULL""",  # noqa: S608
        [table])
    con.execute(f"DELETE FROM {quote_ident(table)} WHERE rowid IN "  # noqa: S608
                "(SELECT rid FROM _csload_losers)")
    # Replaced: rows the table held before this batch. A run's own duplicate rows are not,
    # nor rows of an older run of the same batch (a day and its re-run in one sync), which
    # were never in the table: counted so, 297 rows the table gained were "replaced", not
    # added (found by QA, 2026-12-07). A tombstone's win is no run's.
    rows = con.execute(
        "SELECT winner, count(*) FROM _csload_losers "  # noqa: S608
        f"WHERE winner IS NOT NULL AND run_id NOT IN ({ids}) GROUP BY winner").fetchall()
    return {int(r[0]): int(r[1]) for r in rows}


def _has_earlier_keys(con: duckdb.DuckDBPyConnection, table: str, ids: str) -> bool:
    """Whether rows of runs loaded before the batch, or tombstones, may hold its keys."""
    row = con.execute(
        f"SELECT EXISTS (SELECT 1 FROM _csload_ord WHERE run_id NOT IN ({ids})) "  # noqa: S608
        "OR EXISTS (SELECT 1 FROM _csload.tombstones WHERE table_name = ?)",
        [table]).fetchone()
    return bool(row and row[0])


def apply_window_rule(con: duckdb.DuckDBPyConnection, ledger: Ledger, table: str,
                      batch: Sequence[PendingRun]) -> dict[int, int] | None:
    """Remove what the batch's runs replace by window. None when nothing was to remove;
    else, per run of the batch, the rows it removed (a job's removed rows are counted
    on its latest run in the batch)."""
    job_ids = {item.layout.job_id for item in batch}
    mine = [item.window for item in batch]
    drops = window_drops(mine, ledger.loaded_windows(job_ids))
    if not drops:
        return None
    con.execute("CREATE OR REPLACE TEMP TABLE _csload_drop "
                "(run_id UBIGINT, date_from DATE, date_to DATE)")
    sql.insert_rows(con, "INSERT INTO _csload_drop", ("UBIGINT", "DATE", "DATE"),
                    [(d.run_id, d.date_from, d.date_to) for d in drops])
    dropped = ("EXISTS (SELECT 1 FROM _csload_drop AS d WHERE d.run_id = t._run_id AND "
               "(d.date_from IS NULL OR (t._date >= d.date_from AND t._date < d.date_to)))")
    groups = key_groups(con, ledger, table, [item.layout for item in batch])
    if groups:
        # Each key has at most one row here (key rule), so a removed keyed row is the
        # latest word on its key: remember it, or an older run could resurrect the key.
        con.execute(
            f"""INSERT INTO _csload.tombstones
                SELECT ?, r.k0, r.k1, o.ord FROM ({keyed_rows(table, groups, dropped)})
                AS r JOIN _csload_ord AS o ON o.run_id = r.run_id""",  # noqa: S608
            [table])
    counts = con.execute(
        f"SELECT _job_id, count(*) FROM {quote_ident(table)} AS t "  # noqa: S608
        f"WHERE {dropped} AND t._run_id NOT IN ({', '.join(str(w.run_id) for w in mine)}) "
        "GROUP BY _job_id").fetchall()
    con.execute(f"DELETE FROM {quote_ident(table)} AS t WHERE {dropped}")  # noqa: S608
    latest = {w.job_id: w for w in sorted(mine, key=lambda w: w.order)}
    return {latest[int(job_id)].run_id: int(n) for job_id, n in counts
            if int(job_id) in latest}
