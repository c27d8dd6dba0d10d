"""Reading a lake as its ledger says: `connect_lake`, `lake_files`, `lake_status_input`.

Each table of a lake is a Delta table, so any Delta reader (DuckDB's delta extension, Polars,
Spark, Trino, Databricks) reads it directly and consistently (docs/lake.md). `connect_lake`
needs no extension: it reads the ledger (csload.lake.snapshot), then exposes each table, at the
version the ledger records (or a later one, when only other writers committed since, in a way
the next sync keeps: csload.lake.adopt.follow_others), as a DuckDB view over that version's
files, with csload's types (csload.lake.types: DECIMAL(20,0) back to UBIGINT, UTC timestamps
back to TIMESTAMP) and without the partition column `date`, so the same SQL runs on both
targets; the ledger is there too (`_csload.runs`, `_csload.jobs`, ...). DuckDB cannot reach
`s3://` without its `httpfs` extension (not available offline), so for S3 each view is a
`pyarrow.dataset` over the files, registered in DuckDB (DuckDB pushes column projection and
filters into it); for a local lake the views use DuckDB's own `read_parquet`.

The connection is a snapshot: a later sync's files are not in it (connect again), and the
files it replaced stay for the lake's retention window (7 days), so a query running across a
sync keeps working.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import TypeVar

import duckdb
import pyarrow.dataset as pads

from csload.config import file_lake_options
from csload.delta_folders import refuse_inside_table
from csload.errors import StoreError
from csload.lake.adopt import follow_others
from csload.lake.fs import LakeFS
from csload.lake.layout import partition_date
from csload.lake.ledger import import_ledger
from csload.lake.snapshot import LakeSnapshot, LakeTable, read_snapshot, refuse_older_format
from csload.lake.types import select_to_csload
from csload.lake.work import MISSING_FILES_FIX, files_errors
from csload.load.ledger import Ledger, TableStats
from csload.load.lookups import describe_from_ledger, ensure_lookups
from csload.load.sqltext import quote_ident, sql_str

T = TypeVar("T")


def _open(root: str | Path, storage_options: Mapping[str, str] | None,
          env: Mapping[str, str] | None) -> tuple[LakeFS, LakeSnapshot]:
    """The lake, and its tables as a reader sees them (csload.lake.adopt.follow_others)."""
    lake = LakeFS.open(root, storage_options, env)
    try:
        snapshot = read_snapshot(lake)
    except StoreError:
        if not lake.local:   # deltalake's error says "Generic S3 error" for a missing bucket
            lake.check_usable()
        raise
    refuse_older_format(lake, snapshot)
    if not snapshot.exists:
        # A lake's table folder taken for the lake: say which lake (and, on S3, a missing
        # bucket or refused credentials, as a sync says them).
        if lake.local:
            refuse_inside_table(f"lake {lake.root}", lake.local_path())
            if lake.local_path().is_file():   # it advised a sync into the file's path
                raise StoreError(f"{lake.root} is a file, not a lake's folder (a DuckDB "
                                 f"database? csload.connect({lake.root!r}), or --db)")
        else:
            lake.check_usable()
        raise StoreError(f"no csload lake at {lake.root}: run `csload sync --parquet "
                         f"{shlex.quote(lake.root)}` first")
    follow_others(lake, snapshot)
    return lake, snapshot


def _with_ledger(lake: LakeFS, snapshot: LakeSnapshot, con: duckdb.DuckDBPyConnection) -> None:
    Ledger(con).ensure()
    import_ledger(con, lake, snapshot.rows)


def lake_done_runs(root: str | Path, *, storage_options: Mapping[str, str] | None = None,
                   env: Mapping[str, str] | None = None) -> set[int]:
    """Ids of the runs a sync would not load again (loaded or expired), read-only: for
    `--dry-run`, which must change nothing. An empty set where there is no lake yet."""
    done = lake_read_ledger(root, Ledger.done_run_ids,
                            storage_options=storage_options, env=env)
    return done or set()


def lake_read_ledger(root: str | Path, read: Callable[[Ledger], T], *,
                     storage_options: Mapping[str, str] | None = None,
                     env: Mapping[str, str] | None = None) -> T | None:
    """`read` applied to the lake's ledger, read-only; None where there is no lake."""
    lake = LakeFS.open(root, storage_options, env)
    snapshot = read_snapshot(lake)
    refuse_older_format(lake, snapshot)
    if not snapshot.exists:
        return None
    con = duckdb.connect()
    try:
        _with_ledger(lake, snapshot, con)
        return read(Ledger(con))
    finally:
        con.close()


def _uris(lake: LakeFS, table: LakeTable) -> list[str]:
    return [lake.uri(f) for f in table.files_of()]


