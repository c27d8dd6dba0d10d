"""`ParquetStore`: apply downloaded runs to a lake of Delta tables, exactly once.

It has the DuckDB store's interface (`open`, `loaded_runs`, `ledger`, `apply`,
`record_unloaded`, `record_source_failed`, `close`), so the pipeline drives either, and it
applies batches with the DuckDB store itself, by composition, so both targets apply the same rules
(csload.load.supersede) in the same code. For each batch:

1. **Work database** (csload.lake.work). A `DuckDBStore` on a database file in the scratch
   folder holds the lake's ledger, loaded from the ledger table when
   the store is opened (csload.lake.snapshot).
2. **Apply.** `DuckDBStore.apply` runs on it unchanged; through its hooks
   (csload.load.hooks), `LakeReads` reads in the partitions the batch can change right after
   a table's batch rows are inserted.
3. **Write** (csload.lake.publish). Every partition read in or written to is rewritten whole,
   into new files; a partition left without rows disappears. If the table gained a column,
   all its partitions are rewritten, so every file of a table has its columns.
4. **Commit** (csload.lake.delta). One Delta commit per table adds the new files and removes
   those of the partitions they replace: a reader of the table's log sees each day before or
   after the batch, never half of it. Then one commit of the ledger table
   (csload.lake.ledger) records the batch's runs and the table versions it agrees with: this
   commit is the one that makes the batch count.
5. **Recovery** (csload.lake.recovery, each open): a table commit the ledger does not know of
   (a crash between the two commits) is undone.

A second writer: each commit is made from the snapshot this store read, so another process's
commit in between makes it fail (`LakeConflict`; `csload sync` stops, exit 1): nothing of that
batch counts. Runs not yet published when a batch fails are not in the lake's ledger either: the
next sync loads them again. The work database is then thrown away and rebuilt from the lake.

Housekeeping (the settings' `lake_file_retention`, `lake_log_retention`, `lake_vacuum`,
csload.config.limits): the files a batch replaces stay for the file retention window, so
running readers and time travel keep working, then a sync's `close` vacuums the tables it
wrote (which also removes files a crashed sync wrote and never committed); deltalake writes
checkpoints and removes log entries past the log retention window by itself. The windows are
also each table's Delta properties, set again when the settings change.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb
from deltalake import DeltaTable

from csload.api.models import Job, Run
from csload.config import Limits
from csload.errors import StoreError
from csload.lake.delta import WrittenFile, commit_files, commit_ledger, vacuum, vacuum_due
from csload.lake.fs import LakeFS
from csload.lake.layout import LEDGER_TABLE_DIR, new_txid, partition_key
from csload.lake.ledger import export_ledger, import_ledger
from csload.lake.publish import lake_schema, write_files
from csload.lake.recovery import recover, refuse_others_files
from csload.lake.snapshot import LakeSnapshot, guard_from_older_csload, read_table
from csload.lake.state import LakeState, TableState
from csload.lake.work import LakeReads, create_table, data_tables, ordered_columns
from csload.load.duckdb import DuckDBStore
from csload.load.ledger import SCHEMA_VERSION, Ledger
from csload.load.outcome import AppliedRun, UnloadedRun
from csload.load.sqltext import quote_ident, sql_str
from csload.scratch import OwnFolder, fresh_folder
from csload.transfer.staged import StagedRun

log = logging.getLogger("csload.lake")
# A sync's scratch folder (its work database, its files before an S3 upload), in the system's
# temporary folder or the staging folder the user chose.
SCRATCH_PREFIX = "csload-lake-"
Recorded = TypeVar("Recorded", int, list[Run])


def _remove_if_empty(made: list[Path]) -> None:
    """Undo `LakeFS.ensure_root` after an open that failed, so that a refused folder is left as
    it was: only folders still empty (a sync that started meanwhile may have written)."""
    for path in reversed(made):
        with contextlib.suppress(OSError):
            path.rmdir()


def table_configuration(limits: Limits) -> dict[str, str]:
    """The properties every table of a lake has: the retention windows of the settings."""
    return {"delta.deletedFileRetentionDuration":
            f"interval {math.ceil(limits.lake_file_retention)} seconds",
            "delta.logRetentionDuration":
            f"interval {math.ceil(limits.lake_log_retention)} seconds"}


@dataclass
class WorkDatabase:
    """The DuckDB store a lake applies batches with, and its hooks (what it holds of the lake)."""

    store: DuckDBStore
    reads: LakeReads

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        return self.store.con

    def close(self) -> None:
        self.store.close()


def open_work(lake: LakeFS, snapshot: LakeSnapshot, scratch: Path, limits: Limits | None = None
              ) -> WorkDatabase:
    """A work database holding the lake's ledger and its tables, empty."""
    reads = LakeReads(lake, snapshot)
    # A file in the scratch folder, thrown away with it (the lake is what lasts), not an
    # in-memory database: DuckDB writes a large insert's rows to the file compressed, where an
    # in-memory table outgrowing memory_limit spills them uncompressed and reads them back for
    # each day's COPY. Measured 2026-12-06 (benchmarks/results/ab-2026-12-06-lake.md): the
    # whole sync 23.28 -> 21.29 s at 2.4 M rows (-8.5%), 9.00 -> 8.91 s at 1.2 M rows, peak RSS
    # 497 -> 475 MB at 1.2 M rows.
    path = scratch / "work.duckdb"
    for stale in (path, path.with_name(path.name + ".wal")):   # a failed batch's, rebuilt
        stale.unlink(missing_ok=True)
    store = DuckDBStore.open(path, limits=limits, hooks=reads)
    try:
        store.con.execute(f"SET temp_directory = {sql_str(str(scratch / 'spill'))}")
        if snapshot.exists:
            import_ledger(store.con, lake, snapshot.rows)
            row = store.con.execute(
                "SELECT TRY_CAST(value AS INTEGER) FROM _csload.meta "
                "WHERE key = 'schema_version'").fetchone()
            if row is not None and row[0] is None:
                raise StoreError(f"lake {lake.root}: the ledger's schema version is not a "
                                 "number (damaged or tampered with)")
            if row is not None and int(row[0]) > SCHEMA_VERSION:
                raise StoreError(
                    f"lake {lake.root} has a ledger of schema version {row[0]}, newer "
                    f"than this csload understands ({SCHEMA_VERSION}): upgrade csload")
        for table, entry in snapshot.tables.items():
            create_table(store.con, table, entry.columns)
    except BaseException:
        store.close()
        raise
    return WorkDatabase(store, reads)


