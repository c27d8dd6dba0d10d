"""The reference a sync is checked against: the simulator's truth, applied run by run.

`expected_tables(sim, run_ids)` is a small model of the loading rules, written from the
design notes and independent of csload's loader:

* runs are applied one after the other in (finished_at, run_id) order;
* a row's columns are the file's column names made SQL-friendly (lowercase, every run of
  characters outside [a-z0-9_] becomes `_`); a table's columns are the union over the jobs
  that loaded into it, and a job's row holds NULL in the columns it does not export;
* each row carries `_job_id`, `_run_id` and `_date` (the row's own date field when exported:
  session_date, or the UTC date of view_time; else the run window's start day);
* window rule, within one job: a later run removes an earlier run's rows whole when the
  earlier window lies inside the later one, else the earlier rows whose `_date` falls in the
  days the two windows share;
* key rule, across the jobs of a table: a row whose job exports the key (session_id, plus
  view_number for views) replaces the row with the same key from any keyed job;
* a table holds jobs that export the same columns (`default_tables`: a job whose columns
  differ from its scope table's gets `<scope>_job_<id>`).

`table_rows(db, table)` reads a table back (every column but `_loaded_at`), and
`assert_rows_equal` compares two row lists as multisets, every column of every row.
`assert_hard_cases` checks that the hard values really are among the rows compared.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import duckdb

import csload
from csload.api.client import ExportClient
from csload.api.models import JobField
from csload.api.spec import JobSpec
from csload.config import Settings
from csload.simulator import RunRecord, Simulator

# As in tests/conftest.py: the clock stays at 2026-11-25 12:00 UTC unless a test moves it; with
# the default 3 days, the daily runs of 22-24 November have finished.
SIM_START = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SESSIONS_JOB = 1120   # "Daily sessions", JSONL, every sessions field (two aliased)
VIEWS_JOB = 1121      # "Daily pageviews", CSV, most views fields, aliases, custom/dynamic vars
LEGACY_JOB = 1119     # "Legacy sessions (CSV)", suspended: one SUCCESS and one FAILURE run

KEY_FIELDS = {"sessions": ("session_id",), "views": ("session_id", "view_number")}
DATE_FIELD = {"sessions": "session_date", "views": "view_time"}
LINEAGE = ("_job_id", "_run_id", "_date")
HIGH = 1 << 63

Row = dict[str, Any]


def column_name(name: str) -> str:
    """The documented column naming rule."""
    return re.sub(r"[^a-z0-9_]+", "_", name.lower())


@dataclass
class _Loaded:
    run: RunRecord
    rows: list[Row]
    keys: list[tuple[Any, ...] | None]


@dataclass
class _Table:
    columns: set[str] = field(default_factory=lambda: set(LINEAGE))
    runs: list[_Loaded] = field(default_factory=list)


def _days(start: datetime, end: datetime) -> tuple[date, date]:
    return start.date(), (end - timedelta(microseconds=1)).date() + timedelta(days=1)


def _dropped_by_window(old: RunRecord, new: RunRecord, row_date: date) -> bool:
    start, end = max(old.start, new.start), min(old.end, new.end)
    if start >= end:
        return False
    if new.start <= old.start and old.end <= new.end:
        return True
    first, stop = _days(start.astimezone(UTC), end.astimezone(UTC))
    return first <= row_date < stop


def run_order(run: RunRecord) -> tuple[datetime, int]:
    return (run.finished_at, run.run_id)


def _columns(job: Any) -> frozenset[tuple[Any, ...]]:
    return frozenset((column_name(f.column_name), f.field_name, f.custom_var_position,
                      f.dynamic_var_key) for f in job.fields)


def default_tables(sim: Simulator, mapped: Mapping[int, str] | None = None
                   ) -> dict[int, str]:
    """The documented placement of jobs new to a target (docs/loading.md): jobs `mapped` to a
    table go there (mapped to a table no rule uses: a mapping into a scope's table competes
    with the scope's jobs, not modelled here); then recurring jobs before `once` jobs, jobs of
    all the traffic before device- or segment-filtered ones, the widest job first, then the
    lowest id: a job takes the table of its scope when that table's first job exports the
    same columns, else `<scope>_job_<id>`."""
    mapped = mapped or {}

    def filtered(job: Any) -> bool:
        return job.device_label != "all" or job.segment_id is not None

    jobs = sorted((j for j in sim.jobs if j.job_id not in mapped),
                  key=lambda j: (j.frequency == "once", filtered(j), -len(_columns(j)),
                                 j.job_id))
    first: dict[str, Any] = {table: sim.job(job_id) for job_id, table in mapped.items()}
    out: dict[int, str] = dict(mapped)
    for job in jobs:
        owner = first.setdefault(job.scope, job)
        out[job.job_id] = (job.scope if _columns(owner) == _columns(job)
                           else f"{job.scope}_job_{job.job_id}")
    return out


def expected_tables(sim: Simulator, run_ids: Iterable[int],
                    tables: Mapping[int, str] | None = None
                    ) -> dict[str, tuple[set[str], list[Row]]]:
    """Table -> (its columns, its rows) once the runs `run_ids` are applied (any order given).

    `tables` maps a job id to its table (default: `default_tables` of every job of the
    simulator).
    """
    tables = default_tables(sim, tables)
    runs = sorted((sim.run(r) for r in run_ids), key=run_order)
    state: dict[str, _Table] = {}
    for run in runs:
        job = sim.job(run.job_id)
        table = state.setdefault(tables[job.job_id], _Table())
        names = {f.column_name: column_name(f.column_name) for f in job.fields}
        by_field = {f.field_name: column_name(f.column_name) for f in reversed(job.fields)}
        table.columns |= set(names.values())
        found = [by_field.get(k) for k in KEY_FIELDS[job.scope]]
        key_cols = [c for c in found if c is not None] if all(found) else []
        date_col = by_field.get(DATE_FIELD[job.scope])
        rows: list[Row] = []
        keys: list[tuple[Any, ...] | None] = []
        for truth in sim.truth(job.job_id, run.run_id):
            row = {names[k]: v for k, v in truth.items()}
            day = row.get(date_col) if date_col else None
            if isinstance(day, datetime):
                day = day.date()
            row.update(_job_id=job.job_id, _run_id=run.run_id,
                       _date=day if day is not None else run.start.astimezone(UTC).date())
            rows.append(row)
            keys.append(tuple(row[c] for c in key_cols) if key_cols else None)
        # Window rule: the same job's earlier runs.
        for old in table.runs:
            if old.run.job_id != job.job_id:
                continue
            kept = [(r, k) for r, k in zip(old.rows, old.keys, strict=True)
                    if not _dropped_by_window(old.run, run, r["_date"])]
            old.rows, old.keys = [r for r, _ in kept], [k for _, k in kept]
        # Key rule: any keyed job's row with a key of this run (the run's own repeats: first
        # one wins).
        if key_cols:
            mine = set(keys)
            for old in table.runs:
                kept = [(r, k) for r, k in zip(old.rows, old.keys, strict=True)
                        if k is None or k not in mine]
                old.rows, old.keys = [r for r, _ in kept], [k for _, k in kept]
            seen: set[Any] = set()
            unique = []
            for row, key in zip(rows, keys, strict=True):
                if key not in seen:
                    seen.add(key)
                    unique.append((row, key))
            rows, keys = [r for r, _ in unique], [k for _, k in unique]
        table.runs.append(_Loaded(run, rows, keys))
    out: dict[str, tuple[set[str], list[Row]]] = {}
    for name, table in state.items():
        rows = []
        for loaded in table.runs:
            for row in loaded.rows:
                rows.append({c: row.get(c) for c in table.columns})
        out[name] = (set(table.columns), rows)
    return out


def successful_runs(sim: Simulator, job_ids: Iterable[int] | None = None) -> list[int]:
    """Ids of every run that has files now (SUCCESS), of the given jobs or all."""
    wanted = None if job_ids is None else set(job_ids)
    return [run.run_id for job in sim.jobs for run in sim.runs(job.job_id)
            if (wanted is None or job.job_id in wanted) and sim.run_state(run.run_id) == "SUCCESS"]


def expired_runs(sim: Simulator) -> list[int]:
    """Ids of the successful runs whose files storage no longer keeps (retention days)."""
    now = sim.clock.now()
    return [r for r in successful_runs(sim)
            if sim.run(r).files_expire_at(sim.config.file_retention_days) <= now]


def day(text: str) -> datetime:
    """Midnight UTC of an ISO day."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def run_of(sim: Simulator, job_id: int, start: str) -> int:
    """The id of the (first) run of a job whose window starts on an ISO day."""
    return next(r.run_id for r in sim.runs(job_id) if r.start == day(start))


def same_fields(sim: Simulator, job_id: int) -> list[JobField]:
    """The fields of a simulator job, to create another job exporting the same columns."""
    return [JobField(f.field_name, alias_name=f.alias_name,
                     custom_var_position=f.custom_var_position,
                     dynamic_var_key=f.dynamic_var_key) for f in sim.job(job_id).fields]


def create_job(settings: Settings, *, name: str, fmt: str, scope: str,
               fields: Sequence[str | tuple[str, str] | JobField], date_from: datetime,
               date_to: datetime, device: str = "all") -> int:
    """Create a `once` job through the API (csload's own client); returns its id.

    `fields`: field names, (field name, alias) pairs, or JobFields (`same_fields`).
    """
    spec = JobSpec(
        name=name, format=fmt, scope=scope, frequency="once",
        fields=tuple(f if isinstance(f, JobField) else JobField(f) if isinstance(f, str)
                     else JobField(f[0], alias_name=f[1]) for f in fields),
        date_from=date_from, date_to=date_to, device_label=device)
    return create_spec(settings, spec)


def create_spec(settings: Settings, spec: JobSpec) -> int:
    """Create a job through the API, without csload's own checks (as a job made in the
    console or by another tool); returns its id."""

    async def create() -> int:
        async with ExportClient(settings) as client:
            return (await client.create_job(spec)).job_id

    return anyio.run(create)


def finish_once_job(sim: Simulator, job_id: int) -> int:
    """Move the simulator's clock until the once job's run has succeeded; its run id."""
    for _ in range(1000):
        run_id = sim.job(job_id).once_run_id
        if run_id is not None and sim.run_state(run_id) == "SUCCESS":
            return run_id
        sim.advance(5)
    raise AssertionError(f"once job {job_id} never succeeded")


def table_rows(db: Path, table: str) -> tuple[set[str], list[Row]]:
    """Every column but `_loaded_at` of every row of `table`."""
    return _rows(duckdb.connect(str(db), read_only=True), table)


def lake_rows(root: Path, table: str) -> tuple[set[str], list[Row]]:
    """The same, of a lake's table read through csload.connect(parquet=...)."""
    return _rows(csload.connect(parquet=str(root)), table)


def _rows(con: duckdb.DuckDBPyConnection, table: str) -> tuple[set[str], list[Row]]:
    """Column names and rows (but `_loaded_at`) of `table` on `con`, which this closes."""
    try:
        cursor = con.execute(f'SELECT * EXCLUDE (_loaded_at) FROM "{table}"')  # noqa: S608
        names = [d[0] for d in cursor.description or ()]
        rows = [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]
    finally:
        con.close()
    return set(names), rows


def table_names(db: Path) -> set[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' "
                           "AND table_name NOT LIKE '\\_csload%' ESCAPE '\\'").fetchall()
    finally:
        con.close()
    return {r[0] for r in rows}


def _freeze(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, float):
        return ("float", value)
    return value


def _frozen(row: Row, columns: Sequence[str]) -> tuple[Any, ...]:
    return tuple(_freeze(row[c]) for c in columns)


def _ident(row: Row) -> tuple[Any, ...]:
    return (row.get("_run_id"), row.get("session_id"), row.get("view_number"))


@dataclass(frozen=True)
class RowDiff:
    """How two row lists differ, counted as multisets over every column."""

    expected: int
    loaded: int
    lost: int          # expected rows not loaded (or loaded fewer times than expected)
    duplicated: int    # extra copies of expected rows
    unexpected: int    # loaded rows that are not expected at all (wrong values, stray rows)


def row_diff(actual: Sequence[Row], expected: Sequence[Row]) -> RowDiff:
    """Count what `assert_rows_equal` checks: rows lost, duplicated and unexpected."""
    columns = sorted(expected[0]) if expected else sorted(actual[0]) if actual else []
    got = Counter(_frozen({c: r.get(c) for c in columns}, columns) for r in actual)
    want = Counter(_frozen(r, columns) for r in expected)
    extra = got - want
    return RowDiff(
        expected=len(expected), loaded=len(actual), lost=sum((want - got).values()),
        duplicated=sum(n for k, n in extra.items() if k in want),
        unexpected=sum(n for k, n in extra.items() if k not in want))


def assert_rows_equal(actual: Sequence[Row], expected: Sequence[Row], what: str = "") -> None:
    """The two row lists hold the same rows (every column), as multisets."""
    columns = sorted(expected[0]) if expected else sorted(actual[0]) if actual else []
    for row in actual:
        assert sorted(row) == columns, f"{what}: columns {sorted(row)} != {columns}"
    got = Counter(_frozen(r, columns) for r in actual)
    want = Counter(_frozen(r, columns) for r in expected)
    if got == want:
        return
    # Say which rows differ, and in which columns, rather than dumping two tables.
    by_id_got = {_ident(r): r for r in actual}
    by_id_want = {_ident(r): r for r in expected}
    lines = [f"{what}: {len(actual)} rows loaded, {len(expected)} expected; "
             f"{sum((got - want).values())} unexpected, {sum((want - got).values())} missing"]
    for ident in sorted(set(by_id_got) | set(by_id_want), key=repr):
        a, e = by_id_got.get(ident), by_id_want.get(ident)
        if a is None or e is None:
            lines.append(f"  {ident}: {'missing' if a is None else 'unexpected'}")
        else:
            diff = [c for c in columns if _freeze(a[c]) != _freeze(e[c])]
            if diff:
                lines.append(f"  {ident}: " + "; ".join(
                    f"{c}: loaded {a[c]!r}, expected {e[c]!r}" for c in diff[:4]))
        if len(lines) > 12:
            break
    dup = [k for k, n in got.items() if n > 1]
    if dup:
        lines.append(f"  {len(dup)} rows loaded more than once")
    raise AssertionError("\n".join(lines))


def assert_table(db: Path, table: str, expected: Mapping[str, tuple[set[str], list[Row]]]
                 ) -> list[Row]:
    """The table holds exactly the expected columns and rows; returns its rows."""
    columns, rows = table_rows(db, table)
    want_columns, want_rows = expected[table]
    assert columns == want_columns, (
        f"{table}: extra {sorted(columns - want_columns)}, "
        f"missing {sorted(want_columns - columns)}")
    assert_rows_equal(rows, want_rows, table)
    return rows


def assert_db_matches(db: Path, expected: Mapping[str, tuple[set[str], list[Row]]]) -> None:
    assert table_names(db) == set(expected)
    for table in expected:
        assert_table(db, table, expected)


def hard_cases(rows: Sequence[Row]) -> set[str]:
    """Which hard kinds of value occur among the rows."""
    found: set[str] = set()
    for row in rows:
        for name, value in row.items():
            if name.startswith("_"):
                continue
            if value is None:
                found.add("null")
            elif isinstance(value, int) and value >= HIGH:
                found.add("uint64>2^63")
            elif isinstance(value, str):
                if "\n" in value:
                    found.add("line break")
                if "\r\n" in value:
                    found.add("crlf")
                if '"' in value:
                    found.add("double quote")
                if "'" in value:
                    found.add("single quote")
                if "," in value:
                    found.add("comma")
                if any(ord(ch) > 0xFFFF for ch in value):
                    found.add("emoji")
                elif any(ord(ch) > 127 for ch in value):
                    found.add("unicode")
            elif isinstance(value, list):
                if not value:
                    found.add("empty array")
                elif any(isinstance(v, int) and v >= HIGH for v in value):
                    found.add("uint64>2^63 in array")
                elif all(isinstance(v, datetime) for v in value):
                    found.add("timestamp array")
                for v in value:
                    if isinstance(v, str):
                        if "'" in v:
                            found.add("single quote in array")
                        if '"' in v:
                            found.add("double quote in array")
                        if "," in v:
                            found.add("comma in array")
                        if "\\" in v:
                            found.add("backslash in array")
                        if any(ord(ch) > 127 for ch in v):
                            found.add("unicode in array")
    return found


def assert_same_tables(a: Path, b: Path) -> None:
    """Two databases hold the same tables, columns and rows (`_loaded_at` aside)."""
    assert table_names(a) == table_names(b)
    for table in sorted(table_names(a)):
        columns_a, rows_a = table_rows(a, table)
        columns_b, rows_b = table_rows(b, table)
        assert columns_a == columns_b, table
        assert_rows_equal(rows_a, rows_b, table)


# Every hard kind of value; the views scope has no UInt64 arrays, the legacy CSV job exports
# only ids, a few scalars and one timestamp array.
ALL_HARD = {
    "null", "uint64>2^63", "line break", "crlf", "double quote", "single quote", "comma",
    "emoji", "unicode", "empty array", "uint64>2^63 in array", "timestamp array",
    "single quote in array", "double quote in array", "comma in array", "backslash in array",
    "unicode in array",
}
VIEWS_HARD = ALL_HARD - {"uint64>2^63 in array"}
LEGACY_HARD = {"uint64>2^63", "empty array", "timestamp array"}


def assert_hard_cases(rows: Sequence[Row], required: set[str], *, job: int | None = None,
                      minute_column: str | None = None) -> None:
    """Every kind of value in `required` is among `rows` (of `job` only, if given); with
    `minute_column`, that column holds non-empty arrays of minute-precision timestamps."""
    mine = [r for r in rows if job is None or r["_job_id"] == job]
    # A column that is NULL in every row is one the job does not export: its NULLs prove
    # nothing about reading a null from a file.
    live = {c for r in mine for c, v in r.items() if v is not None}
    missing = required - hard_cases([{c: r[c] for c in live} for r in mine])
    assert not missing, f"the rows compared (job {job}) hold no {sorted(missing)}"
    if minute_column is not None:
        stamps = [r[minute_column] for r in mine if r[minute_column]]
        assert stamps, f"no non-empty {minute_column} among the rows of job {job}"
        assert all(t.second == 0 for value in stamps for t in value)


__all__ = [
    "ALL_HARD",
    "LEGACY_HARD",
    "LEGACY_JOB",
    "SESSIONS_JOB",
    "SIM_START",
    "VIEWS_HARD",
    "VIEWS_JOB",
    "RowDiff",
    "assert_db_matches",
    "assert_hard_cases",
    "assert_rows_equal",
    "assert_same_tables",
    "assert_table",
    "column_name",
    "create_job",
    "day",
    "default_tables",
    "expected_tables",
    "finish_once_job",
    "hard_cases",
    "row_diff",
    "run_of",
    "same_fields",
    "successful_runs",
    "table_names",
    "table_rows",
]
