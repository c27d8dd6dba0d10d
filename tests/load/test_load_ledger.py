"""The ledger: statuses, the queries `csload status` needs, locking, schema version."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csload.errors import StoreError, StoreLockedError
from csload.load.duckdb import DuckDBStore, connect
from csload.load.outcome import UnloadedRun
from csload.load.supersede import Drop, RunWindow, window_drops
from tests.support.partgen import Writer, job, run

D1 = date(2026, 11, 20)
FIELDS = ["session_id", "view_number", "view_time"]


def vrows(day: date, n: int) -> list[dict[str, object]]:
    t = datetime(day.year, day.month, day.day, 9)
    base = day.toordinal() * 1000   # days never share a session id
    return [{"session_id": base + i, "view_number": 1, "view_time": t} for i in range(n)]


def test_statuses_and_queries(store: DuckDBStore, writer: Writer) -> None:
    j = job(1, fields=FIELDS)
    days = [D1, D1 + timedelta(days=1), D1 + timedelta(days=3)]
    store.apply([writer.staged(j, run(10 + i, 1, d), [vrows(d, 2 + i)])
                 for i, d in enumerate(days)])
    store.record_failed(j, run(20, 1, D1 + timedelta(days=4)), "boom")
    store.record_unloaded([UnloadedRun(j, run(21, 1, D1 + timedelta(days=5)), "expired",
                                       "its files expired")])
    store.record_failed(j, run(10, 1, D1), "late failure")   # loaded stays loaded

    assert store.loaded_runs() == {10, 11, 12}
    assert [r.run_id for r in store.ledger.failed_runs()] == [20]
    assert store.ledger.failed_runs()[0].message == "boom"
    assert [r.run_id for r in store.ledger.expired_runs()] == [21]
    start = datetime(2026, 11, 23, tzinfo=UTC)
    assert store.ledger.last_loaded_windows() == {1: (start, start + timedelta(days=1))}
    [stats] = store.ledger.table_stats()
    assert (stats.table, stats.rows, stats.first_date, stats.last_date) == (
        "views", 2 + 3 + 4, D1, D1 + timedelta(days=3))
    assert store.ledger.daily_gaps() == {1: [D1 + timedelta(days=2)]}
    record = {r.run_id: r for r in store.ledger.runs()}[12]
    assert (record.rows, record.rows_read, record.parts, record.status) == (4, 4, 1, "loaded")
    assert record.bytes and record.bytes > 0

    # a failed run that is later loaded becomes loaded
    store.apply([writer.staged(j, run(20, 1, D1 + timedelta(days=4)), [vrows(D1, 1)])])
    assert store.ledger.failed_runs() == []
    parts = store.con.execute("SELECT run_id, part_id, job_id FROM _csload.parts "
                              "ORDER BY run_id").fetchall()
    assert parts == [(10, 1, 1), (11, 1, 1), (12, 1, 1), (20, 1, 1)]
    jobs = store.ledger.jobs()
    assert jobs[1][1] == "views" and [f.field_name for f in jobs[1][0].fields] == FIELDS


def test_one_batch_records_every_run_and_part(store: DuckDBStore, writer: Writer) -> None:
    """Runs applied together get their ledger rows in one statement each: every run and
    every part, with its own counts and bytes."""
    j = job(1, fields=FIELDS)
    staged = [writer.staged(j, run(30 + i, 1, D1 + timedelta(days=i)),
                            [vrows(D1 + timedelta(days=i), 2 + i)] * (i + 1))
              for i in range(3)]
    store.apply(staged)
    runs = store.con.execute("SELECT run_id, job_id, table_name, status, rows_read, rows, "
                             "bytes, parts FROM _csload.runs ORDER BY run_id").fetchall()
    assert runs == [
        (30 + i, 1, "views", "loaded", (2 + i) * (i + 1), 2 + i,
         sum(p.bytes for p in s.parts), i + 1)
        for i, s in enumerate(staged)]
    parts = store.con.execute("SELECT run_id, part_id, job_id, bytes FROM _csload.parts "
                              "ORDER BY run_id, part_id").fetchall()
    assert parts == [(s.run.run_id, p.part_id, 1, p.bytes) for s in staged for p in s.parts]
    assert store.con.execute("SELECT count(*) FROM _csload.jobs").fetchone() == (1,)


def test_reopen_keeps_everything(db_path: Path, writer: Writer) -> None:
    with DuckDBStore.open(db_path) as store:
        store.apply([writer.staged(job(1, fields=FIELDS), run(10, 1, D1), [vrows(D1, 3)])])
    with DuckDBStore.open(db_path) as store:
        assert store.loaded_runs() == {10}
    con = connect(db_path, read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM views").fetchone() == (3,)
    finally:
        con.close()


def test_newer_ledger_is_refused(db_path: Path) -> None:
    DuckDBStore.open(db_path).close()
    con = connect(db_path)
    con.execute("UPDATE _csload.meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(StoreError, match="upgrade csload"):
        DuckDBStore.open(db_path)


def test_locked_database(db_path: Path) -> None:
    DuckDBStore.open(db_path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, duckdb; c = duckdb.connect(sys.argv[1]); print('HELD', flush=True); "
         "sys.stdin.read()", str(db_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "HELD"
        with pytest.raises(StoreLockedError) as info:
            DuckDBStore.open(db_path)
        message = str(info.value)
        assert f"PID {holder.pid}" in message and "--wait" in message
        assert str(db_path) in message
        with pytest.raises(StoreLockedError):
            connect(db_path)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
        holder.stdout.close()  # type: ignore[union-attr]


# --- the window rule, as a pure function ----------------------------------------------------

def w(run_id: int, job_id: int, start_day: int, days: int, order: int) -> RunWindow:
    start = datetime(2026, 11, start_day, tzinfo=UTC)
    return RunWindow(run_id, job_id, start, start + timedelta(days=days), order)


def test_window_drops() -> None:
    loaded = [w(1, 1, 20, 1, 1), w(2, 1, 21, 1, 2), w(3, 2, 20, 1, 3)]
    # a re-run of the 20th by job 1 drops run 1 whole; job 2's run is another job's data
    assert window_drops([w(4, 1, 20, 1, 10)], loaded) == [Drop(1)]
    # an older run arriving late is dropped by the newer loaded one
    assert window_drops([w(5, 1, 21, 1, 0)], loaded) == [Drop(5)]
    # partial overlap: only the shared days
    assert window_drops([w(6, 1, 21, 3, 10)], [w(7, 1, 20, 2, 1)]) == [
        Drop(7, date(2026, 11, 21), date(2026, 11, 22))]
    # hours of one day do not overlap each other
    h = datetime(2026, 11, 20, 10, tzinfo=UTC)
    hours = [RunWindow(8, 1, h, h + timedelta(hours=1), 1),
             RunWindow(9, 1, h + timedelta(hours=1), h + timedelta(hours=2), 2)]
    assert window_drops(hours[1:], hours[:1]) == []
    # pairs of loaded runs were handled before
    assert window_drops([], loaded) == []


def all_pairs_drops(batch: list[RunWindow], loaded: list[RunWindow]) -> list[Drop]:
    """The rule stated plainly (every pair of a job's runs, one of them in the batch): the
    reference for `window_drops`' index by day."""
    batch_ids = {x.run_id for x in batch}
    runs = {x.run_id: x for x in [*loaded, *batch]}
    drops: set[Drop] = set()
    for old in runs.values():
        for new in runs.values():
            if (old.job_id != new.job_id or new.order <= old.order
                    or not batch_ids & {old.run_id, new.run_id}):
                continue
            assert old.start and old.end and new.start and new.end
            start, end = max(old.start, new.start), min(old.end, new.end)
            if start < end:
                drops.add(Drop(old.run_id) if new.start <= old.start and old.end <= new.end
                          else Drop(old.run_id, start.date(),
                                    (end - timedelta(microseconds=1)).date()
                                    + timedelta(days=1)))
    whole = {d.run_id for d in drops if d.date_from is None}
    return sorted((d for d in drops if d.date_from is None or d.run_id not in whole),
                  key=drop_key)


def drop_key(d: Drop) -> tuple[int, date, date]:
    return d.run_id, d.date_from or date.min, d.date_to or date.min


@given(st.lists(st.tuples(st.integers(1, 2), st.integers(0, 96), st.integers(1, 60)),
                min_size=1, max_size=12),
       st.integers(0, 11))
def test_window_drops_is_the_rule_over_every_pair(shapes: list[tuple[int, int, int]],
                                                   cut: int) -> None:
    base = datetime(2026, 11, 20, tzinfo=UTC)
    windows = [RunWindow(i + 1, job_id, base + timedelta(hours=at),
                         base + timedelta(hours=at + hours), (i * 7919) % 97)
               for i, (job_id, at, hours) in enumerate(shapes)]
    loaded, batch = windows[:cut], windows[cut:]
    assert sorted(window_drops(batch, loaded), key=drop_key) == all_pairs_drops(batch, loaded)
