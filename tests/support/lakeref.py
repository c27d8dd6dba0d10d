"""The simulator's truth as a lake should hold it, and runs staged through the real API client.

`expected(sim, run_ids)` applies the runs' truth one after the other in (finished_at, run_id)
order with the documented rules (docs/loading.md), independently of csload's
loader: column names made SQL-friendly; `_job_id`, `_run_id`, `_date` (the row's own
session_date / view_time date, else the window start); a later run of a job drops the same
job's earlier rows of the days both windows cover (all of them when its window covers the
earlier one); a keyed row replaces every row with its key (a run's own repeats: the first).

`stage_runs` lists the jobs and runs with `ExportClient` over HTTP and downloads each part with
it, as a sync does, into StagedRuns.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from csload.api.client import ExportClient
from csload.config import Settings
from csload.simulator import RunRecord, Simulator
from csload.transfer.host import StorageHost
from csload.transfer.staged import StagedPart, StagedRun

KEYS = {"sessions": ("session_id",), "views": ("session_id", "view_number")}
DATE_FIELD = {"sessions": "session_date", "views": "view_time"}
Row = dict[str, Any]


def column_name(name: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", name.lower())


def _days(run: RunRecord) -> set[date]:
    start, end = run.start.astimezone(UTC), run.end.astimezone(UTC)
    out, day = set(), start.date()
    while datetime(day.year, day.month, day.day, tzinfo=UTC) < end:
        out.add(day)
        day += timedelta(days=1)
    return out


def expected(sim: Simulator, run_ids: Iterable[int]) -> dict[str, list[Row]]:
    """Table -> rows (every column but `_loaded_at`) once the runs are applied."""
    runs = sorted((sim.run(r) for r in run_ids), key=lambda r: (r.finished_at, r.run_id))
    tables: dict[str, list[tuple[RunRecord, Row, tuple[Any, ...] | None]]] = {}
    columns: dict[str, set[str]] = {}
    for run in runs:
        job = sim.job(run.job_id)
        state = tables.setdefault(job.scope, [])
        names = {f.column_name: column_name(f.column_name) for f in job.fields}
        by_field = {f.field_name: column_name(f.column_name) for f in reversed(job.fields)}
        columns.setdefault(job.scope, {"_job_id", "_run_id", "_date"}).update(names.values())
        key_cols = [by_field.get(k) for k in KEYS[job.scope]]
        keyed = all(key_cols)
        date_col = by_field.get(DATE_FIELD[job.scope])
        new_days = _days(run)
        fresh: list[tuple[RunRecord, Row, tuple[Any, ...] | None]] = []
        seen: set[tuple[Any, ...]] = set()
        for truth in sim.truth(job.job_id, run.run_id):
            row = {names[k]: v for k, v in truth.items()}
            day = row.get(date_col) if date_col else None
            day = day.date() if isinstance(day, datetime) else day
            row.update(_job_id=job.job_id, _run_id=run.run_id,
                       _date=day if day is not None else run.start.astimezone(UTC).date())
            key = tuple(row[c] for c in key_cols if c) if keyed else None
            if key is not None:
                if key in seen:
                    continue
                seen.add(key)
            fresh.append((run, row, key))

        def dropped(entry: tuple[RunRecord, Row, tuple[Any, ...] | None],
                    run: RunRecord = run, new_days: set[date] = new_days,
                    seen: set[tuple[Any, ...]] = seen) -> bool:
            old, row, key = entry
            if old.job_id == run.job_id:
                old_days = _days(old)
                if run.start <= old.start and old.end <= run.end:
                    return True
                if row["_date"] in (old_days & new_days):
                    return True
            return key is not None and key in seen

        tables[job.scope] = [e for e in state if not dropped(e)] + fresh
    return {t: [{c: row.get(c) for c in columns[t]} for _, row, _ in entries]
            for t, entries in tables.items()}


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def assert_rows_equal(actual: Sequence[Row], wanted: Sequence[Row], what: str) -> None:
    columns = sorted(wanted[0]) if wanted else []
    for row in actual:
        assert sorted(row) == columns, f"{what}: columns {sorted(row)} != {columns}"
    got = Counter(tuple(_freeze(r[c]) for c in columns) for r in actual)
    want = Counter(tuple(_freeze(r[c]) for c in columns) for r in wanted)
    missing, extra = want - got, got - want
    assert not missing and not extra, (
        f"{what}: {len(actual)} rows, {len(wanted)} expected; "
        f"missing e.g. {list(missing)[:1]}, unexpected e.g. {list(extra)[:1]}")


async def stage_runs(settings: Settings, folder: Path, run_ids: Iterable[int] | None = None
                     ) -> list[StagedRun]:
    """Every successful run (or those of `run_ids`), downloaded through the API client."""
    wanted = None if run_ids is None else set(run_ids)
    staged = []
    async with ExportClient(settings) as client:
        for job in await client.list_jobs():
            for run in await client.list_runs(job.job_id, state="SUCCESS"):
                if wanted is not None and run.run_id not in wanted:
                    continue
                detail = await client.get_run(job.job_id, run.run_id)
                parts = []
                for part in detail.parts or ():
                    dest = folder / f"{run.run_id}-{part.part_id}.part"
                    await StorageHost(client).download_part(part, dest, job_id=job.job_id,
                                               run_id=run.run_id)
                    parts.append(StagedPart(part.part_id, dest, dest.stat().st_size))
                staged.append(StagedRun(job, detail, tuple(parts)))
    return staged
