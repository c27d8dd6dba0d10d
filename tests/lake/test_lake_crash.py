"""kill -9 at each step of publishing a batch to a lake; the next sync is exact.

A batch counts once the ledger's commit is made. Before it, the previous state stays current:
files written but not committed are in no version; a table commit the ledger does not record
is undone when the lake is next opened (csload.lake.recovery). A Delta reader of the log never
counts a key twice, not even right after the kill.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.children import child_command, child_environ
from tests.support.lake_crash_data import NEXT, batch, first
from tests.support.lakekit import assert_lake_tidy
from tests.support.lakeutil import Lake

CHILD = "tests.support.lake_crash_child"
COUNTS = "SELECT count(*), count(DISTINCT (session_id, view_number)) FROM {t}"


def snapshot(lake: Lake) -> tuple[Any, ...]:
    con = lake.connect()
    try:
        data = con.execute(
            "SELECT count(*), count(DISTINCT (session_id, view_number)), "
            "sum(hash(session_id, view_number, url, _run_id)) FROM views").fetchone()
        runs = sorted(r[0] for r in con.execute(
            "SELECT run_id FROM _csload.runs WHERE status = 'loaded'").fetchall())
    finally:
        con.close()
    return data, runs


def kill_at(lake: Lake, folder: Path, moment: str) -> None:
    child = subprocess.Popen(
        child_command(CHILD, lake.root, json.dumps(lake.options or {}), str(folder),
         moment), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
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


def check_recovers(lake: Lake, folder: Path, committed: bool, before: tuple[Any, ...]) -> None:
    with lake.open() as store:   # recovery runs here
        after_crash = snapshot(lake)
        if committed:
            assert after_crash[1] == [10, 11, 12]
        else:
            assert after_crash == before
        outcomes = store.apply(batch(folder, write=False))
        assert [o.status for o in outcomes] == ["skipped" if committed else "loaded"] * 2
    (count, distinct, _), loaded = snapshot(lake)
    assert loaded == [10, 11, 12]
    assert count == distinct == 500 + NEXT
    assert lake.listed("views", COUNTS.format(t="t")) == [(500 + NEXT, 500 + NEXT)]
    con = lake.connect()
    assert con.execute("SELECT count(*) FROM views WHERE _run_id = 10 OR url LIKE 'first%'"
                       ).fetchone() == (0,)
    # every table at the version its ledger records; the killed batch's files, if it wrote
    # any, are in no version (the vacuum removes them after the retention window)
    if lake.kind == "local":
        assert_lake_tidy(Path(lake.root), orphans=True)


@pytest.mark.parametrize(("moment", "committed"), [
    ("files-written", False), ("table-committed", False), ("ledger-committed", True)])
def test_kill_during_a_local_publish(local_lake: Lake, tmp_path: Path, moment: str,
                                     committed: bool) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    batch(folder)
    with local_lake.open() as store:
        store.apply([first(folder)])
    before = snapshot(local_lake)
    kill_at(local_lake, folder, moment)
    # right after the kill, before any recovery, a Delta reader counts each key once
    count, distinct = local_lake.listed("views", COUNTS.format(t="t"))[0]
    assert count == distinct
    check_recovers(local_lake, folder, committed, before)


@pytest.mark.parametrize(("moment", "committed"), [
    ("mid-upload", False), ("table-committed", False), ("ledger-committed", True)])
def test_kill_during_an_s3_publish(s3_lake: Lake, tmp_path: Path, moment: str,
                                   committed: bool) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    batch(folder)
    with s3_lake.open() as store:
        store.apply([first(folder)])
    before = snapshot(s3_lake)
    kill_at(s3_lake, folder, moment)
    count, distinct = s3_lake.listed("views", COUNTS.format(t="t"))[0]
    assert count == distinct
    check_recovers(s3_lake, folder, committed, before)
