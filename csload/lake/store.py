"""`ParquetStore`: apply downloaded runs to a Hive-partitioned Parquet lake, exactly once.

It has the DuckDB store's interface (`open`, `loaded_runs`, `ledger`, `apply`, `record_failed`,
`record_expired`, `close`), so the pipeline drives either, and it reuses the DuckDB store as
its compute engine, so both targets apply the same rules (csload.load.supersede) in the same
code. For each batch:

1. **Work database.** An in-memory DuckDB database (`_Work`, a `DuckDBStore`; it spills to
   the scratch folder when it outgrows memory) holds the lake's ledger, loaded from the current
   version's snapshot when the store is opened.
2. **Apply.** `DuckDBStore.apply` runs on it unchanged, except that right after a table's
   batch rows are inserted (inside its transaction, before the key rule), the partitions the
   batch can change are read in from the lake: those of the batch's own row dates; those
   holding rows of the runs the window rule will drop (the manifest knows each partition's
   rows per run); and those holding any row whose key the batch delivers again. The last set
   is found by scanning the key columns (and `_job_id`, `_date`) of the table's other
   partitions for the batch's keys: only the key columns are read, but of every partition
   holding keyed rows. That scan is the main cost of a lake sync over a DuckDB one (the
   DuckDB store scans the same keys inside its own table) and it is what keeps the key rule
   exact when a key's row moves to another date (a job without the date field dates rows by
   window start, so a `once` job over several days can move keys).
3. **Write.** Every partition read in or written to is rewritten whole: one
   `COPY ... (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880, PARTITION_BY (date))`
   per table into new, uniquely named files `part-<txid>-<n>.parquet`. A partition left
   without rows disappears. If the table gained a column, all its partitions are rewritten,
   so that every file of a table always has the same columns (no reader needs schema
   merging). The ledger snapshot is written beside (csload.lake.ledger).
4. **Publish.** The new manifest version (csload.lake.manifest) is the commit point:
   * *Local folder*: the new partitions are staged under `_csload/staging/<txid>/`, synced to
     disk, the manifest is written, then each partition folder is swapped in with one atomic
     `renameat2(RENAME_EXCHANGE)` (Linux; `renamex_np(RENAME_SWAP)` on macOS), so a reader
     globbing `ROOT/<table>/*/*.parquet` sees the old or the new files of a day, never both and
     never a half-written day. Where exchange is unsupported, the old folder is renamed away
     and the new one in: a reader may then miss that day for the instant between the two
     renames, but still never sees two versions. Partitions of one batch switch one after the
     other; `connect(parquet=ROOT)` reads through the manifest and sees whole versions.
   * *Object storage* (no rename): the new files are uploaded under their final, unique names
     after a transaction marker (`_csload/txn/<txid>.json`) listing them; the manifest is put;
     then the superseded files and the marker are deleted. Between the upload and the delete a
     reader listing the folders sees old and new files of a day: such readers must go through
     the manifest (`csload.connect(parquet=ROOT)`, or its file list), see docs/lake.md.
5. **Recovery** (each open, under the lock): a crash before the manifest leaves the previous
   version current: its staging folder (local) or the marker's uploads (S3) are deleted. A
   crash after it: the local swaps of the version's `touched` partitions are finished (each
   is checked by its folder's file names, so repeating is harmless), or the marker's
   superseded files are deleted (S3). Ledger snapshots and manifests no longer current are
   removed (the last 3 manifests are kept).

Runs not yet published when a batch fails are not in the lake's ledger either: the next sync
loads them again. The work database is then thrown away and rebuilt from the lake.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.dataset as pads

from csload.api.models import Job, Run
from csload.config import Limits
from csload.errors import ConfigError, StoreError
from csload.lake import lock as lake_lock
from csload.lake.fs import LakeFS, fsync_dir, fsync_file
from csload.lake.ledger import export_ledger, import_ledger
from csload.lake.manifest import (
    KEEP_MANIFESTS,
    LEDGER_DIR,
    MANIFEST_DIR,
    MARKER_NAME,
    PARTITION_COLUMN,
    STAGING_DIR,
    TXID_SHAPE,
    TXN_DIR,
    Manifest,
    Partition,
    TableEntry,
    TxnMarker,
    column_type,
    manifest_name,
    manifest_versions,
    marker_name,
    new_txid,
    partition_date,
    partition_dir,
    partition_key,
    read_current,
)
from csload.load.columns import quote_ident, sql_str
from csload.load.duckdb import DuckDBStore, RunOutcome, _Group, _PartFailed, _Pending
from csload.load.ledger import SCHEMA_VERSION, Ledger
from csload.load.supersede import RunWindow, run_order, window_drops
from csload.transfer.staged import StagedRun

log = logging.getLogger("csload.lake")

# DuckDB's default row group (122,880 rows): every day is rewritten whole, so files never
# hold tiny row groups. Measured: 1,000,000-row groups made the partitioned write spill and
# then run out of memory under the work database's memory limit (2.4 M rows over 5 days),
# and took 2.4x longer to write at 1.2 M rows.
ROW_GROUP_SIZE = 122_880
_PARQUET_OPTIONS = (f"FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_SIZE}, "
                    f"PARTITION_BY ({PARTITION_COLUMN})")


def _data_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE NOT temporary AND schema_name = 'main' "
        "AND database_name = current_database() AND NOT starts_with(table_name, '_csload') "
        "ORDER BY table_name").fetchall()
    return [str(r[0]) for r in rows]


def _ordered_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    rows = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? "
        "AND schema_name = 'main' AND database_name = current_database() "
        "ORDER BY column_index", [table]).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def _create_table(con: duckdb.DuckDBPyConnection, table: str,
                  columns: Sequence[tuple[str, str]]) -> None:
    # Types come from the manifest: checked again here, as nothing but a known type may
    # reach SQL (csload.lake.manifest).
    defs = ", ".join(f"{quote_ident(n)} {column_type(t, f'table {table}')}" for n, t in columns)
    con.execute(f"CREATE TABLE {quote_ident(table)} ({defs})")


class _Work(DuckDBStore):
    """The DuckDB store a batch is applied with: the lake's ledger plus the partitions read in."""

    # In memory, a batch's rows stay in memory until written out: a higher cap for JSONL
    # statements would let them grow up to it.
    JSON_MEMORY_LIMIT = None

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        super().__init__(con, path)
        self.lake: LakeFS | None = None
        self.manifest = Manifest.empty()
        self.loaded: dict[str, set[str]] = {}      # partitions read in, committed
        self._pending: dict[str, set[str]] = {}    # read in by the open transaction
        self._sources = 0

    # --- hooks into DuckDBStore --------------------------------------------------------

    def _load_batch(self, table: str, batch: list[_Pending]) -> dict[int, RunOutcome]:
        self._pending = {}
        try:
            return super()._load_batch(table, batch)
        finally:
            self._pending = {}   # rolled back, or merged by _commit

    def _commit(self) -> None:
        super()._commit()
        self.commit_reads()

    def commit_reads(self) -> None:
        """Count the partitions read in by the transaction that just committed as loaded."""
        for table, keys in self._pending.items():
            self.loaded.setdefault(table, set()).update(keys)
        self._pending = {}

    def _ensure_table(self, table: str, batch: list[_Pending], groups: list[_Group]) -> None:
        for item in batch:
            names = {c.name for c in item.layout.columns}
            names |= {c.name for g in groups if item in g.pending for c in g.columns}
            if PARTITION_COLUMN in names:
                raise _PartFailed(item.run_id, ConfigError(
                    f"job {item.layout.job_id}: a column named {PARTITION_COLUMN!r} would "
                    f"clash with the lake's partition folders ({PARTITION_COLUMN}=YYYY-MM-DD): "
                    "give the field another alias"))
        super()._ensure_table(table, batch, groups)

    def _apply_key_rule(self, table: str, batch: list[_Pending], ids: str
                        ) -> dict[int, int] | None:
        self._read_affected(table, batch, ids)
        return super()._apply_key_rule(table, batch, ids)

    # --- reading partitions in ------------------------------------------------------------

    @contextlib.contextmanager
    def source(self, files: Sequence[str]) -> Iterator[str]:
        """A relation over lake files (relative paths), for use in SQL."""
        assert self.lake is not None
        lake = self.lake
        if lake.local:
            paths = ", ".join(sql_str(str(lake.local_path(f))) for f in files)
            yield f"read_parquet([{paths}], hive_partitioning = false)"
            return
        self._sources += 1
        name = f"_csload_lake_src_{self._sources}"
        with lake.errors("read the lake's files"):
            dataset = pads.dataset([lake.full(f) for f in files], filesystem=lake.fs,
                                   format="parquet")
        self.con.register(name, dataset)
        try:
            with lake.errors("read the lake's files"):
                yield name
        finally:
            self.con.unregister(name)

    def read_partitions(self, table: str, keys: set[str]) -> None:
        """Insert the rows of these partitions of the lake into the work table."""
        entry = self.manifest.tables.get(table)
        if entry is None or not keys:
            return
        files = entry.files(keys)
        if files:
            with self.source(files) as src:
                self.con.execute(f"INSERT INTO {quote_ident(table)} BY NAME "  # noqa: S608
                                 f"SELECT * FROM {src}")
        self._pending.setdefault(table, set()).update(keys)

    def _have(self, table: str) -> set[str]:
        return self.loaded.get(table, set()) | self._pending.get(table, set())

    def _read_affected(self, table: str, batch: list[_Pending], ids: str) -> None:
        entry = self.manifest.tables.get(table)
        if entry is None or not entry.partitions:
            return
        want = {partition_key(r[0]) for r in self.con.execute(
            f"SELECT DISTINCT _date FROM {quote_ident(table)} "  # noqa: S608
            f"WHERE _run_id IN ({ids})").fetchall()}
        job_ids = {item.layout.job_id for item in batch}
        mine = [RunWindow(item.run_id, item.layout.job_id, item.staged.run.start_date,
                          item.staged.run.end_date, run_order(item.staged.run))
                for item in batch]
        where = entry.run_partitions()
        for drop in window_drops(mine, self.ledger.loaded_windows(job_ids)):
            for key in where.get(drop.run_id, ()):
                day = partition_date(key)
                if drop.date_from is None or (day is not None and drop.date_to is not None
                                              and drop.date_from <= day < drop.date_to):
                    want.add(key)
        self.read_partitions(table, (want & entry.partitions.keys()) - self._have(table))
        self.read_partitions(table, self._key_partitions(table, entry, batch, ids))

    def _key_partitions(self, table: str, entry: TableEntry, batch: list[_Pending], ids: str
                        ) -> set[str]:
        """Partitions not read in yet that hold a row with one of the batch's keys."""
        rest = set(entry.partitions) - self._have(table)
        groups = self._key_groups(table, batch)
        batch_groups = {cols: jobs for cols, jobs in groups.items()
                        if any(item.layout.key_columns == cols for item in batch)}
        if not rest or not batch_groups:
            return set()
        lake_columns = {name for name, _ in entry.columns}
        job_of = {r.run_id: r.job_id for r in self.ledger.runs("loaded")}
        found: set[str] = set()
        keyed = self._keyed_rows(table, batch_groups, f"t._run_id IN ({ids})")
        self.con.execute("CREATE OR REPLACE TEMP TABLE _csload_lake_keys AS "  # noqa: S608
                         f"SELECT DISTINCT k0, k1 FROM ({keyed})")
        try:
            for cols, job_list in groups.items():
                if not all(c in lake_columns for c in cols):
                    continue   # a key new to the table: no lake row has it
                jobs = set(job_list)
                candidates = {key for key in rest
                              if any(job_of.get(r) in jobs for r in entry.partitions[key].runs)}
                if not candidates:
                    continue
                k0 = f"CAST(s.{quote_ident(cols[0])} AS UBIGINT)"
                k1 = f"CAST(s.{quote_ident(cols[1])} AS UBIGINT)" if len(cols) > 1 \
                    else "0::UBIGINT"
                not_null = " AND ".join(f"s.{quote_ident(c)} IS NOT NULL" for c in cols)
                job_sql = ", ".join(str(j) for j in sorted(jobs))
                with self.source(entry.files(candidates)) as src:
                    rows = self.con.execute(
                        f"SELECT DISTINCT x.d FROM (SELECT {k0} AS k0, {k1} AS k1, "  # noqa: S608
                        f"s._date AS d FROM {src} AS s WHERE s._job_id IN ({job_sql}) "
                        f"AND {not_null}) AS x SEMI JOIN _csload_lake_keys AS b "
                        "ON x.k0 = b.k0 AND x.k1 = b.k1").fetchall()
                found |= {partition_key(r[0]) for r in rows} & candidates
        finally:
            self.con.execute("DROP TABLE IF EXISTS temp._csload_lake_keys")
        return found


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    if sys.platform.startswith("linux"):
        fn = getattr(libc, "renameat2", None)
        if fn is None:
            return False
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                       ctypes.c_uint]
        at_fdcwd, rename_exchange = -100, 2
        rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    elif sys.platform == "darwin":
        fn = getattr(libc, "renamex_np", None)
        if fn is None:
            return False
        fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
        rc = fn(os.fsencode(a), os.fsencode(b), 2)   # RENAME_SWAP
    else:
        return False
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


