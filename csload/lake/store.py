"""`ParquetStore`: apply downloaded runs to a Hive-partitioned Parquet lake, exactly once.

It has the DuckDB store's interface (`open`, `loaded_runs`, `ledger`, `apply`, `record_failed`,
`record_expired`, `close`), so the pipeline drives either, and it applies batches with the
DuckDB store itself, by composition, so both targets apply the same rules
(csload.load.supersede) in the same code. For each batch:

1. **Work database** (csload.lake.work). An in-memory `DuckDBStore` (it spills to the scratch
   folder when it outgrows memory) holds the lake's ledger, loaded from the current version's
   snapshot when the store is opened.
2. **Apply.** `DuckDBStore.apply` runs on it unchanged; through its hooks
   (csload.load.hooks), `LakeReads` reads in the partitions the batch can change right after
   a table's batch rows are inserted (csload.lake.work says which, and what that costs).
3. **Write.** Every partition read in or written to is rewritten whole: one
   `COPY ... (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880, PARTITION_BY (date))`
   per table into new, uniquely named files `part-<txid>-<n>.parquet`. A partition left
   without rows disappears. If the table gained a column, all its partitions are rewritten,
   so that every file of a table always has the same columns (no reader needs schema
   merging). The ledger snapshot is written beside (csload.lake.ledger).
4. **Publish.** The new manifest version (csload.lake.manifest) is the commit point:
   * *Local folder*: the new partitions are staged under `_csload/staging/<txid>/`, synced to
     disk, the manifest is written, then each partition folder is swapped in atomically
     (csload.lake.recovery). Partitions of one batch switch one after the other;
     `connect(parquet=ROOT)` reads through the manifest and sees whole versions.
   * *Object storage* (no rename): the new files are uploaded under their final, unique names
     after a transaction marker (`_csload/txn/<txid>.json`) listing them; the manifest is put;
     then the superseded files and the marker are deleted. Between the upload and the delete a
     reader listing the folders sees old and new files of a day: such readers must go through
     the manifest (`csload.connect(parquet=ROOT)`, or its file list), see docs/lake.md.
5. **Recovery** (each open, under the lock): csload.lake.recovery finishes or undoes what a
   crashed sync left.

Runs not yet published when a batch fails are not in the lake's ledger either: the next sync
loads them again. The work database is then thrown away and rebuilt from the lake.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

import csload.lake.lock as lake_lock
from csload.api.models import Job, Run
from csload.config import Limits
from csload.errors import StoreError
from csload.lake.fs import LakeFS
from csload.lake.ledger import export_ledger, import_ledger
from csload.lake.manifest import (
    LEDGER_DIR,
    PARTITION_COLUMN,
    STAGING_DIR,
    Manifest,
    Partition,
    TableEntry,
    TxnMarker,
    manifest_name,
    marker_name,
    new_txid,
    partition_dir,
    partition_key,
)
from csload.lake.recovery import cleanup, finish_swaps, recover, swap_partition, sync_tree
from csload.lake.work import LakeReads, create_table, data_tables, ordered_columns
from csload.load.duckdb import DuckDBStore
from csload.load.ledger import SCHEMA_VERSION, Ledger
from csload.load.outcome import AppliedRun
from csload.load.sqltext import quote_ident, sql_str
from csload.transfer.staged import StagedRun

log = logging.getLogger("csload.lake")

# DuckDB's default row group (122,880 rows): every day is rewritten whole, so files never
# hold tiny row groups. Measured: 1,000,000-row groups made the partitioned write spill and
# then run out of memory under the work database's memory limit (2.4 M rows over 5 days),
# and took 2.4x longer to write at 1.2 M rows.
ROW_GROUP_SIZE = 122_880
_PARQUET_OPTIONS = (f"FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_SIZE}, "
                    f"PARTITION_BY ({PARTITION_COLUMN})")


@contextlib.contextmanager
def _duckdb_errors(root: str) -> Iterator[None]:
    try:
        yield
    except duckdb.Error as exc:
        raise StoreError(f"cannot write the new version of lake {root}: {exc}") from exc


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


def open_work(lake: LakeFS, manifest: Manifest, scratch: Path, limits: Limits | None = None
              ) -> WorkDatabase:
    """A work database holding the ledger of the lake's `manifest` and its tables, empty."""
    reads = LakeReads(lake, manifest)
    # In memory: the work rows never need to be durable (the lake is), and DuckDB spills
    # in-memory tables to temp_directory when they outgrow memory_limit.
    store = DuckDBStore.open(Path(":memory:"), limits=limits, hooks=reads)
    try:
        store.con.execute(f"SET temp_directory = {sql_str(str(scratch / 'spill'))}")
        if manifest.ledger:
            import_ledger(store.con, lake, manifest.ledger)
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
        for table, entry in manifest.tables.items():
            create_table(store.con, table, entry.columns)
    except BaseException:
        store.close()
        raise
    return WorkDatabase(store, reads)


