"""Exactly once under every ordering: re-runs, overlapping jobs, late older runs, batching.

The reference semantics is "apply every run one after the other in (finished_at, run_id)
order"; `reference()` (tests/support/supersede_oracle.py) is that, in plain Python, and the
store must agree with it whatever order and batching the runs arrive in.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from csload.load.duckdb import DuckDBStore
from csload.transfer.staged import StagedRun
from tests.support.partgen import Writer, job, run
from tests.support.supersede_oracle import D1, VIEW_FIELDS, reference, scenario, vrow


def contents(store: DuckDBStore) -> list[tuple[Any, ...]]:
    return store.con.execute(
        "SELECT session_id, view_number, url, _run_id FROM views "
        "ORDER BY session_id, view_number NULLS FIRST, url, _run_id").fetchall()


def test_apply_twice_is_a_no_op(store: DuckDBStore, writer: Writer) -> None:
    staged = writer.staged(job(1, fields=VIEW_FIELDS), run(10, 1, D1),
                           [[vrow(1, 1, D1, "a"), vrow(1, 2, D1, "b")]])
    first = store.apply([staged])
    before = contents(store)
    second = store.apply([staged, staged])
    assert first[0].status == "loaded"
    assert [o.status for o in second] == ["skipped", "skipped"]
    assert contents(store) == before
    assert store.loaded_runs() == {10}


def test_same_run_twice_in_one_call(store: DuckDBStore, writer: Writer) -> None:
    staged = writer.staged(job(1, fields=VIEW_FIELDS), run(10, 1, D1), [[vrow(1, 1, D1, "a")]])
    out = store.apply([staged, staged])
    assert [o.status for o in out] == ["loaded", "skipped"]
    assert len(contents(store)) == 1


def test_rerun_of_a_day_replaces_it(store: DuckDBStore, writer: Writer) -> None:
    j = job(1, fields=VIEW_FIELDS)
    store.apply([writer.staged(j, run(10, 1, D1),
                               [[vrow(1, 1, D1, "old"), vrow(2, 1, D1, "gone")]]),
                 writer.staged(j, run(11, 1, D1 + timedelta(days=1)),
                               [[vrow(3, 1, D1 + timedelta(days=1), "next day")]])])
    [rerun] = store.apply([writer.staged(j, run(12, 1, D1, finished_hours=30),
                                         [[vrow(1, 1, D1, "new"), vrow(1, 1, D1, "new")]])])
    assert (rerun.rows, rerun.rows_read) == (1, 2)   # its own duplicate removed
    # new values win, no duplicates (even within the re-run), rows absent from it are gone,
    # the other day is untouched
    assert contents(store) == [(1, 1, "new", 12), (3, 1, "next day", 11)]


def test_rerun_of_a_keyless_job_replaces_its_window(store: DuckDBStore, writer: Writer) -> None:
    j = job(1, fields=["session_id", "url"])   # no view_number: no row key
    store.apply([writer.staged(j, run(10, 1, D1), [[{"session_id": 1, "url": "a"},
                                                    {"session_id": 1, "url": "a"}]])])
    store.apply([writer.staged(j, run(11, 1, D1, finished_hours=9),
                               [[{"session_id": 1, "url": "b"}]])])
    assert store.con.execute("SELECT session_id, url, _run_id FROM views").fetchall() == [
        (1, "b", 11)]


def test_rows_kept_count_what_a_batch_replaces_within_itself(store: DuckDBStore,
                                                             writer: Writer) -> None:
    """The ledger's rows are counted after the rules: a keyless run replaced by a later run of
    the same batch keeps none of the rows it read."""
    j = job(1, fields=["session_id", "url"])
    out = store.apply([writer.staged(j, run(10, 1, D1), [[{"session_id": 1, "url": "a"},
                                                          {"session_id": 2, "url": "a"}]]),
                       writer.staged(j, run(11, 1, D1, finished_hours=9),
                                     [[{"session_id": 1, "url": "b"}]])])
    assert [(o.run_id, o.rows, o.rows_read) for o in out] == [(10, 0, 2), (11, 1, 1)]
    assert store.con.execute("SELECT run_id, rows, rows_read FROM _csload.runs "
                             "ORDER BY run_id").fetchall() == [(10, 0, 2), (11, 1, 1)]


def test_older_run_applied_late_does_not_win(store: DuckDBStore, writer: Writer) -> None:
    j = job(1, fields=VIEW_FIELDS)
    newer = writer.staged(j, run(12, 1, D1, finished_hours=30), [[vrow(1, 1, D1, "new")]])
    older = writer.staged(j, run(10, 1, D1), [[vrow(1, 1, D1, "old"), vrow(2, 1, D1, "old2")]])
    store.apply([newer])
    [outcome] = store.apply([older])
    assert outcome.status == "loaded" and outcome.rows == 0
    assert contents(store) == [(1, 1, "new", 12)]


def test_once_job_overlapping_daily_runs(store: DuckDBStore, writer: Writer) -> None:
    daily = job(1, fields=VIEW_FIELDS)
    once = job(2, fmt="JSONL", frequency="once",
               fields=[("session_id", "sid"), ("view_number", "n"), "view_time", "url"])
    d2 = D1 + timedelta(days=1)
    store.apply([
        writer.staged(daily, run(10, 1, D1), [[vrow(1, 1, D1, "d1"), vrow(2, 1, D1, "d1")]]),
        writer.staged(daily, run(11, 1, d2), [[vrow(3, 1, d2, "d2")]]),
    ])
    once_rows = [{"sid": 1, "n": 1, "view_time": None, "url": "once"},
                 {"sid": 3, "n": 1, "view_time": None, "url": "once"}]
    store.apply([writer.staged(once, run(20, 2, D1, days=3, finished_hours=48), [once_rows])])
    got = store.con.execute(
        "SELECT coalesce(session_id, sid), coalesce(view_number, n), url, _run_id FROM views "
        "ORDER BY 1, 2").fetchall()
    # one row per key; the once run finished last, so it wins where it has the key
    assert got == [(1, 1, "once", 20), (2, 1, "d1", 10), (3, 1, "once", 20)]


def test_late_old_run_cannot_resurrect_a_key_a_rerun_removed(store: DuckDBStore,
                                                             writer: Writer) -> None:
    """O (oldest) has k; D has k; D's re-run drops k. Applied D, D-rerun, then O: no k."""
    daily = job(1, fields=VIEW_FIELDS)
    once = job(2, frequency="once", fields=VIEW_FIELDS)
    o = writer.staged(once, run(5, 2, D1, finished_hours=1), [[vrow(9, 1, D1, "o")]])
    d = writer.staged(daily, run(10, 1, D1, finished_hours=2), [[vrow(9, 1, D1, "d")]])
    rerun = writer.staged(daily, run(11, 1, D1, finished_hours=3), [[vrow(8, 1, D1, "r")]])
    store.apply([d])
    store.apply([rerun])
    store.apply([o])
    assert contents(store) == [(8, 1, "r", 11)]