@contextlib.contextmanager
def _duckdb_errors(root: str) -> Iterator[None]:
    try:
        yield
    except duckdb.Error as exc:
        raise StoreError(f"cannot write the new version of lake {root}: {exc}") from exc


def _sync_tree(path: Path) -> None:
    for folder, _dirs, files in os.walk(path):
        for name in files:
            fsync_file(Path(folder) / name)
        fsync_dir(Path(folder))


class ParquetStore:
    """The single writer of one Parquet lake (a local folder or an s3:// prefix)."""

    def __init__(self, lake: LakeFS, lock: lake_lock.LakeLock, scratch: Path,
                 manifest: Manifest, work: _Work) -> None:
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
                   limits: Limits | None = None) -> _Work:
        # In memory: the work rows never need to be durable (the lake is), and DuckDB spills
        # in-memory tables to temp_directory when they outgrow memory_limit.
        work = _Work.open(Path(":memory:"), limits=limits)
        assert isinstance(work, _Work)   # DuckDBStore.open builds `cls`
        try:
            work.con.execute(f"SET temp_directory = {sql_str(str(scratch / 'spill'))}")
            work.lake = lake
            work.manifest = manifest
            if manifest.ledger:
                import_ledger(work.con, lake, manifest.ledger)
                row = work.con.execute(
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
                _create_table(work.con, table, entry.columns)
        except BaseException:
            work.close()
            raise
        return work

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

    def _ready(self) -> _Work:
        """The work database, rebuilt from the lake after a failed batch."""
        if self._lock is None:
            raise StoreError(f"lake {self.root} is closed")
        if self._stale:
            with contextlib.suppress(duckdb.Error):
                self._work.close()
            self._manifest = recover(self.lake)
            self._work = self._open_work(self.lake, self._manifest, self._scratch,
                                         self._limits)
            self._stale = False
        return self._work

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

    def _record(self, change: Callable[[_Work], None], run_id: int) -> None:
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

    def apply(self, runs: Sequence[StagedRun]) -> list[RunOutcome]:
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
            for table in _data_tables(work.con):
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
                    _sync_tree(out)
                _sync_tree(ledger_out)
        else:
            uploads += [f"{LEDGER_DIR}/{txid}/{p.name}" for p in sorted(ledger_out.iterdir())]
            lake.write_bytes(marker_name(txid), TxnMarker(txid, version, uploads,
                                                          obsolete).to_bytes())
            lake.upload_files([(out / rel, rel) for rel in uploads])
            shutil.rmtree(out, ignore_errors=True)
        self._commit_version(manifest)
        self._manifest = manifest
        work.manifest = manifest
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
        columns = _ordered_columns(con, table)
        loaded = set(work.loaded.get(table, set()))
        if previous is not None and previous.columns != columns:
            # A new column: rewrite every partition, so that all files keep one schema.
            rest = set(previous.partitions) - loaded
            if rest:
                work.read_partitions(table, rest)
                work.commit_reads()
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
        for table in _data_tables(con):
            con.execute(f"DROP TABLE {quote_ident(table)}")
        for table, entry in manifest.tables.items():
            _create_table(con, table, entry.columns)
        self._work.loaded = {}

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


# --- local swaps and recovery ---------------------------------------------------------------

def swap_partition(lake: LakeFS, manifest: Manifest, table: str, key: str) -> None:
    """Make the live folder of one partition hold exactly the manifest's files."""
    entry = manifest.tables.get(table)
    part = entry.partitions.get(key) if entry else None
    wanted = {f.rsplit("/", 1)[1] for f, _ in part.files} if part else set()
    live = lake.local_path(partition_dir(table, key))
    staged = lake.local_path(f"{STAGING_DIR}/{manifest.txid}/{partition_dir(table, key)}")
    old = lake.local_path(f"{STAGING_DIR}/{manifest.txid}/_old/{partition_dir(table, key)}")
    with lake.errors(f"swap in partition {partition_dir(table, key)}"):
        present = set(os.listdir(live)) if live.is_dir() else None
        if present is not None and present == wanted and wanted:
            return
        if not wanted:
            if present is not None:
                old.parent.mkdir(parents=True, exist_ok=True)
                os.rename(live, old)
                fsync_dir(live.parent)
            return
        if not staged.is_dir():
            raise StoreError(
                f"lake {lake.root} is damaged: partition {partition_dir(table, key)} of "
                f"version {manifest.version} is neither in place nor staged")
        if present is None:
            live.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staged, live)
        elif not _exchange(staged, live):
            old.parent.mkdir(parents=True, exist_ok=True)
            os.rename(live, old)
            os.rename(staged, live)
        fsync_dir(live.parent)


