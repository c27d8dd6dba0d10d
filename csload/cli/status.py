"""`csload status`: what a target holds. Reads the ledger only: no API client, no aiohttp."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from csload.cli.common import fail, labelled, print_json, scrub, stdout, usage_checked
from csload.config import lake_options_for, read_lake_options
from csload.errors import CsloadError
from csload.target import DEFAULT_DB, check_one_target

if TYPE_CHECKING:
    from csload.load.status import StoreStatus


@click.command()
@click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path),
              help=f"The DuckDB database file [default: {DEFAULT_DB}].")
@click.option("--parquet", metavar="ROOT", help="A lake of Delta tables: a folder, or "
              "s3://bucket/prefix.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--config", "config_file", type=click.Path(path_type=Path),
              help="Settings file, for an s3:// lake's [lake] [default: ./csload.toml if "
                   "present]")
def status(db: Path | None, parquet: str | None, as_json: bool,
           config_file: Path | None) -> None:
    """What the target holds: tables, coverage, last windows, gaps, failed/expired runs."""
    from csload.target import read_target_status

    usage_checked(check_one_target, db, parquet, flags=True)
    try:
        state = read_target_status(db=db, parquet=parquet, storage_options=lake_options_for(
            parquet, read_lake_options(config_file)))
    except CsloadError as exc:
        fail(exc)
    if as_json:
        print_json(state.to_json())
        return
    print_status(state)


# How each kind of line stands out on a terminal (csload.load.status for what the kinds mean).
_STYLES = {"failed": "bold red", "source_failed": "bold red", "expired": "bold yellow",
           "filled": "green"}


def print_status(state: StoreStatus) -> None:
    """Two tables (the target's tables; its jobs, each with the table it feeds), then one
    line per kind of problem and job, with the days (csload.status.Problem)."""
    from rich.table import Table  # lazy: `csload sync` prints no status table

    from csload.load.status import days_text

    # Names come from the API (job names) and from the target's files: scrubbed (scrub).
    project = "" if state.project is None else f" (Contentsquare project {state.project})"
    tables = Table(title=scrub(f"tables in {state.target}{project}"))
    for column in ("table", "rows", "first date", "last date"):
        tables.add_column(column, justify="right" if column == "rows" else "left",
                          overflow="fold")
    for stats in state.tables:
        tables.add_row(scrub(stats.table), f"{stats.rows:,}", str(stats.first_date or ""),
                       str(stats.last_date or ""))
    stdout.print(tables)
    # Five columns, so that 80 fit: the scope and frequency are in --json (a job's table is
    # named after its scope, and its window says daily or hourly: a day, or a start hour).
    jobs = Table(title="jobs")
    for column in ("job", "name", "table", "last loaded", "daily gaps"):
        # Never cut with "…": a long word folds onto the next line; a window never splits.
        jobs.add_column(column, no_wrap=column == "last loaded", overflow="fold")
    for job in state.jobs:
        # An hourly job's missing hours are not looked for: said, not left blank (QA).
        gaps = days_text(job.gaps) or {"daily": "none", "hourly": "not checked"}.get(
            job.frequency or "", "")
        jobs.add_row(str(job.job_id), scrub(job.name), scrub(job.table),
                     scrub(job.last_window_label), gaps)
    stdout.print(jobs)
    for problem in state.problems:
        stdout.print(labelled(f"{problem.label}:", _STYLES[problem.kind], f" {problem.text}"))
    for line in state.unfinished_lines:
        stdout.print(labelled("unfinished:", "bold yellow", scrub(f" {line}")))
    for table in state.dropped:
        stdout.print(labelled("gone:", "bold yellow", scrub(
            f" table {table} is no longer there (dropped, or its folder deleted): the next "
            "csload sync loads its runs again (those whose files expired become gaps)")))
