"""Load ~1M view rows of CSV gzip parts: DuckDBStore.apply vs DuckDB's own CREATE TABLE AS.

    python benchmarks/bench_load.py [--rows 1000000] [--runs 5] [--parts 2] [--repeat 3]

The parts are written by DuckDB itself in the contract's section-6 format (header in every
part, `\\N` nulls, RFC 4180 quoting, `['a','b']` arrays, gzip), with every field of the views
scope. Prints the best time of each and the ratio (the target for a whole sync is <= 1.25x).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

from csload.api.models import Job, JobField, Run
from csload.api.schemas import load_schema
from csload.load.columns import job_layout
from csload.load.duckdb import DuckDBStore
from csload.load.sql import CSV_OPTIONS
from csload.transfer.staged import StagedPart, StagedRun

DAY0 = date(2026, 11, 20)


def field_expr(name: str, duckdb_type: str) -> str:
    """A SQL expression of row number i (and day d) giving a plausible value of the field."""
    if name == "session_id":
        return "(9223372036854775808 + (i // 8))::UBIGINT"
    if name == "view_number":
        return "(i % 8 + 1)::USMALLINT"
    if name == "user_id":
        return "(18000000000000000000 + i // 3)::UBIGINT"
    if name == "view_time":
        return "d + to_seconds((i % 86400)::BIGINT)"
    if name in ("scroll_rate", "frustration_score"):
        return "CASE WHEN i % 5 = 0 THEN NULL ELSE (i % 100) + 0.25 END"
    if duckdb_type == "VARCHAR[]":
        return ("CASE WHEN i % 10 = 0 THEN '[''TypeError'',''x is not a function, it''''s'']' "
                "ELSE '[]' END")
    if duckdb_type == "TIMESTAMP[]":
        return ("CASE WHEN i % 10 = 0 THEN '[''' || strftime(d, '%Y-%m-%d') || ' 10:03'',''' "
                "|| strftime(d, '%Y-%m-%d') || ' 10:04:05'']' ELSE '[]' END")
    if duckdb_type.endswith("[]"):
        return "CASE WHEN i % 10 = 0 THEN '[12,400]' ELSE '[]' END"
    if duckdb_type == "VARCHAR":
        return ("CASE WHEN i % 50 = 0 THEN 'https://example.com/a,b?q=\"' || i || '\"' "
                "ELSE 'https://example.com/p/' || (i % 997) END")
    if duckdb_type in ("UTINYINT",):
        return "(i % 2)::UTINYINT"
    if duckdb_type == "TINYINT":
        return "(i % 5)::TINYINT"
    return f"(i % 1000)::{duckdb_type}"


def write_parts(folder: Path, rows: int, runs: int, parts: int) -> tuple[Job, list[StagedRun]]:
    schema = load_schema("views")
    job = Job(job_id=1, name="bench views", format="CSV", scope="views", frequency="daily",
              fields=tuple(JobField(f.name) for f in schema.fields))
    con = duckdb.connect()
    select = ", ".join(f'{field_expr(f.name, f.duckdb_type)} AS "{f.name}"'
                       for f in schema.fields)
    per_part = rows // (runs * parts)
    staged = []
    for r in range(runs):
        day = DAY0 + timedelta(days=r)
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        run = Run(run_id=100 + r, job_id=1, state="SUCCESS", start_date=start,
                  end_date=start + timedelta(days=1),
                  finished_at=start + timedelta(days=1, hours=4))
        staged_parts = []
        for p in range(parts):
            path = folder / f"run{r}-part{p}.csv.gz"
            first = (r * parts + p) * per_part
            con.execute(
                f"COPY (SELECT {select} FROM (SELECT range AS i, TIMESTAMP '{day}' AS d "
                f"FROM range({first}, {first + per_part}))) TO '{path}' "
                "(HEADER, NULLSTR '\\N', COMPRESSION gzip)")
            staged_parts.append(StagedPart(p + 1, path, path.stat().st_size))
        staged.append(StagedRun(job, run, tuple(staged_parts)))
    con.close()
    return job, staged


def plain_load(db: Path, job: Job, staged: list[StagedRun]) -> float:
    columns = job_layout(job).columns
    struct = "{" + ", ".join(f"'{c.source}': '{c.duckdb_type}'" for c in columns) + "}"
    files = "[" + ", ".join(f"'{p.path}'" for s in staged for p in s.parts) + "]"
    con = duckdb.connect(str(db))
    # The same setting DuckDBStore uses, so the comparison is of the loading work only.
    con.execute("SET preserve_insertion_order = false")
    t = time.perf_counter()
    con.execute(f"CREATE TABLE views AS SELECT * FROM read_csv({files}, columns = {struct}, "
                f"header = true, {CSV_OPTIONS}, compression = 'gzip')")
    elapsed = time.perf_counter() - t
    con.close()
    return elapsed


def store_load(db: Path, staged: list[StagedRun]) -> tuple[float, int]:
    store = DuckDBStore.open(db)
    t = time.perf_counter()
    outcomes = store.apply(staged)
    elapsed = time.perf_counter() - t
    store.close()
    assert all(o.status == "loaded" for o in outcomes), outcomes
    return elapsed, sum(o.rows for o in outcomes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--parts", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="csload-bench-") as tmp:
        folder = Path(tmp)
        t = time.perf_counter()
        job, staged = write_parts(folder, args.rows, args.runs, args.parts)
        size = sum(p.bytes for s in staged for p in s.parts)
        print(f"wrote {args.runs} runs x {args.parts} parts, {size / 1e6:.1f} MB gzip "
              f"in {time.perf_counter() - t:.1f} s")
        plain, mine = [], []
        for i in range(args.repeat):
            plain.append(plain_load(folder / f"plain{i}.duckdb", job, staged))
            elapsed, rows = store_load(folder / f"store{i}.duckdb", staged)
            mine.append(elapsed)
            print(f"  round {i + 1}: plain {plain[-1]:.2f} s, DuckDBStore.apply {elapsed:.2f} s "
                  f"({rows} rows)")
        best_plain, best_mine = min(plain), min(mine)
        print(f"plain CREATE TABLE AS read_csv: {best_plain:.2f} s "
              f"({args.rows / best_plain / 1e3:.0f} k rows/s)")
        print(f"DuckDBStore.apply:              {best_mine:.2f} s "
              f"({args.rows / best_mine / 1e3:.0f} k rows/s)")
        print(f"ratio: {best_mine / best_plain:.2f}x")


if __name__ == "__main__":
    main()
