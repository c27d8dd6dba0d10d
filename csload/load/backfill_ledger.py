"""The backfill ledger: which `once` jobs csload created for which window, in the target database.

One table, beside the loader's ledger in schema `_csload` (created idempotently, never dropped):

    _csload.backfills   job_id UBIGINT PRIMARY KEY: the once job created (or adopted)
                        name: its deterministic name (see csload.backfills.plan.job_name)
                        plan_key: hash of what the job exports (scope, format, fields,
                          filters, table); with the window, it identifies a piece of a plan
                        scope, format, fields (JSON: the API's field list), device_label,
                        segment_id, table_name, like_job_id (the job it copies, if any)
                        window_start / window_end TIMESTAMP (UTC, end exclusive)
                        state: created | succeeded | run_failed | expired | loaded | load_failed
                        run_id, message, created_at, updated_at

Whether a job's run is loaded is read from `_csload.runs` (the loader's ledger, committed with
the data): that is the truth; `state` here is the backfill's own bookkeeping.

Only a DuckDB target has `_csload.backfills`. A lake of Delta tables has no such table: there, the
backfill finds its jobs again by their deterministic names, in the API's job list and in the
loader's `_csload.jobs` (which both targets have). Everything read here works without the
table: `records()` is then empty, and `coverage_gaps` never needs it.

Also here: the days missing from each daily job's coverage, counting the backfills that copied
it (`coverage_gaps`), which runs that expired or failed at the source were filled since
(`coverage`), and the backfill jobs the loader's ledger knows (`backfill_jobs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import orjson

from csload.api.models import Job, JobField
from csload.load.backfill_names import NAME_PREFIX
from csload.load.ledger import (
    BACKFILLS_DDL,
    MISSING_STATUSES,
    TABLES,
    Ledger,
    aware_utc,
    has_table,
    naive_utc,
)

STATES = ("created", "succeeded", "run_failed", "expired", "loaded", "load_failed")

_DDL = BACKFILLS_DDL

_COLUMNS = ("job_id, name, plan_key, scope, format, fields, device_label, segment_id, "
            "table_name, like_job_id, window_start, window_end, state, run_id, message, "
            "created_at, updated_at")


@dataclass(frozen=True, slots=True)
class BackfillRecord:
    job_id: int
    name: str
    plan_key: str
    scope: str
    format: str
    fields: tuple[JobField, ...]
    device_label: str | None
    segment_id: int | None
    table: str
    like_job_id: int | None
    window_start: datetime
    window_end: datetime
    state: str
    run_id: int | None
    message: str | None
    created_at: datetime | None
    updated_at: datetime | None


def _record(row: tuple[Any, ...]) -> BackfillRecord:
    start, end = aware_utc(row[10]), aware_utc(row[11])
    assert start is not None and end is not None
    return BackfillRecord(
        job_id=int(row[0]), name=row[1], plan_key=row[2], scope=row[3], format=row[4],
        fields=tuple(JobField.from_api(f) for f in orjson.loads(row[5] or "[]")),
        device_label=row[6], segment_id=None if row[7] is None else int(row[7]),
        table=row[8], like_job_id=None if row[9] is None else int(row[9]),
        window_start=start, window_end=end, state=row[12],
        run_id=None if row[13] is None else int(row[13]), message=row[14],
        created_at=aware_utc(row[15]), updated_at=aware_utc(row[16]),
    )


@dataclass(frozen=True, slots=True)
class Coverage:
    """See `BackfillLedger.coverage`."""

    gaps: dict[int, list[date]]   # daily job id -> its missing UTC days, in order
    filled: frozenset[int]        # ids of expired / source-failed runs loaded since


def _covers(windows: list[tuple[datetime, datetime]], start: datetime, end: datetime) -> bool:
    """Whether the union of `windows` (each [start, end)) holds all of [start, end)."""
    reach = start
    for first, stop in sorted(windows):
        if first > reach:
            break
        reach = max(reach, stop)
        if reach >= end:
            return True
    return reach >= end


def _days(start: datetime, end: datetime) -> list[date]:
    """The UTC days [start, end) touches."""
    first = start.astimezone(UTC).date() if start.tzinfo else start.date()
    stop = end - timedelta(microseconds=1)
    last = stop.astimezone(UTC).date() if stop.tzinfo else stop.date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# What a job exports into which table, as far as the loader's ledger tells: scope, table, and
# its fields (each field's canonical JSON, sorted: the order of the columns changes no row).
_Export = tuple[str | None, str | None, tuple[bytes, ...]]


def _export(scope: str | None, table: str | None, fields: str | None) -> _Export:
    parsed = orjson.loads(fields or "[]")
    return scope, table, tuple(sorted(orjson.dumps(f, option=orjson.OPT_SORT_KEYS)
                                      for f in parsed))


class BackfillLedger:
    """Reads and writes `_csload.backfills` through one connection (one thread at a time)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, *, writable: bool = True) -> None:
        self.con = con
        self.writable = writable
        # The ledger's table names: `_csload.*`, or an older csload's `_csload_*` until a
        # writer's `ensure` moves them (csload.load.ledger).
        self.t = Ledger(con).t

    def ensure(self) -> None:
        """Create the loader's ledger tables and `_csload.backfills` if missing (moving an
        older csload's `_csload_backfills` there)."""
        Ledger(self.con).ensure()
        self.con.execute(_DDL)
        self.t = TABLES

    def _has(self, table: str) -> bool:
        return has_table(self.con, table)

    # --- writes --------------------------------------------------------------------------------

    def record_job(self, *, job_id: int, name: str, plan_key: str, scope: str, format: str,
                   fields: tuple[JobField, ...], device_label: str | None,
                   segment_id: int | None, table: str, like_job_id: int | None,
                   window_start: datetime, window_end: datetime, now: datetime,
                   state: str = "created") -> None:
        """Record a created (or adopted) job; a job already recorded keeps its row."""
        if state not in STATES:
            raise ValueError(state)
        self.con.execute(
            f"INSERT INTO {self.t.backfills} ({_COLUMNS}) VALUES "  # noqa: S608
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?) "
            "ON CONFLICT (job_id) DO NOTHING",
            [job_id, name, plan_key, scope, format,
             orjson.dumps([f.to_api() for f in fields]).decode(), device_label, segment_id,
             table, like_job_id, naive_utc(window_start), naive_utc(window_end), state,
             naive_utc(now), naive_utc(now)],
        )

    def set_state(self, job_id: int, state: str, *, now: datetime, run_id: int | None = None,
                  message: str | None = None) -> None:
        if state not in STATES:
            raise ValueError(state)
        self.con.execute(
            f"UPDATE {self.t.backfills} SET state = ?, run_id = coalesce(?, run_id), "  # noqa: S608
            "message = ?, updated_at = ? WHERE job_id = ?",
            [state, run_id, message, naive_utc(now), job_id])

    def forget(self, job_id: int) -> None:
        """Drop a job's row (tests use it to stand for a crash before the row was written)."""
        self.con.execute(f"DELETE FROM {self.t.backfills} WHERE job_id = ?", [job_id])  # noqa: S608

    # --- reads ---------------------------------------------------------------------------------

    def records(self, plan_key: str | None = None) -> list[BackfillRecord]:
        if not self._has(self.t.backfills):
            return []
        query = f"SELECT {_COLUMNS} FROM {self.t.backfills}"  # noqa: S608
        params: list[Any] = []
        if plan_key is not None:
            query += " WHERE plan_key = ?"
            params.append(plan_key)
        rows = self.con.execute(query + " ORDER BY window_start, job_id", params).fetchall()
        return [_record(row) for row in rows]

    def loaded_runs_of(self, job_ids: set[int]) -> dict[int, int]:
        """Job id -> the id of its run the loader committed as loaded (jobs with none absent)."""
        if not job_ids or not self._has(self.t.runs):
            return {}
        rows = self.con.execute(
            f"SELECT job_id, max(run_id) FROM {self.t.runs} WHERE status = 'loaded' "  # noqa: S608
            "AND list_contains(?, job_id) GROUP BY job_id", [sorted(job_ids)]).fetchall()
        return {int(job_id): int(run_id) for job_id, run_id in rows}

    def known_jobs(self) -> dict[int, tuple[Job, str]]:
        """Every job the loader's ledger has seen, with its table (Ledger.jobs)."""
        return Ledger(self.con).jobs() if self._has(self.t.jobs) else {}

    def loaded_tables(self) -> dict[str, frozenset[int]]:
        """Per table, the jobs whose rows it holds (Ledger.loaded_tables)."""
        return Ledger(self.con).loaded_tables() if self._has(self.t.runs) else {}

    def job_table(self, job_id: int) -> str | None:
        """The table the loader's ledger says `job_id` loads into."""
        if not self._has(self.t.jobs):
            return None
        row = self.con.execute(f"SELECT table_name FROM {self.t.jobs} WHERE job_id = ?",  # noqa: S608
                               [job_id]).fetchone()
        return None if row is None else row[0]

    def backfill_jobs(self) -> dict[int, tuple[str, str]]:
        """The backfill jobs the loader's ledger knows: job id -> (name, scope).

        A backfill job is a `once` job named by csload.backfills.plan.job_name. The loader
        records every job it loads a run of (`_csload.jobs`, in both targets), so a backfill
        job whose run was loaded is found here even when the API no longer lists it and no
        backfill ledger row was written (a lake has none).
        """
        if not self._has(self.t.jobs):
            return {}
        rows = self.con.execute(
            f"SELECT job_id, name, scope FROM {self.t.jobs} WHERE frequency = 'once' "  # noqa: S608
            "AND starts_with(name, ?)", [NAME_PREFIX + " "]).fetchall()
        return {int(job_id): (str(name), str(scope)) for job_id, name, scope in rows}

    def coverage_gaps(self, scope: str | None = None) -> dict[int, list[date]]:
        """Per daily job: the UTC days missing from its coverage (see `coverage`)."""
        return self.coverage(scope).gaps

    def coverage(self, scope: str | None = None) -> Coverage:
        """What the target covers, job by job: the daily jobs' gaps, and which runs that
        expired or failed at the source (csload.ledger.MISSING_STATUSES) are filled since.

        A job is covered by its own loaded runs plus those of the backfill jobs that copied it
        (its *copies*): `once` jobs named as backfills (csload.backfills.plan.job_name) of the
        same scope, with the same fields, loaded into the same table. They are recognised from
        the loader's ledger alone (`_csload.jobs`, `_csload.runs`), which both targets have, so
        a DuckDB database and a lake report the same gaps, and a backfill whose ledger
        row was lost still counts. (The ledger does not keep a job's device or segment filter:
        a backfill with other filters but the same fields and table counts too.) A job with
        other fields loading into the same table does not cover anything: its rows lack the
        job's other columns. `_csload.backfills` is not read: it is the backfill's own
        bookkeeping, absent from a lake, while `_csload.runs` commits with the data.

        Gaps, per daily job (a `scope` keeps that scope's jobs only): the days between the
        first and the last covered day that are not covered (what `csload status` reports as
        gaps), and the days of the job's runs that expired or failed at the source not
        covered since. What `csload backfill --gaps` fills.

        Filled: a run that expired or failed at the source is *filled* when the loaded runs of
        its job and copies (of the job and of the jobs it copies, for a backfill job) that came
        after it (by run order) cover its whole window [start, end): its rows are in the
        table, loaded by a re-run or a backfill. An earlier run of the same days does not fill
        it: the table holds the rows the missing run was to replace. For a daily job this is
        exactly "none of its days is a gap".
        """
        if not self._has(self.t.runs) or not self._has(self.t.jobs):
            return Coverage({}, frozenset())
        rows = self.con.execute(
            f"SELECT job_id, name, scope, frequency, fields, table_name FROM {self.t.jobs}"  # noqa: S608
        ).fetchall()
        export_of: dict[int, _Export] = {}
        daily: set[int] = set()
        copies: dict[_Export, set[int]] = {}
        originals: dict[_Export, set[int]] = {}
        for job_id, name, job_scope, frequency, fields, table in rows:
            export = export_of[int(job_id)] = _export(job_scope, table, fields)
            if frequency == "once" and str(name or "").startswith(NAME_PREFIX + " "):
                copies.setdefault(export, set()).add(int(job_id))
            else:
                originals.setdefault(export, set()).add(int(job_id))
                if frequency == "daily":
                    daily.add(int(job_id))

        def covering(job_id: int) -> set[int]:
            """The job, its copies, and for a copy the jobs it copies."""
            export = export_of.get(job_id)
            if export is None:
                return {job_id}
            group = {job_id} | copies.get(export, set())
            if job_id in copies.get(export, set()):
                group |= originals.get(export, set())
            return group

        # Each run with its order (csload.load.supersede.run_order): a run fills a missing one
        # only if it came later. An expired re-run of a loaded day counted as filled by the
        # day's first run, whose rows the re-run was to replace, and `--gaps` skipped the day
        # (found by QA, 2026-12-07).
        loaded: dict[int, list[tuple[int, datetime, datetime]]] = {}
        missing: dict[int, list[tuple[int, int, datetime, datetime]]] = {}
        for run_id, job_id, status, start, end, order in self.con.execute(
                f"SELECT run_id, job_id, status, window_start, window_end, "  # noqa: S608
                f"CAST(supersede_order AS VARCHAR) FROM {self.t.runs} "
                "WHERE list_contains(?, status) AND window_start IS NOT NULL "
                "AND window_end IS NOT NULL", [["loaded", *MISSING_STATUSES]]).fetchall():
            rank = int(order) if order is not None else 0
            if status == "loaded":
                loaded.setdefault(int(job_id), []).append((rank, start, end))
            else:
                missing.setdefault(int(job_id), []).append((int(run_id), rank, start, end))

        def later(job_id: int, rank: int) -> list[tuple[datetime, datetime]]:
            """The windows of the loaded runs that came after a run of rank `rank`."""
            return [(start, end) for member in covering(job_id)
                    for other, start, end in loaded.get(member, []) if other > rank]

        filled: set[int] = set()
        lost_days: dict[int, set[date]] = {}
        for job_id, runs in missing.items():
            for run_id, rank, start, end in runs:
                windows = later(job_id, rank)
                if _covers(windows, start, end):
                    filled.add(run_id)
                    continue
                newer = {day for first, stop in windows for day in _days(first, stop)}
                lost_days.setdefault(job_id, set()).update(
                    day for day in _days(start, end) if day not in newer)

        gaps: dict[int, list[date]] = {}
        for job_id in sorted(daily):
            if scope is not None and export_of[job_id][0] != scope:
                continue
            have = {day for member in covering(job_id) for _, start, end in loaded.get(member, [])
                    for day in _days(start, end)}
            lost = set(lost_days.get(job_id, set()))
            if have:
                first, last = min(have), max(have)
                lost.update(first + timedelta(days=i) for i in range((last - first).days + 1)
                            if first + timedelta(days=i) not in have)
            if lost:
                gaps[job_id] = sorted(lost)
        return Coverage(gaps, frozenset(filled))
