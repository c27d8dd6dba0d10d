"""Other engines read the lake's Delta tables and get exactly the values csload loaded.

The lake is built by csload (`ParquetStore.apply`) from the hard values of
tests/support/hard_values.py (ids above 2^63, strings with every quoting hazard, arrays,
NULLs, timestamps): day 1 and day 2 in one batch, then a re-run of day 2 that replaces it, so
the table's log has a version before the re-run and the replaced file is still on disk.

Every reader is compared with the truth (the rows csload was given), value by value and type
by type (`assert_rows`): a Delta reader gets the lake's types (csload.lake.types): UBIGINT as
decimal(20,0) (`Decimal`), TIMESTAMP as UTC instants, the partition column `date` equal to
`_date`; `csload.connect(parquet=)` gives csload's own types back (UBIGINT, naive UTC
TIMESTAMP). Readers: deltalake (`to_pyarrow_table`; pandas is not installed, so no
`to_pandas`), Polars (`read_delta`, `scan_delta`), DuckDB over deltalake's Arrow dataset,
pyarrow over the log's current files, and Spark (pyspark without delta-spark: plain Parquet
reads of the files of a vacuumed table, and of its folder).

A folder-listing reader also sees the files a re-run replaced, until a vacuum deletes them:
`test_rerun_keeps_the_replaced_files_for_time_travel` and `test_vacuum_removes_them` show both
sides. Reading a version whose files were vacuumed is not attempted: deltalake 1.6.6 raises
FileNotFoundError and can then abort the interpreter at exit.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pytest
from deltalake import DeltaTable

import csload
from csload.api.models import normalize_identifier
from csload.lake import lake_files, lake_read_ledger
from csload.lake.delta import storage_options
from tests.support.hard_values import FIELDS, view_rows
from tests.support.lakeutil import Lake
from tests.support.partgen import Writer, job, run

D1 = date(2026, 11, 20)
D2 = D1 + timedelta(days=1)
JOB_ID = 1
JOB = job(JOB_ID, fmt="JSONL", fields=FIELDS)
RUN_D1, RUN_D2, RERUN_D2 = 10, 11, 12
# A non-UTC zone without daylight saving: a timestamp read through the session zone moves.
SESSION_ZONE = "Asia/Kolkata"
HIVE_DATE = pads.partitioning(pa.schema([("date", pa.date32())]), flavor="hive")


# --- the truth ----------------------------------------------------------------------------

def next_day(rows: Sequence[dict[str, Any]], id_flip: int) -> list[dict[str, Any]]:
    """Hard rows moved to D2, with other ids (the flip keeps them above 2^63)."""
    out = []
    for row in rows:
        moved = dict(row)
        moved["session_id"] = row["session_id"] ^ id_flip
        moved["view_time"] = row["view_time"] + timedelta(days=1)
        out.append(moved)
    return out


DAY_ONE = view_rows()
DAY_TWO_FIRST = next_day(view_rows()[:4], 0xFF)
DAY_TWO_RERUN = next_day(view_rows()[4:], 0xFF00)
CURRENT = [(RUN_D1, DAY_ONE), (RERUN_D2, DAY_TWO_RERUN)]   # after the re-run
BEFORE_RERUN = [(RUN_D1, DAY_ONE), (RUN_D2, DAY_TWO_FIRST)]


def utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def truth(runs: Sequence[tuple[int, Sequence[dict[str, Any]]]], loaded_at: dict[int, datetime],
          *, lake: bool) -> list[dict[str, Any]]:
    """The rows csload was given, as a Delta reader must see them (`lake`: Decimal ids, UTC
    instants, the partition column `date`) or as csload.connect must (ints, naive UTC)."""
    out = []
    for run_id, rows in runs:
        for raw in rows:
            row = {normalize_identifier(f): raw[f] for f in FIELDS}
            day = raw["view_time"].date()   # _date is the view's own day
            row |= {"_job_id": JOB_ID, "_run_id": run_id, "_date": day,
                    "_loaded_at": loaded_at[run_id]}
            if lake:
                for column in ("session_id", "_job_id", "_run_id"):
                    row[column] = Decimal(row[column])
                for column in ("view_time", "_loaded_at"):
                    row[column] = utc(row[column])
                row["errors_error_time"] = [utc(t) for t in row["errors_error_time"]]
                row["date"] = day
            out.append(row)
    return out


def same(got: Any, want: Any) -> bool:
    """Equal and of the same type: a Decimal is not an int, a naive datetime not an instant
    (aware datetimes compare as instants, whatever their zone)."""
    if want is None:
        return got is None
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(
            same(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, datetime):
        return isinstance(got, datetime) and (got.tzinfo is None) == (want.tzinfo is None) \
            and got == want
    return type(got) is type(want) and got == want


def row_key(row: dict[str, Any]) -> tuple[int, int, int]:
    return int(row["session_id"]), int(row["view_number"]), int(row["_run_id"])


def assert_rows(got: list[dict[str, Any]], want: list[dict[str, Any]], reader: str) -> None:
    assert len(got) == len(want), f"{reader}: {len(got)} rows, expected {len(want)}"
    wrong = []
    for g, w in zip(sorted(got, key=row_key), sorted(want, key=row_key), strict=True):
        assert set(g) == set(w), f"{reader}: columns {sorted(g)}, expected {sorted(w)}"
        wrong += [(row_key(w), c, g[c], w[c]) for c in w if not same(g[c], w[c])]
    assert not wrong, f"{reader}: (row, column, got, expected): {wrong[:5]}"


# --- the lake -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Built:
    lake: Lake
    before_rerun: int                  # the version of `views` before the re-run of D2
    loaded_at: dict[int, datetime]     # run id -> its rows' _loaded_at (naive UTC)
    vacuumed: tuple[str, ...] = ()     # files the vacuum removed (relative to `views`)

    @property
    def views(self) -> str:
        return self.lake.fs().uri("views")

    def current(self, *, lake: bool = True) -> list[dict[str, Any]]:
        return truth(CURRENT, self.loaded_at, lake=lake)


def build(lake: Lake, writer: Writer) -> Built:
    with lake.open() as store:
        store.apply([writer.staged(JOB, run(RUN_D1, JOB_ID, D1), [DAY_ONE]),
                     writer.staged(JOB, run(RUN_D2, JOB_ID, D2), [DAY_TWO_FIRST])])
        before = store.snapshot.state.tables["views"].version
        [rerun] = store.apply([writer.staged(JOB, run(RERUN_D2, JOB_ID, D2, finished_hours=30),
                                             [DAY_TWO_RERUN])])
        assert rerun.removed == len(DAY_TWO_FIRST)   # the re-run replaced the whole day
    # _loaded_at is when the run's load started, which the ledger records.
    started = lake_read_ledger(lake.root, lambda ledger: {
        r.run_id: r.load_started_at for r in ledger.runs()}, storage_options=lake.options,
        env={})
    assert started is not None
    loaded_at = {run_id: at.astimezone(UTC).replace(tzinfo=None)
                 for run_id, at in started.items() if at is not None}
    return Built(lake, before, loaded_at)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The lake after the re-run, never vacuumed (tests only read it)."""
    base = tmp_path_factory.mktemp("interop")
    (base / "parts").mkdir()
    return build(Lake.local(base / "lake"), Writer(base / "parts"))


