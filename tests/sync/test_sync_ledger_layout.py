"""The ledger in its own schema, `_csload`, away from the analysts' tables in `main`; a
database an older csload made (ledger tables `main._csload_*`) is read as it is and moved into
the schema by the next sync, losing nothing and loading nothing twice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
from click.testing import Result

import csload
from csload.config import Settings
from csload.load.ledger_tables import LEDGER_NAMES
from csload.simulator import Simulator
from tests.support.syncref import assert_db_matches, expected_tables, successful_runs

OLD = [f"_csload_{name}" for name in (*LEDGER_NAMES, "backfills")]


def main_tables(db: Path) -> set[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()}
    finally:
        con.close()


def ledger_snapshot(db: Path, names: list[str]) -> dict[str, list[tuple[object, ...]]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {name: sorted(con.execute(f"SELECT * FROM {name}").fetchall(), key=repr)  # noqa: S608
                for name in names}
    finally:
        con.close()


def make_old_layout(db: Path) -> None:
    """Move the ledger back to where csload kept it before: `main._csload_<name>`."""
    con = duckdb.connect(str(db))
    try:
        con.execute("CREATE TABLE IF NOT EXISTS _csload.backfills AS SELECT 1 AS job_id")
        for name in (*LEDGER_NAMES, "backfills"):
            con.execute(f"CREATE TABLE main._csload_{name} AS SELECT * FROM _csload.{name}")  # noqa: S608
            con.execute(f"DROP TABLE _csload.{name}")
        con.execute("DROP SCHEMA _csload")
    finally:
        con.close()


def test_the_ledger_is_in_its_own_schema_and_main_holds_only_data(
        settings: Settings, db_path: Path) -> None:
    csload.sync(settings, db=db_path)

    assert not {t for t in main_tables(db_path) if t.startswith("_")}
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        ledger = {r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = '_csload'").fetchall()}
        loaded = con.execute("SELECT count(*) FROM _csload.runs WHERE status = 'loaded'"
                             ).fetchone()
    finally:
        con.close()
    assert ledger >= set(LEDGER_NAMES)
    assert loaded is not None and loaded[0] == 7


def test_an_older_csloads_database_is_read_then_moved_by_the_next_sync(
        simulator: Simulator, settings: Settings, db_path: Path,
        cli: Callable[..., Result]) -> None:
    csload.sync(settings, db=db_path)
    new_names = [f"_csload.{name}" for name in LEDGER_NAMES]
    before = ledger_snapshot(db_path, new_names)
    make_old_layout(db_path)
    assert set(OLD) <= main_tables(db_path)

    # Read-only, as it is: status and a dry run see every loaded run.
    status = cli("status", "--db", str(db_path), "--json")
    assert status.exit_code == 0, status.output
    plan = csload.sync(settings, db=db_path, dry_run=True)
    assert plan.runs == [] and plan.exit_code == 0
    assert set(OLD) <= main_tables(db_path), "a dry run changes nothing"

    # The next sync moves the ledger (every row), and loads nothing twice.
    simulator.advance_days(1)
    report = csload.sync(settings, db=db_path)

    assert len(report.loaded) == 2
    assert not {t for t in main_tables(db_path) if t.startswith("_")}
    after = ledger_snapshot(db_path, new_names)
    for name in ("_csload.runs", "_csload.parts", "_csload.meta"):   # jobs: last_seen moves
        assert before[name] and set(before[name]) <= set(after[name]), name
    assert_db_matches(db_path, expected_tables(simulator, successful_runs(simulator)))
