"""Writing a table's new files for a batch: DuckDB writes them, csload.lake.delta commits them.

For each table a batch changed, the work database (csload.lake.work) holds every row of every
partition the batch can change. Each of those days is written with one
`COPY (SELECT ... WHERE _date = <day>) TO '<table>/date=<day>/' (FORMAT parquet, COMPRESSION
zstd, ROW_GROUP_SIZE 61440, PER_THREAD_OUTPUT, FILENAME_PATTERN 'part-<txid>-{i}', RETURN_STATS)`:
DuckDB's own Parquet writer, into new files (one per thread) whose names are unique to the
batch. Local lake: straight into the table's folders (no reader of the log sees them before
the commit; a crash leaves them to `vacuum`). S3: into the scratch folder, then uploaded to
the same names. Columns go in their lake types (csload.lake.types: UBIGINT as DECIMAL(20,0),
TIMESTAMP as UTC timestamps).

A COPY per day, not one `COPY ... (PARTITION_BY (date))`: under the work database's 256 MB
memory cap the partitioned writer keeps a buffer per open day and spills; measured on
2026-12-06 (benchmarks/results/ab-2026-12-06-lake.md, 1.2 M rows, 3 rounds alternating, best
of each) the whole `csload sync --parquet` took 20.33 s with it and 12.68 s with a COPY per day.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from csload.errors import StoreError
from csload.lake.delta import WrittenFile
from csload.lake.fs import fsync_file
from csload.lake.layout import PARTITION_COLUMN, partition_key
from csload.lake.types import select_to_lake
from csload.load.sqltext import quote_ident, sql_str

if TYPE_CHECKING:
    from csload.lake.fs import LakeFS

# Row groups of 61,440 rows, half DuckDB's default: a day's COPY holds the row groups it is
# filling in memory, beside the work database's blocks under the same 256 MB cap, and with
# larger ones DuckDB evicted and re-read those blocks. Measured 2026-12-06
# (benchmarks/results/ab-2026-12-06-lake.md, best of each): the whole sync at 2.4 M rows
# 19.60 -> 14.76 s and peak RSS 521 -> 481 MB; at 1.2 M rows 9.47 -> 8.16 s. 32,768 rows was
# no faster. Every day is rewritten whole, so a file never holds many small row groups.
# (1,000,000-row groups made the partitioned write of that time run out of memory.)
ROW_GROUP_SIZE = 61_440
FILE_OPTIONS = f"FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_SIZE}"
# The same files as a partitioned COPY writes them (benchmarks/bench_parquet.py's baseline).
PARQUET_OPTIONS = f"{FILE_OPTIONS}, PARTITION_BY ({PARTITION_COLUMN})"


def _lake_select(table: str, columns: Sequence[tuple[str, str]]) -> str:
    return (f"SELECT {select_to_lake(columns)}, _date AS {PARTITION_COLUMN} "  # noqa: S608
            f"FROM {quote_ident(table)}")


def _utc(kind: pa.DataType) -> pa.DataType:
    """Delta names the UTC zone "UTC" only (DuckDB's Arrow says "Etc/UTC")."""
    if pa.types.is_timestamp(kind):
        return pa.timestamp("us", tz="UTC")
    if pa.types.is_list(kind):
        return pa.list_(_utc(kind.value_type))
    return kind


def lake_schema(con: duckdb.DuckDBPyConnection, table: str,
                columns: Sequence[tuple[str, str]]) -> pa.Schema:
    """The Arrow schema of the table's files, with the partition column last."""
    schema = con.sql(f"{_lake_select(table, columns)} LIMIT 0").to_arrow_table().schema
    return pa.schema([pa.field(f.name, _utc(f.type)) for f in schema])


def write_files(con: duckdb.DuckDBPyConnection, lake: LakeFS, table: str,
                columns: Sequence[tuple[str, str]], txid: str, scratch: Path
                ) -> list[WrittenFile]:
    """Write the work table's rows as the table's new files (not committed): a COPY per day,
    a file per DuckDB thread."""
    out = lake.local_path(table) if lake.local else scratch / txid / table
    name = quote_ident(table)
    select = select_to_lake(columns)
    files = []
    days = con.execute(f"SELECT DISTINCT _date FROM {name} ORDER BY ALL").fetchall()  # noqa: S608
    for (day,) in days:
        key = partition_key(day)
        folder = out / f"{PARTITION_COLUMN}={key}"
        folder.mkdir(parents=True, exist_ok=True)
        # A DATE from the work table, written back as ISO text: nothing read from a file.
        where = "_date IS NULL" if day is None else f"_date = DATE {sql_str(day.isoformat())}"
        try:
            # A file per DuckDB thread: the COPY of one file is mostly single-threaded.
            # Measured 2026-12-06 (ab-2026-12-06-lake.md): the whole sync at 1.2 M rows
            # 7.20 -> 6.58 s (-8.6%, best of 3).
            rows = con.execute(
                f"COPY (SELECT {select} FROM {name} WHERE {where}) "  # noqa: S608
                f"TO {sql_str(str(folder))} ({FILE_OPTIONS}, PER_THREAD_OUTPUT true, "
                f"OVERWRITE_OR_IGNORE, FILENAME_PATTERN {sql_str('part-' + txid + '-{i}')}, "
                "RETURN_STATS)").fetchall()
        except duckdb.Error as exc:
            raise StoreError(f"cannot write the new files of table {table} in lake "
                             f"{lake.root}: {exc}") from exc
        for row in rows:   # RETURN_STATS: (file, rows, bytes, ...)
            rel = f"{PARTITION_COLUMN}={key}/{Path(str(row[0])).name}"
            files.append(WrittenFile(rel, int(row[2]), key, int(row[1])))
    if not lake.local:
        lake.upload_files([(out / f.path, f"{table}/{f.path}") for f in files])
        shutil.rmtree(scratch / txid, ignore_errors=True)
    else:
        for f in files:
            fsync_file(out / f.path)   # on disk before the log names it
    return files
