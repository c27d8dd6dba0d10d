"""Exactly once in a lake, every case of the DuckDB store, on a local disk and on S3.

Each test checks the lake through csload (`connect_lake`) and as a Delta reader
sees it (`Lake.listed`): once `apply` returns, both agree and no key appears twice.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from csload.errors import StoreError
from csload.lake import ParquetStore
from csload.lake.work import LakeReads
from csload.load.duckdb import DuckDBStore
from csload.transfer.staged import StagedRun
from tests.support.lakeutil import Lake
from tests.support.partgen import Writer, job, run
from tests.support.supersede_oracle import reference, scenario

D1 = date(2026, 11, 20)
D2 = D1 + timedelta(days=1)
D3 = D1 + timedelta(days=2)
VIEW_FIELDS = ["session_id", "view_number", "view_time", "url"]
CONTENTS = ("SELECT session_id, view_number, url, _run_id FROM {t} "
            "ORDER BY session_id, view_number NULLS FIRST, url, _run_id")


def vrow(sid: int, vn: int, day: date, url: str) -> dict[str, Any]:
    return {"session_id": sid, "view_number": vn,
            "view_time": datetime(day.year, day.month, day.day, 12), "url": url}


def contents(lake: Lake, table: str = "views") -> list[tuple[Any, ...]]:
    """The table through csload; asserts a Delta reader of the log sees the same."""
    con = lake.connect()
    try:
        got = con.execute(CONTENTS.format(t=table)).fetchall()
    finally:
        con.close()
    assert sorted(lake.listed(table, CONTENTS.format(t="t")), key=repr) == sorted(got, key=repr)
    return got


def days(lake: Lake, table: str = "views") -> list[str]:
    """The table's partitions (date=...) in the version the ledger records."""
    entry = lake.snapshot().tables.get(table)
    return sorted(f"date={key}" for key in (entry.files if entry else {}))


def test_apply_twice_is_a_no_op(lake: Lake, writer: Writer) -> None:
    staged = writer.staged(job(1, fields=VIEW_FIELDS), run(10, 1, D1),
                           [[vrow(1, 1, D1, "a"), vrow(1, 2, D1, "b")]])
    with lake.open() as store:
        first = store.apply([staged])
        version = store.snapshot.state.batch
    before = contents(lake)
    files = lake.files()
    with lake.open() as store:   # a re-sync: a new process, same lake
        second = store.apply([staged, staged])
        assert store.loaded_runs() == {10}
        assert store.snapshot.state.batch == version
    assert first[0].status == "loaded"
    assert [o.status for o in second] == ["skipped", "skipped"]
    assert contents(lake) == before
    assert lake.files() == files   # nothing written at all


def test_same_run_twice_in_one_call(lake: Lake, writer: Writer) -> None:
    staged = writer.staged(job(1, fields=VIEW_FIELDS), run(10, 1, D1), [[vrow(1, 1, D1, "a")]])
    with lake.open() as store:
        out = store.apply([staged, staged])
    assert [o.status for o in out] == ["loaded", "skipped"]
    assert len(contents(lake)) == 1


def test_rerun_of_a_day_replaces_it(lake: Lake, writer: Writer) -> None:
    j = job(1, fields=VIEW_FIELDS)
    with lake.open() as store:
        store.apply([writer.staged(j, run(10, 1, D1),
                                   [[vrow(1, 1, D1, "old"), vrow(2, 1, D1, "gone")]]),
                     writer.staged(j, run(11, 1, D2), [[vrow(3, 1, D2, "next day")]])])
        next_day = [f for f in lake.current_files() if "date=2026-11-21" in f]
        store.apply([writer.staged(j, run(12, 1, D1, finished_hours=30),
                                   [[vrow(1, 1, D1, "new"), vrow(1, 1, D1, "new")]])])
    assert contents(lake) == [(1, 1, "new", 12), (3, 1, "next day", 11)]
    # the other day's file was not rewritten; the re-run day has one new file
    assert [f for f in lake.current_files() if "date=2026-11-21" in f] == next_day
    assert len([f for f in lake.current_files() if "date=2026-11-20" in f]) == 1


