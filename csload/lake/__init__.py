"""The lake target: Delta Lake tables (one per csload table, partitioned by day) written
exactly once, on a local disk or in S3-compatible storage; `ParquetStore` (csload.lake.store)
writes one, `connect_lake` reads one (csload.lake.reader). docs/lake.md is the user guide.

    csload/lake/layout.py    where things are in a lake, and the shapes of csload's names
    csload/lake/fs.py        local folder or s3:// through pyarrow.fs; storage errors explained
    csload/lake/delta.py     the Delta operations csload needs (commit files, restore, vacuum)
    csload/lake/types.py     csload's column types in Delta and back
    csload/lake/state.py     what the ledger records of each table (version, rows per run)
    csload/lake/ledger.py    the ledger tables, kept as a small Delta table
    csload/lake/snapshot.py  the lake as the ledger says: each table at its recorded version
    csload/lake/work.py      LakeReads: the DuckDB store's hooks that read partitions in
    csload/lake/publish.py   a batch's new files, written by DuckDB
    csload/lake/store.py     ParquetStore: apply a batch with the DuckDB store, commit it
    csload/lake/recovery.py  undoing a table commit a crashed sync did not record
    csload/lake/reader.py    connect_lake (DuckDB views over each table's files), status

The names below are imported on first use (PEP 562), as csload's own are: `csload.target`
needs `csload.lake.layout` for every target, and importing the reader and the store with the
package took deltalake and pyarrow (~0.15-0.4 s, and ~60 MB of RSS) into every DuckDB sync too.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from csload.lake.reader import connect_lake, lake_done_runs, lake_files, lake_read_ledger
    from csload.lake.store import ParquetStore

__all__ = ["ParquetStore", "connect_lake", "lake_done_runs", "lake_files", "lake_read_ledger"]

_LAZY = {"ParquetStore": "csload.lake.store", "connect_lake": "csload.lake.reader",
         "lake_done_runs": "csload.lake.reader", "lake_files": "csload.lake.reader",
         "lake_read_ledger": "csload.lake.reader"}

if not TYPE_CHECKING:   # hidden from type checkers, as in csload/__init__.py

    def __getattr__(name: str) -> Any:
        if name not in _LAZY:
            raise AttributeError(f"module 'csload.lake' has no attribute {name!r}")
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
