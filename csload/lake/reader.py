"""Reading a lake through its manifest: `connect_lake`, `lake_files`, `read_lake_status`.

Readers that list folders (`read_parquet('ROOT/views/*/*.parquet')`, Spark, Trino, Athena)
see exactly the current files of a *local* lake at every moment (csload swaps whole partition
folders). On *object storage* a sync uploads a day's new files before it deletes the old ones,
so for a short window a listing reader sees both. `connect_lake` avoids that everywhere: it
reads the manifest and exposes each table as a DuckDB view over that version's files only.
DuckDB cannot reach `s3://` without its `httpfs` extension (not available offline), so for S3
each view is a `pyarrow.dataset` over the files, registered in DuckDB (DuckDB pushes column
projection and filters into it); for a local lake the views use DuckDB's own `read_parquet`.

The views have the DuckDB target's columns (the rows' columns and `_job_id`, `_run_id`,
`_date`, `_loaded_at`), without the Hive `date` column a folder-listing reader adds, so the
same SQL runs on both targets; the ledger is there too (`_csload.runs`, `_csload.jobs`, ...).
The connection is a snapshot: once a sync publishes a new version, its superseded files are
deleted, so reconnect after a sync (a query running across it may fail with a missing file).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow.dataset as pads

from csload.errors import StoreError
from csload.lake.fs import LakeFS
from csload.lake.ledger import import_ledger
from csload.lake.manifest import (
    STAGING_DIR,
    Manifest,
    column_type,
    partition_date,
    read_current,
)
from csload.load.ledger import Ledger, TableStats
from csload.load.lookups import describe_from_ledger, ensure_lookups
from csload.load.sqltext import quote_ident, sql_str
from csload.load.status import StoreStatus, ledger_status

T = TypeVar("T")


def _open(root: str | Path, storage_options: Mapping[str, str] | None,
          env: Mapping[str, str] | None) -> tuple[LakeFS, Manifest]:
    lake = LakeFS.open(root, storage_options, env)
    manifest = read_current(lake)
    if manifest.version == 0:
        raise StoreError(f"no csload lake at {lake.root}: run `csload sync --parquet "
                         f"{lake.root}` first")
    return lake, manifest


def _with_ledger(lake: LakeFS, manifest: Manifest, con: duckdb.DuckDBPyConnection
                 ) -> Manifest:
    """Load the ledger of `manifest` (or of a newer version, if a sync just replaced it)."""
    ledger = Ledger(con)
    ledger.ensure()
    for _ in range(5):
        if manifest.ledger is None:
            return manifest
        try:
            import_ledger(con, lake, manifest.ledger)
            return manifest
        except StoreError:
            newer = read_current(lake)
            if newer.version == manifest.version:
                raise
            manifest = newer
    raise StoreError(f"lake {lake.root}: its versions keep changing; try again")


def lake_done_runs(root: str | Path, *, storage_options: Mapping[str, str] | None = None,
                   env: Mapping[str, str] | None = None) -> set[int]:
    """Ids of the runs a sync would not load again (loaded or expired), read-only.

    For `--dry-run`, which must change nothing (opening a ParquetStore takes the lock and may
    finish a crashed sync's work). An empty set where there is no lake yet.
    """
    done = lake_read_ledger(root, Ledger.done_run_ids,
                            storage_options=storage_options, env=env)
    return done or set()


def lake_read_ledger(root: str | Path, read: Callable[[Ledger], T], *,
                     storage_options: Mapping[str, str] | None = None,
                     env: Mapping[str, str] | None = None) -> T | None:
    """`read` applied to the lake's current ledger, read-only; None where there is no lake."""
    lake = LakeFS.open(root, storage_options, env)
    manifest = read_current(lake)
    if manifest.version == 0:
        return None
    con = duckdb.connect()
    try:
        _with_ledger(lake, manifest, con)
        return read(Ledger(con))
    finally:
        con.close()


def _local_file(lake: LakeFS, manifest: Manifest, rel: str) -> Path:
    """Where a file of the manifest is on a local lake. A sync writes the manifest (its
    commit point) and then swaps the staged partitions in: until it has (or, after a crash,
    until the next sync finishes the swaps), a new file is still in the version's staging
    folder. File names are unique per version, so a name found in place is the right file."""
    live = lake.local_path(rel)
    if manifest.txid and not live.exists():
        staged = lake.local_path(f"{STAGING_DIR}/{manifest.txid}/{rel}")
        if staged.exists():
            return staged
    return live


def _file_uris(lake: LakeFS, manifest: Manifest, files: list[str]) -> list[str]:
    if lake.local:
        return [str(_local_file(lake, manifest, f)) for f in files]
    return [lake.uri(f) for f in files]


def lake_files(root: str | Path, *, storage_options: Mapping[str, str] | None = None,
               env: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """Per table, the current files (absolute paths, or s3:// URIs) of the lake's version.

    For engines that read a list of files (Spark: `spark.read.parquet(*files)`), so that they
    never see a superseded file on object storage.
    """
    lake, manifest = _open(root, storage_options, env)
    return {table: _file_uris(lake, manifest, entry.files())
            for table, entry in sorted(manifest.tables.items())}


def connect_lake(root: str | Path, *, storage_options: Mapping[str, str] | None = None,
                 env: Mapping[str, str] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per table of the lake's current version,
    the lookup tables (`codes.device_types`, ...) and the column comments a DuckDB target
    has (csload.load.lookups), so that the same SQL and the same documentation serve both."""
    lake, manifest = _open(root, storage_options, env)
    con = duckdb.connect()
    try:
        manifest = _with_ledger(lake, manifest, con)
        for table, entry in sorted(manifest.tables.items()):
            files = entry.files()
            name = quote_ident(table)
            if not files:
                # Types come from the manifest: only a type csload writes reaches SQL.
                cols = ", ".join(f"CAST(NULL AS {column_type(t, f'table {table}')}) AS "
                                 f"{quote_ident(n)}" for n, t in entry.columns)
                con.execute(f"CREATE VIEW {name} AS SELECT {cols} LIMIT 0")
            elif lake.local:
                paths = ", ".join(sql_str(p) for p in _file_uris(lake, manifest, files))
                con.execute(f"CREATE VIEW {name} AS SELECT * FROM "  # noqa: S608
                            f"read_parquet([{paths}], hive_partitioning = false)")
            else:
                with lake.errors("open the lake's files"):
                    dataset = pads.dataset([lake.full(f) for f in files],
                                           filesystem=lake.fs, format="parquet")
                con.register(table, dataset)
        ensure_lookups(con)
        describe_from_ledger(con)
    except BaseException:
        con.close()
        raise
    return con


def read_lake_status(root: str | Path, *, storage_options: Mapping[str, str] | None = None,
                     env: Mapping[str, str] | None = None) -> StoreStatus:
    """What `csload status --parquet ROOT` shows: the DuckDB target's status, for a lake.

    Reads the manifest and the ledger only (no data file, no lock): safe during a sync.
    """
    lake, manifest = _open(root, storage_options, env)
    con = duckdb.connect()
    try:
        manifest = _with_ledger(lake, manifest, con)
        jobs = Ledger(con).jobs()
        tables = []
        for table in sorted({t for _, t in jobs.values() if t}):
            entry = manifest.tables.get(table)
            days: list[date] = []
            if entry is not None:
                days = [d for d in (partition_date(k) for k in entry.partitions)
                        if d is not None]
            tables.append(TableStats(table, entry.rows if entry else 0,
                                     min(days) if days else None, max(days) if days else None))
        # Everything else as for a DuckDB target, from the same ledger tables: gaps, problems,
        # and the runs filled since (a lake has no backfill ledger: not needed).
        return ledger_status(con, lake.root, tables)
    finally:
        con.close()