def test_rerun_of_a_keyless_job_replaces_its_window(lake: Lake, writer: Writer) -> None:
    j = job(1, fields=["session_id", "url"])   # no view_number: no row key
    with lake.open() as store:
        store.apply([writer.staged(j, run(10, 1, D1), [[{"session_id": 1, "url": "a"},
                                                        {"session_id": 1, "url": "a"}]])])
        store.apply([writer.staged(j, run(11, 1, D1, finished_hours=9),
                                   [[{"session_id": 1, "url": "b"}]])])
    con = lake.connect()
    assert con.execute("SELECT session_id, url, _run_id FROM views").fetchall() == [(1, "b", 11)]
    assert lake.listed("views", "SELECT count(*) FROM t") == [(1,)]


def test_older_run_applied_late_does_not_win(lake: Lake, writer: Writer) -> None:
    j = job(1, fields=VIEW_FIELDS)
    newer = writer.staged(j, run(12, 1, D1, finished_hours=30), [[vrow(1, 1, D1, "new")]])
    older = writer.staged(j, run(10, 1, D1), [[vrow(1, 1, D1, "old"), vrow(2, 1, D1, "old2")]])
    with lake.open() as store:
        store.apply([newer])
    with lake.open() as store:
        [outcome] = store.apply([older])
    assert outcome.status == "loaded" and outcome.rows == 0
    assert contents(lake) == [(1, 1, "new", 12)]


def test_once_job_overlapping_daily_runs(lake: Lake, writer: Writer) -> None:
    daily = job(1, fields=VIEW_FIELDS)
    once = job(2, fmt="JSONL", frequency="once",
               fields=[("session_id", "sid"), ("view_number", "n"), "view_time", "url"])
    with lake.open() as store:
        store.apply([
            writer.staged(daily, run(10, 1, D1), [[vrow(1, 1, D1, "d1"), vrow(2, 1, D1, "d1")]]),
            writer.staged(daily, run(11, 1, D2), [[vrow(3, 1, D2, "d2")]]),
        ])
        once_rows = [{"sid": 1, "n": 1, "view_time": None, "url": "once"},
                     {"sid": 3, "n": 1, "view_time": None, "url": "once"}]
        store.apply([writer.staged(once, run(20, 2, D1, days=3, finished_hours=48),
                                   [once_rows])])
    query = ("SELECT coalesce(session_id, sid), coalesce(view_number, n), url, _run_id, _date "
             "FROM {t} ORDER BY 1, 2")
    got = lake.connect().execute(query.format(t="views")).fetchall()
    # one row per key, the once run (finished last) wins where it has the key; its rows have
    # no view_time, so they are dated by the window start: key 3 moved from D2 to D1
    assert got == [(1, 1, "once", 20, D1), (2, 1, "d1", 10, D1), (3, 1, "once", 20, D1)]
    assert sorted(lake.listed("views", query.format(t="t"))) == got
    assert days(lake) == ["date=2026-11-20"]   # D2 lost its only row: the day is gone


def test_key_moving_to_another_date_leaves_its_old_partition(lake: Lake, writer: Writer
                                                               ) -> None:
    """A key re-delivered with another date is removed from the partition it was in, even
    when the batch does not touch that partition otherwise."""
    daily = job(1, fields=VIEW_FIELDS)
    keyed_no_date = job(2, fmt="JSONL", frequency="once",
                        fields=["session_id", "view_number", "url"])
    with lake.open() as store:
        store.apply([writer.staged(daily, run(10, 1, D3),
                                   [[vrow(7, 1, D3, "d3"), vrow(8, 1, D3, "d3")]])])
        store.apply([writer.staged(daily, run(11, 1, D2), [[vrow(9, 1, D2, "d2")]])])
        store.apply([writer.staged(keyed_no_date, run(20, 2, D1, finished_hours=200),
                                   [[{"session_id": 7, "view_number": 1, "url": "moved"}]])])
    got = lake.connect().execute(
        "SELECT session_id, url, _date FROM views ORDER BY 1").fetchall()
    assert got == [(7, "moved", D1), (8, "d3", D3), (9, "d2", D2)]
    assert sorted(lake.listed("views", "SELECT session_id, url, _date FROM t")) == got


