"""Two syncs of one database in one process, or a sync beside the process's own connection.

DuckDB's file lock stops another process; within one process DuckDB shares the database
between connections, so two syncs of one file (two threads, two asyncio tasks, a notebook cell
run again while the first still runs) used to meet in the staging folder and in their
transactions: a FileNotFoundError (no CsloadError), "Conflict on update!", or "a file has that
name" for a folder the other sync had made. And a notebook's own read-only connection made a
sync fail with DuckDB's "different configuration" as a plain StoreError, `wait` ignored. Found
by QA, 2026-12-07: both are now a StoreLockedError naming this process, which `wait` waits out.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
from pathlib import Path

import pytest

import csload
from csload.config import Settings
from csload.errors import StoreError, StoreLockedError
from csload.load.duckdb import DuckDBStore
from csload.load.ledger import Ledger
from csload.simulator import Simulator
from tests.support.children import child_command, child_environ
from tests.support.syncref import assert_db_matches, expected_tables, successful_runs


def gather_two(settings: Settings, db: Path, **options: object) -> list[object]:
    async def both() -> list[object]:
        return await asyncio.gather(csload.sync_async(settings, db=db, **options),
                                    csload.sync_async(settings, db=db, **options),
                                    return_exceptions=True)   # type: ignore[arg-type]

    return asyncio.run(both())


def test_a_second_sync_of_one_database_in_the_same_process_is_refused_or_waits(
        simulator: Simulator, settings: Settings, db_path: Path) -> None:
    first, second = gather_two(settings, db_path)

    refused = [r for r in (first, second) if isinstance(r, BaseException)]
    [report] = [r for r in (first, second) if isinstance(r, csload.SyncReport)]
    assert len(refused) == 1 and isinstance(refused[0], StoreLockedError), refused
    assert "is being synced by this process already" in str(refused[0])
    assert report.exit_code in (0, 3)
    assert_db_matches(db_path, expected_tables(simulator, [
        r.run_id for r in report.loaded]))

    # With wait, the second waits for the first and finds nothing new; and a store that
    # was closed lets go of the database (a later sync of the process opens it).
    simulator.advance_days(1)
    results = gather_two(settings, db_path, wait="60s")
    assert all(isinstance(r, csload.SyncReport) for r in results), results
    assert sorted(len(r.runs) == 0 for r in results) == [False, True]   # type: ignore
    assert_db_matches(db_path, expected_tables(simulator, successful_runs(simulator)))


def test_the_processs_own_read_only_connection_is_named_and_waited_for(
        simulator: Simulator, settings: Settings, db_path: Path) -> None:
    csload.sync(settings, db=db_path)
    con = csload.connect(db_path, read_only=True)   # the notebook's reader
    try:
        with pytest.raises(StoreLockedError) as info:
            csload.sync(settings, db=db_path, wait="0.3s")
    finally:
        con.close()
    message = str(info.value)
    assert "is already open in this process" in message and "read-only" in message, message
    assert "con.close()" in message and "(after waiting 0.3s)" in message, message
    assert csload.sync(settings, db=db_path).exit_code in (0, 3)   # closed: it syncs


def test_a_notebooks_interrupt_stops_the_sync_instead_of_leaving_it_running(
        simulator: Simulator, settings: Settings, child_env: dict[str, str],
        db_path: Path) -> None:
    """In a notebook, csload.sync runs in a thread of its own (the kernel's loop runs); the
    interrupt used to end only the wait for it: the sync went on in the background, its result
    and errors lost, and a cell run again met it. Now it stops as the CLI's Ctrl-C does."""
    done = subprocess.run(child_command("tests.support.notebook_child", str(db_path)),
                          env=child_environ(child_env), capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout.strip().splitlines()[-1])
    assert said == {"interrupted": True, "alive": []}, said
    con = csload.connect(db_path, read_only=True)
    try:
        loaded = {r[0] for r in con.execute(
            "SELECT run_id FROM _csload.runs WHERE status = 'loaded'").fetchall()}
    finally:
        con.close()
    everything = set(successful_runs(simulator))
    assert loaded and loaded < everything   # stopped part way, whole runs only
    rest = csload.sync(settings, db=db_path)   # the next sync loads exactly the rest
    assert loaded | {r.run_id for r in rest.loaded} == everything
    assert_db_matches(db_path, expected_tables(simulator, sorted(everything)))


def test_a_failed_open_lets_go_of_its_claim_once(
        db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store whose open failed after it was made must not, once collected, let go of the
    claim a later open of the same file has made (which would let a third one in)."""
    def broken(self: Ledger) -> None:
        raise StoreError("the ledger cannot be made")

    with monkeypatch.context() as patched:
        patched.setattr(Ledger, "ensure", broken)
        try:
            DuckDBStore.open(db_path)
        except StoreError as exc:
            failed = exc   # its traceback holds the unclosed store
        else:
            raise AssertionError("the open should have failed")
    store = DuckDBStore.open(db_path)
    try:
        del failed
        gc.collect()
        with pytest.raises(StoreLockedError, match="is being synced by this process already"):
            DuckDBStore.open(db_path)
    finally:
        store.close()
    DuckDBStore.open(db_path).close()   # closed: the file is free again


def test_a_sync_puts_back_the_settings_of_the_process_own_connection(
        simulator: Simulator, settings: Settings, db_path: Path) -> None:
    """A connection of the user's own to the file (read-write, which a sync goes ahead
    beside) shares the database instance's settings: after a sync its queries ran under the
    sync's 240 MB memory cap, without insertion order (QA, 2026-12-08)."""
    csload.sync(settings, db=db_path)
    con = csload.connect(db_path)
    try:
        con.execute("SET memory_limit = '2GiB'")
        names = ["memory_limit", "preserve_insertion_order", "write_buffer_row_group_count"]

        def current() -> list[object]:
            return [con.execute(f"SELECT current_setting('{n}')").fetchone() for n in names]

        before = current()
        assert before[0] != ("240.0 MiB",) and before[1] == (True,)
        simulator.advance_days(1)
        report = csload.sync(settings, db=db_path)
        assert report.loaded, report.to_json()
        assert current() == before
        # And the default comes back exactly, not as the text it reads as.
        con.execute("RESET memory_limit")
        default = current()
        simulator.advance_days(1)
        assert csload.sync(settings, db=db_path).loaded
        assert current() == default
    finally:
        con.close()
