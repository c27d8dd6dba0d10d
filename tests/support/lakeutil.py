"""Helpers of the lake tests: a lake, local or on the moto S3 server
(tests/support/s3server.py), read back two ways.

`Lake.connect()` reads through the ledger (csload.lake.connect_lake); `Lake.listed(table)`
reads the table as any Delta reader would, through its log's latest version (deltalake's
reader, as DuckDB's delta extension, Polars or Spark do): it must never count a row twice.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.fs as pafs
from deltalake import DeltaTable

from csload.lake import ParquetStore, connect_lake
from csload.lake.delta import storage_options
from csload.lake.fs import LakeFS
from csload.lake.reader import lake_status_input
from csload.lake.snapshot import LakeSnapshot, read_snapshot
from csload.load.status import StoreStatus, ledger_status
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

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of `table` through csload, but `_loaded_at`."""
        con = self.connect()
        try:
            cursor = con.execute(f'SELECT * EXCLUDE (_loaded_at) FROM "{table}"')  # noqa: S608
            names = [d[0] for d in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            con.close()

    def status(self) -> StoreStatus:
        con, label, tables = lake_status_input(self.root, storage_options=self.options, env={})
        try:
            return ledger_status(con, label, tables)
        finally:
            con.close()

    def snapshot(self) -> LakeSnapshot:
        return read_snapshot(self.fs())

    def delta(self, table: str) -> DeltaTable:
        """The table's latest version, as a Delta reader opens it."""
        lake = self.fs()
        return DeltaTable(lake.uri(table), storage_options=storage_options(lake))

    def fs(self) -> LakeFS:
        return LakeFS.open(self.root, self.options, env={})

    # --- what is stored, and what a folder-listing reader sees ------------------------------

    def files(self, under: str = "") -> list[str]:
        """Every file under the root (or `under`), relative to the root."""
        return [e.path for e in self.fs().list_files(under, recursive=True)]

    def data_files(self) -> list[str]:
        """Every file stored outside `_csload/`: current, replaced (kept for the retention
        window) and logs."""
        return [f for f in self.files() if not f.startswith("_csload/")]

    def current_files(self) -> list[str]:
        """The data files of the versions the ledger records (relative to the root)."""
        return sorted(f for t in self.snapshot().tables.values() for f in t.files_of())

    def listed(self, table: str, sql: str = "SELECT * FROM t") -> list[tuple[Any, ...]]:
        """Run `sql` over table `t`: the table's latest version read through its Delta log
        (deltalake's pyarrow dataset, registered in DuckDB)."""
        con = duckdb.connect()
        try:
            con.register("t", self.delta(table).to_pyarrow_dataset())
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def arrow_fs(self) -> pafs.FileSystem:
        return self.fs().fs
