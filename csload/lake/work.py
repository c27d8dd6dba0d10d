"""The lake's work database: a DuckDB store in the scratch folder that applies a batch to the
partitions it can change, read in from the lake.

The lake applies batches with the DuckDB loader itself, by composition: the lake's store
(csload.lake.store) opens a `DuckDBStore` (csload.load.duckdb) on a scratch database, with
`LakeReads` as its hooks (csload.load.hooks, the whole interface between the two). The store
runs its steps unchanged; right after a table's batch rows are inserted (inside its
transaction, before the key rule) it calls `LakeReads.rows_inserted`, which reads in the
partitions the batch can change:

* those of the batch's own row dates;
* those holding rows of the runs the window rule will drop (the ledger's lake state knows
  each partition's rows per run, csload.lake.state). A partition ALL of whose rows the
  window rule drops (the day a re-run replaces) is read by its key columns and lineage only
  (`read_replaced`): the rules need no more of rows they remove (tombstones, counts). The
  rows read must be those the lake state says, and none may be left after the rules
  (`replaced_left`, checked by the publish): a row without its columns is never published.
  Measured 2026-12-06 (benchmarks/results/ab-2026-12-06-lake.md): the re-sync of a day at
  1.2 M rows 3.92 -> 3.49 s (best of 4 alternating), at 4.9 M rows 13.44 -> 10.58 s (best of
  2 and 3);
* those holding any row whose key the batch delivers again. They are found by scanning the key
  columns (and `_job_id`, `_date`) of the table's other partitions for the batch's keys: only
  the key columns are read, but of every partition holding keyed rows. That scan is the main
  cost of a lake sync over a DuckDB one (the DuckDB store scans the same keys inside its own
  table) and it is what keeps the key rule exact when a key's row moves to another date (a
  job without the date field dates rows by window start, so a `once` job over several days
  can move keys).

`LakeReads` remembers which partitions the database holds: those read by a transaction count
once it commits (`committed`), and are forgotten if it rolls back. The publish
(csload.lake.store) rewrites exactly those partitions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import duckdb
import pyarrow.dataset as pads

from csload.errors import ConfigError, StoreError
from csload.lake.fs import LakeFS
from csload.lake.layout import PARTITION_COLUMN, RESERVED_COLUMNS, partition_date, partition_key
from csload.lake.snapshot import LakeSnapshot, LakeTable
from csload.lake.types import select_to_csload
from csload.load.hooks import InsertedBatch
from csload.load.lineage import LINEAGE_COLUMNS
from csload.load.sqltext import quote_ident, sql_str
from csload.load.supersede import window_drops
from csload.load.supersede_sql import KeyGroups, batch_key_groups, key_groups, keyed_rows


@contextlib.contextmanager
def files_errors(lake: LakeFS, table: str) -> Iterator[None]:
    """DuckDB's error reading a table's files as a StoreError naming the table, with DuckDB's
    first line only (the lines after it quote csload's SQL)."""
    try:
        yield
    except (duckdb.Error, FileNotFoundError) as exc:   # pyarrow's, opening an S3 dataset
        first = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise StoreError(f"lake {lake.root}: cannot read the files of table {table} "
                         f"({first}); is a file its log names missing or damaged? "
                         f"{MISSING_FILES_FIX.format(folder=lake.uri(table))}") from None


# What to do about a table's missing or damaged files (said by the sync, connect, status and
# doctor alike).
MISSING_FILES_FIX = ("Put them back, or delete the table's folder {folder}: the next csload "
                     "sync loads its runs again (those whose files expired become gaps for "
                     "`csload backfill --gaps`)")


def data_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The fact tables of the work database."""
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE NOT temporary AND schema_name = 'main' "
        "AND database_name = current_database() AND NOT starts_with(table_name, '_csload') "
        "ORDER BY table_name").fetchall()
    return [str(r[0]) for r in rows]


def ordered_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    rows = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
        "AND schema_name = 'main' AND database_name = current_database() "
        "ORDER BY column_index", [table]).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def _days(keys: set[str]) -> str:
    """SQL: the row's `_date` is one of these partitions' (dates written back from checked
    partition keys, nothing read from a file)."""
    days = [partition_date(k) for k in sorted(keys)]
    listed = ", ".join(f"DATE {sql_str(d.isoformat())}" for d in days if d is not None)
    parts = [f"_date IN ({listed})"] if listed else []
    if any(d is None for d in days):
        parts.append("_date IS NULL")
    return "(" + " OR ".join(parts) + ")"


def create_table(con: duckdb.DuckDBPyConnection, table: str,
                 columns: Sequence[tuple[str, str]]) -> None:
    # Types come from the table's log, mapped to csload's by a closed list (csload.lake.types):
    # nothing but a known type reaches SQL.
    defs = ", ".join(f"{quote_ident(n)} {t}" for n, t in columns)
    con.execute(f"CREATE TABLE {quote_ident(table)} ({defs})")


class LakeReads:
    """The lake's hooks into the DuckDB store (csload.load.hooks.BatchHooks): which partitions
    of the lake the work database holds, and reading them in."""

    # 16 MB under the DuckDB target's cap: the lake's process also holds deltalake and pyarrow.
    # Measured 2026-12-06 (benchmarks/results/ab-2026-12-06-lake.md): at 256 MB the peak RSS of
    # a 4.9 M-row sync was 494-499 MB and of a re-sync of a day 498 MB; at 240 MB 479 and
    # 482-484 MB, as fast (1.2 M rows, 5 rounds alternating: median 9.43 s against 9.47 s).
    memory_limit: str = "240MB"
    # The base cap for JSONL statements too: its peak RSS is at the 500 MB budget with it (the
    # DuckDB target's higher cap was not measured here).
    json_memory_limit: str | None = None

    def __init__(self, lake: LakeFS, snapshot: LakeSnapshot) -> None:
        self.lake = lake
        self.snapshot = snapshot
        self.loaded: dict[str, set[str]] = {}      # partitions read in, committed
        self._pending: dict[str, set[str]] = {}    # read in by the open transaction
        # Partitions read by `read_replaced` (their keys only).
        self.replaced: dict[str, set[str]] = {}
        self._pending_replaced: dict[str, set[str]] = {}
        # The work tables a committed table batch wrote since the last publish: the only
        # ones to publish and to empty. Going through every table at every batch made a sync
        # of 200 jobs, each in a table of its own, take 607 s (QA, 2026-12-07).
        self.touched: set[str] = set()
        self._pending_touched: set[str] = set()
        self._sources = 0

    # --- the hooks ---------------------------------------------------------------------------

    def column_problem(self, job_id: int, names: set[str]) -> ConfigError | None:
        if PARTITION_COLUMN not in names:
            return None
        return ConfigError(f"job {job_id}: its files have a column named {PARTITION_COLUMN!r}, "
                           f"{RESERVED_COLUMNS[PARTITION_COLUMN]}")

    def rows_inserted(self, batch: InsertedBatch) -> None:
        self._pending_touched.add(batch.table)
        self.read_affected(batch)

    def committed(self) -> None:
        """Count the partitions read in by the transaction that just committed as loaded."""
        for table, keys in self._pending.items():
            self.loaded.setdefault(table, set()).update(keys)
        for table, keys in self._pending_replaced.items():
            self.replaced.setdefault(table, set()).update(keys)
        self.touched |= self._pending_touched
        self._pending, self._pending_replaced, self._pending_touched = {}, {}, set()

    def rolled_back(self) -> None:
        self._pending, self._pending_replaced, self._pending_touched = {}, {}, set()

    def forget(self) -> None:
        """Hold nothing of the lake any more (the work tables were emptied)."""
        self.loaded, self.replaced, self.touched = {}, {}, set()

    # --- reading partitions in ------------------------------------------------------------

    @contextlib.contextmanager
    def source(self, con: duckdb.DuckDBPyConnection, files: Sequence[str]) -> Iterator[str]:
        """A relation over lake files (relative paths), for use in SQL on `con`."""
        lake = self.lake
        if lake.local:
            paths = ", ".join(sql_str(str(lake.local_path(f))) for f in files)
            yield f"read_parquet([{paths}], hive_partitioning = false)"
            return
        self._sources += 1
        name = f"_csload_lake_src_{self._sources}"
        try:
            dataset = pads.dataset([lake.full(f) for f in files], filesystem=lake.fs,
                                   format="parquet")
        except FileNotFoundError:
            raise   # a file the log names is gone: the caller's files_errors says so, with the fix
        except OSError as exc:
            with lake.errors("read the lake's files"):
                raise exc from None
        con.register(name, dataset)
        try:
            with lake.errors("read the lake's files"):
                yield name
        finally:
            # Fails in a transaction the read aborted, and would hide the read's own error
            # (files_errors': a missing file, with the fix) behind "Current transaction is
            # aborted" (found on S3, 2026-12-07); the work database is rolled back anyway.
            with contextlib.suppress(duckdb.Error):
                con.unregister(name)

    def read_partitions(self, con: duckdb.DuckDBPyConnection, table: str, keys: set[str]
                        ) -> None:
        """Insert the rows of these partitions of the lake into the work table."""
        entry = self.snapshot.tables.get(table)
        if entry is None or not keys:
            return
        files = entry.files_of(keys)
        if files:
            with files_errors(self.lake, table), self.source(con, files) as src:
                con.execute(f"INSERT INTO {quote_ident(table)} BY NAME "  # noqa: S608
                            f"SELECT {select_to_csload(entry.columns, 's.')} FROM {src} AS s")
        self._pending.setdefault(table, set()).update(keys)

    def _have(self, table: str) -> set[str]:
        return self.loaded.get(table, set()) | self._pending.get(table, set())

    def read_affected(self, batch: InsertedBatch) -> None:
        """Read in every partition the batch's supersede rules may change."""
        con, table = batch.con, batch.table
        entry = self.snapshot.tables.get(table)
        if entry is None or not entry.partitions:
            return
        want = {partition_key(r[0]) for r in con.execute(
            f"SELECT DISTINCT _date FROM {quote_ident(table)} "  # noqa: S608
            f"WHERE _run_id IN ({batch.ids})").fetchall()}
        where = entry.state.run_partitions()
        dropped: dict[str, set[int]] = {}   # partition -> its runs the window rule drops there
        for drop in window_drops(batch.windows(), batch.ledger.loaded_windows(batch.job_ids)):
            for key in where.get(drop.run_id, ()):
                day = partition_date(key)
                if drop.date_from is None or (day is not None and drop.date_to is not None
                                              and drop.date_from <= day < drop.date_to):
                    want.add(key)
                    dropped.setdefault(key, set()).add(drop.run_id)
        todo = (want & entry.partitions) - self._have(table)
        # A day every row of which the window rule removes (a re-run replacing it): only its
        # keys and lineage, for the rules (tombstones, counts), not its rows.
        replaced = {k for k in todo if k in entry.state.partitions and entry.files.get(k)
                    and set(entry.state.partitions[k]) <= dropped.get(k, set())}
        if replaced:
            names = {c for cols in key_groups(con, batch.ledger, table, batch.layouts)
                     for c in cols}
            replaced -= self.read_replaced(con, table, replaced, names, batch.ids)
        self.read_partitions(con, table, todo - replaced)
        self.read_partitions(con, table, self.key_partitions(batch, entry))

    def read_replaced(self, con: duckdb.DuckDBPyConnection, table: str, keys: set[str],
                      names: set[str], batch_ids: str) -> set[str]:
        """Insert the key columns `names` and the lineage of the rows of these partitions,
        all of which the window rule removes (their other columns are NULL in the work
        table). The rows read must be those the ledger's lake state says each partition
        holds (anything else: a StoreError, before any rule ran); `replaced_left` checks
        after the rules that none is left. Returns the partitions that also hold rows of no
        run (another writer's: the window rule keeps them, so they must be read whole): their
        keys-only rows are taken out again, for the caller to read them whole."""
        entry = self.snapshot.tables.get(table)
        if entry is None or not keys:
            return set()
        columns = [(n, t) for n, t in entry.columns if n in names or n in LINEAGE_COLUMNS]
        with files_errors(self.lake, table), self.source(con, entry.files_of(keys)) as src:
            con.execute(f"INSERT INTO {quote_ident(table)} BY NAME "  # noqa: S608
                        f"SELECT {select_to_csload(columns, 's.')} FROM {src} AS s")
        read: dict[str, dict[int, int]] = {}
        kept: set[str] = set()   # partitions holding rows of no run
        for day, run_id, rows in con.execute(
                f"SELECT _date, _run_id, count(*) FROM {quote_ident(table)} "  # noqa: S608
                f"WHERE {_days(keys)} AND (_run_id IS NULL OR _run_id NOT IN ({batch_ids})) "
                "GROUP BY ALL").fetchall():
            if run_id is None:
                kept.add(partition_key(day))
            else:
                read.setdefault(partition_key(day), {})[int(run_id)] = int(rows)
        if read != {k: entry.state.partitions[k] for k in keys}:
            raise StoreError(f"lake {self.lake.root}: the files of table {table} hold other "
                             "rows than its ledger says (damaged or tampered with); restore "
                             "the lake from a backup")
        if kept:
            con.execute(f"DELETE FROM {quote_ident(table)} WHERE {_days(kept)} "  # noqa: S608
                        f"AND (_run_id IS NULL OR _run_id NOT IN ({batch_ids}))")
        self._pending_replaced.setdefault(table, set()).update(keys - kept)
        self._pending.setdefault(table, set()).update(keys - kept)
        return kept

    def replaced_left(self, con: duckdb.DuckDBPyConnection, table: str) -> int:
        """Rows of the partitions `read_replaced` read that the rules left (0: any other
        number would publish rows with their columns missing)."""
        entry = self.snapshot.tables.get(table)
        keys = self.replaced.get(table, set())
        if entry is None or not keys:
            return 0
        # The runs each partition held: the lake state's, which read_replaced checked.
        conditions = " OR ".join(
            f"({_days({k})} AND _run_id IN "
            f"({', '.join(str(r) for r in sorted(entry.state.partitions[k]))}))"
            for k in sorted(keys))
        row = con.execute(f"SELECT count(*) FROM {quote_ident(table)} "  # noqa: S608
                          f"WHERE {conditions}").fetchone()
        return int(row[0]) if row else 0

    def key_partitions(self, batch: InsertedBatch, entry: LakeTable) -> set[str]:
        """Partitions not read in yet that hold a row with one of the batch's keys."""
        con, table = batch.con, batch.table
        rest = set(entry.partitions) - self._have(table)
        layouts = batch.layouts
        groups = key_groups(con, batch.ledger, table, layouts)
        batch_groups = batch_key_groups(groups, layouts)
        if not rest or not batch_groups:
            return set()
        job_of = {r.run_id: r.job_id for r in batch.ledger.runs("loaded")}
        keyed = keyed_rows(table, batch_groups, f"t._run_id IN ({batch.ids})")
        con.execute("CREATE OR REPLACE TEMP TABLE _csload_lake_keys AS "  # noqa: S608
                    f"SELECT DISTINCT k0, k1 FROM ({keyed})")
        try:
            return self._scan_keys(con, entry, groups, rest, job_of)
        finally:
            # After a read that failed (a missing file), the transaction is aborted and this
            # DROP fails too: its "Current transaction is aborted" hid the read's error, which
            # named the file. The rollback drops the table.
            with contextlib.suppress(duckdb.TransactionException):
                con.execute("DROP TABLE IF EXISTS temp._csload_lake_keys")

    def _scan_keys(self, con: duckdb.DuckDBPyConnection, entry: LakeTable, groups: KeyGroups,
                   rest: set[str], job_of: dict[int, int]) -> set[str]:
        """Of the partitions `rest`, those whose rows hold a key of `_csload_lake_keys`."""
        lake_columns = {name for name, _ in entry.columns}
        found: set[str] = set()
        for cols, job_list in groups.items():
            if not all(c in lake_columns for c in cols):
                continue   # a key new to the table: no lake row has it
            jobs = set(job_list)
            candidates = {key for key in rest
                          if any(job_of.get(r) in jobs
                                 for r in entry.state.partitions.get(key, {}))}
            if not candidates:
                continue
            k0 = f"CAST(s.{quote_ident(cols[0])} AS UBIGINT)"
            k1 = f"CAST(s.{quote_ident(cols[1])} AS UBIGINT)" if len(cols) > 1 else "0::UBIGINT"
            not_null = " AND ".join(f"s.{quote_ident(c)} IS NOT NULL" for c in cols)
            job_sql = ", ".join(str(j) for j in sorted(jobs))
            with files_errors(self.lake, entry.name), \
                    self.source(con, entry.files_of(candidates)) as src:
                rows = con.execute(
                    f"SELECT DISTINCT x.d FROM (SELECT {k0} AS k0, {k1} AS k1, "  # noqa: S608
                    f"s._date AS d FROM {src} AS s WHERE s._job_id IN ({job_sql}) "
                    f"AND {not_null}) AS x SEMI JOIN _csload_lake_keys AS b "
                    "ON x.k0 = b.k0 AND x.k1 = b.k1").fetchall()
            found |= {partition_key(r[0]) for r in rows} & candidates
        return found
