"""The Parquet lake target: `ParquetStore` (csload.lake.store) writes a Hive-partitioned lake,
exactly once, on a local disk or in S3-compatible storage; `connect_lake` and
`read_lake_status` read one (csload.lake.reader). docs/lake.md is the user guide.

    csload/lake/fs.py        local folder or s3:// through pyarrow.fs; storage errors explained
    csload/lake/manifest.py  the versioned manifest: the commit point and what readers follow
    csload/lake/ledger.py    the ledger tables as Parquet snapshots, one per version
    csload/lake/lock.py      one writer per lake: flock locally, a renewed lease on S3
    csload/lake/work.py      LakeReads: the DuckDB store's hooks that read partitions in
    csload/lake/store.py     ParquetStore: apply a batch with the DuckDB store, publish a version
    csload/lake/recovery.py  partition swaps, recovery after a crash, cleanup of old versions
    csload/lake/reader.py    connect_lake (DuckDB views over the current files), status
"""

from __future__ import annotations

from csload.lake.reader import (
    connect_lake,
    lake_done_runs,
    lake_files,
    lake_read_ledger,
    read_lake_status,
)
from csload.lake.store import ParquetStore

__all__ = ["ParquetStore", "connect_lake", "lake_done_runs", "lake_files", "lake_read_ledger",
           "read_lake_status"]
