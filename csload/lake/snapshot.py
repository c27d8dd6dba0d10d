"""What a lake holds, as the ledger says: `read_snapshot`.

The ledger's latest version (csload.lake.ledger) names, for each data table, the Delta version
it agrees with (csload.lake.state); each table is read at that version, so the snapshot is
one consistent state even while a crashed sync's commit is still in a table's log (the next
sync undoes it, csload.lake.recovery). Everything read from the logs is checked: a file path
must be in its table's partition folder (csload.lake.layout), column types must be csload's
(csload.lake.types), and the table must not ask its readers for more than its file list.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import pyarrow as pa
from deltalake import DeltaTable

from csload.errors import StoreError
from csload.lake.delta import data_changed, delta_errors, open_table
from csload.lake.layout import (
    LEDGER_TABLE_DIR,
    LEGACY_GUARD,
    LEGACY_GUARD_BYTES,
    LEGACY_MANIFEST_DIR,
    PARTITION_COLUMN,
    check_partition_key,
    check_table_file,
    damaged,
    partition_key,
    shown,
)
from csload.lake.ledger import STATE_ROW, read_rows
from csload.lake.state import LakeState, TableState
from csload.lake.types import csload_columns

if TYPE_CHECKING:
    from csload.lake.fs import LakeFS


@dataclass
class LakeTable:
    """A data table of the lake at the version the ledger records."""

    name: str
    delta: DeltaTable
    columns: list[tuple[str, str]]        # csload's types, in order (no `date`)
    files: dict[str, list[str]]           # partition key -> files, relative to the lake root
    state: TableState
    # The table's latest version when its data differs from this one's: commits the ledger
    # does not record (a stopped sync's, which the next sync undoes, or another writer's,
    # which it keeps: csload.lake.recovery, csload.lake.adopt.follow_others).
    ahead: DeltaTable | None = None

    def files_of(self, keys: set[str] | None = None) -> list[str]:
        return [f for k, fs in sorted(self.files.items()) if keys is None or k in keys
                for f in fs]

    @property
    def partitions(self) -> set[str]:
        return set(self.files) | set(self.state.partitions)


@dataclass
class LakeSnapshot:
    ledger: DeltaTable | None                        # None: no lake yet
    rows: dict[str, bytes] = field(default_factory=dict)
    state: LakeState = field(default_factory=LakeState)
    tables: dict[str, LakeTable] = field(default_factory=dict)
    # Tables the ledger names whose folder is gone, log and files (the user deleted it): not
    # in `tables`; the next sync loads their runs again (csload.lake.recovery).
    dropped: list[str] = field(default_factory=list)

    @property
    def exists(self) -> bool:
        return self.ledger is not None


def state_of(lake: LakeFS, rows: dict[str, bytes]) -> LakeState:
    raw = rows.get(STATE_ROW)
    if raw is None:
        raise damaged(f"the ledger of lake {lake.root}", "row set", sorted(rows))
    return LakeState.from_bytes(raw, f"the ledger of lake {lake.root}")


def reader_protocol_problem(delta: DeltaTable) -> str | None:
    """What a table asks its readers beyond the log's file list (deletion vectors, column
    mapping: reader version 2 and up), which csload, reading the Parquet files itself (its
    work database, `csload.connect`), would read wrong; None when it asks nothing more."""
    protocol = delta.protocol()
    if protocol.min_reader_version <= 1 and not protocol.reader_features:
        return None
    features = shown(protocol.reader_features) if protocol.reader_features \
        else "column mapping"
    return (f"it asks its readers for Delta reader version {protocol.min_reader_version} "
            f"({features}), which csload does not read; csload's tables must stay readable as "
            "plain Parquet files (docs/lake.md, \"Writing to the tables\")")


def refuse_reader_features(delta: DeltaTable, where: str) -> None:
    """StoreError if the table asks its readers more than csload reads
    (`reader_protocol_problem`)."""
    problem = reader_protocol_problem(delta)
    if problem is not None:
        raise StoreError(f"{where}: {problem}")


def read_table(lake: LakeFS, name: str, version: int, state: TableState, *,
               latest: DeltaTable | None = None) -> LakeTable:
    """Table `name` at `version`, its files and columns checked. `latest`: the table at its
    latest version, when the caller has opened it already."""
    where = f"table {name} of lake {lake.root}"
    # The latest version first: loading a version the log does not have costs time in
    # proportion to the number (a crafted ledger could name 2^63).
    delta = latest if latest is not None else open_table(lake, name)
    if delta is None:
        raise StoreError(f"lake {lake.root} is damaged: the ledger names table {name}, "
                         "which has no Delta log; restore the lake from a backup")
    if delta.version() < version:
        raise StoreError(f"lake {lake.root} is damaged: table {name} is at version "
                         f"{delta.version()}, older than the version {version} its ledger records; "
                         "restore the "
                         "lake from a backup")
    ahead = None
    if delta.version() > version:
        # Ahead of the ledger: by housekeeping (a vacuum, new retention properties), and then
        # the latest version is this one's data and the next commit is made from it; or by a
        # crashed sync's commit, which csload.lake.recovery undoes from the recorded version,
        # or another writer's, which it keeps.
        recorded = open_table(lake, name, version)
        assert recorded is not None
        # A reader feature turned on since (deletion vectors, with no row deleted yet): the
        # recorded version is still read as csload reads, the latest not (the readers warn
        # and read the recorded one, the sync refuses: csload.lake.adopt.check_adoptable).
        turned_on = reader_protocol_problem(delta) is not None \
            and reader_protocol_problem(recorded) is None
        if turned_on or data_changed(lake, name, recorded, delta):
            delta, ahead = recorded, delta
    refuse_reader_features(delta, where)
    with delta_errors(lake, f"read the log of table {name}"):
        schema = delta.schema()
        actions = pa.table(delta.get_add_actions(flatten=True))
    columns = csload_columns(schema, where)
    files: dict[str, list[str]] = {}
    day = "partition.date"
    values = actions.column(day).to_pylist() if day in actions.column_names else \
        [None] * actions.num_rows
    for path, value in zip(actions.column("path").to_pylist(), values, strict=True):
        rel = check_table_file(f"{name}/{path}", where, name)
        key = partition_key(value) if value is None or isinstance(value, date) \
            else check_partition_key(value, where)
        if not rel.startswith(f"{name}/{PARTITION_COLUMN}={key}/"):
            raise damaged(where, "data file", path)
        files.setdefault(key, []).append(rel)
    return LakeTable(name, delta, columns, {k: sorted(v) for k, v in files.items()}, state,
                     ahead)


def has_older_format(lake: LakeFS) -> bool:
    """Whether the lake holds an older csload's manifest format: its folder holds anything
    but the guard a Delta lake keeps there (LEGACY_GUARD)."""
    return any(entry.path != LEGACY_GUARD
               for entry in lake.list_files(LEGACY_MANIFEST_DIR, recursive=True))


def guard_from_older_csload(lake: LakeFS) -> None:
    """Write LEGACY_GUARD where it is missing (a lake this csload made, or upgraded)."""
    if not lake.exists(LEGACY_GUARD):
        lake.write_bytes(LEGACY_GUARD, LEGACY_GUARD_BYTES)


def refuse_older_format(lake: LakeFS, snapshot: LakeSnapshot) -> None:
    """A reader must not take a lake an older csload wrote (not upgraded yet) for no lake."""
    if not snapshot.exists and has_older_format(lake):
        raise StoreError(f"lake {lake.root} was written by an older csload (its manifest, "
                         f"{LEGACY_MANIFEST_DIR}/): a sync upgrades it to Delta tables, or run "
                         f"`csload lake upgrade {shlex.quote(lake.root)}`")


def read_snapshot(lake: LakeFS) -> LakeSnapshot:
    """The lake as its ledger's latest version says (an empty snapshot where there is none)."""
    ledger = open_table(lake, LEDGER_TABLE_DIR)
    if ledger is None:
        return LakeSnapshot(None)
    rows = read_rows(lake, ledger)
    state = state_of(lake, rows)
    # A folder with files but no log stays damaged (read_table says so): only a folder the
    # user deleted whole counts as dropped.
    tables: dict[str, LakeTable] = {}
    dropped: list[str] = []
    for name, entry in sorted(state.tables.items()):
        latest = open_table(lake, name)
        if latest is None and not lake.list_files(name, recursive=True):
            dropped.append(name)
            continue
        tables[name] = read_table(lake, name, entry.version, entry, latest=latest)
    return LakeSnapshot(ledger, rows, state, tables, dropped)
