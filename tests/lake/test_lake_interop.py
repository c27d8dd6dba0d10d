"""Other engines read the lake and get what DuckDB gets: Spark, pyarrow.dataset, Polars.

The lake holds the hard values of tests/load/test_load_values.py (unsigned 64-bit ids above
2^63, timestamps and timestamp lists, string lists with quotes and line breaks, floats, NULLs)
over two days, plus a day of a keyless table. Each engine lists the folders itself.

Spark (local[1], one session for the module) has no unsigned 64-bit integer: it reads Parquet
UINT_64 columns as DECIMAL(20,0), exactly, and UINT_32 as BIGINT, UINT_16 as INT, UINT_8 as
SMALLINT; csload's TIMESTAMP columns (Parquet `isAdjustedToUTC = false`) are TIMESTAMP_NTZ.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.dataset as pads
import pytest

from csload.lake import lake_files
from csload.load.columns import normalize_identifier
from tests.support.hard_values import FIELDS, view_rows
from tests.support.lakeutil import Lake
from tests.support.partgen import Writer, job, run

D1 = date(2026, 11, 20)
COLUMNS = [normalize_identifier(f) for f in FIELDS] + ["_job_id", "_run_id", "_date"]


def two_days() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = view_rows()
    later = []
    for row in rows[:4]:
        row = dict(row)
        row["session_id"] = row["session_id"] ^ 0xFF
        row["view_time"] = row["view_time"] + timedelta(days=1)
        later.append(row)
    return rows + later


def build(lake: Lake, writer: Writer) -> None:
    with lake.open() as store:
        store.apply([
            writer.staged(job(1, fmt="JSONL", fields=FIELDS), run(10, 1, D1, days=2),
                          [two_days()]),
            writer.staged(job(2, scope="sessions", fields=["session_id", "user_id"]),
                          run(20, 2, D1), [[{"session_id": 2**64 - 2, "user_id": 2**63}]]),
        ])


def normal(value: Any) -> Any:
    if isinstance(value, Decimal):
        assert value == value.to_integral_value()
        return int(value)
    if isinstance(value, list):
        return [normal(v) for v in value]
    return value


def rows_of(dicts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted((tuple(normal(d[c]) for c in COLUMNS) for d in dicts),
                  key=lambda t: (t[0], t[1]))


def duckdb_rows(lake: Lake) -> list[tuple[Any, ...]]:
    con = lake.connect()
    cursor = con.execute(f"SELECT {', '.join(COLUMNS)} FROM views")  # noqa: S608
    return rows_of([dict(zip(COLUMNS, r, strict=True)) for r in cursor.fetchall()])


@pytest.fixture(scope="module")
def local_built(tmp_path_factory: pytest.TempPathFactory) -> Lake:
    base = tmp_path_factory.mktemp("interop")
    (base / "parts").mkdir()
    lake = Lake.local(base / "lake")
    build(lake, Writer(base / "parts"))
    return lake


def test_duckdb_glob_and_manifest_agree(local_built: Lake) -> None:
    expected = duckdb_rows(local_built)
    assert len(expected) == len(two_days())
    assert max(r[0] for r in expected) > 2**63   # the hard values are there
    listed = local_built.listed("views", f"SELECT {', '.join(COLUMNS)}, date FROM t")  # noqa: S608
    assert rows_of([dict(zip(COLUMNS, r[:-1], strict=True)) for r in listed]) == expected
    assert {r[-1] for r in listed} == {D1, D1 + timedelta(days=1)}   # the Hive column


def test_pyarrow_dataset(lake: Lake, writer: Writer) -> None:
    build(lake, writer)
    fs = lake.fs()
    dataset = pads.dataset(fs.full("views"), filesystem=fs.fs, format="parquet",
                           partitioning="hive")
    table = dataset.to_table()
    assert str(table.schema.field("session_id").type) == "uint64"
    assert str(table.schema.field("errors_error_time").type) == "list<element: timestamp[us]>"
    assert rows_of(table.to_pylist()) == duckdb_rows(lake)


def test_polars(local_built: Lake) -> None:
    pl = pytest.importorskip("polars")
    frame = pl.read_parquet(str(Path(local_built.root) / "views" / "**" / "*.parquet"),
                            hive_partitioning=True)
    assert frame.schema["session_id"] == pl.UInt64
    assert frame.schema["view_time"] == pl.Datetime("us")
    assert rows_of(frame.to_dicts()) == duckdb_rows(local_built)
    assert frame["date"].dtype == pl.Date


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    if shutil.which("java") is None:
        pytest.skip("Spark needs a Java runtime (java on PATH)")
    pyspark_sql = pytest.importorskip("pyspark.sql")
    session = (pyspark_sql.SparkSession.builder.master("local[1]").appName("csload-lake")
               .config("spark.ui.enabled", "false")
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


def test_spark_reads_the_lake(spark: Any, local_built: Lake) -> None:
    frame = spark.read.parquet(str(Path(local_built.root) / "views"))
    types = dict(frame.dtypes)
    assert types["session_id"] == "decimal(20,0)"          # UBIGINT, exact
    assert types["errors_line_number"] == "array<bigint>"   # BIGINT[]
    assert types["is_first"] == "bigint"                    # BIGINT
    assert types["view_time"] == "timestamp_ntz"            # TIMESTAMP: no time zone shift
    assert types["errors_error_time"] == "array<timestamp_ntz>"
    assert types["date"] == "date"                          # the Hive partition column
    got = rows_of([r.asDict() for r in frame.collect()])
    assert got == duckdb_rows(local_built)
    assert frame.filter("date = DATE'2026-11-21'").count() == 4   # partition pruning works

    sessions = spark.read.parquet(str(Path(local_built.root) / "sessions")).collect()
    assert [(int(r.session_id), int(r.user_id)) for r in sessions] == [(2**64 - 2, 2**63)]


def test_spark_reads_the_manifests_files(spark: Any, local_built: Lake) -> None:
    files = lake_files(local_built.root)["views"]
    frame = (spark.read.option("basePath", str(Path(local_built.root) / "views"))
             .parquet(*files))
    assert frame.count() == len(two_days())
    assert {r.date for r in frame.select("date").distinct().collect()} == {
        D1, D1 + timedelta(days=1)}
    assert isinstance(frame.first().view_time, datetime)
