"""End to end: `csload sync` from the local simulator vs DuckDB's own load of the same files.

    python benchmarks/bench_sync.py                      # 1 M and 2 M pageviews (~10 min)
    python benchmarks/bench_sync.py --quick              # ~100 k pageviews (< 1 min)
    python benchmarks/bench_sync.py --sizes 2000000 --repeat 5 --phases

For each size, a simulator runs in a separate process (`--serve`): it generates the daily runs
of a `views` job (CSV, gzip parts) and a `sessions` job (JSONL, gzip parts), writes the exact
gzip bytes it will serve (`sim.part_bodies(..., compressed=True)`) to a local folder, then
serves them. Generation is outside every timed section. Then, timed:

1. `csload sync --json` into a fresh database file, in a subprocess: wall clock from spawn to
   exit (Python start-up included), the child's CPU seconds and peak RSS (`wait4` rusage), and
   the simulator's CPU seconds meanwhile (it shares the machine's cores).
2. The baseline, DuckDB's own load, timed as its own process exactly as the sync is (wall clock
   from spawn to exit, CPU seconds and peak RSS from `wait4`): `python benchmarks/duckdb_load.py`
   starts the interpreter, imports duckdb, runs `CREATE TABLE views AS SELECT ... FROM
   read_csv([every part], columns = {...})` and the same for `sessions` with `read_json`, over
   the very same gzip files on local disk, with the same DuckDB settings, closes (the final
   checkpoint) and exits. Its SQL reuses csload's reader options, column types and cast
   expressions (`csload.load.sql`, `job_layout`), so both do the same parsing work; it is
   written beforehand, untimed, by a `--baseline-plan` process, so the timed one imports no
   csload. It writes no lineage columns, no ledger and runs no supersede check. (Before
   2026-12-06 the baseline was timed from `duckdb.connect` to `close()` only, Python start-up
   excluded while csload's counted: result files without `baseline_timing` hold that figure.)
   The two alternate (which goes first, too), `--repeat` times each, into fresh files; the
   best of each is compared. Row counts of both databases must match.
3. Three more `csload sync` with nothing new (the no-op), on the last database.
4. The server re-runs one day of both jobs (`sim.rerun`, a new data revision; generated
   before timing) and one more `csload sync` replaces that day (the re-sync); the row counts
   must equal old - replaced + new, with no duplicate row keys.

Results: a table on stdout and `benchmarks/results/bench_sync-<date>[-patched].json`. The "CPU
ratio" (csload process CPU / baseline process CPU) is the figure to trust when other work
loads the machine: wall clocks on a shared 2-core box move by +-50%; the load average and the
CPU pressure (PSI) before and after each size are printed and saved.

`--patch NAME[=VALUE]` (repeatable) runs the csload syncs with an experimental change
monkeypatched in (harness.patches; its SQL_PATCHES apply to the baseline too); the
default run always measures the code as it is. `--phases` adds one more sync per size,
instrumented in-process, that reports each stage's wall time and its thread's CPU time.
`CSLOAD_BENCH_AB=NAME[,NAME]` (or `none`, for the A arm) turns off one of the speed
mechanisms issue 17 asks to justify, in every csload sync, with both arms started by the same
launcher (benchmarks/ab_patches.py); results files get `-ab-<names>`.

The machinery bench_parquet and the other benches share (the simulator process, timing a
child process, the baseline's plan, patches, instrumentation, the results) is in
benchmarks/harness/; this script is also the entry point of the processes it starts
(`--serve`, `--baseline-plan`, `--instrumented-sync`, `--patched-cli`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import ab_patches
from harness.baseline import (
    BASELINE_TIMING,
    baseline_cmd,
    baseline_selects,
    prepare_baseline,
    write_plan,
)
from harness.instrument import Recorder, print_phases, run_instrumented
from harness.patches import apply_patch, patched_cli
from harness.processes import (
    CSLOAD,
    Child,
    cpu_pressure,
    load_average,
    log,
    process_cpu,
    run_child,
    say,
)
from harness.simserver import Server, file_rows, serve
from harness.sizes import (
    TARGET_NOOP_S,
    TARGET_RSS_MB,
    SizeResult,
    apply_quick,
    common_parser,
    run_sizes,
)
from harness.summary import (
    common_suffix,
    memory_and_noop,
    print_columns,
    print_rounds,
    print_verdicts,
    results_path,
    run_record,
    save,
)

HERE = Path(__file__).resolve()
TARGET_RATIO = 1.25


def baseline_plan(args: argparse.Namespace) -> None:
    """(--baseline-plan) DuckDB's own load of the files of `--manifest` into typed tables:
    one CREATE TABLE AS per job, written to the plan file `--out`."""
    from csload.load.sqltext import quote_ident

    write_plan(args, [(sel.scope, f"CREATE TABLE {quote_ident(sel.scope)} AS "
                                  f"SELECT {sel.values} FROM {sel.source}")
                      for sel in baseline_selects(args)])


def instrumented_sync(args: argparse.Namespace) -> None:
    """`csload sync` in this process with timers around its stages; prints a JSON summary."""
    recorder = Recorder()
    for spec in args.patch or ():
        apply_patch(spec)
    from csload.load import duckdb as store_module

    store = store_module.DuckDBStore
    recorder.wrap(store, "_insert_group", "  insert (read_csv/read_json)")
    recorder.wrap(store, "_apply_key_rule", "  key rule")
    recorder.wrap(store, "_apply_window_rule", "  window rule")
    recorder.wrap(store, "_run_counts", "  run counts")
    recorder.wrap(store, "_commit", "  commit")
    recorder.wrap(store, "close", "close (checkpoint)")
    recorder.wrap(store_module, "inspect_part", "  inspect part (header)")
    say(run_instrumented(recorder, db=args.db))


def sync_cmd(db: Path, patches: list[str]) -> list[str]:
    if patches:
        flags = [x for name in patches for x in ("--patch", name)]
        return [sys.executable, str(HERE), "--patched-cli", *flags, "--", "sync",
                "--db", str(db), "--json"]
    return [*CSLOAD, "sync", "--db", str(db), "--json"]


def checked_sync(db: Path, server: Server, patches: list[str], cwd: Path) -> tuple[Child, dict]:
    """One `csload sync --json`; the report gets the simulator's CPU seconds meanwhile."""
    before = process_cpu(server.proc.pid)
    child = run_child(sync_cmd(db, patches), env=server.env(), cwd=cwd)
    if child.returncode != 0:
        raise RuntimeError(f"csload sync exited {child.returncode}:\n{child.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(child.stdout)
    report["_server_cpu_seconds"] = process_cpu(server.proc.pid) - before
    return child, report


def table_counts(db: Path) -> dict[str, int]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                for t in ("sessions", "views")}
    finally:
        con.close()


