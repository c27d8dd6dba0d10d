"""DuckDB's own load, as its own process: the baseline of bench_sync.py and bench_parquet.py.

    python benchmarks/duckdb_load.py PLAN.json DATABASE       # a database file
    python benchmarks/duckdb_load.py PLAN.json :memory:       # bench_parquet's COPY ... TO

The benchmarks time this process from spawn to exit, with its CPU seconds and peak RSS from
`wait4`, exactly as they time the `csload sync` process: interpreter start, `import duckdb`,
`connect`, the plan's statements, `close()` (the final checkpoint), interpreter exit. It imports
nothing of csload (its import is csload's cost, not DuckDB's): the SQL, built from csload's
reader options, column types and casts, was written to PLAN.json beforehand, untimed, by
`bench_sync.py --baseline-plan`. PLAN.json holds {"setup": [statements], "statements":
[[table, statement], ...]}; `setup` is DuckDBStore.open's settings and csload's macros.

Prints one JSON line: connect..close seconds (`seconds`, what the benchmarks compared before
2026-12-06), each statement's seconds and `close`, and DuckDB's `threads` setting.
"""

import json
import sys
import time

import duckdb


def main() -> None:
    plan_path, database = sys.argv[1], sys.argv[2]
    with open(plan_path, encoding="utf-8") as f:
        plan = json.load(f)
    start = time.perf_counter()
    con = duckdb.connect(database)
    for statement in plan["setup"]:
        con.execute(statement)
    timings = {}
    for table, statement in plan["statements"]:
        t = time.perf_counter()
        con.execute(statement)
        timings[table] = time.perf_counter() - t
    row = con.execute("SELECT current_setting('threads')").fetchone()
    t = time.perf_counter()
    con.close()
    timings["close"] = time.perf_counter() - t
    print(json.dumps({"seconds": time.perf_counter() - start, "statements": timings,
                      "threads": row[0] if row else None}), flush=True)


if __name__ == "__main__":
    main()
