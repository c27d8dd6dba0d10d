"""Two writers, and readers during a sync: the Delta log's optimistic concurrency.

A lake has no lock: each commit of a sync is made from the snapshot it read, so a second
writer's commit in between makes it fail cleanly (LakeConflict, a StoreLockedError), with
nothing of its batch counted; the next sync loads that batch once. A reader of a table's log
sees each day whole while a sync replaces it, again and again.
"""

from __future__ import annotations

import threading
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from csload.errors import LakeConflict, StoreLockedError
from csload.lake import recovery
from csload.lake import store as lake_store
from csload.lake.delta import WrittenFile, commit_files, open_table
from csload.lake.fs import LakeFS
from csload.lake.store import ParquetStore
from tests.support.lakeutil import Lake
from tests.support.partgen import Writer, job, run

D1, D2 = date(2026, 11, 20), date(2026, 11, 21)
FIELDS = ["session_id", "view_number", "view_time", "url"]


def rows(day: date, n: int, tag: str, first_id: int = 0) -> list[dict[str, Any]]:
    """`n` views of sessions first_id, first_id + 1, ... (a key each) on `day`."""
    return [{"session_id": first_id + i, "view_number": 1,
             "view_time": datetime(day.year, day.month, day.day, 12), "url": tag}
            for i in range(n)]


def test_a_second_writer_fails_cleanly_and_nothing_is_lost(lake: Lake, writer: Writer) -> None:
    j = job(1, fields=FIELDS)
    first = writer.staged(j, run(10, 1, D1), [rows(D1, 5, "first")])
    second = writer.staged(j, run(11, 1, D2), [rows(D2, 3, "second", first_id=100)])
    with lake.open() as one, lake.open() as two:
        assert [o.status for o in one.apply([first])] == ["loaded"]
        with pytest.raises(LakeConflict, match="another process committed") as caught:
            two.apply([second])
        assert isinstance(caught.value, StoreLockedError)
    con = lake.connect()
    assert con.execute("SELECT url, count(*) FROM views GROUP BY 1").fetchall() == [
        ("first", 5)]
    with lake.open() as store:   # the next sync loads the second writer's run, once
        assert store.loaded_runs() == {10}
        assert [o.status for o in store.apply([first, second])] == ["skipped", "loaded"]
    assert sorted(lake.connect().execute(
        "SELECT url, count(*) FROM views GROUP BY 1").fetchall()) == [("first", 5),
                                                                      ("second", 3)]
    assert lake.listed("views", "SELECT count(*) FROM t") == [(8,)]


@pytest.mark.parametrize("table", ["new", "existing"])
def test_a_sync_opening_between_anothers_commits_makes_that_one_fail_cleanly(
        lake: Lake, writer: Writer, monkeypatch: pytest.MonkeyPatch, table: str) -> None:
    """A second sync opens the lake while the first is between its table's commit and the
    ledger's. Its recovery cannot tell that commit from a crashed sync's and undoes it (or
    removes the table, when the commit created it); the first sync's ledger commit must then
    fail (LakeConflict), not record runs whose rows are gone. Before: with a new table, the
    first's ledger named a table whose log the second had removed, and every later open said
    the lake was damaged ("restore the lake from a backup")."""
    j = job(1, fields=FIELDS)
    first = writer.staged(j, run(10, 1, D1), [rows(D1, 5, "first")])
    second = writer.staged(j, run(11, 1, D2), [rows(D2, 3, "second", first_id=100)])
    if table == "existing":
        with lake.open() as store:
            store.apply([first])
    commit_ledger = lake_store.ParquetStore._commit_ledger
    others: list[ParquetStore] = []

    def another_sync_opens_first(self: ParquetStore, *args: Any) -> Any:
        if not others:
            others.append(lake.open())   # its recovery runs now
        return commit_ledger(self, *args)

    monkeypatch.setattr(lake_store.ParquetStore, "_commit_ledger", another_sync_opens_first)
    with lake.open() as store, pytest.raises(LakeConflict, match="another process committed"):
        store.apply([second])
    monkeypatch.undo()
    others[0].close()

    with lake.open() as store:   # the lake opens; the next sync loads the failed batch once
        assert store.loaded_runs() == ({10} if table == "existing" else set())
        assert [o.status for o in store.apply([first, second])] == [
            "skipped" if table == "existing" else "loaded", "loaded"]
    expected = [("first", 5), ("second", 3)]
    assert sorted(lake.connect().execute(
        "SELECT url, count(*) FROM views GROUP BY 1").fetchall()) == expected
    assert lake.listed("views", "SELECT count(*) FROM t") == [(8,)]