def test_late_old_run_cannot_resurrect_a_key_a_rerun_removed(lake: Lake, writer: Writer
                                                              ) -> None:
    daily = job(1, fields=VIEW_FIELDS)
    once = job(2, frequency="once", fields=VIEW_FIELDS)
    o = writer.staged(once, run(5, 2, D1, finished_hours=1), [[vrow(9, 1, D1, "o")]])
    d = writer.staged(daily, run(10, 1, D1, finished_hours=2), [[vrow(9, 1, D1, "d")]])
    rerun = writer.staged(daily, run(11, 1, D1, finished_hours=3), [[vrow(8, 1, D1, "r")]])
    with lake.open() as store:
        store.apply([d])
    with lake.open() as store:
        store.apply([rerun])
    with lake.open() as store:   # tombstones live in the lake's ledger
        store.apply([o])
    assert contents(lake) == [(8, 1, "r", 11)]


def test_one_call_for_two_tables(lake: Lake, writer: Writer) -> None:
    views = writer.staged(job(1, fields=VIEW_FIELDS), run(10, 1, D1), [[vrow(1, 1, D1, "v")]])
    sessions = writer.staged(job(2, scope="sessions", fmt="JSONL", fields=["session_id"]),
                             run(20, 2, D1), [[{"session_id": 1}, {"session_id": 2}]])
    with lake.open() as store:
        out = store.apply([sessions, views])
        assert store.snapshot.state.batch == 1   # one batch for both tables
    assert [(o.run_id, o.status, o.rows) for o in out] == [(20, "loaded", 2), (10, "loaded", 1)]
    assert lake.connect().execute("SELECT count(*) FROM sessions").fetchone() == (2,)
    assert lake.listed("sessions", "SELECT count(*) FROM t") == [(2,)]


def _apply_in_batches(store: DuckDBStore | ParquetStore, staged: dict[int, StagedRun],
                      order: list[int], rng: random.Random) -> None:
    i = 0
    while i < len(order):
        size = rng.randint(1, 4)
        batch = [staged[r] for r in order[i:i + size]]
        assert all(o.status == "loaded" for o in store.apply(batch))
        i += size


@pytest.mark.parametrize("seed", range(4))
def test_any_order_and_batching_gives_the_reference(lake: Lake, tmp_path: Path, seed: int
                                                    ) -> None:
    """The DuckDB store's randomized test, on a lake, re-opened between batches at times."""
    cases = scenario()
    rng = random.Random(seed)
    order = [c.run.run_id for c in cases]
    rng.shuffle(order)
    writer = Writer(tmp_path)
    staged = {c.run.run_id: writer.staged(c.job, c.run, [c.rows]) for c in cases}
    half = len(order) // 2
    with lake.open() as store:
        _apply_in_batches(store, staged, order[:half], rng)
    with lake.open() as store:
        _apply_in_batches(store, staged, order[half:], rng)
    query = "SELECT session_id, view_number, url, _run_id FROM {t}"
    got = lake.connect().execute(query.format(t="views")).fetchall()
    key = lambda t: (t[0], -1 if t[1] is None else t[1], t[2], t[3])  # noqa: E731
    assert sorted(got, key=key) == reference(cases)
    assert sorted(lake.listed("views", query.format(t="t")), key=key) == reference(cases)


def test_same_batches_as_the_duckdb_store(lake: Lake, tmp_path: Path) -> None:
    """Every column, lineage included, equals what the DuckDB target holds."""
    cases = scenario()
    rng = random.Random(99)
    order = [c.run.run_id for c in cases]
    rng.shuffle(order)
    writer = Writer(tmp_path)
    staged = {c.run.run_id: writer.staged(c.job, c.run, [c.rows]) for c in cases}
    with lake.open() as store:
        _apply_in_batches(store, staged, order, random.Random(1))
    with DuckDBStore.open(tmp_path / "db.duckdb") as db:
        _apply_in_batches(db, staged, order, random.Random(1))
        expected = db.con.execute("SELECT * EXCLUDE (_loaded_at) FROM views").fetchall()
        expected_columns = [r[0] for r in db.con.execute("DESCRIBE views").fetchall()]
    con = lake.connect()
    got = con.execute("SELECT * EXCLUDE (_loaded_at) FROM views").fetchall()
    assert [r[0] for r in con.execute("DESCRIBE views").fetchall()] == expected_columns
    assert sorted(got, key=repr) == sorted(expected, key=repr)