@pytest.fixture(scope="module")
def vacuumed(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """A copy of `built` whose `views` was vacuumed with a retention of 0, as a Delta user
    would before pointing a plain Parquet reader at it."""
    root = tmp_path_factory.mktemp("vacuumed") / "lake"
    shutil.copytree(built.lake.root, root)   # the log's paths are relative: the copy is a lake
    copy = dataclasses.replace(built, lake=Lake.local(root))
    removed = DeltaTable(copy.views).vacuum(retention_hours=0, enforce_retention_duration=False,
                                            dry_run=False)
    return dataclasses.replace(copy, vacuumed=tuple(sorted(removed)))


def relative(files: Sequence[str], table_dir: str) -> set[str]:
    return {os.path.relpath(f, table_dir) for f in files}


def replaced_files(built: Built) -> set[str]:
    """Files of the version before the re-run that the current version no longer has."""
    old = DeltaTable(built.views, version=built.before_rerun).file_uris()
    return relative(old, built.views) - relative(DeltaTable(built.views).file_uris(), built.views)


def folder_rows(table_dir: str) -> list[dict[str, Any]]:
    """What a reader listing the table's folder finds (pyarrow skips `_delta_log`)."""
    dataset = pads.dataset(table_dir, format="parquet", partitioning=HIVE_DATE)
    rows: list[dict[str, Any]] = dataset.to_table().to_pylist()
    return rows


def duckdb_dicts(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


# --- Delta readers of the latest version --------------------------------------------------

def test_deltalake_reader(built: Built) -> None:
    table = DeltaTable(built.views).to_pyarrow_table()
    schema = table.schema
    assert schema.field("session_id").type == pa.decimal128(20, 0)
    assert schema.field("_run_id").type == pa.decimal128(20, 0)
    assert schema.field("view_time").type == pa.timestamp("us", tz="UTC")
    assert schema.field("errors_error_time").type == pa.list_(pa.timestamp("us", tz="UTC"))
    assert schema.field("date").type == pa.date32()
    assert_rows(table.to_pylist(), built.current(), "deltalake to_pyarrow_table")


def test_polars_read_delta_and_scan_delta(built: Built) -> None:
    frame = pl.read_delta(built.views)
    assert frame.schema["session_id"] == pl.Decimal(20, 0)
    assert frame.schema["view_time"] == pl.Datetime("us", "UTC")
    assert frame.schema["errors_error_time"] == pl.List(pl.Datetime("us", "UTC"))
    assert frame.schema["date"] == pl.Date
    assert_rows(frame.to_dicts(), built.current(), "polars read_delta")

    day_two = pl.scan_delta(built.views).filter(pl.col("date") == D2).collect()
    assert_rows(day_two.to_dicts(), [r for r in built.current() if r["date"] == D2],
                "polars scan_delta filtered on date")


def test_a_lake_whose_path_holds_a_space(built: Built, tmp_path: Path) -> None:
    """docs/lake.md's advice for Polars, whose own Delta reader fails on such a path
    (pola-rs/polars#20944); csload.connect and deltalake read it as any other."""
    root = tmp_path / "my lake"
    shutil.copytree(built.lake.root, root)   # the log's paths are relative: the copy is a lake
    copy = dataclasses.replace(built, lake=Lake.local(root))
    frame = pl.read_delta(copy.views, use_pyarrow=True)
    assert_rows(frame.to_dicts(), built.current(), "polars read_delta through pyarrow")
    assert DeltaTable(copy.views).to_pyarrow_table().num_rows == len(built.current())
    con = csload.connect(parquet=root)
    try:
        assert con.sql("SELECT count(*) FROM views").fetchall() == [(len(built.current()),)]
    finally:
        con.close()


def test_duckdb_over_the_arrow_dataset(built: Built) -> None:
    con = duckdb.connect()
    try:
        con.register("t", DeltaTable(built.views).to_pyarrow_dataset())
        # Instants must not depend on the session's zone: compare them in another one.
        con.execute(f"SET TimeZone = '{SESSION_ZONE}'")
        types = {r[0]: r[1] for r in con.execute("DESCRIBE t").fetchall()}
        assert types["session_id"] == "DECIMAL(20,0)"
        assert types["view_time"] == "TIMESTAMP WITH TIME ZONE"
        assert types["errors_error_time"] == "TIMESTAMP WITH TIME ZONE[]"
        assert types["date"] == "DATE"
        assert_rows(duckdb_dicts(con.execute("SELECT * FROM t")), built.current(),
                    "DuckDB over to_pyarrow_dataset")
        # the largest id is found by value, as a number, not a rounded double
        row = con.execute("SELECT count(*) FROM t WHERE session_id = 18446744073709551615"
                          ).fetchone()
        assert row == (1,)
    finally:
        con.close()


def test_pyarrow_dataset_of_the_current_files(built: Built) -> None:
    files = DeltaTable(built.views).file_uris()
    # csload's list for plain Parquet readers is the log's
    assert sorted(lake_files(built.lake.root)["views"]) == sorted(files)
    assert not relative(files, built.views) & replaced_files(built)   # only the current ones
    dataset = pads.dataset(files, format="parquet", partitioning=HIVE_DATE,
                           partition_base_dir=built.views)
    assert dataset.schema.field("session_id").type == pa.decimal128(20, 0)
    assert_rows(dataset.to_table().to_pylist(), built.current(), "pyarrow over file_uris")


def test_csload_connect_gives_csload_types(built: Built) -> None:
    con = csload.connect(parquet=built.lake.root)
    try:
        # timezone('UTC', x) gives the naive UTC value whatever the zone; ::TIMESTAMP would not
        con.execute(f"SET TimeZone = '{SESSION_ZONE}'")
        types = {r[0]: r[1] for r in con.execute("DESCRIBE views").fetchall()}
        assert types["session_id"] == "UBIGINT"
        assert types["_job_id"] == types["_run_id"] == "UBIGINT"
        assert types["view_time"] == types["_loaded_at"] == "TIMESTAMP"
        assert types["errors_error_time"] == "TIMESTAMP[]"
        assert types["_date"] == "DATE"
        assert "date" not in types   # the partition column is `_date` for csload's SQL
        assert_rows(duckdb_dicts(con.execute("SELECT * FROM views")),
                    built.current(lake=False), "csload.connect")
    finally:
        con.close()


# --- replaced files: time travel until a vacuum -------------------------------------------

def test_rerun_keeps_the_replaced_files_for_time_travel(built: Built) -> None:
    replaced = replaced_files(built)
    assert replaced and all(f.startswith(f"date={D2}/") for f in replaced)
    assert all((Path(built.views) / f).is_file() for f in replaced)
    old = DeltaTable(built.views, version=built.before_rerun).to_pyarrow_table()
    assert_rows(old.to_pylist(), truth(BEFORE_RERUN, built.loaded_at, lake=True),
                f"deltalake at version {built.before_rerun}")
    # A folder listing sees both versions of day 2 until the vacuum.
    old_day_two = [r for r in truth(BEFORE_RERUN, built.loaded_at, lake=True)
                   if r["date"] == D2]
    assert_rows(folder_rows(built.views), built.current() + old_day_two,
                "folder read before the vacuum")


def test_vacuum_removes_them(built: Built, vacuumed: Built) -> None:
    assert set(vacuumed.vacuumed) == replaced_files(built)
    assert not any((Path(vacuumed.views) / f).exists() for f in vacuumed.vacuumed)
    log_read = DeltaTable(vacuumed.views).to_pyarrow_table().to_pylist()
    assert_rows(log_read, vacuumed.current(), "deltalake after the vacuum")
    assert_rows(folder_rows(vacuumed.views), log_read, "folder read after the vacuum")
    # the version the ledger records keeps its files: csload still reads the lake
    con = csload.connect(parquet=vacuumed.lake.root)
    try:
        assert_rows(duckdb_dicts(con.execute("SELECT * FROM views")),
                    vacuumed.current(lake=False), "csload.connect after the vacuum")
    finally:
        con.close()


# --- S3 ----------------------------------------------------------------------------------

def test_s3_lake_through_deltalake_and_csload(s3_lake: Lake, writer: Writer) -> None:
    lake = build(s3_lake, writer)
    table = DeltaTable(lake.views, storage_options=storage_options(s3_lake.fs()))
    assert_rows(table.to_pyarrow_table().to_pylist(), lake.current(), "deltalake on S3")
    con = s3_lake.connect()
    try:
        assert_rows(duckdb_dicts(con.execute("SELECT * FROM views")), lake.current(lake=False),
                    "csload.connect on S3")
        listed = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
        assert "views" in listed
        assert not [n for n in listed if n.startswith("_csload_files")], listed
    finally:
        con.close()


# --- Spark (without delta-spark: plain Parquet) ---------------------------------------------

def spark_instants(value: Any) -> Any:
    """PySpark turns a `timestamp` into a naive datetime in the Python process's local zone
    (`datetime.fromtimestamp`); `astimezone` reads it back as that zone: the instant."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, list):
        return [spark_instants(v) for v in value]
    return value


SPARK_TYPES = {"session_id": "decimal(20,0)", "_job_id": "decimal(20,0)",
               "_run_id": "decimal(20,0)", "view_time": "timestamp",
               "errors_error_time": "array<timestamp>", "errors_line_number": "array<bigint>",
               "_loaded_at": "timestamp", "_date": "date", "date": "date"}


def spark_rows(frame: Any) -> list[dict[str, Any]]:
    types = dict(frame.dtypes)
    assert {c: types.get(c) for c in SPARK_TYPES} == SPARK_TYPES
    return [{k: spark_instants(v) for k, v in r.asDict(recursive=True).items()}
            for r in frame.collect()]


# Spark runs wherever pyspark is installed (a missing Java is a failure, not a skip).
if importlib.util.find_spec("pyspark") is not None:

    @pytest.fixture(scope="module")
    def spark() -> Iterator[Any]:
        if shutil.which("java") is None:
            pytest.fail("pyspark is installed but Spark needs a Java runtime (java on PATH)")
        from pyspark.sql import SparkSession

        # Offline and local: one thread, no UI, the driver on the loopback interface.
        session = (SparkSession.builder.master("local[1]").appName("csload-lake")
                   .config("spark.ui.enabled", "false")
                   .config("spark.ui.showConsoleProgress", "false")
                   .config("spark.driver.host", "127.0.0.1")
                   .config("spark.driver.bindAddress", "127.0.0.1")
                   .config("spark.sql.shuffle.partitions", "1")
                   .config("spark.sql.session.timeZone", "UTC")
                   .getOrCreate())
        session.sparkContext.setLogLevel("ERROR")
        try:
            yield session
        finally:
            session.stop()

    def test_spark_reads_the_files_of_a_vacuumed_table(spark: Any, vacuumed: Built) -> None:
        files = DeltaTable(vacuumed.views).file_uris()
        frame = spark.read.option("basePath", vacuumed.views).parquet(*files)
        assert_rows(spark_rows(frame), vacuumed.current(), "Spark over file_uris")
        assert frame.filter(f"date = DATE'{D2}'").count() == len(DAY_TWO_RERUN)

    def test_spark_folder_read_after_a_vacuum(spark: Any, vacuumed: Built) -> None:
        frame = spark.read.parquet(vacuumed.views)   # Spark skips `_delta_log` too
        assert_rows(spark_rows(frame), vacuumed.current(), "Spark folder read after a vacuum")