def test_a_sync_recovering_from_a_stale_snapshot_never_removes_a_table_just_recorded(
        lake: Lake, writer: Writer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second sync reads the ledger, then the first commits its new table's ledger entry,
    then the second looks at the tables: from its stale snapshot the new table is unrecorded.
    It must read the lake again, not remove a table the ledger now names. Before: it removed
    it, and the lake was left damaged ("the ledger names table views, which has no Delta
    log")."""
    j = job(1, fields=FIELDS)
    first = writer.staged(j, run(10, 1, D1), [rows(D1, 5, "first")])
    commit_ledger = lake_store.ParquetStore._commit_ledger
    listed = recovery.table_folders
    done: dict[str, Any] = {}

    def ledger_committed_while_another_sync_looks(self: ParquetStore, *args: Any) -> Any:
        def folders(fs: Any) -> list[str]:
            names = listed(fs)
            if "ledger" not in done:   # the first sync records its new table, just now
                done["ledger"] = commit_ledger(self, *args)
            return names

        monkeypatch.setattr(recovery, "table_folders", folders)
        done["other"] = lake.open()   # its snapshot was read before the ledger commit
        monkeypatch.setattr(recovery, "table_folders", listed)
        return done["ledger"]

    monkeypatch.setattr(lake_store.ParquetStore, "_commit_ledger",
                        ledger_committed_while_another_sync_looks)
    with lake.open() as store:
        assert [o.status for o in store.apply([first])] == ["loaded"]
    monkeypatch.undo()
    done["other"].close()

    with lake.open() as store:
        assert store.loaded_runs() == {10}
    assert lake.connect().execute("SELECT url, count(*) FROM views GROUP BY 1").fetchall() == [
        ("first", 5)]
    assert lake.listed("views", "SELECT count(*) FROM t") == [(5,)]


DAY_SCHEMA = pa.schema([("x", pa.int64()), ("date", pa.date32())])


def commit_a_new_day_twice_at_once(lake: LakeFS, snapshots: list[DeltaTable | None]
                                   ) -> list[str]:
    """Two writers commit the same new day of table views, each from its snapshot, released
    together: what each got ("committed" or "conflict")."""
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def commit(writer: int) -> None:
        new = [WrittenFile(f"date=2026-11-21/part-{writer}.parquet", 10, "2026-11-21", 1)]
        start.wait()
        try:
            commit_files(lake, "views", snapshots[writer], new, DAY_SCHEMA, replace={}, txn=2,
                         txid=f"t{writer}", configuration={})
            outcomes.append("committed")
        except LakeConflict:
            outcomes.append("conflict")

    writers = [threading.Thread(target=commit, args=(w,)) for w in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    return sorted(outcomes)


@pytest.mark.parametrize("table", ["new", "existing"])
def test_two_commits_racing_for_one_version_let_one_through(
        tmp_path: Path, table: str) -> None:
    """Two syncs commit the same new day of a table (a new table: both create it) from the
    same snapshot, at the same moment, ten times. One commit goes in, the other fails with
    LakeConflict, every time. Before: deltalake retried a losing create at the next version,
    a second CREATE TABLE on top of the winner's (29 of 30 racing creates), and a ledger that
    recorded that version counted the day's rows twice. (Two appends were already caught: a
    batch's commits carry the same application transaction.)"""
    for trial in range(10):
        lake = LakeFS.open(str(tmp_path / f"lake-{trial}"))
        lake.ensure_root()
        snapshots: list[DeltaTable | None] = [None, None]
        if table == "existing":
            commit_files(lake, "views", None,
                         [WrittenFile("date=2026-11-20/a.parquet", 10, "2026-11-20", 1)],
                         DAY_SCHEMA, replace={}, txn=1, txid="t0", configuration={})
            snapshots = [open_table(lake, "views") for _ in range(2)]

        assert commit_a_new_day_twice_at_once(lake, snapshots) == ["committed", "conflict"]

        latest = open_table(lake, "views")
        assert latest is not None
        assert latest.version() == (0 if table == "new" else 1), trial
        assert len([f for f in latest.file_uris() if "2026-11-21" in f]) == 1, trial


def test_readers_never_see_a_half_replaced_day(lake: Lake, writer: Writer) -> None:
    """A sync replaces day D1 (500 rows) ten times; readers of the log and of csload count
    it all along: always 500 rows, of one run."""
    j = job(1, fields=FIELDS)
    reruns = [writer.staged(j, run(10 + i, 1, D1, finished_hours=1 + i),
                            [rows(D1, 500, f"rev{i}")]) for i in range(10)]
    with lake.open() as store:
        store.apply(reruns[:1])
    seen: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def sync() -> None:
        try:
            with lake.open() as store:
                for staged in reruns[1:]:
                    store.apply([staged])
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=sync)
    thread.start()
    try:
        while thread.is_alive() or not seen:
            seen += lake.listed("views", "SELECT count(*), count(DISTINCT url) FROM t")
            con = lake.connect()
            try:
                seen += con.execute("SELECT count(*), count(DISTINCT url) FROM views"
                                    ).fetchall()
            finally:
                con.close()
    finally:
        thread.join()
    assert not errors, errors
    assert len(seen) >= 2 and set(seen) == {(500, 1)}
    assert lake.connect().execute("SELECT DISTINCT url FROM views").fetchall() == [("rev9",)]