@contextlib.contextmanager
def _duckdb_errors(root: str) -> Iterator[None]:
    try:
        yield
    except duckdb.Error as exc:
        raise StoreError(f"cannot write the new version of lake {root}: {exc}") from exc


class ParquetStore:
    """The writer of one lake (a local folder or an s3:// prefix) of Delta tables."""

    def __init__(self, lake: LakeFS, scratch: OwnFolder, snapshot: LakeSnapshot,
                 work: WorkDatabase, limits: Limits) -> None:
        self.lake = lake
        self.root = lake.root
        self._scratch = scratch
        self._snapshot = snapshot
        self._work = work
        self._stale = False
        self._closed = False
        self._limits = limits   # the caps on a run's files, and the housekeeping settings
        self._written: set[str] = set()   # tables this store committed to
        self._published = False

    @property
    def scratch_path(self) -> Path:
        """This sync's scratch folder (its work database), held while the store is open."""
        return self._scratch.path

    # --- opening and closing ---------------------------------------------------------------

    @classmethod
    def open(cls, root: str | Path, *, storage_options: Mapping[str, str] | None = None,
             scratch_dir: str | Path | None = None, env: Mapping[str, str] | None = None,
             limits: Limits | None = None) -> ParquetStore:
        """Open (creating if needed) the lake at `root`.

        Fails before anything is written when the lake cannot be used (StoreError: a folder
        that cannot be created or written, a missing bucket, refused credentials). Undoes what
        a crashed sync left (csload.lake.recovery). `scratch_dir`: where the work database
        spills and (for S3) the files to upload are written (default: the system's temporary
        folder). `env`: the environment to read AWS_ENDPOINT_URL / AWS_REGION from (default:
        os.environ). `limits`: the sync's, for the caps on a run's files (csload.load.limits).
        """
        lake = LakeFS.open(root, storage_options, env)
        lake.check_usable()
        made = lake.ensure_root()
        try:
            with lake.errors("create a scratch folder"):
                # Killed syncs' work databases (a batch's rows: hundreds of MB) go; running
                # syncs' stay (csload.scratch).
                scratch = fresh_folder(scratch_dir, SCRATCH_PREFIX)
        except BaseException:
            _remove_if_empty(made)
            raise
        try:
            snapshot = recover(lake)
            if snapshot.exists:   # a new lake's is written with its first ledger
                guard_from_older_csload(lake)
            work = open_work(lake, snapshot, scratch.path, limits)
        except BaseException:
            scratch.remove()
            _remove_if_empty(made)   # a refused folder is left as it was
            raise
        return cls(lake, scratch, snapshot, work, limits or Limits())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._work.close()
            self._housekeeping()
        finally:
            self._scratch.remove()

    def _housekeeping(self) -> None:
        """Vacuum the tables this store wrote, the others when one is due (delta.vacuum_due),
        and the ledger if it committed (a failure is a warning: the next sync retries);
        nothing when the settings say `lake_vacuum = false`, or after a failed batch."""
        limits = self._limits
        # Not after a failed batch either: the storage that failed it fails the vacuum too,
        # each held for deltalake's 180 s of retries when an endpoint stops answering.
        if not limits.lake_vacuum or self._stale:
            return
        # Whole hours (deltalake's unit), rounded up: never fewer than the setting.
        hours = math.ceil(limits.lake_file_retention / 3600)
        # Each table, and whether this store wrote it (the ledger: if it committed).
        tables = [(n, t.delta, n in self._written)
                  for n, t in sorted(self._snapshot.tables.items())]
        if self._published and self._snapshot.ledger is not None:
            tables.append((LEDGER_TABLE_DIR, self._snapshot.ledger, True))
        for name, table, written in tables:
            try:
                due = written or vacuum_due(self.lake, table, hours)
                removed = vacuum(self.lake, name, table, hours) if due else []
            except StoreError as exc:
                # The next tables would fail the same (an endpoint that stopped answering
                # held each vacuum for deltalake's 180 s of retries: found 2026-12-07).
                log.warning("lake %s: not vacuumed (the next sync does): %s", self.root, exc)
                break
            if removed:
                log.info("lake %s: table %s: %s files past the retention window removed",
                         self.root, name, len(removed))

    def __enter__(self) -> ParquetStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ready(self) -> DuckDBStore:
        """The work database's store, rebuilt from the lake after a failed batch."""
        if self._closed:
            raise StoreError(f"lake {self.root} is closed")
        if self._stale:
            with contextlib.suppress(duckdb.Error):
                self._work.close()
            self._snapshot = recover(self.lake)
            self._work = open_work(self.lake, self._snapshot, self.scratch_path, self._limits)
            self._stale = False
        return self._work.store

    @property
    def ledger(self) -> Ledger:
        """The ledger of the lake (csload.load.ledger's queries)."""
        return self._ready().ledger

    @property
    def snapshot(self) -> LakeSnapshot:
        return self._snapshot

    # --- the ledger -----------------------------------------------------------------------

    def loaded_runs(self) -> set[int]:
        return self._ready().loaded_runs()

    def record_unloaded(self, runs: Sequence[UnloadedRun]) -> int:
        """Record runs the sync could not load: one ledger commit for all of them, if any is
        new. Each commit rewrites the ledger table's file: one per run made a first sync that
        met 716 expired runs (a year of two daily jobs) take 41 s; one per batch, 8-10 s
        (benchmarks/bench_history.py, 2026-12-06)."""
        return self._ledger_change(lambda work: work.record_unloaded(runs))

    def record_project(self, project_id: int) -> None:
        """The project whose exports the lake holds: into the work database's ledger, which
        the next batch's commit publishes (no commit of its own)."""
        self._ready().record_project(project_id)

    def name_custom_vars(self, variables: Sequence[tuple[int, str | None]]) -> None:
        """Nothing: a lake has no place for the names of custom variables (docs/queries.md:
        `csload custom-vars` lists them)."""

    def record_source_failed(self, failures: Sequence[tuple[Job, Run, str]]) -> list[Run]:
        """Record runs that FAILED at Contentsquare; a ledger commit only if any is new."""
        return self._ledger_change(lambda work: work.record_source_failed(failures))

    def _ledger_change(self, change: Callable[[DuckDBStore], Recorded]) -> Recorded:
        """`change` on the work database's ledger, published (one commit) if it recorded
        anything."""
        work = self._ready()
        try:
            recorded = change(work)
            if recorded:
                self._publish()
        except BaseException:
            self._stale = True
            raise
        return recorded

    # --- apply ------------------------------------------------------------------------------

    def apply(self, runs: Sequence[StagedRun]) -> list[AppliedRun]:
        """Load the runs not yet in the lake's ledger, as DuckDBStore.apply does, and publish
        them (all of the batch or none of it)."""
        work = self._ready()
        try:
            outcomes = work.apply(runs)
            if any(o.status in ("loaded", "failed") for o in outcomes):
                self._publish()
        except BaseException:
            self._stale = True
            raise
        return outcomes

    # --- publishing a batch ---------------------------------------------------------------

    def _publish(self) -> None:
        work, old = self._work, self._snapshot
        txid = new_txid()
        batch = old.state.batch + 1
        state = LakeState(batch, dict(old.state.tables))
        tables = dict(old.tables)
        written = set()
        touched = [name for name in data_tables(work.con) if name in work.reads.touched]
        with self.lake.errors("write the new files"), _duckdb_errors(self.root):
            for name in touched:   # before any table of the batch is written
                if name not in tables:
                    refuse_others_files(self.lake, name)
            for name in touched:
                entry = self._publish_table(name, state, batch, txid)
                if entry is not None:
                    written.add(name)
                    tables[name] = read_table(self.lake, name, entry.version, entry)
            ledger = self._commit_ledger(export_ledger(work.con, state), batch, txid)
        if not old.exists:
            with contextlib.suppress(StoreError):   # committed: the next open writes it
                guard_from_older_csload(self.lake)
        self._written |= written
        self._snapshot = LakeSnapshot(ledger, {}, state, tables)
        self._published = True
        work.reads.snapshot = self._snapshot
        self._reset_tables(touched)
        log.info("lake %s: published batch %s", self.root, batch)

    def _publish_table(self, name: str, state: LakeState, batch: int, txid: str
                       ) -> TableState | None:
        """Write and commit the work table's partitions; the table's new state (None: the
        batch left the table as it was)."""
        work = self._work
        con = work.con
        previous = self._snapshot.tables.get(name)
        columns = ordered_columns(con, name)
        loaded = set(work.reads.loaded.get(name, set()))
        widened = previous is not None and previous.columns != columns
        if widened and previous is not None:
            # A new column: rewrite every partition, so that every file has the columns.
            rest = previous.partitions - loaded
            if rest:
                work.reads.read_partitions(con, name, rest)
                work.reads.committed()
                loaded |= rest
        if work.reads.replaced_left(con, name):
            raise StoreError(f"lake {self.root}: rows of table {name} that the batch replaces "
                             "were kept; nothing was published (a bug: please report it)")
        row = con.execute(f"SELECT count(*) FROM {quote_ident(name)}").fetchone()  # noqa: S608
        count = int(row[0]) if row else 0
        if count == 0 and not loaded and not widened:
            return None
        files = self._write_files(name, columns, txid) if count else []
        keys = loaded | {f.key for f in files}
        replace = None if widened else {
            k: previous.files.get(k, []) if previous else [] for k in sorted(keys)}
        delta = self._commit_table(name, previous.delta if previous else None, files,
                                   lake_schema(con, name, columns), replace, batch, txid)
        stats: dict[str, dict[int, int]] = {}
        # Rows another writer added without a run id are kept and counted for no run
        # (docs/lake.md); they used to stop every sync that rewrote their day (TypeError).
        for day, run_id, rows in con.execute(
                f"SELECT _date, _run_id, count(*) FROM {quote_ident(name)} "  # noqa: S608
                "WHERE _run_id IS NOT NULL GROUP BY ALL").fetchall():
            stats.setdefault(partition_key(day), {})[int(run_id)] = int(rows)
        kept = {} if previous is None or widened else {
            k: v for k, v in previous.state.partitions.items() if k not in keys}
        entry = TableState(delta.version(), {**kept, **stats})
        state.tables[name] = entry
        return entry

    def _reset_tables(self, touched: list[str]) -> None:
        """Empty the work tables the batch wrote, for the next batch (the lake now holds their
        rows); the others are empty, with the columns of the lake's table, already."""
        con = self._work.con
        for table in touched:
            con.execute(f"DROP TABLE {quote_ident(table)}")
            entry = self._snapshot.tables.get(table)
            if entry is not None:
                create_table(con, table, entry.columns)
        self._work.reads.forget()

    # Seams for the crash tests: each step of a publish is one method.

    def _write_files(self, name: str, columns: list[tuple[str, str]], txid: str
                     ) -> list[WrittenFile]:
        return write_files(self._work.con, self.lake, name, columns, txid, self.scratch_path)

    def _commit_table(self, name: str, table: DeltaTable | None, files: list[WrittenFile],
                      schema: Any, replace: dict[str, list[str]] | None, batch: int,
                      txid: str
                      ) -> DeltaTable:
        return commit_files(self.lake, name, table, files, schema, replace=replace,
                            txn=batch, txid=txid,
                            configuration=table_configuration(self._limits))

    def _commit_ledger(self, rows: Any, batch: int, txid: str) -> DeltaTable:
        """The commit point of a batch."""
        return commit_ledger(self.lake, self._snapshot.ledger, rows, txn=batch, txid=txid,
                             configuration=table_configuration(self._limits))
