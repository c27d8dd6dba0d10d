"""`csload sync`."""

from __future__ import annotations

import logging
import signal
import sys
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import click

from csload.cli.common import (
    Duration,
    connection_options,
    console,
    fail,
    labelled,
    log_line,
    print_json,
    settings_from,
    usage_checked,
)
from csload.cli.display import LOG_NAME, SyncDisplay, jobs_table, problem_lines, summary_table
from csload.cli.interrupt import CommittedRuns, Interrupted, until_signal
from csload.errors import CsloadError
from csload.load.columns import check_table_name
from csload.pipeline.discover import Selection
from csload.pipeline.report import SyncEvent, SyncReport
from csload.pipeline.sync import DEFAULT_DB, sync_async
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
              help="Write a lake of Delta tables instead (date-partitioned Parquet "
                   "files and a transaction log): a folder, or s3://bucket/prefix.")
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
@click.option("--wait", "lock_wait", type=Duration("--wait"), metavar="DURATION",
              help="While another process has the database open, wait up to this long for "
                   "it (30s, 10m, 1h) [default: 0, fail at once; env: CSLOAD_LOCK_WAIT]. A "
                   "lake has no lock: a second sync's batch fails at its commit.")
@click.option("--dry-run", is_flag=True, help="Say what would be loaded; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
# --staging-dir goes with the connection options into `settings_from` (Settings.staging_dir).
@click.option("--staging-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Stage the downloads in a folder of csload's own inside this folder "
                   "[default: beside the database, or in the lake; env: CSLOAD_STAGING_DIR].")
@connection_options
def sync(db: Path | None, parquet: str | None, job_ids: tuple[int, ...], scope: str | None,
         since: datetime | None, until: datetime | None, concurrency: int | None,
         table_map: tuple[str, ...], lock_wait: float | None, dry_run: bool, as_json: bool,
         **params: Any) -> None:
    """Load every new successful run into DuckDB (or a lake of Delta tables), exactly once.

    Ctrl-C or SIGTERM stops it cleanly: what was committed stays, and the next sync loads
    exactly the rest.
    """
    usage_checked(check_one_target, db, parquet, flags=True)
    usage_checked(Selection.checked, jobs=job_ids, scope=scope, since=_day(since),
                  until=_day(until), flags=True)
    params["limits"] = {"download_concurrency": concurrency, "lock_wait": lock_wait}
    settings = settings_from(params)
    tables = _table_option(table_map)
    for table in tables.values():
        usage_checked(check_table_name, table)
    committed = CommittedRuns()

    async def main() -> SyncReport:
        run = partial(sync_async, settings, db=db, parquet=parquet, jobs=job_ids, scope=scope,
                      since=_day(since), until=_day(until), tables=tables, dry_run=dry_run)
        if as_json:
            return await run(on_event=committed)
        with SyncDisplay(console("stderr"), dry_run=dry_run) as display:

            def show(event: SyncEvent) -> None:
                committed(event)
                display(event)

            return await run(on_event=show)

    try:
        report = anyio.run(until_signal, main, _stopping)
    except CsloadError as exc:
        # Exit 1 all the same, but a later batch's error (LakeConflict, a full disk) does not
        # hide the runs committed before it: they are in the target and stay.
        before = CommittedRuns.of(exc.report)
        fail(exc, then=before.after_error("csload sync"), extra_json=before.error_json())
    except (Interrupted, KeyboardInterrupt) as exc:
        # KeyboardInterrupt: a Ctrl-C before the signals were taken over (or after).
        stop = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
        if as_json:
            print_json(committed.to_json(stop))
        console("stderr").print(committed.summary(stop, "csload sync"))
        sys.exit(stop.exit_code)
    if as_json:
        print_json(report.to_json())
    else:
        out = console("stdout")
        out.print(summary_table(report))
        jobs = jobs_table(report)
        if jobs is not None:
            out.print(jobs)
        for line in problem_lines(report):
            kind, _, rest = line.partition(":")
            out.print(labelled(f"{kind}:", "bold", rest))
        for placement in report.refused:
            out.print(labelled("refused:", "bold", f" {placement.note}"))
    sys.exit(report.exit_code)


def _stopping(signum: int, first: bool) -> None:
    name = signal.Signals(signum).name
    if first:
        message = (f"{name} received: stopping the downloads; the load in progress, if any, "
                   "commits or rolls back whole")
    else:
        message = f"{name} received: already stopping, waiting for the load in progress"
    # A log line (timestamped): it lands in the middle of the progress lines off a terminal.
    console("stderr").print(log_line(logging.WARNING, LOG_NAME, message))