# --- every order, every batching, same table -------------------------------------------------

@pytest.mark.parametrize("seed", range(8))
def test_any_order_and_batching_gives_the_reference(tmp_path: Any, seed: int) -> None:
    cases = scenario()
    rng = random.Random(seed)
    order = cases[:]
    rng.shuffle(order)
    writer = Writer(tmp_path)
    staged: dict[int, StagedRun] = {
        c.run.run_id: writer.staged(c.job, c.run, [c.rows]) for c in cases}
    with DuckDBStore.open(tmp_path / "db.duckdb") as store:
        i = 0
        while i < len(order):
            size = rng.randint(1, 4)
            batch = [staged[c.run.run_id] for c in order[i:i + size]]
            assert all(o.status == "loaded" for o in store.apply(batch))
            i += size
        got = store.con.execute(
            "SELECT session_id, view_number, url, _run_id FROM views").fetchall()
    got = sorted(got, key=lambda t: (t[0], -1 if t[1] is None else t[1], t[2], t[3]))
    assert got == reference(cases)


def test_reference_is_what_a_user_expects() -> None:
    """Spot-check the reference itself on the scenario."""
    got = reference(scenario())
    # the once job's re-run (latest) wins its keys; its first run had taken keys 1/1 and 9/1
    # from the daily runs and the re-run no longer has them, so they are gone
    assert (2, 1, "o21", 21) in got and (3, 1, "o21", 21) in got
    assert not any(r[:2] in {(1, 1), (9, 1), (4, 1)} for r in got)
    assert (1, 2, "a11", 11) in got          # a key only the daily job has
    assert (1, None, "k31", 31) in got and (1, None, "k30", 30) not in got
    assert (5, None, "k32", 32) in got


def test_one_call_for_two_tables(store: DuckDBStore, writer: Writer) -> None:
    views = writer.staged(job(1, fields=VIEW_FIELDS), run(10, 1, D1), [[vrow(1, 1, D1, "v")]])
    sessions = writer.staged(job(2, scope="sessions", fmt="JSONL", fields=["session_id"]),
                             run(20, 2, D1), [[{"session_id": 1}, {"session_id": 2}]])
    out = store.apply([sessions, views])
    assert [(o.run_id, o.status, o.rows) for o in out] == [(20, "loaded", 2), (10, "loaded", 1)]
    assert store.con.execute("SELECT count(*) FROM sessions").fetchone() == (2,)
