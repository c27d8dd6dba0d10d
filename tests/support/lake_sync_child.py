"""Run by test_rel_crash_parquet in a subprocess: `csload sync --parquet ROOT`, stopped at a
chosen point.

    python -m tests.support.lake_sync_child sync --parquet ROOT [csload arguments]

CSLOAD_TEST_STOP, CSLOAD_TEST_ACTION and CSLOAD_TEST_COUNTS work as in tests/support/sync_child.py,
whose seams are all here (it is imported, so its patches apply): the download seams
(`download`, `part-verified`, `staged`), the writer's (`store-apply`, `discard`), and the load
seams, which for a lake fire inside its in-memory work database (`insert`, `apply`,
`window-rule`, `ledger-run`, `before-commit` / `after-commit` of the work transaction,
`record-failed`: a failed run's ledger row, not yet published). The lake's own seams:

    read-partitions  partitions of the lake's current version were read into the work database
    write-table      one table's new Parquet files are written, in `_csload/staging/<txid>/`
    ledger-export    the new version's ledger snapshot is written (`_csload/ledger/<txid>/`)
    before-manifest  everything is written and synced; the manifest is about to be written
    after-manifest   the manifest (the commit point) was just written; no partition swapped in
    swap             a partition folder was just swapped in (counted over the whole sync)
    cleanup          a version is swapped in whole and its staging folder removed; older
                     ledger snapshots and manifests not yet pruned

Only csload's classes and module functions are patched; nothing else of csload changes.
"""

from __future__ import annotations

import sys
from typing import Any

from csload.cli import main
from csload.lake import store, work

# Importing sync_child patches its seams (download, writer, load) on csload.
from tests.support.sync_child import _flag, _flagged, reached

_read_partitions = work.LakeReads.read_partitions
_write_table = store.ParquetStore._write_table
_export_ledger = store.export_ledger  # type: ignore[attr-defined]
_commit_version = store.ParquetStore._commit_version
_swap_partition = store.ParquetStore._swap_partition
_cleanup = store.cleanup


def read_partitions(self: Any, con: Any, table: str, keys: set[str]) -> None:
    _read_partitions(self, con, table, keys)
    if keys:
        reached("read-partitions")


def write_table(self: Any, *args: Any) -> Any:
    entry, written = _write_table(self, *args)
    if entry is not None and written:
        reached("write-table")
    return entry, written


def export_ledger(*args: Any) -> Any:
    out = _export_ledger(*args)
    reached("ledger-export")
    return out


def commit_version(self: Any, manifest: Any) -> None:
    reached("before-manifest")
    _commit_version(self, manifest)
    reached("after-manifest")


def swap_partition(self: Any, *args: Any) -> None:
    _swap_partition(self, *args)
    reached("swap")


def cleanup(*args: Any) -> None:
    # Only the cleanup at the end of a publish (recovery, when a store opens, runs it too).
    if _flag("publishing"):
        reached("cleanup")
    _cleanup(*args)


work.LakeReads.read_partitions = read_partitions  # type: ignore[method-assign]
store.ParquetStore._write_table = write_table  # type: ignore[method-assign,assignment]
store.export_ledger = export_ledger  # type: ignore[attr-defined,assignment]
store.ParquetStore._commit_version = commit_version  # type: ignore[method-assign]
store.ParquetStore._swap_partition = swap_partition  # type: ignore[method-assign,assignment]
store.ParquetStore._publish = _flagged(  # type: ignore[method-assign]
    "publishing", store.ParquetStore._publish)
store.cleanup = cleanup  # type: ignore[assignment]

if __name__ == "__main__":
    main(sys.argv[1:])
