"""kill -9 at each step of publishing a lake version; the next sync finishes the job exactly.

Before the manifest is written the previous version stays current; after it, the new one is,
and re-opening the lake finishes the swaps (local) or the deletes (S3). On a local disk a
folder-listing reader never counts a key twice, not even right after the kill.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from csload.lake.manifest import (
    KEEP_MANIFESTS,
    LEDGER_DIR,
    MANIFEST_DIR,
    STAGING_DIR,
    TXN_DIR,
    read_current,
)
from tests.support.children import child_command, child_environ
from tests.support.lake_crash_data import NEXT, batch, first
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
    with lake.open() as store:   # the dead child's lock is free again; recovery runs here
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
    # nothing left over: every data file is the current version's, no staging, no marker
    manifest = read_current(lake.fs())
    assert set(lake.data_files()) == manifest.referenced()
    assert not [f for f in lake.files("_csload") if f.startswith((STAGING_DIR, TXN_DIR))]
    assert {f.rsplit("/", 1)[0] for f in lake.files(LEDGER_DIR)} == {manifest.ledger}
    assert len(lake.files(MANIFEST_DIR)) <= KEEP_MANIFESTS


@pytest.mark.parametrize(("moment", "committed"), [
    ("before-commit", False), ("after-commit", True), ("mid-swap", True)])
def test_kill_during_a_local_publish(local_lake: Lake, tmp_path: Path, moment: str,
                                     committed: bool) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    batch(folder)
    with local_lake.open() as store:
        store.apply([first(folder)])
    before = snapshot(local_lake)
    kill_at(local_lake, folder, moment)
    # right after the kill, before any recovery, a folder-listing reader counts each key once
    count, distinct = local_lake.listed("views", COUNTS.format(t="t"))[0]
    assert count == distinct
    check_recovers(local_lake, folder, committed, before)


@pytest.mark.parametrize(("moment", "committed"), [
    ("mid-upload", False), ("before-commit", False), ("before-delete", True)])
def test_kill_during_an_s3_publish(s3_lake: Lake, tmp_path: Path, moment: str,
                                   committed: bool) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    batch(folder)
    with s3_lake.open() as store:
        store.apply([first(folder)])
    before = snapshot(s3_lake)
    kill_at(s3_lake, folder, moment)
    assert s3_lake.files(TXN_DIR)   # the marker says what to undo or finish
    check_recovers(s3_lake, folder, committed, before)