def lake_files(root: str | Path, *, storage_options: Mapping[str, str] | None = None,
               env: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """Per table, the files (absolute paths, or s3:// URIs) of the version `csload.connect`
    reads (the ledger's, or another writer's later one).

    For engines that read a list of Parquet files rather than a Delta log
    (`spark.read.parquet(*files)`): a folder listing also finds files a batch replaced,
    until they are vacuumed. `storage_options` default: ./csload.toml's `[lake]`, as for
    `csload.connect` (ignored, an S3 lake was looked for at AWS: found 2026-12-07).
    """
    if storage_options is None:
        storage_options = file_lake_options(str(root))
    lake, snapshot = _open(root, storage_options, env)
    return {name: _uris(lake, table) for name, table in sorted(snapshot.tables.items())}


def _view(con: duckdb.DuckDBPyConnection, lake: LakeFS, table: LakeTable) -> None:
    with files_errors(lake, table.name):
        _make_view(con, lake, table)


def _make_view(con: duckdb.DuckDBPyConnection, lake: LakeFS, table: LakeTable) -> None:
    name = quote_ident(table.name)
    files = table.files_of()
    select = select_to_csload(table.columns, "s.")
    if not files:
        # Types come from the log through a closed list (csload.lake.types).
        cols = ", ".join(f"CAST(NULL AS {t}) AS {quote_ident(n)}" for n, t in table.columns)
        con.execute(f"CREATE VIEW {name} AS SELECT {cols} LIMIT 0")
    elif lake.local:
        paths = ", ".join(sql_str(p) for p in _present_files(lake, table))
        con.execute(f"CREATE VIEW {name} AS SELECT {select} FROM "  # noqa: S608
                    f"read_parquet([{paths}], hive_partitioning = false) AS s")
    else:
        with lake.errors("open the lake's files"):
            dataset = pads.dataset([lake.full(f) for f in files], filesystem=lake.fs,
                                   format="parquet")
        # A relation over the dataset, not `con.register`: a registered name is listed among
        # the user's tables (`SHOW TABLES` showed `_csload_files_views`: found 2026-12-07).
        con.from_arrow(dataset).set_alias("s").select(select).create_view(table.name)


def _present_files(lake: LakeFS, table: LakeTable) -> list[str]:
    """The current files of a local table, every one of them on disk; a table whose files
    are gone (a `date=` folder deleted by hand) is said with the fix, instead of DuckDB's
    IOException at every query of it."""
    uris = _uris(lake, table)
    missing = [u for u in uris if not Path(u).exists()]
    if missing:
        raise StoreError(
            f"lake {lake.root}: {len(missing)} of the {len(uris)} files of table "
            f"{table.name}'s current version are missing (first: {missing[0]}): deleted by "
            f"hand? {MISSING_FILES_FIX.format(folder=lake.uri(table.name))}")
    return uris


def refuse_missing_files(lake: LakeFS, snapshot: LakeSnapshot) -> None:
    """`_present_files` for every table of a local lake (a stat per file), for `status` and
    `doctor`: they read the log, not the files, and said all was well (the table's rows,
    "ok target") while every sync into it and every query of it failed. Not for S3 (a LIST
    per table)."""
    if lake.local:
        for table in snapshot.tables.values():
            _present_files(lake, table)


def connect_lake(root: str | Path, *, storage_options: Mapping[str, str] | None = None,
                 env: Mapping[str, str] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per table of the lake, the lookup tables
    (`codes.device_types`, ...) and the column comments a DuckDB target has
    (csload.load.lookups), so that the same SQL and the same documentation serve both."""
    lake, snapshot = _open(root, storage_options, env)
    con = duckdb.connect()
    try:
        _with_ledger(lake, snapshot, con)
        for table in snapshot.tables.values():
            _view(con, lake, table)
        ensure_lookups(con)
        describe_from_ledger(con)
    except BaseException:
        con.close()
        raise
    return con


def lake_status_input(root: str | Path, *, storage_options: Mapping[str, str] | None = None,
                      env: Mapping[str, str] | None = None
                      ) -> tuple[duckdb.DuckDBPyConnection, str, list[TableStats]]:
    """What `csload status --parquet ROOT` reads: a connection holding the ledger, the lake's
    name, and each table's rows and dates (from the ledger's lake state: no data file is
    read). The caller closes the connection."""
    lake, snapshot = _open(root, storage_options, env)
    refuse_missing_files(lake, snapshot)
    con = duckdb.connect()
    try:
        _with_ledger(lake, snapshot, con)
        tables = []
        for name in Ledger(con).tables():
            # A table whose folder was deleted (the sync loads it again): 0 rows, as a
            # database's dropped table (it showed the ledger's count, as if still there).
            entry = snapshot.state.tables.get(name) if name in snapshot.tables else None
            days: list[date] = []
            if entry is not None:
                days = [d for d in (partition_date(k) for k in entry.partitions)
                        if d is not None]
            tables.append(TableStats(name, entry.rows if entry else 0,
                                     min(days) if days else None, max(days) if days else None))
    except BaseException:
        con.close()
        raise
    return con, lake.root, tables
