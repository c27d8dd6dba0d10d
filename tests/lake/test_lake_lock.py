"""One sync per lake: the second one fails fast and says who holds the lake."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from csload.errors import StoreLockedError
from csload.lake.lock import LEASE_OBJECT, _boot_id
from tests.support.children import child_command, child_environ
from tests.support.lake_crash_data import batch, first
from tests.support.lakeutil import Lake
from tests.support.partgen import Writer, job, run

CHILD = "tests.support.lake_crash_child"
D1 = date(2026, 11, 20)


def test_second_sync_fails_fast_with_who_holds_it(lake: Lake) -> None:
    with lake.open():
        with pytest.raises(StoreLockedError) as caught:
            lake.open()
        message = str(caught.value)
        assert f"lake {lake.root} is being synced by another process" in message
        assert socket.gethostname() in message and f"pid {os.getpid()}" in message
    with lake.open():   # released on close
        pass


def test_lock_held_by_another_process(local_lake: Lake, tmp_path: Path) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    batch(folder)
    with local_lake.open() as store:
        store.apply([first(folder)])
    child = subprocess.Popen(
        child_command(CHILD, local_lake.root, "{}", str(folder), "before-commit"),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=child_environ())
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "READY"
        with pytest.raises(StoreLockedError, match=f"pid {child.pid}"):
            local_lake.open()
    finally:
        child.kill()
        child.wait(timeout=60)
        assert child.stdin is not None and child.stdout is not None
        child.stdin.close()
        child.stdout.close()
    with local_lake.open() as store:   # the kernel released the dead child's lock
        assert store.loaded_runs() == {10}


def write_lease(lake: Lake, **info: object) -> None:
    lease = {"owner": "someone", "host": "elsewhere", "pid": 1, "boot_id": "x",
             "since": "2026-11-25T10:00:00+00:00",
             "expires": (datetime.now(UTC) + timedelta(minutes=5)).isoformat(), **info}
    lake.fs().write_bytes(LEASE_OBJECT, orjson.dumps(lease))


def test_s3_lease_of_another_host_blocks_until_it_expires(s3_lake: Lake) -> None:
    write_lease(s3_lake)
    with pytest.raises(StoreLockedError, match=r"\(elsewhere, pid 1, since 2026-11-25T10"):
        s3_lake.open()
    write_lease(s3_lake, expires=(datetime.now(UTC) - timedelta(seconds=1)).isoformat())
    with s3_lake.open():
        pass
    assert not s3_lake.fs().exists(LEASE_OBJECT)   # released


def test_s3_lease_of_a_dead_process_on_this_host_is_taken_over(s3_lake: Lake) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    write_lease(s3_lake, host=socket.gethostname(), boot_id=_boot_id(),
                pid=int(gone.stdout))
    with s3_lake.open():
        pass


def test_s3_writer_that_lost_its_lease_publishes_nothing(s3_lake: Lake, writer: Writer
                                                         ) -> None:
    staged = writer.staged(job(1, fields=["session_id", "view_number"]), run(10, 1, D1),
                           [[{"session_id": 1, "view_number": 1}]])
    with s3_lake.open() as store:
        write_lease(s3_lake)   # another sync took the lake over (this one was paused)
        with pytest.raises(StoreLockedError, match="lost the lock"):
            store.apply([staged])
    write_lease(s3_lake, expires=(datetime.now(UTC) - timedelta(seconds=1)).isoformat())
    with s3_lake.open() as store:   # its files are cleaned up; the run loads once
        assert store.loaded_runs() == set()
        assert store.apply([staged])[0].status == "loaded"
    assert len(s3_lake.data_files()) == 1
