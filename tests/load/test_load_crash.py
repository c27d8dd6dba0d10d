"""kill -9 at any moment of an apply leaves the whole batch or nothing; re-applying is exact."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from csload.load.duckdb import DuckDBStore
from tests.support.children import child_command, child_environ
from tests.support.load_crash_data import BIG, batch, first

CHILD = "tests.support.load_crash_child"


def snapshot(store: DuckDBStore) -> tuple[Any, ...]:
    data = store.con.execute(
        "SELECT count(*), count(DISTINCT (session_id, view_number)), "
        "sum(hash(session_id, view_number, url, _run_id)) FROM views").fetchone()
    return data, sorted(store.loaded_runs())


@pytest.mark.parametrize("moment", ["after-insert", "before-window-delete", "before-commit",
                                    "after-commit"])
def test_kill_mid_apply(tmp_path: Path, moment: str) -> None:
    db = tmp_path / "db.duckdb"
    folder = tmp_path / "parts"
    folder.mkdir()
    runs = batch(folder)
    with DuckDBStore.open(db) as store:
        store.apply([first(folder)])
        before = snapshot(store)
    child = subprocess.Popen(
        child_command(CHILD, str(db), str(folder), moment),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=child_environ())
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "READY", line
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=120)
        assert child.stdin is not None
        child.stdin.close()
        child.stdout.close()  # type: ignore[union-attr]
    assert child.returncode == -signal.SIGKILL

    with DuckDBStore.open(db) as store:
        after_crash = snapshot(store)
        if moment == "after-commit":
            assert after_crash[1] == [10, 11, 12]
        else:
            assert after_crash == before
        outcomes = store.apply(runs)
        expected_status = "skipped" if moment == "after-commit" else "loaded"
        assert [o.status for o in outcomes] == [expected_status] * 2
        (count, distinct, _), loaded = snapshot(store)
        assert loaded == [10, 11, 12]
        assert count == distinct == 500 + BIG
        assert store.con.execute(
            "SELECT count(*) FROM views WHERE _run_id = 10 OR url LIKE 'first%'").fetchone() == (0,)