class ParquetStore:
    """The single writer of one Parquet lake (a local folder or an s3:// prefix)."""

    def __init__(self, lake: LakeFS, lock: lake_lock.LakeLock, scratch: Path,
                 manifest: Manifest, work: WorkDatabase) -> None:
        self.lake = lake
        self.root = lake.root
        self._lock: lake_lock.LakeLock | None = lock
        self._scratch = scratch
        self._manifest = manifest
        self._work = work
        self._stale = False
        self._limits: Limits | None = None

    # --- opening and closing ---------------------------------------------------------------

    @classmethod
    def open(cls, root: str | Path, *, storage_options: Mapping[str, str] | None = None,
             scratch_dir: str | Path | None = None, env: Mapping[str, str] | None = None,
             lock_ttl: float = lake_lock.DEFAULT_TTL,
             limits: Limits | None = None) -> ParquetStore:
        """Open (creating if needed) the lake at `root` and take its lock.

        Fails before anything is written when the lake cannot be used (StoreError: a folder
        that cannot be created or written, a missing bucket, refused credentials), and with
        StoreLockedError when another sync holds it. Finishes or undoes what a crashed sync
        left. `scratch_dir`: where the work database spills and (for S3) the files to upload
        are written (default: the system's temporary folder). `env`: the environment to read
        AWS_ENDPOINT_URL / AWS_REGION from (default: os.environ). `limits`: the sync's, for
        the caps on a run's files (csload.load.limits).
        """
        lake = LakeFS.open(root, storage_options, env)
        lake.check_usable()
        lake.ensure_root()
        lock = lake_lock.acquire(lake, lock_ttl)
        try:
            with lake.errors("create a scratch folder"):
                scratch = Path(tempfile.mkdtemp(
                    prefix="csload-lake-", dir=None if scratch_dir is None else str(scratch_dir)))
            try:
                manifest = recover(lake)
                work = cls._open_work(lake, manifest, scratch, limits)
            except BaseException:
                shutil.rmtree(scratch, ignore_errors=True)
                raise
        except BaseException:
            lock.release()
            raise
        store = cls(lake, lock, scratch, manifest, work)
        store._limits = limits
        return store

    @staticmethod
    def _open_work(lake: LakeFS, manifest: Manifest, scratch: Path,
                   limits: Limits | None = None) -> WorkDatabase:
        return open_work(lake, manifest, scratch, limits)

    def close(self) -> None:
        if self._lock is None:
            return
        try:
            self._work.close()
        finally:
            lock, self._lock = self._lock, None
            lock.release()
            shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> ParquetStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ready(self) -> DuckDBStore:
        """The work database's store, rebuilt from the lake after a failed batch."""
        if self._lock is None:
            raise StoreError(f"lake {self.root} is closed")
        if self._stale:
            with contextlib.suppress(duckdb.Error):
                self._work.close()
            self._manifest = recover(self.lake)
            self._work = self._open_work(self.lake, self._manifest, self._scratch,
                                         self._limits)
            self._stale = False
        return self._work.store

    @property
    def ledger(self) -> Ledger:
        """The ledger of the lake's current version (csload.load.ledger's queries)."""
        return self._ready().ledger

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    # --- the ledger -----------------------------------------------------------------------

    def loaded_runs(self) -> set[int]:
        return self._ready().loaded_runs()

    def record_failed(self, job: Job, run: Run, message: str, table: str | None = None) -> None:
        """Record that a run could not be loaded (a new lake version with the ledger only)."""
        self._record(lambda w: w.record_failed(job, run, message, table), run.run_id)

    def record_expired(self, job: Job, run: Run, message: str = "", table: str | None = None
                       ) -> None:
        self._record(lambda w: w.record_expired(job, run, message, table), run.run_id)

    def name_custom_vars(self, variables: Sequence[tuple[int, str | None]]) -> None:
        """Nothing: a lake has no place for the names of custom variables (docs/queries.md:
        `csload custom-vars` lists them)."""

    def record_source_failed(self, failures: Sequence[tuple[Job, Run, str]]) -> list[Run]:
        """Record runs that FAILED at Contentsquare; a new lake version only if any is new."""
        work = self._ready()
        try:
            recorded = work.record_source_failed(failures)
            if recorded:
                self._publish()
        except BaseException:
            self._stale = True
            raise
        return recorded

    def _record(self, change: Callable[[DuckDBStore], None], run_id: int) -> None:
        work = self._ready()
        already_loaded = work.ledger.status_of(run_id) == "loaded"
        try:
            change(work)   # logs and changes nothing for a loaded run
            if not already_loaded:
                self._publish()
        except BaseException:
            self._stale = True
            raise

    # --- apply ------------------------------------------------------------------------------

    def apply(self, runs: Sequence[StagedRun]) -> list[AppliedRun]:
        """Load the runs not yet in the lake's ledger, as DuckDBStore.apply does, and publish
        them as one new lake version (all of the batch or none of it)."""
        work = self._ready()
        try:
            outcomes = work.apply(runs)
            if any(o.status in ("loaded", "failed") for o in outcomes):
                self._publish()
        except BaseException:
            self._stale = True
            raise
        return outcomes

    # --- publishing a version -------------------------------------------------------------

    def _publish(self) -> None:
        work, lake, old = self._work, self.lake, self._manifest
        txid = new_txid()
        version = old.version + 1
        if lake.local:
            out = lake.local_path(f"{STAGING_DIR}/{txid}")
            ledger_out = lake.local_path(f"{LEDGER_DIR}/{txid}")
        else:
            out = self._scratch / txid
            ledger_out = out / LEDGER_DIR / txid
        tables = dict(old.tables)
        touched: list[tuple[str, str]] = []
        obsolete: list[str] = []
        uploads: list[str] = []
        with lake.errors("write the new files"), _duckdb_errors(lake.root):
            out.mkdir(parents=True, exist_ok=True)
            for table in data_tables(work.con):
                entry, written = self._write_table(table, old.tables.get(table), out, txid)
                if entry is None:
                    continue
                previous = old.tables.get(table)
                for key in sorted(written):
                    touched.append((table, key))
                    if previous is not None and key in previous.partitions:
                        obsolete += [f for f, _ in previous.partitions[key].files]
                uploads += [f for key in written for f, _ in entry.partitions.get(
                    key, Partition([], 0, {})).files]
                tables[table] = entry
            export_ledger(work.con, ledger_out)
        manifest = Manifest(version=version, txid=txid,
                            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                            ledger=f"{LEDGER_DIR}/{txid}", tables=tables, touched=touched)
        if lake.local:
            with lake.errors("write the new files"):
                if out.exists():
                    sync_tree(out)
                sync_tree(ledger_out)
        else:
            uploads += [f"{LEDGER_DIR}/{txid}/{p.name}" for p in sorted(ledger_out.iterdir())]
            lake.write_bytes(marker_name(txid), TxnMarker(txid, version, uploads,
                                                          obsolete).to_bytes())
            lake.upload_files([(out / rel, rel) for rel in uploads])
            shutil.rmtree(out, ignore_errors=True)
        self._commit_version(manifest)
        self._manifest = manifest
        work.reads.manifest = manifest
        self._reset_tables(manifest)
        if lake.local:
            finish_swaps(lake, manifest, self._swap_partition)
            with lake.errors("remove the staging folder"):
                shutil.rmtree(lake.local_path(f"{STAGING_DIR}/{txid}"), ignore_errors=True)
        else:
            self._delete_obsolete(obsolete)
            lake.delete_files([marker_name(txid)])
        cleanup(lake, manifest)
        log.info("lake %s: published version %s (%s partitions rewritten)", lake.root,
                 version, len(touched))

    def _write_table(self, table: str, previous: TableEntry | None, out: Path, txid: str
                     ) -> tuple[TableEntry | None, dict[str, list[tuple[str, int]]]]:
        """Write the work table's partitions; the table's new entry and the files written."""
        work = self._work
        con = work.con
        columns = ordered_columns(con, table)
        loaded = set(work.reads.loaded.get(table, set()))
        if previous is not None and previous.columns != columns:
            # A new column: rewrite every partition, so that all files keep one schema.
            rest = set(previous.partitions) - loaded
            if rest:
                work.reads.read_partitions(con, table, rest)
                work.reads.committed()
                loaded |= rest
        row = con.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchone()  # noqa: S608
        count = int(row[0]) if row else 0
        if previous is not None and count == 0 and not loaded and previous.columns == columns:
            return None, {}
        written: dict[str, list[tuple[str, int]]] = {}
        if count:
            target = out / table
            con.execute(
                f"COPY (SELECT *, _date AS {PARTITION_COLUMN} FROM {quote_ident(table)}) "  # noqa: S608
                f"TO {sql_str(str(target))} "
                f"({_PARQUET_OPTIONS}, FILENAME_PATTERN {sql_str('part-' + txid + '-{i}')})")
            for folder in sorted(target.iterdir()):
                key = folder.name.split("=", 1)[1]
                written[key] = [(f"{partition_dir(table, key)}/{f.name}", f.stat().st_size)
                                for f in sorted(folder.iterdir())]
        stats: dict[str, dict[int, int]] = {}
        for day, run_id, rows in con.execute(
                f"SELECT _date, _run_id, count(*) FROM {quote_ident(table)} "  # noqa: S608
                "GROUP BY ALL").fetchall():
            stats.setdefault(partition_key(day), {})[int(run_id)] = int(rows)
        entry = TableEntry(columns, dict(previous.partitions) if previous else {})
        for key in loaded | set(written):
            entry.partitions.pop(key, None)
            if key in written:
                runs = stats.get(key, {})
                entry.partitions[key] = Partition(written[key], sum(runs.values()), runs)
        return entry, {key: written.get(key, []) for key in loaded | set(written)}

    def _reset_tables(self, manifest: Manifest) -> None:
        """Empty the work tables for the next batch (the lake now holds their rows)."""
        con = self._work.con
        for table in data_tables(con):
            con.execute(f"DROP TABLE {quote_ident(table)}")
        for table, entry in manifest.tables.items():
            create_table(con, table, entry.columns)
        self._work.reads.loaded = {}

    # Seams for the crash tests: each step of a publish is one method.

    def _commit_version(self, manifest: Manifest) -> None:
        """The commit point: the new manifest version appears whole, or not at all."""
        assert self._lock is not None
        self._lock.verify()
        if not self.lake.create_new(manifest_name(manifest.version), manifest.to_bytes()):
            raise StoreError(
                f"lake {self.root}: version {manifest.version} was published by another "
                "process while this sync ran; were two syncs running at once?")

    def _swap_partition(self, lake: LakeFS, manifest: Manifest, table: str, key: str) -> None:
        swap_partition(lake, manifest, table, key)

    def _delete_obsolete(self, files: list[str]) -> None:
        try:
            self.lake.delete_files(files)
        except StoreError as exc:   # the marker stays: the next sync deletes them
            log.warning("lake %s: superseded files not deleted yet: %s", self.root, exc)
