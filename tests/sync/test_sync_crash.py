"""kill -9 of a real `csload sync` at several points, then a sync again: the tables are exactly
those of an uninterrupted sync, and what the crash left behind was whole runs or nothing.

The child (sync_child.py) is the real CLI with one seam patched to SIGKILL itself at the
chosen point; it reaches the simulator, served from this process's thread, through the
CONTENTSQUARE_* environment variables. `max_staged_runs = 1` (from a csload.toml) makes every
load transaction hold exactly one run, so "the 2nd commit" names one moment.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import duckdb
import pytest

import csload
from csload.config import Settings
from csload.pipeline.sync import staging_dir
from csload.simulator import Simulator
from tests.support.children import child_command, child_environ
from tests.support.syncref import (
    assert_db_matches,
    assert_same_tables,
    default_tables,
    expected_tables,
    successful_runs,
    table_names,
)

CHILD = "tests.support.sync_child"


def run_child(tmp_path: Path, env: dict[str, str], db: Path, stop: str) -> None:
    config = tmp_path / "csload.toml"
    config.write_text("[limits]\nmax_staged_runs = 1\n")
    proc = subprocess.run(
        child_command(CHILD, "sync", "--db", str(db), "--config", str(config)),
        env=child_environ({**env, "CSLOAD_TEST_STOP": stop}), cwd=tmp_path, capture_output=True,
        text=True, timeout=300, check=False)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)


def ledger(db: Path) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "SELECT run_id, job_id, table_name, window_start, window_end, finished_at, status, "
            "rows_read, rows, bytes, parts FROM _csload.runs ORDER BY run_id").fetchall()
    finally:
        con.close()


@pytest.mark.parametrize(("stop", "runs_committed"), [
    ("download:4", None),       # mid-download: staging files on disk, maybe a run committed
    ("apply:2", 1),             # second load transaction, rows inserted, not committed
    ("before-commit:1", 0),     # the first COMMIT never happens
    ("after-commit:3", 3),      # third run committed, its staging files not yet removed
])
def test_kill_9_then_sync_again_gives_the_uninterrupted_tables(
    simulator: Simulator, settings: Settings, child_env: dict[str, str], tmp_path: Path,
    stop: str, runs_committed: int | None,
) -> None:
    db = tmp_path / "crashed.duckdb"
    run_child(tmp_path, child_env, db, stop)

    # What the crash left: whole runs only, each exactly as the reference has it.
    survived = [int(str(row[0])) for row in ledger(db) if row[6] == "loaded"]
    if runs_committed is not None:
        assert len(survived) == runs_committed
    assert_db_matches(db, expected_tables(simulator, survived))
    if stop.startswith(("download", "after-commit")):
        assert staging_dir(db).exists()

    report = csload.sync(settings, db=db)

    everything = successful_runs(simulator)
    assert report.exit_code == 0
    assert sorted([*survived, *(r.run_id for r in report.loaded)]) == sorted(everything)
    assert not staging_dir(db).exists()
    fresh = tmp_path / "fresh.duckdb"
    csload.sync(settings, db=fresh)
    assert table_names(fresh) == set(default_tables(simulator).values())
    assert_same_tables(db, fresh)
    assert ledger(db) == ledger(fresh)
    assert_db_matches(db, expected_tables(simulator, everything))