def test_rerun_drops_rows_its_earlier_run_put_in_another_partition(lake: Lake, writer: Writer
                                                                   ) -> None:
    """A run's rows may be dated outside its window (a view after midnight): a re-run of
    the window removes them too, wherever they are (the ledger knows each run's days)."""
    j = job(1, fields=VIEW_FIELDS)
    with lake.open() as store:
        store.apply([writer.staged(j, run(10, 1, D1), [[vrow(1, 1, D1, "a"),
                                                        vrow(1, 2, D2, "after midnight")]]),
                     writer.staged(j, run(11, 1, D3), [[vrow(5, 1, D3, "other day")]])])
        store.apply([writer.staged(j, run(12, 1, D1, finished_hours=30),
                                   [[vrow(1, 1, D1, "b")]])])
    assert contents(lake) == [(1, 1, "b", 12), (5, 1, "other day", 11)]
    assert days(lake) == ["date=2026-11-20", "date=2026-11-22"]


def test_a_replaced_day_is_read_by_its_keys_only(lake: Lake, writer: Writer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A re-run whose window covers every row of a day: the day's old rows are only read for
    their keys and lineage (tombstones, counts), then removed; the other day a key of the
    re-run is found in is read whole."""
    j = job(1, fields=VIEW_FIELDS)
    with lake.open() as store:
        store.apply([writer.staged(j, run(10, 1, D1), [[vrow(1, 1, D1, "a"),
                                                        vrow(2, 1, D1, "b")]]),
                     writer.staged(j, run(11, 1, D2), [[vrow(3, 1, D2, "c")]])])
    read: dict[str, set[str]] = {"whole": set(), "keys": set()}
    whole, keys_only = LakeReads.read_partitions, LakeReads.read_replaced

    def read_partitions(self: LakeReads, con: Any, table: str, found: set[str]) -> None:
        read["whole"] |= found
        whole(self, con, table, found)

    def read_replaced(self: LakeReads, con: Any, table: str, found: set[str],
                      *args: Any) -> set[str]:
        read["keys"] |= found
        return keys_only(self, con, table, found, *args)

    monkeypatch.setattr(LakeReads, "read_partitions", read_partitions)
    monkeypatch.setattr(LakeReads, "read_replaced", read_replaced)
    with lake.open() as store:
        [outcome] = store.apply([writer.staged(j, run(12, 1, D1, finished_hours=30),
                                               [[vrow(1, 1, D1, "new"), vrow(3, 1, D1, "moved")]])])
    assert read == {"whole": {"2026-11-21"}, "keys": {"2026-11-20"}}
    assert (outcome.rows, outcome.replaced, outcome.removed) == (2, 2, 1)   # a, c; then b
    assert contents(lake) == [(1, 1, "new", 12), (3, 1, "moved", 12)]
    # the key the re-run removed stays removed: an older run applied late cannot bring it back
    with lake.open() as store:
        store.apply([writer.staged(j, run(9, 1, D1), [[vrow(2, 1, D1, "older")]])])
    assert contents(lake) == [(1, 1, "new", 12), (3, 1, "moved", 12)]


def test_rows_of_a_replaced_day_left_by_the_rules_are_never_published(
        lake: Lake, writer: Writer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The replaced day's rows are in the work table without their columns: if the window
    rule did not remove them (a bug), the publish refuses, and nothing of the batch counts."""
    j = job(1, fields=VIEW_FIELDS)
    with lake.open() as store:
        store.apply([writer.staged(j, run(10, 1, D1), [[vrow(1, 1, D1, "a")]])])
    files = lake.current_files()
    monkeypatch.setattr(DuckDBStore, "_apply_window_rule", lambda *args: None)
    with lake.open() as store, pytest.raises(StoreError, match="replaces were kept"):
        store.apply([writer.staged(j, run(12, 1, D1, finished_hours=30),
                                   [[vrow(2, 1, D1, "new")]])])
    assert lake.current_files() == files
    assert contents(lake) == [(1, 1, "a", 10)]
