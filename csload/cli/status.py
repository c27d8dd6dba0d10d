"""`csload status`: what a target holds. Reads the ledger only: no API client, no aiohttp."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from csload.cli.common import fail, labelled, print_json, stdout, usage_checked
from csload.config import read_lake_options
from csload.errors import CsloadError
from csload.target import DEFAULT_DB, check_one_target

if TYPE_CHECKING:
    from csload.status import StoreStatus


@click.command()
@click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path),
              help=f"The DuckDB database file [default: {DEFAULT_DB}].")
@click.option("--parquet", metavar="ROOT", help="A Parquet lake: a folder, or s3://bucket/prefix.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(db: Path | None, parquet: str | None, as_json: bool) -> None:
    """What the target holds: tables, coverage, last windows, gaps, failed/expired runs."""
    from csload.status import read_target_status

    usage_checked(check_one_target, db, parquet, flags=True)
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
            day = f" ({record.window_start:%Y-%m-%d})" if record.window_start else ""
            stdout.print(labelled(label, "bold", f": job {record.job_id}, run "
                                                 f"{record.run_id}{day}: {record.message}"))

