"""DuckDB's own load of the files a simulator wrote: csload's reader options, column types and
cast expressions (`csload.load.sql`, `job_layout`), so that both do the same parsing work. Its
SQL is written beforehand to a plan file by an untimed process (`--baseline-plan`), and run by
`duckdb_load.py`, which imports no csload, timed as its own process as the sync is."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.patches import SQL_PATCHES, apply_patch
from harness.processes import BENCH_DIR, BENCH_SYNC

# How `duckdb_seconds` is measured: result files without this key timed connect..close only.
BASELINE_TIMING = ("process: spawn to exit of `python benchmarks/duckdb_load.py` (start-up, "
                   "import duckdb, the statements, close and its checkpoint, exit), as csload's")


@dataclass
class BaselineSelect:
    """How the baseline reads one job's files: csload's own reader, columns and casts."""

    scope: str
    values: str        # the SELECT list: every column typed and named as csload loads it
    source: str        # the FROM clause: read_csv/read_json over the job's parts, as `f`
    layout: Any        # csload.load.columns.JobLayout
    columns: tuple[Any, ...]


def baseline_selects(args: argparse.Namespace) -> list[BaselineSelect]:
    """Untimed preparation of a baseline: SQL patches applied, the jobs' layouts, and each
    CSV job's header (csload reads it too), for the files of `--manifest`."""
    import anyio

    from csload.api.client import ExportClient
    from csload.config import Settings
    from csload.load import sql
    from csload.load.columns import job_layout
    from csload.load.parts import inspect_part
    from csload.load.sqltext import quote_ident

    for spec in args.patch or ():
        if spec in SQL_PATCHES:
            apply_patch(spec)
    manifest = json.loads(Path(args.manifest).read_text())

    async def list_jobs() -> list[Any]:
        settings = Settings(client_id=manifest["client_id"],
                            client_secret=manifest["client_secret"],
                            project_id=manifest["project_id"], auth_url=manifest["url"])
        async with ExportClient(settings) as client:
            return list(await client.list_jobs())

    selects = []
    for job in anyio.run(list_jobs):
        files = [f for run in manifest["runs"] if run["job_id"] == job.job_id
                 for f in run["files"]]
        if not files:
            continue
        layout = job_layout(job)
        csv = job.format == "CSV"
        columns = layout.columns
        first = inspect_part(job.job_id, 0, 1, Path(files[0]), job.format,
                             tuple(c.source for c in columns))
        if csv and first.has_header:
            assert first.header is not None
            by_source = layout.by_source()
            columns = tuple(by_source[name] for name in first.header)
        reader = (sql.read_csv(files, columns, gzip=True, header=first.has_header) if csv
                  else sql.read_json(files, columns, gzip=True, file_column=False))
        values = ", ".join(f"{sql.select_value(c, csv)} AS {quote_ident(c.name)}"
                           for c in columns)
        selects.append(BaselineSelect(job.scope, values, f"{reader} AS f", layout, columns))
    return selects


def baseline_setup(args: argparse.Namespace) -> list[str]:
    """DuckDBStore.open's settings (insertion order off, csload's macros; a memory cap only
    with --baseline-memory-limit), run by the baseline before its statements."""
    from csload.load import sql

    setup = ["SET preserve_insertion_order = false"]
    if args.baseline_memory_limit:
        setup.append(f"SET memory_limit = '{args.baseline_memory_limit}'")
    return [*setup, *sql.MACROS]


def write_plan(args: argparse.Namespace, statements: list[tuple[str, str]]) -> None:
    """The baseline's SQL, in the file `--out`, for duckdb_load.py (which imports no csload)."""
    plan = {"setup": baseline_setup(args), "statements": statements}
    Path(args.out).write_text(json.dumps(plan, indent=1) + "\n")


# The baseline as its own process (timed by run_child, as `csload sync` is).
LOADER = BENCH_DIR / "duckdb_load.py"


def prepare_baseline(manifest: Path, plan: Path, args: argparse.Namespace,
                     script: Path = BENCH_SYNC) -> Path:
    """Write the baseline's plan (`script --baseline-plan`), untimed. In a process of its own:
    SQL patches change csload's cached schemas in the process that applies them."""
    cmd = [sys.executable, str(script), "--baseline-plan", "--manifest", str(manifest),
           "--out", str(plan)]
    if args.baseline_memory_limit:
        cmd += ["--baseline-memory-limit", args.baseline_memory_limit]
    cmd += [x for spec in args.patch if spec in SQL_PATCHES for x in ("--patch", spec)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"preparing the baseline's SQL failed:\n{done.stderr[-3000:]}")
    return plan


def baseline_cmd(plan: Path, database: str) -> list[str]:
    """DuckDB's own load: interpreter start, `import duckdb`, the plan, close, exit."""
    return [sys.executable, str(LOADER), str(plan), database]
