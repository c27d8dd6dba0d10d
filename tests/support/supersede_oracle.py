"""The supersede rules in plain Python: `reference()` applies runs one after the other in
(finished_at, run_id) order with the documented rules, and `scenario()` is a set of runs that
exercises them (re-runs, overlapping jobs, late older runs, a keyless job). The DuckDB store
(tests/load/test_load_supersede.py) and the lake (tests/lake/test_lake_supersede.py) must agree
with it whatever order and batching the runs arrive in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from csload.api.models import Job, Run
from tests.support.partgen import job, run

D1 = date(2026, 11, 20)
VIEW_FIELDS = ["session_id", "view_number", "view_time", "url"]


def vrow(sid: int, vn: int, day: date, url: str) -> dict[str, Any]:
    return {"session_id": sid, "view_number": vn,
            "view_time": datetime(day.year, day.month, day.day, 12), "url": url}


@dataclass(frozen=True)
class Case:
    job: Job
    run: Run
    rows: list[dict[str, Any]]


def _window_days(r: Run) -> set[date]:
    assert r.start_date and r.end_date
    n = (r.end_date - r.start_date).days
    return {r.start_date.date() + timedelta(days=i) for i in range(n)}


def reference(cases: list[Case]) -> list[tuple[Any, ...]]:
    """Apply the runs one by one in (finished_at, run_id) order with the documented rules."""
    state: list[tuple[int, Case, dict[str, Any]]] = []
    for case in sorted(cases, key=lambda c: (c.run.finished_at, c.run.run_id)):
        keyed = {"session_id", "view_number"} <= {f.field_name for f in case.job.fields}
        days = _window_days(case.run)
        keys = {(r["session_id"], r["view_number"]) for r in case.rows} if keyed else set()

        def superseded(entry: tuple[int, Case, dict[str, Any]], case: Case = case,
                       days: set[date] = days, keys: set[Any] = keys) -> bool:
            _, old, row = entry
            if old.job.job_id == case.job.job_id:
                old_days = _window_days(old.run)
                if old_days <= days:
                    return True
                if old_days & days and row["view_time"].date() in days:
                    return True
            old_keyed = {"session_id", "view_number"} <= {f.field_name for f in old.job.fields}
            return old_keyed and (row["session_id"], row["view_number"]) in keys

        state = [e for e in state if not superseded(e)]
        seen = set()
        for row in case.rows:
            k = (row["session_id"], row.get("view_number"))
            if keyed and k in seen:
                continue
            seen.add(k)
            state.append((case.run.run_id, case, row))
    out = [(row["session_id"], row.get("view_number") if {"view_number"} <= {
        f.field_name for f in case.job.fields} else None, row["url"], run_id)
        for run_id, case, row in state]
    return sorted(out, key=lambda t: (t[0], -1 if t[1] is None else t[1], t[2], t[3]))


def scenario() -> list[Case]:
    daily = job(1, fields=VIEW_FIELDS)
    once = job(2, fmt="JSONL", frequency="once", fields=VIEW_FIELDS)
    keyless = job(3, fields=["session_id", "view_time", "url"])
    d2, d3 = D1 + timedelta(days=1), D1 + timedelta(days=2)
    return [
        Case(daily, run(10, 1, D1, finished_hours=1),
             [vrow(1, 1, D1, "a10"), vrow(2, 1, D1, "a10"), vrow(9, 1, D1, "a10")]),
        Case(daily, run(11, 1, d2, finished_hours=1),
             [vrow(3, 1, d2, "a11"), vrow(1, 2, d2, "a11")]),
        Case(daily, run(12, 1, D1, finished_hours=30),   # re-run of D1: drops key 2, keeps 9
             [vrow(1, 1, D1, "a12"), vrow(9, 1, D1, "a12")]),
        Case(once, run(20, 2, D1, days=3, finished_hours=10),
             [vrow(1, 1, D1, "o20"), vrow(2, 1, D1, "o20"), vrow(3, 1, d2, "o20"),
              vrow(4, 1, d3, "o20"), vrow(9, 1, D1, "o20")]),
        Case(once, run(21, 2, D1, days=3, finished_hours=20),   # once re-run: drops key 4
             [vrow(3, 1, d2, "o21"), vrow(2, 1, D1, "o21")]),
        Case(keyless, run(30, 3, D1, finished_hours=1), [{**vrow(1, 0, D1, "k30")}]),
        Case(keyless, run(31, 3, D1, finished_hours=5), [{**vrow(1, 0, D1, "k31")},
                                                         {**vrow(2, 0, D1, "k31")}]),
        Case(keyless, run(32, 3, d2, finished_hours=5), [{**vrow(5, 0, d2, "k32")}]),
    ]
