"""Run by test_rel_crash_parquet in a subprocess: `csload sync --parquet ROOT`, stopped at a
chosen point.

    python -m tests.support.lake_sync_child sync --parquet ROOT [csload arguments]

CSLOAD_TEST_STOP, CSLOAD_TEST_ACTION and CSLOAD_TEST_COUNTS work as in tests/support/sync_child.py,
whose seams are all here (it is imported, so its patches apply): the download seams
(`download`, `part-verified`, `staged`), the writer's (`store-apply`, `discard`), and the load
seams, which for a lake fire inside its in-memory work database (`insert`, `apply`,
`window-rule`, `ledger-run`, `before-commit` / `after-commit` of the work transaction,
`record-failed`: a failed run's ledger row, not yet published). The lake's own seams, the steps
of a publish (csload.lake.store) and of the housekeeping at close:

    read-partitions   partitions of the lake (at the ledger's versions) were read into the work
                      database (whole, or the keys of a day a re-run replaces); nothing of
                      the batch is in the lake yet
    files-written     a table's new data files are in its folder (local lake), named in no log
    table-committed   the table's Delta commit is made; the ledger does not record it yet (the
                      next open of the lake undoes it, csload.lake.recovery)
    ledger-committed  the ledger's commit is made: the batch counts (the commit point)
    vacuum            the housekeeping at close vacuumed one table (counted over the tables
                      the sync wrote, and the ledger)

Only csload's classes and module functions are patched; nothing else of csload changes.
"""

from __future__ import annotations

import sys
from typing import Any

from csload.cli import main
from csload.lake import store, work

# Importing sync_child patches its seams (download, writer, load) on csload.
from tests.support.sync_child import reached

_read_partitions = work.LakeReads.read_partitions
_read_replaced = work.LakeReads.read_replaced
_write_files = store.ParquetStore._write_files
_commit_table = store.ParquetStore._commit_table
_commit_ledger = store.ParquetStore._commit_ledger
_vacuum = store.vacuum  # type: ignore[attr-defined]


def read_partitions(self: Any, con: Any, table: str, keys: set[str]) -> None:
    _read_partitions(self, con, table, keys)
    if keys:
        reached("read-partitions")


def read_replaced(self: Any, con: Any, table: str, keys: set[str], *args: Any) -> set[str]:
    """The days a re-run replaces, read by their keys only: the same moment of a sync."""
    whole = _read_replaced(self, con, table, keys, *args)
    if keys:
        reached("read-partitions")
    return whole


def write_files(self: Any, *args: Any) -> Any:
    files = _write_files(self, *args)
    reached("files-written")
    return files


def commit_table(self: Any, *args: Any) -> Any:
    table = _commit_table(self, *args)
    reached("table-committed")
    return table


def commit_ledger(self: Any, *args: Any) -> Any:
    ledger = _commit_ledger(self, *args)
    reached("ledger-committed")
    return ledger


def vacuum(*args: Any) -> Any:
    # Only ParquetStore._housekeeping calls csload.lake.store's vacuum.
    removed = _vacuum(*args)
    reached("vacuum")
    return removed


work.LakeReads.read_partitions = read_partitions  # type: ignore[method-assign]
work.LakeReads.read_replaced = read_replaced  # type: ignore[method-assign]
store.ParquetStore._write_files = write_files  # type: ignore[method-assign,assignment]
store.ParquetStore._commit_table = commit_table  # type: ignore[method-assign,assignment]
store.ParquetStore._commit_ledger = commit_ledger  # type: ignore[method-assign,assignment]
store.vacuum = vacuum  # type: ignore[attr-defined,assignment]

if __name__ == "__main__":
    main(sys.argv[1:])
