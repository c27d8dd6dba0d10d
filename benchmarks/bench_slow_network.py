"""A sync over a slow network: per-connection latency and bandwidth cap on every request.

    python benchmarks/bench_slow_network.py                 # 1 M pageviews, 100 ms, 5 MB/s, x4
    python benchmarks/bench_slow_network.py --quick         # ~150 k pageviews (< 1 min)
    python benchmarks/bench_slow_network.py --bandwidth-mb 2 --concurrency 8 --repeat 3

The simulator runs in its own process (`--serve`), with `faults.latency` (seconds added before
every API and storage response) and `faults.bandwidth` (bytes per second, per connection). It
generates the daily runs of a views job (CSV) and a sessions job (JSONL) and writes the very
gzip bytes it serves to a folder, before anything is timed. Then, best of --repeat:

* `csload sync --json --concurrency C` into a fresh database, in a subprocess: wall clock from
  spawn to exit (Python start-up included), and the report's own `seconds`;
* DuckDB's own load of the same gzip files from local disk, in this process: `CREATE TABLE
  AS SELECT ... FROM read_csv/read_json([every part])` with csload's reader options, columns
  and casts (no lineage, ledger or supersede work), from connect to close.

The claim: sync time <= 1.2 x max(total bytes / (cap x C), DuckDB's load time). Downloads that
did not run in parallel would need total bytes / cap; loading that did not overlap the downloads
would need the network bound plus DuckDB's time: both are printed for comparison, with the most
downloads the simulator saw in flight at once. Results: stdout and
benchmarks/results/bench_slow_network-<date>-<views>-<cap>-<concurrency>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ab_patches
from harness.processes import compile_csload, say
from harness.simserver import sized_simulator

HERE = Path(__file__).resolve()
RESULTS = HERE.parent / "results"
CSLOAD = Path(sys.executable).parent / "csload"
SIM_NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TARGET = 1.2
MB = 1_000_000

# With CSLOAD_BENCH_AB set, both arms of an A/B start through the same launcher (ab_patches).
AB = os.environ.get(ab_patches.ENV)
SYNC = [str(CSLOAD)] if AB is None else [sys.executable, str(HERE.parent / "csload_ab.py")]

# --- the simulator process (--serve) ---------------------------------------------------------

def serve(args: argparse.Namespace) -> None:
    folder = Path(args.out)
    started = time.perf_counter()
    sim, sessions_per_day = sized_simulator(args.views, args.days, args.part_mb, SIM_NOW)
    jobs, parts = [], []
    for job in sim.jobs:
        jobs.append({"jobId": job.job_id, "name": job.name, "format": job.format,
                     "scope": job.scope, "frequency": job.frequency,
                     "fields": [f.to_api() for f in job.fields]})
        for run in sim.runs(job.job_id):
            for number, body in enumerate(sim.part_bodies(job.job_id, run.run_id,
                                                          compressed=True), start=1):
                path = folder / f"job-{job.job_id}-run-{run.run_id}-{number:03d}.gz"
                path.write_bytes(body)
                parts.append({"job_id": job.job_id, "path": str(path), "bytes": len(body)})
    generated = time.perf_counter() - started
    sim.faults.latency = args.latency
    sim.faults.bandwidth = int(args.bandwidth_mb * MB)
    handle = sim.start_in_thread()
    client_id, client_secret, project_id = sim.credentials
    say({"url": handle.base_url, "client_id": client_id, "client_secret": client_secret,
         "project_id": project_id, "sessions_per_day": sessions_per_day, "jobs": jobs,
         "parts": parts, "generate_seconds": round(generated, 1)})
    try:
        for line in sys.stdin:
            command = line.strip()
            if command == "reset":
                sim.stats.reset()
                say({"reset": True})
            elif command == "stats":
                stats = sim.stats
                say({"max_storage_in_flight": stats.max_storage_in_flight,
                     "max_api_in_flight": stats.max_api_in_flight,
                     "storage_requests": stats.storage_requests,
                     "storage_bytes_sent": stats.storage_bytes_sent,
                     "api_requests": stats.api_requests,
                     "delayed_responses": stats.delayed_responses})
            elif command == "stop":
                break
    finally:
        handle.stop()


class Server:
    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE), "--serve", "--views", str(args.views),
             "--days", str(args.days), "--part-mb", str(args.part_mb),
             "--latency", str(args.latency), "--bandwidth-mb", str(args.bandwidth_mb),
             "--out", str(folder)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.hello = self.ask(None)

    def ask(self, command: str | None) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the simulator process ended (exit {self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("stop\n")
            self.proc.stdin.close()
            self.proc.wait(30)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTENTSQUARE_")}
        env.update({"CONTENTSQUARE_CLIENT_ID": self.hello["client_id"],
                    "CONTENTSQUARE_CLIENT_SECRET": self.hello["client_secret"],
                    "CONTENTSQUARE_PROJECT_ID": str(self.hello["project_id"]),
                    "CONTENTSQUARE_AUTH_URL": self.hello["url"]})
        return env


# --- the two timed things ----------------------------------------------------------------------

def duckdb_load(hello: dict[str, Any], db: Path) -> float:
    """DuckDB's own load of the served gzip files: one CREATE TABLE AS per job."""
    import duckdb

    from csload.api.models import Job
    from csload.load import sql
    from csload.load.columns import job_layout

    started = time.perf_counter()
    con = duckdb.connect(str(db))
    for macro in sql.MACROS:
        con.execute(macro)
    for raw in hello["jobs"]:
        job = Job.from_api(raw)
        columns = job_layout(job).columns
        files = [p["path"] for p in hello["parts"] if p["job_id"] == job.job_id]
        if not files:
            continue
        csv = job.format == "CSV"
        reader = (sql.read_csv(files, columns, True) if csv
                  else sql.read_json(files, columns, True))
        values = ", ".join(f"{sql.select_value(c, csv)} AS \"{c.name}\"" for c in columns)
        con.execute(f'CREATE TABLE "{job.scope}" AS SELECT {values} FROM {reader} AS f')
    con.close()
    return time.perf_counter() - started


