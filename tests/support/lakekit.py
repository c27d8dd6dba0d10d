"""The reliability suite's view of a local Parquet lake: rows counted against the truth.

    lake_tables(root)        the data tables of the lake's current version (its manifest);
                             empty where no version was published yet.
    lake_rows(root, table)   (columns, rows) of a table, every column but `_loaded_at`, read
                             through csload.connect(parquet=root) (the manifest's files).
    listed_rows(root, table) the same, read as a folder-listing reader does
                             (`read_parquet('ROOT/table/*/*.parquet', hive_partitioning=true)`),
                             the Hive `date` column left out.
    lake_runs(root)          run id -> ledger status of the current version.
    compare_lake(root, sim, run_ids) -> LakeAccounting
                             relkit.compare for a lake: rows expected, loaded, lost, duplicated
                             and unexpected; `.assert_exact()` checks every column of every row,
                             through the manifest and (unless listing=False) through a
                             folder listing.
    assert_lake_tidy(root)   nothing left over: every data file is one of the current
                             version's, no staging folder, no download folder, no transaction
                             marker, one ledger snapshot, at most KEEP_MANIFESTS manifests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

import csload
from csload.lake.fs import LakeFS
from csload.lake.manifest import (
    KEEP_MANIFESTS,
    LEDGER_DIR,
    MANIFEST_DIR,
    STAGING_DIR,
    TXN_DIR,
    Manifest,
    read_current,
)
from csload.load.sqltext import sql_str
from csload.target import Target
from tests.support.relkit import Accounting
from tests.support.syncref import assert_rows_equal, expected_tables

Row = dict[str, Any]
Expected = Mapping[str, tuple[set[str], list[Row]]]


def manifest_of(root: Path) -> Manifest:
    return read_current(LakeFS.open(str(root)))


def lake_tables(root: Path) -> set[str]:
    if not (root / MANIFEST_DIR).is_dir():
        return set()
    return set(manifest_of(root).tables)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[set[str], list[Row]]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description or ()]
    return set(names), [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def lake_rows(root: Path, table: str) -> tuple[set[str], list[Row]]:
    con = csload.connect(parquet=str(root))
    try:
        return _rows(con, f'SELECT * EXCLUDE (_loaded_at) FROM "{table}"')  # noqa: S608
    finally:
        con.close()


def listed_rows(root: Path, table: str) -> tuple[set[str], list[Row]]:
    pattern = str(root / table / "*" / "*.parquet")
    con = duckdb.connect()
    try:
        return _rows(con, "SELECT * EXCLUDE (_loaded_at, date) FROM read_parquet("  # noqa: S608
                     f"{sql_str(pattern)}, hive_partitioning = true)")
    finally:
        con.close()


def _ledger_runs(root: Path) -> list[tuple[int, str, str | None]]:
    """(run id, status, message) of the current version's ledger snapshot, read from its
    Parquet file: no data file is touched (they may not all be in place right after a kill)."""
    if not (root / MANIFEST_DIR).is_dir():
        return []
    manifest = manifest_of(root)
    if manifest.ledger is None:
        return []
    path = root / manifest.ledger / "_csload_runs.parquet"
    con = duckdb.connect()
    try:
        return [(int(r[0]), str(r[1]), r[2]) for r in con.execute(
            "SELECT run_id, status, message FROM read_parquet(?)", [str(path)]).fetchall()]
    finally:
        con.close()


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
    read through the manifest, so that assert_exact does not read it again."""

    read: dict[str, tuple[set[str], list[Row]]] = field(default_factory=dict)

    def assert_exact(self, listing: bool = True) -> None:
        """Every column of every row, through the manifest and (`listing`) as a reader listing
        the folders sees them (leave that out while a version is half swapped in)."""
        assert (self.lost, self.duplicated, self.unexpected) == (0, 0, 0), self.fields()
        root = self.db
        assert set(self.read) == set(self.expected), (sorted(self.read), sorted(self.expected))
        for table, (columns, rows) in self.expected.items():
            got_columns, got = self.read[table]
            assert got_columns == columns, (table, sorted(got_columns ^ columns))
            assert_rows_equal(got, rows, f"{table} (through the manifest)")
            if not listing:
                continue
            listed_columns, listed = listed_rows(root, table) if rows else (columns, [])
            assert listed_columns == columns, (table, sorted(listed_columns ^ columns))
            assert_rows_equal(listed, rows, f"{table} (listing the folders)")


def compare_lake(root: Path, sim: Any, run_ids: Sequence[int],
                 expected: Expected | None = None) -> LakeAccounting:
    """Rows of the lake's current version against the reference of `run_ids`, counted."""
    if expected is None:
        expected = expected_tables(sim, run_ids)
    acc = LakeAccounting(root, expected)
    present = lake_tables(root)
    for table in sorted(set(expected) | present):
        if table in present:
            acc.read[table] = lake_rows(root, table)
        acc.count(acc.read[table][1] if table in present else [], table)
    return acc


def downloads_dir(root: Path) -> Path:
    return Target(parquet=str(root)).staging_dir()


def assert_lake_tidy(root: Path) -> None:
    manifest = manifest_of(root)
    lake = LakeFS.open(str(root))
    files = [e.path for e in lake.list_files("", recursive=True)]
    data = {f for f in files if not f.startswith("_csload/")}
    assert data == manifest.referenced(), (
        f"stray files {sorted(data - manifest.referenced())[:3]}, "
        f"missing {sorted(manifest.referenced() - data)[:3]}")
    leftovers = [f for f in files if f.startswith((STAGING_DIR + "/", TXN_DIR + "/"))]
    assert not leftovers, leftovers[:5]
    assert not downloads_dir(root).exists() or downloads_dir(root).is_symlink()
    assert {f.rsplit("/", 1)[0] for f in files if f.startswith(LEDGER_DIR + "/")} == {
        manifest.ledger}
    assert len([f for f in files if f.startswith(MANIFEST_DIR + "/")]) <= KEEP_MANIFESTS
