"""The reliability suite's view of a local lake of Delta tables: rows counted against the truth.

    lake_tables(root)        the data tables the lake's ledger names; empty before the first
                             batch.
    lake_rows(root, table)   (columns, rows) of a table, every column but `_loaded_at`, read
                             through csload.connect(parquet=root) (the ledger's versions).
    listed_rows(root, table) the same, read as a Delta reader does: the table's latest version
                             through its log (deltalake's dataset), cast back to csload's types.
    lake_runs(root)          run id -> status in the lake's ledger.
    compare_lake(root, sim, run_ids) -> LakeAccounting
                             relkit.compare for a lake: rows expected, loaded, lost, duplicated
                             and unexpected; `.assert_exact()` checks every column of every row,
                             through csload and (unless listing=False) through the Delta log.
                             With `options` (a lake on the moto S3 server, its storage options),
                             `root` is its s3:// URL.
    assert_lake_tidy(root)   nothing left over: no staging or download folder, every table at
                             the version its ledger records (or ahead of it by housekeeping
                             only), and (unless orphans=True) no data file that no commit of
                             the log ever added.

What a reader of the Delta logs sees, which may be ahead of the ledger right after a kill (a
table committed, the ledger not yet; the next sync undoes it):

    delta_tables(root)       the folders at the root holding a Delta log, in the ledger or not.
    tables_ahead(root)       those whose log holds a data commit the ledger does not record.
    assert_latest_whole_runs(root, sim, loaded)
                             each table's latest version holds exactly the truth of the
                             ledger's loaded runs plus the runs it has rows of beyond them:
                             whole runs, no row (so no key) twice, every day whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

import csload
from csload.lake.delta import data_changed, open_table
from csload.lake.fs import LakeFS
from csload.lake.layout import LEDGER_TABLE_DIR, LOG_DIR, OWN_DIR, STAGING_DIR
from csload.lake.ledger import read_rows
from csload.lake.snapshot import LakeSnapshot, read_snapshot
from csload.lake.types import csload_columns, select_to_csload
from csload.simulator import Simulator
from csload.target import Target
from tests.support.relkit import Accounting
from tests.support.syncref import assert_rows_equal, expected_tables

Row = dict[str, Any]
Expected = Mapping[str, tuple[set[str], list[Row]]]
Options = Mapping[str, str] | None   # an S3 lake's storage options; None: a local folder


def _open(root: Path | str, options: Options = None) -> LakeFS:
    return LakeFS.open(str(root), dict(options) if options else None, env={})


def snapshot_of(root: Path | str, options: Options = None) -> LakeSnapshot:
    return read_snapshot(_open(root, options))


def lake_tables(root: Path | str, options: Options = None) -> set[str]:
    return set(snapshot_of(root, options).tables)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[set[str], list[Row]]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description or ()]
    return set(names), [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def lake_rows(root: Path | str, table: str, options: Options = None
              ) -> tuple[set[str], list[Row]]:
    con = csload.connect(parquet=str(root), storage_options=dict(options) if options else None)
    try:
        return _rows(con, f'SELECT * EXCLUDE (_loaded_at) FROM "{table}"')  # noqa: S608
    finally:
        con.close()


def listed_rows(root: Path | str, table: str, options: Options = None
                ) -> tuple[set[str], list[Row]]:
    lake = _open(root, options)
    delta = open_table(lake, table)
    assert delta is not None, table
    columns = [(n, t) for n, t in csload_columns(delta.schema(), table) if n != "_loaded_at"]
    con = duckdb.connect()
    try:
        con.register("t", delta.to_pyarrow_dataset())
        return _rows(con, f"SELECT {select_to_csload(columns, 's.')} FROM t AS s")  # noqa: S608
    finally:
        con.close()


def _ledger_runs(root: Path) -> list[tuple[int, str, str | None]]:
    """(run id, status, message) of the lake's ledger, read from its runs table alone: no data
    file is touched."""
    lake = LakeFS.open(str(root))
    ledger = open_table(lake, LEDGER_TABLE_DIR)
    if ledger is None:
        return []
    runs = pq.read_table(pa.BufferReader(read_rows(lake, ledger)["_csload_runs"]))
    return [(int(r["run_id"]), str(r["status"]), r["message"]) for r in runs.to_pylist()]


def lake_runs(root: Path) -> dict[int, str]:
    """Run id -> status in the ledger of the current version ({} before the first one)."""
    return {run: status for run, status, _ in _ledger_runs(root)}


def lake_run_message(root: Path, run_id: int) -> tuple[str, str] | None:
    found = [(status, message or "") for run, status, message in _ledger_runs(root)
             if run == run_id]
    return found[0] if found else None


@dataclass
class LakeAccounting(Accounting):
    """Accounting of a lake (`db` is the lake's root folder); `read` holds what compare_lake
    read through csload, so that assert_exact does not read it again."""

    read: dict[str, tuple[set[str], list[Row]]] = field(default_factory=dict)
    root: str = ""            # the lake's root (`db` is it as a Path: a local lake's folder)
    options: Options = None

    def assert_exact(self, listing: bool = True) -> None:
        """Every column of every row, through csload and (`listing`) as a Delta reader sees
        the tables' latest versions (leave that out right after a kill: a table may be ahead
        of its ledger until the next sync)."""
        assert (self.lost, self.duplicated, self.unexpected) == (0, 0, 0), self.fields()
        root = self.root or self.db
        assert set(self.read) == set(self.expected), (sorted(self.read), sorted(self.expected))
        for table, (columns, rows) in self.expected.items():
            got_columns, got = self.read[table]
            assert got_columns == columns, (table, sorted(got_columns ^ columns))
            assert_rows_equal(got, rows, f"{table} (through csload)")
            if not listing:
                continue
            listed_columns, listed = (listed_rows(root, table, self.options) if rows
                                      else (columns, []))
            assert listed_columns == columns, (table, sorted(listed_columns ^ columns))
            assert_rows_equal(listed, rows, f"{table} (through the Delta log)")


def compare_lake(root: Path | str, sim: Any, run_ids: Sequence[int],
                 expected: Expected | None = None, options: Options = None) -> LakeAccounting:
    """Rows of the lake's current version against the reference of `run_ids`, counted."""
    if expected is None:
        expected = expected_tables(sim, run_ids)
    acc = LakeAccounting(Path(root), expected, root=str(root), options=options)
    present = lake_tables(root, options)
    for table in sorted(set(expected) | present):
        if table in present:
            acc.read[table] = lake_rows(root, table, options)
        acc.count(acc.read[table][1] if table in present else [], table)
    return acc