def csload_sync(server: Server, db: Path, concurrency: int) -> dict[str, Any]:
    server.ask("reset")
    started = time.perf_counter()
    proc = subprocess.run([*SYNC, "sync", "--db", str(db), "--json",
                           "--concurrency", str(concurrency)],
                          env=server.env(), cwd=db.parent, capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"csload sync failed ({proc.returncode}): {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    return {"wall_seconds": wall, "report_seconds": report["seconds"], "rows": report["rows"],
            "bytes": report["bytes"], "runs": report["runsLoaded"],
            "simulator": server.ask("stats")}


def timeline(server: Server, db: Path, concurrency: int) -> dict[str, Any]:
    """One more sync, in this process, with progress events timed: when the plan was ready,
    when each part arrived and each run was loaded. Shows whether downloads kept the pipe
    full and how much loading happened while they ran."""
    import csload
    from csload.config import Limits, Settings
    from csload.pipeline.report import EventKind, SyncEvent

    hello = server.hello
    settings = Settings(client_id=hello["client_id"], client_secret=hello["client_secret"],
                        project_id=hello["project_id"], auth_url=hello["url"],
                        limits=Limits(download_concurrency=concurrency))
    parts: list[tuple[float, int]] = []
    loads: list[tuple[float, int]] = []
    planned = [0.0]
    server.ask("reset")
    started = time.perf_counter()

    def on_event(event: SyncEvent) -> None:
        now = time.perf_counter() - started
        if event.kind is EventKind.PLANNED:
            planned[0] = now
        elif event.kind is EventKind.PART_DOWNLOADED:
            parts.append((now, event.bytes))
        elif event.kind is EventKind.RUN_LOADED:
            loads.append((now, event.rows))

    report = csload.sync(settings, db=db, on_event=on_event)
    end = time.perf_counter() - started
    last_part = max(t for t, _ in parts)
    downloading = last_part - planned[0]
    return {
        "seconds": end, "planned_at": planned[0], "last_part_at": last_part,
        "download_seconds": downloading,
        "download_mb_per_second": sum(n for _, n in parts) / downloading / MB,
        "rows": report.rows,
        "rows_loaded_before_last_part": sum(n for t, n in loads if t <= last_part),
        "tail_seconds": end - last_part,
        "max_downloads_in_flight": server.ask("stats")["max_storage_in_flight"],
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--views", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--part-mb", type=int, default=32,
                        help="uncompressed MiB per part (the simulator's part_max_bytes)")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per response")
    parser.add_argument("--bandwidth-mb", type=float, default=5.0,
                        help="MB/s per connection (10^6 bytes)")
    parser.add_argument("--concurrency", type=int, default=4, help="csload --concurrency")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="150 k views, 8 MiB parts")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args)
        return
    if args.quick:
        args.views, args.part_mb = 150_000, 8
    ab_patches.parse(AB)   # an unknown switch fails before the data is generated
    compile_csload()

    work = Path(tempfile.mkdtemp(prefix="csload-slownet-"))
    try:
        parts_dir = work / "parts"
        parts_dir.mkdir()
        server = Server(args, parts_dir)
        try:
            hello = server.hello
            total = sum(p["bytes"] for p in hello["parts"])
            cap = args.bandwidth_mb * MB
            network = total / (cap * args.concurrency)
            baseline, syncs = [], []
            for i in range(args.repeat):
                baseline.append(duckdb_load(hello, work / f"duckdb-{i}.duckdb"))
                syncs.append(csload_sync(server, work / f"csload-{i}.duckdb", args.concurrency))
                print(f"  run {i + 1}: csload {syncs[-1]['wall_seconds']:.2f} s "
                      f"(report {syncs[-1]['report_seconds']:.2f} s), "
                      f"duckdb {baseline[-1]:.2f} s", flush=True)
            timed = timeline(server, work / "timeline.duckdb", args.concurrency)
        finally:
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    best = min(syncs, key=lambda s: s["wall_seconds"])
    duck = min(baseline)
    bound = max(network, duck)
    result = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "load_average": os.getloadavg()},
        "options": {k: v for k, v in vars(args).items() if k not in ("serve", "out")},
        "ab_switches": AB,
        "views_target": args.views, "parts": len(hello["parts"]), "total_bytes": total,
        "rows": best["rows"], "generate_seconds": hello["generate_seconds"],
        "cap_bytes_per_second": cap, "concurrency": args.concurrency,
        "latency_seconds": args.latency,
        "network_bound_seconds": network, "duckdb_seconds": duck, "bound_seconds": bound,
        "serial_download_seconds": total / cap, "no_overlap_seconds": network + duck,
        "sync_wall_seconds": best["wall_seconds"], "sync_report_seconds": best["report_seconds"],
        "ratio_wall": best["wall_seconds"] / bound,
        "ratio_report": best["report_seconds"] / bound, "target": TARGET,
        "max_downloads_in_flight": best["simulator"]["max_storage_in_flight"],
        "all_syncs": syncs, "all_duckdb_seconds": baseline, "timeline": timed,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / (f"bench_slow_network-{datetime.now(UTC):%Y-%m-%d}-{args.views // 1000}k-"
                     f"{args.bandwidth_mb:g}MBps-x{args.concurrency}"
                     f"{ab_patches.suffix(AB)}.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"""
parts: {len(hello['parts'])}, {total / MB:.1f} MB gzip, {best['rows']:,} rows
cap {args.bandwidth_mb:g} MB/s per connection x {args.concurrency} downloads, latency \
{args.latency * 1000:.0f} ms per response
network bound  bytes / (cap x C)        {network:7.2f} s
DuckDB's own load (best)                {duck:7.2f} s
bound = max of the two                  {bound:7.2f} s
csload sync, wall (best, with start-up) {best['wall_seconds']:7.2f} s   ratio \
{result['ratio_wall']:.2f} (target <= {TARGET})
csload sync, its report's seconds       {best['report_seconds']:7.2f} s   ratio \
{result['ratio_report']:.2f}
for comparison: serial downloads        {total / cap:7.2f} s
                downloads, then loading {network + duck:7.2f} s
most downloads in flight at once        {best['simulator']['max_storage_in_flight']}
one more sync, in-process, timed by its progress events ({timed['seconds']:.2f} s):
  plan ready (token, jobs, runs)        {timed['planned_at']:7.2f} s
  downloads: last part at               {timed['last_part_at']:7.2f} s   \
{timed['download_mb_per_second']:.1f} MB/s of {cap * args.concurrency / MB:g} MB/s
  rows loaded before the last part      {timed['rows_loaded_before_last_part']:,} of \
{timed['rows']:,}
  after the last part (loading tail)    {timed['tail_seconds']:7.2f} s
written to {out}""")


if __name__ == "__main__":
    main(sys.argv[1:])