def finish_swaps(lake: LakeFS, manifest: Manifest,
                 swap: Callable[[LakeFS, Manifest, str, str], None] = swap_partition) -> None:
    for table, key in manifest.touched:
        swap(lake, manifest, table, key)


def recover(lake: LakeFS) -> Manifest:
    """Finish or undo what a crashed sync left; the lake's current version (lock held)."""
    current = read_current(lake)
    if lake.local:
        staging = lake.local_path(STAGING_DIR)
        if current.txid and (staging / current.txid).is_dir():
            log.warning("lake %s: finishing version %s, which a sync published but did not "
                        "swap in whole", lake.root, current.version)
            finish_swaps(lake, current)
        if staging.is_dir():
            with lake.errors("clean the staging folder"):
                for child in staging.iterdir():
                    if child.is_symlink():   # removed, never followed
                        child.unlink()
                    else:
                        shutil.rmtree(child, ignore_errors=True)
    else:
        for entry in lake.list_files(TXN_DIR):
            name = MARKER_NAME.match(entry.path.rsplit("/", 1)[-1])
            if name is None:
                log.warning("lake %s: ignoring %r, which is not a transaction marker",
                            lake.root, entry.path[:200])
                continue
            data = lake.read_bytes(entry.path)
            if data is not None:
                marker = TxnMarker.from_bytes(data, f"{lake.root}/{entry.path}")
                if marker.txid != name.group(1):
                    raise StoreError(f"{lake.root}/{entry.path} is damaged or was tampered "
                                     "with: it names another transaction")
                if marker.txid == current.txid:
                    log.warning("lake %s: deleting the files version %s superseded",
                                lake.root, current.version)
                    lake.delete_files(marker.obsolete)
                else:
                    log.warning("lake %s: deleting the files of a sync that stopped before "
                                "publishing", lake.root)
                    lake.delete_files(marker.uploads)
            lake.delete_files([entry.path])
    cleanup(lake, current)
    return current


def cleanup(lake: LakeFS, current: Manifest) -> None:
    """Remove ledger snapshots and manifests that are no longer current."""
    for name in lake.list_dirs(LEDGER_DIR):
        if TXID_SHAPE.match(name) and f"{LEDGER_DIR}/{name}" != current.ledger:
            lake.delete_dir(f"{LEDGER_DIR}/{name}")
    old = [v for v in manifest_versions(lake) if v <= current.version - KEEP_MANIFESTS]
    lake.delete_files([manifest_name(v) for v in old])
    if lake.local:   # temporary files of a write that was killed
        lake.delete_files([e.path for e in lake.list_files(MANIFEST_DIR)
                           if e.path.rsplit("/", 1)[-1].startswith(".")])