def duplicate_keys(db: Path) -> dict[str, int]:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return {
            "views": con.execute("SELECT count(*) - count(DISTINCT (session_id, view_number)) "
                                 "FROM views").fetchone()[0],
            "sessions": con.execute("SELECT count(*) - count(DISTINCT session_id) "
                                    "FROM sessions").fetchone()[0],
        }
    finally:
        con.close()


def measure_size(views: int, args: argparse.Namespace, work: Path) -> SizeResult:
    result = SizeResult(target_views=views, days=args.days)
    folder = work / f"views-{views}"
    log(f"== {views:,} pageviews over {args.days} days: generating (untimed) ...")
    server = Server(views, args.days, args.part_mb, folder / "parts", args.dialect)
    try:
        hello = server.hello
        runs = hello["runs"]
        result.generate_seconds = hello["generate_seconds"]
        result.parts = sum(len(r["files"]) for r in runs)
        result.gzip_mb = round(sum(r["bytes"] for r in runs) / 1e6, 1)
        log(f"   generated in {result.generate_seconds:.0f} s: {len(runs)} runs, "
            f"{result.parts} parts, {result.gzip_mb} MB gzip; serving at {hello['url']}")
        manifest = folder / "manifest.json"
        manifest.write_text(json.dumps(hello))
        plan = prepare_baseline(manifest, folder / "baseline-plan.json", args)
        result.load_before = load_average()
        result.cpu_pressure_before = cpu_pressure()
        last_db = None

        def run_baseline(i: int) -> str:
            base_db = folder / f"baseline-{i}.duckdb"
            child = run_child(baseline_cmd(plan, str(base_db)), cwd=folder)
            if child.returncode != 0:
                raise RuntimeError(f"baseline failed:\n{child.stderr[-3000:]}")
            answer = json.loads(child.stdout.strip().splitlines()[-1])
            result.duckdb_seconds.append(child.seconds)
            result.duckdb_wall_seconds.append(child.seconds)
            result.duckdb_connect_to_close_seconds.append(answer["seconds"])
            result.duckdb_rss_mb.append(child.rss_mb)
            result.duckdb_cpu_seconds.append(child.cpu_seconds)
            result.duckdb_statements.append(answer["statements"])
            counts = table_counts(base_db)   # after the process, untimed
            result.views, result.sessions = counts["views"], counts["sessions"]
            result.duckdb_file_mb.append(base_db.stat().st_size / 1e6)
            base_db.unlink()
            base_db.with_name(base_db.name + ".wal").unlink(missing_ok=True)
            st = answer["statements"]
            return (f"duckdb process {child.seconds:.2f} s (CPU {child.cpu_seconds:.1f} s; "
                    f"connect..close {answer['seconds']:.2f}: views {st['views']:.2f}, "
                    f"sessions {st['sessions']:.2f}, close {st['close']:.2f})")

        def run_csload(i: int) -> tuple[Path, str]:
            db = folder / f"csload-{i}.duckdb"
            sync, report = checked_sync(db, server, args.patch, folder)
            result.csload_seconds.append(sync.seconds)
            result.csload_rss_mb.append(sync.rss_mb)
            result.csload_cpu_seconds.append(sync.cpu_seconds)
            result.server_cpu_seconds.append(report["_server_cpu_seconds"])
            result.csload_file_mb.append(db.stat().st_size / 1e6)
            return db, (f"csload sync {sync.seconds:.2f} s (CPU {sync.cpu_seconds:.1f} s, "
                        f"simulator {report['_server_cpu_seconds']:.1f} s), "
                        f"{sync.rss_mb:.0f} MB, {report['runsLoaded']} runs, "
                        f"{report['rows']:,} rows")

        for i in range(args.repeat):
            # Alternate which goes first, so neither always follows the other's writes.
            if i % 2 == 0:
                first = run_baseline(i)
                db, second = run_csload(i)
            else:
                db, first = run_csload(i)
                second = run_baseline(i)
            counts = table_counts(db)
            ok = counts == {"views": result.views, "sessions": result.sessions}
            result.checks.setdefault("rows_match_baseline", []).append(ok)
            log(f"   round {i + 1}: {first}; {second}{'' if ok else f' MISMATCH {counts}'}")
            if last_db is not None:
                last_db.unlink()
            last_db = db

        if args.phases:
            db = folder / "phases.duckdb"
            cmd = [sys.executable, str(HERE), "--instrumented-sync", "--db", str(db)]
            cmd += [x for name in args.patch or () for x in ("--patch", name)]
            child = run_child(cmd, env=server.env(), cwd=folder)
            if child.returncode != 0:
                raise RuntimeError(f"instrumented sync failed:\n{child.stderr[-3000:]}")
            result.phases = json.loads(child.stdout.strip().splitlines()[-1])
            print_phases(result.phases)
            db.unlink()

        assert last_db is not None
        for _ in range(3):
            noop, report = checked_sync(last_db, server, args.patch, folder)
            result.noop_seconds.append(noop.seconds)
            result.noop_rss_mb.append(noop.rss_mb)
            if report["runsLoaded"]:
                raise RuntimeError(f"the no-op sync loaded {report['runsLoaded']} runs")
        log(f"   no-op sync: {', '.join(f'{s:.2f}' for s in result.noop_seconds)} s")

        days = sorted({r["day"] for r in runs})
        day = days[len(days) // 2]
        before = table_counts(last_db)
        log(f"   re-running {day} on the server (untimed) ...")
        rerun = server.rerun(day)
        new_rows = {r["scope"]: file_rows(r["files"], r["format"] == "CSV", args.dialect)
                    for r in rerun["runs"]}
        old_rows = {r["scope"]: file_rows(r["files"], r["format"] == "CSV", args.dialect)
                    for r in runs if r["day"] == day}
        resync, report = checked_sync(last_db, server, args.patch, folder)
        result.resync_seconds = resync.seconds
        result.resync_rss_mb = resync.rss_mb
        result.resync_rows = new_rows
        after = table_counts(last_db)
        expected = {t: before[t] - old_rows[t] + new_rows[t] for t in before}
        result.checks["resync_counts_ok"] = after == expected
        result.checks["resync_duplicate_keys"] = duplicate_keys(last_db)
        log(f"   re-sync of {day}: {resync.seconds:.2f} s, {resync.rss_mb:.0f} MB, "
            f"{report['runsLoaded']} runs, {report['rows']:,} rows; counts "
            f"{'ok' if after == expected else f'MISMATCH {after} != {expected}'}")

        result.load_after = load_average()
        result.cpu_pressure_after = cpu_pressure()
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return result


def print_table(results: list[SizeResult]) -> None:
    head = ("rows (views+sessions)", "csload s", "DuckDB s", "ratio", "csload rows/s",
            "DuckDB rows/s", "peak RSS MB", "no-op s", "re-sync s", "CPU ratio")
    print_columns(head, [(
        f"{r.rows:,} ({r.views:,}+{r.sessions:,})",
        f"{r.best_csload:.2f}", f"{r.best_duckdb:.2f}", f"{r.ratio:.2f}x",
        f"{r.rows / r.best_csload / 1e3:,.0f} k", f"{r.rows / r.best_duckdb / 1e3:,.0f} k",
        f"{r.peak_rss:.0f}", f"{min(r.noop_seconds):.2f}", f"{r.resync_seconds:.2f}",
        f"{r.cpu_ratio:.2f}x") for r in results])
    print("csload s: best of the `csload sync` process wall clocks, spawn to exit; DuckDB s: "
          "best of the baseline process wall clocks, spawn to exit (duckdb_load.py: Python "
          "start-up, import duckdb, CREATE TABLE AS read_csv/read_json over the same gzip "
          "files, close with its checkpoint). CPU ratio: best csload process CPU seconds / best "
          "baseline process CPU seconds (wait4 rusage of each).")
    print_rounds(results, "duckdb")
    worst = max(results, key=lambda r: r.ratio)
    verdicts = [
        (f"csload <= {TARGET_RATIO}x DuckDB", worst.ratio <= TARGET_RATIO,
         f"worst {worst.ratio:.2f}x"),
        *memory_and_noop(results),
        ("rows match DuckDB's load, re-sync counts exact, no duplicate keys",
         all(all(r.checks["rows_match_baseline"]) and r.checks["resync_counts_ok"]
             and not any(r.checks["resync_duplicate_keys"].values()) for r in results), ""),
    ]
    if len(results) > 1:
        small, large = results[0], results[-1]
        grew = large.peak_rss / small.peak_rss
        verdicts.append((f"RSS flat with rows ({large.rows / small.rows:.1f}x rows)",
                         grew < 1.2, f"{grew:.2f}x RSS"))
    print_verdicts(verdicts)


def write_json(results: list[SizeResult], args: argparse.Namespace, started: datetime) -> Path:
    import duckdb

    suffix = common_suffix(args, "" if args.dialect == "contract" else f"-{args.dialect}")
    return save(results_path("bench_sync", started, suffix), {
        **run_record(started, args, duckdb=duckdb.__version__),
        "targets": {"ratio": TARGET_RATIO, "rss_mb": TARGET_RSS_MB, "noop_s": TARGET_NOOP_S},
        "baseline_timing": BASELINE_TIMING,
        "ab_switches": os.environ.get(ab_patches.ENV),
        "sizes": [{**asdict(r), "rows": r.rows, "best_csload_seconds": r.best_csload,
                   "best_duckdb_seconds": r.best_duckdb, "ratio": round(r.ratio, 3),
                   "cpu_ratio": round(r.cpu_ratio, 3),
                   "csload_rows_per_second": round(r.rows / r.best_csload),
                   "duckdb_rows_per_second": round(r.rows / r.best_duckdb),
                   "peak_rss_mb": round(r.peak_rss, 1)} for r in results],
    })


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = common_parser(__doc__, "DuckDB load")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--views", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--patched-cli", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rest and not args.patched_cli:
        parser.error(f"unexpected arguments: {' '.join(args.rest)}")
    return apply_quick(args)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.serve:
        return serve(args)
    if args.baseline_plan:
        return baseline_plan(args)
    if args.instrumented_sync:
        return instrumented_sync(args)
    if args.patched_cli:
        return patched_cli(args)
    run_sizes(args, "bench_sync", measure_size, print_table, write_json)
    return None


if __name__ == "__main__":
    main()
