"""What the bench scripts share (`benchmarks/bench_*.py`, run from their folder, import it as
`harness`).

- processes: timing a child process from spawn to exit (wall, CPU, peak RSS), the machine's
  load, the `csload` command the benches run, printing and the results folder;
- simserver: the simulator process that generates a size's runs, writes their exact gzip
  parts to disk and serves them (`bench_sync.py --serve`);
- baseline: DuckDB's own load of the same files, as a plan written beforehand and a process
  of its own (`duckdb_load.py`);
- patches: experimental changes monkeypatched into the measured syncs (`--patch`);
- instrument: one sync in-process with timers around its stages (`--phases`);
- sizes: the options, the per-size figures and the loop over `--sizes` of bench_sync and
  bench_parquet;
- summary: printing and saving their results;
- lakes: counting the rows of bench_parquet's two lakes.
"""
