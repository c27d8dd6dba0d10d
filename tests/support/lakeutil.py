"""Helpers of the lake tests: a lake, local or on the moto S3 server
(tests/support/s3server.py), read back two ways.

`Lake.connect()` reads through the manifest (csload.lake.connect_lake); `Lake.listed(table)`
reads every Parquet file found by listing the table's folders, as DuckDB's
`read_parquet('ROOT/views/*/*.parquet', hive_partitioning=true)`, Spark or Athena would: it
must never count a row twice once a sync is over.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from csload.lake import ParquetStore, connect_lake, read_lake_status
from csload.lake.fs import LakeFS
from csload.load.sqltext import sql_str
from csload.load.status import StoreStatus
from tests.support.s3server import BUCKET, S3Server


@dataclass
class Lake:
    kind: str
    root: str
    options: dict[str, str] | None = None

    @classmethod
    def local(cls, path: Path) -> Lake:
        return cls("local", str(path))

    @classmethod
    def s3(cls, server: S3Server, name: str) -> Lake:
        prefix = re.sub(r"[^A-Za-z0-9_-]+", "-", name)[:60] + "-" + uuid.uuid4().hex[:8]
        return cls("s3", f"s3://{BUCKET}/{prefix}", server.options)

    # --- csload's view ---------------------------------------------------------------------

    def open(self, **options: Any) -> ParquetStore:
        return ParquetStore.open(self.root, storage_options=self.options, env={}, **options)

    def connect(self) -> duckdb.DuckDBPyConnection:
        return connect_lake(self.root, storage_options=self.options, env={})

    def status(self) -> StoreStatus:
        return read_lake_status(self.root, storage_options=self.options, env={})

    def fs(self) -> LakeFS:
        return LakeFS.open(self.root, self.options, env={})

    # --- what is stored, and what a folder-listing reader sees ------------------------------

    def files(self, under: str = "") -> list[str]:
        """Every file under the root (or `under`), relative to the root."""
        return [e.path for e in self.fs().list_files(under, recursive=True)]

    def data_files(self) -> list[str]:
        return [f for f in self.files() if not f.startswith("_csload/")]

    def listed(self, table: str, sql: str = "SELECT * FROM t") -> list[tuple[Any, ...]]:
        """Run `sql` over table `t`: every Parquet file a listing of ROOT/table/ finds."""
        con = duckdb.connect()
        try:
            if self.kind == "local":
                pattern = str(Path(self.root) / table / "*" / "*.parquet")
                con.execute("CREATE VIEW t AS SELECT * FROM read_parquet("  # noqa: S608
                            f"{sql_str(pattern)}, hive_partitioning = true)")
            else:
                lake = self.fs()
                dataset = pads.dataset(lake.full(table), filesystem=lake.fs, format="parquet",
                                       partitioning="hive")
                con.register("t", dataset)
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def arrow_fs(self) -> pafs.FileSystem:
        return self.fs().fs
