"""The writer's memory cap: JSONL statements run under a higher one, in bounded pieces, and the
cap is back to MEMORY_LIMIT after every batch, loaded or failed."""

from __future__ import annotations

import gzip
from datetime import date, datetime, timedelta
from typing import Any

import duckdb
import pytest

from csload.load import memory
from csload.load.batch import pieces_by_size
from csload.load.duckdb import DuckDBStore
from csload.transfer.staged import StagedPart, StagedRun
from tests.support.memcap import cap_of, shown
from tests.support.partgen import Writer, job, run

D1 = date(2026, 11, 20)
FIELDS = ["session_id", "view_number", "view_time"]


class _Recorder:
    """The store's connection, noting the memory cap each INSERT into a fact table ran under."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self.inserts: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)

    def execute(self, query: str, *args: Any) -> Any:
        if query.startswith("INSERT INTO \"views\"") or query.startswith("INSERT INTO \"s\""):
            self.inserts.append((query.split()[2], cap_of(self._con)))
        return self._con.execute(query, *args)


def rows(day: date, first: int, n: int) -> list[dict[str, object]]:
    t = datetime(day.year, day.month, day.day, 9)
    return [{"session_id": first + i, "view_number": 1, "view_time": t} for i in range(n)]


def test_jsonl_parts_load_in_pieces_under_the_raised_cap(
        store: DuckDBStore, writer: Writer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts beyond JSON_STATEMENT_BYTES go to further statements of the same transaction:
    every row lands once, the key rule still sees the whole batch, CSV keeps the base cap."""
    monkeypatch.setattr(memory, "JSON_STATEMENT_BYTES", 1)   # one part per statement
    recorder = _Recorder(store.con)
    store.con = recorder  # type: ignore[assignment]
    sessions = job(1, fmt="JSONL", fields=FIELDS)
    views = job(2, fields=FIELDS)
    day2 = D1 + timedelta(days=1)
    batch = [
        writer.staged(sessions, run(10, 1, D1), [rows(D1, 0, 3), rows(D1, 3, 2)], table="s"),
        # run 11 re-delivers session 4 (and is later): its row wins
        writer.staged(sessions, run(11, 1, day2),
                      [rows(day2, 4, 2), rows(day2, 6, 1), rows(day2, 7, 4)], table="s"),
        writer.staged(views, run(20, 2, D1), [rows(D1, 100, 3)]),
    ]
    outcomes = store.apply(batch)
    assert [(o.status, o.rows) for o in outcomes] == [("loaded", 4), ("loaded", 7),
                                                        ("loaded", 3)]
    json_inserts = [cap for table, cap in recorder.inserts if table == '"s"']
    assert json_inserts == [shown(memory.JSON_MEMORY_LIMIT)] * 5
    assert [cap for table, cap in recorder.inserts if table == '"views"'] == [
        shown(memory.MEMORY_LIMIT)]
    got = store.con.execute("SELECT session_id, _run_id FROM s ORDER BY session_id").fetchall()
    assert got == [(i, 10) for i in range(4)] + [(i, 11) for i in range(4, 11)]
    assert cap_of(store.con) == shown(memory.MEMORY_LIMIT)


def test_the_cap_is_restored_after_a_failed_jsonl_statement(
        store: DuckDBStore, writer: Writer) -> None:
    the_job = job(1, fmt="JSONL", fields=FIELDS)
    before = cap_of(store.con)
    assert before == shown(memory.MEMORY_LIMIT)
    path = writer.folder / "bad.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"session_id": 1}\n{"session_id": "x"}\n'))
    bad = StagedRun(the_job, run(11, 1, D1), (StagedPart(1, path, 10),))
    [outcome] = store.apply([bad])
    assert outcome.status == "failed"
    assert cap_of(store.con) == before


def test_the_lake_work_database_keeps_one_cap(store: DuckDBStore) -> None:
    """The lake's work database keeps its one cap for JSONL statements too: no higher cap."""
    from csload.lake.work import LakeReads

    assert LakeReads.json_memory_limit is None
    assert store.hooks.json_memory_limit == memory.JSON_MEMORY_LIMIT


def test_pieces_by_size_keep_order_and_hold_at_least_one_part(writer: Writer) -> None:
    sizes = [5, 5, 1, 12, 3, 3, 3]
    members: list[Any] = [(None, type("P", (), {"bytes": s})()) for s in sizes]
    pieces = pieces_by_size(members, 10)
    assert [[m[1].bytes for m in piece] for piece in pieces] == [[5, 5], [1], [12], [3, 3, 3]]
    assert [m for piece in pieces for m in piece] == members