def downloads_dir(root: Path) -> Path:
    return Target(parquet=str(root)).staging_dir()


def assert_lake_tidy(root: Path, orphans: bool = False, downloads: bool = False) -> None:
    """Nothing left over (module docstring). Files a batch replaced stay (the retention
    window); files written and never committed (a killed sync) only with `orphans`; the
    downloads folder (empty, of a sync that stopped before staging) only with `downloads`."""
    lake = LakeFS.open(str(root))
    snapshot = read_snapshot(lake)
    files = [e.path for e in lake.list_files("", recursive=True)]
    leftovers = [f for f in files if f.startswith(STAGING_DIR + "/")]
    assert not leftovers, leftovers[:5]
    folder = downloads_dir(root)
    if downloads and folder.is_dir() and not folder.is_symlink():
        assert not any(folder.iterdir()), sorted(p.name for p in folder.iterdir())[:5]
    else:
        assert not folder.exists() or folder.is_symlink()
    # Every log at the ledger's version, or ahead of it by housekeeping (vacuum) only.
    ahead = tables_ahead(root)
    assert not ahead, f"tables with a data commit their ledger does not record: {ahead}"
    for name in snapshot.tables:
        latest = open_table(lake, name)
        assert latest is not None, name
        if not orphans:
            everything = set(latest.vacuum(retention_hours=0, enforce_retention_duration=False,
                                           dry_run=True, full=True))
            removed = set(latest.vacuum(retention_hours=0, enforce_retention_duration=False,
                                        dry_run=True, full=False))
            assert everything <= removed, sorted(everything - removed)[:3]


# --- the Delta logs' latest versions ---------------------------------------------------------


def delta_tables(root: Path) -> list[str]:
    """The folders at the root that hold a Delta log (the ledger's tables, and any a killed
    sync created before its ledger commit)."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.name != OWN_DIR and (p / LOG_DIR).is_dir())


def tables_ahead(root: Path) -> list[str]:
    """Tables whose log holds a data commit after the version the ledger records (or that the
    ledger does not name at all): a sync killed between a table's commit and the ledger's."""
    lake = LakeFS.open(str(root))
    recorded = read_snapshot(lake).state.tables
    ahead = []
    for name in delta_tables(root):
        latest = open_table(lake, name)
        assert latest is not None, name
        entry = recorded.get(name)
        if entry is None:
            ahead.append(name)
            continue
        then = open_table(lake, name, entry.version)
        assert then is not None, name
        if latest.version() > entry.version and data_changed(lake, name, then, latest):
            ahead.append(name)
    return ahead


def assert_latest_whole_runs(root: Path, sim: Simulator, loaded: Sequence[int]) -> set[int]:
    """A Delta reader of each table's latest version sees whole runs only: exactly the truth of
    the ledger's `loaded` runs plus the runs it finds rows of beyond them (those of a table
    commit the ledger does not record yet), every column of every row. A day half replaced,
    or held twice (old and new copies of a key), is lost, duplicated or unexpected rows.
    Returns the runs beyond the ledger's."""
    read = {table: listed_rows(root, table) for table in delta_tables(root)}
    seen = {int(row["_run_id"]) for _, rows in read.values() for row in rows}
    beyond = seen - set(loaded)
    expected = expected_tables(sim, [*loaded, *beyond])
    acc = LakeAccounting(root, expected, read=read)
    for table in sorted(set(expected) | set(read)):
        acc.count(read[table][1] if table in read else [], table)
    assert (acc.lost, acc.duplicated, acc.unexpected) == (0, 0, 0), (
        "the tables' latest versions", acc.fields())
    for table, (columns, rows) in expected.items():
        got_columns, got = read.get(table, (columns, []))
        if rows:
            assert got_columns == columns, (table, sorted(got_columns ^ columns))
        assert_rows_equal(got, rows, f"{table} (latest version of its Delta log)")
    return beyond
