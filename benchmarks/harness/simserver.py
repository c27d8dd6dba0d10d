"""The simulator process of a bench size (`bench_sync.py --serve`): it generates the daily runs
of a `views` job (CSV) and a `sessions` job (JSONL), writes the exact gzip bytes it will serve to
a local folder (the baseline reads them), then serves them until told to stop."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.processes import BENCH_SYNC, say

if TYPE_CHECKING:
    from csload.simulator import Simulator

# Pageviews per simulated session inside one day's window (measured on the generator: ~4.5).
VIEWS_PER_SESSION = 4.5
SEED = 11
# A fixed simulated "now": the same days, hence the same rows, in every invocation.
SIM_NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def sized_simulator(views: int, days: int, part_mb: int, start_time: datetime,
                    dialect: str = "contract") -> tuple[Simulator, int]:
    """A prepared simulator of about `views` pageviews over `days` days (seed SEED, no suspended
    job), and the sessions per day that makes: what every bench's simulator process serves."""
    from csload.simulator import SimConfig, Simulator
    from csload.simulator.config import dialect_variants

    sessions_per_day = max(1, round(views / days / VIEWS_PER_SESSION))
    sim = Simulator(SimConfig(seed=SEED, days=days, sessions_per_day=sessions_per_day,
                              part_max_bytes=part_mb * 1024 * 1024,
                              seed_suspended_job=False, start_time=start_time,
                              variants=dialect_variants(dialect)))
    sim.prepare()
    return sim, sessions_per_day


def serve(args: argparse.Namespace) -> None:
    """Generate, write the served bytes to disk, serve; obey `rerun` / `stop` on stdin."""
    out_dir = Path(args.out)
    started = time.perf_counter()
    sim, sessions_per_day = sized_simulator(args.views, args.days, args.part_mb, SIM_NOW,
                                            args.dialect)
    written: set[int] = set()

    def write_parts() -> list[dict[str, Any]]:
        """Every served part not yet on disk, by run: the very bytes storage sends."""
        runs = []
        for job in sim.jobs:
            for run in sim.runs(job.job_id):
                if run.run_id in written:
                    continue
                bodies = sim.part_bodies(job.job_id, run.run_id, compressed=True)
                if not bodies:
                    continue
                files = []
                for number, body in enumerate(bodies, start=1):
                    path = out_dir / f"job-{job.job_id}-run-{run.run_id}-part-{number:03d}." \
                        f"{job.format.lower()}.gz"
                    path.write_bytes(body)
                    files.append(str(path))
                written.add(run.run_id)
                runs.append({"job_id": job.job_id, "scope": job.scope, "format": job.format,
                             "run_id": run.run_id, "day": run.start.date().isoformat(),
                             "files": files, "bytes": sum(len(b) for b in bodies)})
        return runs

    runs = write_parts()
    generated = time.perf_counter() - started
    handle = sim.start_in_thread()
    client_id, client_secret, project_id = sim.credentials
    say({"url": handle.base_url, "client_id": client_id, "client_secret": client_secret,
         "project_id": project_id, "sessions_per_day": sessions_per_day,
         "generate_seconds": round(generated, 1), "runs": runs})
    try:
        for line in sys.stdin:
            command = line.split()
            if not command:
                continue
            if command[0] == "rerun":
                started = time.perf_counter()
                day = datetime.fromisoformat(command[1]).date()
                run_ids = [sim.rerun(job.job_id, day) for job in sim.jobs]
                sim.prepare()
                runs = write_parts()
                say({"rerun": run_ids, "runs": runs,
                     "generate_seconds": round(time.perf_counter() - started, 1)})
            elif command[0] == "stop":
                break
    finally:
        handle.stop()
    # Freeing millions of cached row objects takes the interpreter tens of seconds.
    sys.stdout.flush()
    os._exit(0)


class Server:
    """The `--serve` child, driven by lines on its stdin, answering JSON lines on its stdout."""

    def __init__(self, views: int, days: int, part_mb: int, folder: Path,
                 dialect: str = "contract") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH_SYNC), "--serve", "--views", str(views), "--days", str(days),
             "--part-mb", str(part_mb), "--out", str(folder), "--dialect", dialect],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.hello = self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the simulator process ended (exit {self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def rerun(self, day: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"rerun {day}\n")
        self.proc.stdin.flush()
        return self._answer()

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.write("stop\n")
                self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONTENTSQUARE_")}
        env.update({
            "CONTENTSQUARE_CLIENT_ID": self.hello["client_id"],
            "CONTENTSQUARE_CLIENT_SECRET": self.hello["client_secret"],
            "CONTENTSQUARE_PROJECT_ID": str(self.hello["project_id"]),
            "CONTENTSQUARE_AUTH_URL": self.hello["url"],
        })
        return env


def file_rows(files: list[str], csv: bool, dialect: str = "contract") -> int:
    """Rows in the files (CSV parts have a header in the contract dialect, none in ClickHouse's)."""
    import duckdb

    header = "true" if dialect == "contract" else "false"
    reader = "read_csv" if csv else "read_json"
    opts = (f"header = {header}, all_varchar = true" if csv
            else "format = 'newline_delimited'")
    listing = "[" + ", ".join(f"'{f}'" for f in files) + "]"
    con = duckdb.connect()
    try:
        return int(con.execute(f"SELECT count(*) FROM {reader}({listing}, {opts})").fetchone()[0])
    finally:
        con.close()
