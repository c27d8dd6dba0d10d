"""`csload sync`."""

from __future__ import annotations

import sys
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import click

from csload.cli.common import (
    connection_options,
    console,
    fail,
    labelled,
    print_json,
    settings_from,
    usage_checked,
)
from csload.cli.display import SyncDisplay, summary_table
from csload.discover import Selection
from csload.errors import CsloadError
from csload.pipeline import DEFAULT_DB, sync_async
from csload.report import SyncReport
from csload.target import check_one_target


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
    usage_checked(check_one_target, db, parquet, flags=True)
    usage_checked(Selection.checked, jobs=job_ids, scope=scope, since=_day(since),
                  until=_day(until), flags=True)
    params["limits"] = {"download_concurrency": concurrency}
    settings = settings_from(params)
    tables = _table_option(table_map)

    async def main() -> SyncReport:
        run = partial(sync_async, settings, db=db, parquet=parquet, jobs=job_ids, scope=scope,
                      since=_day(since), until=_day(until), tables=tables, dry_run=dry_run)
        if as_json:
            return await run(on_event=_quiet)
        with SyncDisplay(console("stderr")) as display:
            return await run(on_event=display)

    try:
        report = anyio.run(main)
    except CsloadError as exc:
        fail(str(exc))
    if as_json:
        print_json(report.to_json())
    else:
        out = console("stdout")
        out.print(summary_table(report))
        for run in report.failed + report.expired:
            out.print(labelled(run.status.value, "bold",
                               f": job {run.job_id}, run {run.run_id}: {run.message}"))
    sys.exit(report.exit_code)


def _quiet(_event: object) -> None:
    """--json: the report is the output; no progress lines mixed in (nor rich imported)."""
