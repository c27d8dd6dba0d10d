"""Making a lake's tables agree with its ledger again after a crash: `recover`.

A batch commits each table it changed, then the ledger (csload.lake.store). A sync killed
between the two leaves a table whose log is ahead of the version the ledger records
(csload.lake.state). When a store opens, for each table of the lake:

* the log is at the recorded version, or ahead only by housekeeping (vacuum): nothing to do;
* a commit after the recorded version added or removed data: the table is restored to the
  recorded version (a new commit: readers of the log see the batch's rows go again; the
  rows come back when the next sync loads those runs, which the ledger does not list);
* a table folder with a log that the ledger does not name (the crashed batch created it):
  its log and the files the log added are removed.

If a table was restored or removed, the ledger is committed again with the tables' new
versions (the lake's first ledger, if it had none): a sync that was still running from the
older snapshot then fails at its next commit, as a second writer does. Recovery cannot tell a
crashed sync from one still running on another machine: a table commit it undoes may be a
running sync's, whose ledger commit then fails (LakeConflict) instead of recording a table
that is gone. Files written but never committed are removed by the vacuum of a later sync,
once past the retention window.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from csload.errors import ConfigError, StoreError
from csload.lake.delta import (
    commit_ledger,
    data_changed,
    delta_errors,
    open_table,
    restore,
)
from csload.lake.layout import LEGACY_MANIFEST_DIR, LOG_DIR, OWN_DIR, check_data_file, new_txid
from csload.lake.ledger import STATE_ROW, export_ledger, rows_table
from csload.lake.snapshot import LakeSnapshot, read_snapshot
from csload.load.columns import check_table_name
from csload.load.ledger import Ledger

if TYPE_CHECKING:
    from csload.lake.fs import LakeFS
    from csload.lake.state import LakeState

log = logging.getLogger("csload.lake")


def table_folders(lake: LakeFS) -> list[str]:
    """The folders at the lake's root that hold a Delta log and could be csload tables."""
    names = []
    for name in lake.list_dirs(""):
        if name == OWN_DIR:
            continue
        try:
            check_table_name(name)
        except ConfigError:   # not a name csload gives a table: not csload's folder
            continue
        if lake.exists(f"{name}/{LOG_DIR}"):
            names.append(name)
    return names


def logged_files(lake: LakeFS, name: str) -> list[str]:
    """The files the latest version of table `name`'s log adds (relative to the lake's root),
    each of csload's shape."""
    table = open_table(lake, name)
    if table is None:
        return []
    with delta_errors(lake, f"read the log of table {name}"):
        paths = pa.table(table.get_add_actions(flatten=True)).column("path").to_pylist()
    where = f"table {name} of lake {lake.root}"
    return [check_data_file(f"{name}/{p}", where, name) for p in paths]


def _remove_unrecorded(lake: LakeFS, name: str) -> None:
    """Remove a table the ledger does not name: the files its log added, then the log."""
    lake.delete_files(logged_files(lake, name))
    lake.delete_dir(f"{name}/{LOG_DIR}")
    log.warning("lake %s: removed table %s, which a crashed sync created and never "
                "recorded", lake.root, name)


def recover(lake: LakeFS) -> LakeSnapshot:
    """Undo what a crashed sync committed without its ledger; the lake's snapshot after it."""
    snapshot = read_snapshot(lake)
    if not snapshot.exists and lake.exists(LEGACY_MANIFEST_DIR):
        # Opened without csload.lake.upgrade.open_store (a sync's open upgrades it first):
        # a Delta ledger committed now would orphan the older data, which the upgrade's
        # finish would then delete.
        raise StoreError(
            f"lake {lake.root} was written by an older csload (its manifest, "
            f"{LEGACY_MANIFEST_DIR}/): a sync upgrades it to Delta tables, or run "
            f"`csload lake upgrade {lake.root}`")
    recorded = snapshot.state.tables
    txid = new_txid()
    restored = False
    for name in table_folders(lake):
        if name not in recorded:
            _remove_unrecorded(lake, name)
            # The ledger is committed again below even so: the table may be a running
            # sync's new one, between its table's commit and the ledger's (a second sync of
            # the lake started meanwhile); its ledger commit must then fail, not name a
            # table whose log is gone.
            restored = True
            continue
        # read_snapshot has checked the log reaches the recorded version, and read it there,
        # or at a later version without data changes (csload.lake.snapshot.read_table).
        then = snapshot.tables[name].delta
        table = open_table(lake, name)
        version = recorded[name].version
        if table is None:
            continue
        if table.version() > then.version() and data_changed(lake, name, then, table):
            log.warning("lake %s: undoing table %s's commits after version %s, which a "
                        "crashed sync made without recording them", lake.root, name, version)
            restore(lake, table, version, snapshot.state.batch, txid)
            table.update_incremental()
            recorded[name].version = table.version()
            restored = True
    if not restored:
        return snapshot
    if snapshot.ledger is None:
        rows = _empty_ledger(snapshot.state)
    else:
        rows = rows_table({**snapshot.rows, STATE_ROW: snapshot.state.to_bytes()})
    commit_ledger(lake, snapshot.ledger, rows, txn=snapshot.state.batch, txid=txid,
                  configuration={})
    return read_snapshot(lake)


def _empty_ledger(state: LakeState) -> pa.Table:
    """The rows of a ledger that records nothing yet (the lake's first, made by a recovery)."""
    con = duckdb.connect(":memory:")
    try:
        Ledger(con).ensure()
        return export_ledger(con, state)
    finally:
        con.close()
