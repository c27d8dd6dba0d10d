"""`csload sync` and `csload status`."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import click

from csload.cli.common import (
    connection_options,
    fail,
    print_json,
    settings_from,
    stderr,
    stdout,
)
from csload.cli.display import SyncDisplay, summary_table
from csload.config import read_lake_options
from csload.errors import CsloadError
from csload.pipeline import DEFAULT_DB, sync_async
from csload.report import SyncReport

if TYPE_CHECKING:
    # Lazy (in `status`): `csload sync` does not read the status, and the status reader
    # imports the backfill ledger, plan and job checks (~10 ms at start-up).
    from csload.status import StoreStatus


def _table_option(values: tuple[str, ...]) -> dict[int, str]:
    out: dict[int, str] = {}
    for value in values:
        job, sep, table = value.partition("=")
        if not sep or not job.strip().isdigit() or not table.strip():
            raise click.BadParameter(f"expected JOB_ID=TABLE, got {value!r}",
                                     param_hint="--table")
        out[int(job)] = table.strip()
    return out


def _day(value: datetime | None) -> date | None:
    return None if value is None else value.date()


@click.command()
@click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path),
              help=f"The DuckDB database file [default: {DEFAULT_DB}].")
@click.option("--parquet", metavar="ROOT",
              help="Write a Parquet lake instead: a folder, or s3://bucket/prefix.")
@click.option("--job", "job_ids", type=int, multiple=True, help="Only this job (repeatable).")
@click.option("--scope", type=click.Choice(["sessions", "views"]), help="Only this scope.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]),
              help="Only runs whose window starts on or after this day.")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]),
              help="Only runs whose window starts on or before this day.")
@click.option("--concurrency", type=click.IntRange(1, 64),
              help="Part downloads in flight [default: 4].")
@click.option("--table", "table_map", multiple=True, metavar="JOB_ID=TABLE",
              help="Load a job into this table instead of the one named after its scope.")
@click.option("--dry-run", is_flag=True, help="Say what would be loaded; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@connection_options
def sync(db: Path | None, parquet: str | None, job_ids: tuple[int, ...], scope: str | None,
         since: datetime | None, until: datetime | None, concurrency: int | None,
         table_map: tuple[str, ...], dry_run: bool, as_json: bool, **params: Any) -> None:
    """Load every new successful run into DuckDB (or a Parquet lake), exactly once."""
    params["limits"] = {"download_concurrency": concurrency}
    settings = settings_from(params)
    tables = _table_option(table_map)

    async def main() -> SyncReport:
        with SyncDisplay(stderr) as display:
            return await sync_async(
                settings, db=db, parquet=parquet, jobs=job_ids, scope=scope, since=_day(since),
                until=_day(until), tables=tables, dry_run=dry_run,
                on_event=display if not as_json else _quiet)

    try:
        report = anyio.run(main)
    except CsloadError as exc:
        fail(str(exc))
    if as_json:
        print_json(report.to_json())
    else:
        stdout.print(summary_table(report))
        for run in report.failed + report.expired:
            stdout.print(f"[bold]{run.status.value}[/]: job {run.job_id}, run {run.run_id}: "
                         f"{run.message}", highlight=False)
    sys.exit(report.exit_code)


def _quiet(_event: object) -> None:
    """--json: the report is the output; no progress lines mixed in."""


@click.command()
@click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path),
              help=f"The DuckDB database file [default: {DEFAULT_DB}].")
@click.option("--parquet", metavar="ROOT", help="A Parquet lake: a folder, or s3://bucket/prefix.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(db: Path | None, parquet: str | None, as_json: bool) -> None:
    """What the target holds: tables, coverage, last windows, gaps, failed/expired runs."""
    from csload.status import read_target_status

    try:
        state = read_target_status(db=db, parquet=parquet, storage_options=read_lake_options())
    except CsloadError as exc:
        fail(str(exc))
    if as_json:
        print_json(state.to_json())
        return
    print_status(state)


def print_status(state: StoreStatus) -> None:
    from rich.table import Table  # lazy: `csload sync` prints no status table

    tables = Table(title=f"tables in {state.target}")
    for column in ("table", "rows", "first date", "last date"):
        tables.add_column(column, justify="right" if column == "rows" else "left")
    for stats in state.tables:
        tables.add_row(stats.table, f"{stats.rows:,}", str(stats.first_date or ""),
                       str(stats.last_date or ""))
    stdout.print(tables)
    jobs = Table(title="jobs")
    for column in ("job", "name", "scope", "table", "last window loaded", "daily gaps"):
        jobs.add_column(column)
    for job in state.jobs:
        window = ""
        if job.last_window and job.last_window[0]:
            start, end = job.last_window
            window = f"{start:%Y-%m-%d %H:%M} -> {end:%Y-%m-%d %H:%M}" if end else f"{start}"
        gaps = ", ".join(str(day) for day in job.gaps[:10])
        if len(job.gaps) > 10:
            gaps += f" (+{len(job.gaps) - 10} more)"
        jobs.add_row(str(job.job_id), job.name, job.scope, job.table, window,
                     gaps or ("none" if job.frequency == "daily" else ""))
    stdout.print(jobs)
    for label, records in (("failed", state.failed), ("expired", state.expired)):
        for record in records:
            stdout.print(f"[bold]{label}[/]: job {record.job_id}, run {record.run_id} "
                         f"({record.window_start:%Y-%m-%d}): {record.message}"
                         if record.window_start else
                         f"[bold]{label}[/]: job {record.job_id}, run {record.run_id}: "
                         f"{record.message}", highlight=False)

