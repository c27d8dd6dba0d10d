"""Job management commands: `jobs create`, `backfill`, `custom-vars`, `dynamic-vars`.

Days on the command line are whole UTC days and both ends are included: `--once 2026-11-01
2026-11-07` and `--from 2026-11-01 --to 2026-11-07` are 7 days (the API's window is
[2026-11-01, 2026-11-08), end exclusive).

Every string they print from the API (job names, states, variable names, error messages) passes
through `scrub`, in tables, progress lines and usage errors alike: a hostile or broken API could
otherwise send terminal escape sequences. The consoles print without markup.
"""

from __future__ import annotations

import logging
import signal
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import click
from rich.console import Console
from rich.progress import Progress, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from csload.api import calls
from csload.api.jobspec import parse_fields, spec_like
from csload.api.spec import JobSpec
from csload.backfills.engine import (
    DEFAULT_MAX_WAIT,
    DEFAULT_POLL_INTERVAL,
    BackfillEvent,
    BackfillEventKind,
    BackfillReport,
    BackfillStatus,
    backfill_async,
    check_backfill_arguments,
)
from csload.cli.common import (
    Duration,
    answered,
    connection_options,
    fail,
    labelled,
    print_json,
    scrub,
    settings_from,
    stderr,
    stdout,
    ts,
    usage_checked,
)
from csload.cli.display import EventDisplay
from csload.cli.interrupt import CommittedRuns, Interrupted, until_signal
from csload.errors import CsloadError, InvalidJobSpec
from csload.pipeline.sync import DEFAULT_DB
from csload.target import check_one_target
from csload.times import midnight

_DAY = click.DateTime(["%Y-%m-%d"])


def _day(value: datetime | None) -> date | None:
    return None if value is None else value.date()


def _merged_settings(ctx: click.Context, params: dict[str, Any]) -> Any:
    """A `jobs` subcommand takes the connection options before or after its name."""
    inherited = {k: v for k, v in (ctx.obj or {}).items() if v is not None}
    return settings_from({**inherited, **{k: v for k, v in params.items() if v is not None}})


# -- jobs create ------------------------------------------------------------------------------


@click.command("create")
@click.option("--name", default="", help="The job's name.")
@click.option("--scope", help="sessions or views (default with --like: that job's).")
@click.option("--format", "fmt", help="CSV or JSONL [default: JSONL, or the --like job's].")
@click.option("--daily", "frequency", flag_value="daily", help="A daily job.")
@click.option("--hourly", "frequency", flag_value="hourly", help="An hourly job.")
@click.option("--once", "once", nargs=2, type=_DAY, metavar="FROM TO",
              help="A once job over these days (both included; at most 7 days).")
@click.option("--field", "field_texts", multiple=True, metavar="NAME[:ALIAS]",
              help="A field to export (repeatable): NAME[:ALIAS], "
                   "custom_var:POSITION[:ALIAS] or dynamic_var:KEY[:ALIAS]; with --like, "
                   "added after that job's fields.")
@click.option("--device", help="all, desktop, mobile or tablet [default: all].")
@click.option("--segment", type=int, help="Only sessions of this segment id.")
@click.option("--like", "like", type=int, metavar="JOB_ID",
              help="Copy this job's fields and filters (format, device, segment).")
@click.option("--dry-run", is_flag=True, help="Check the job and print the request only.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@connection_options
@click.pass_context
def create(ctx: click.Context, /, name: str, scope: str | None, fmt: str | None,
           frequency: str | None, once: tuple[datetime, datetime] | None,
           field_texts: tuple[str, ...], device: str | None, segment: int | None,
           like: int | None, dry_run: bool, as_json: bool, **params: Any) -> None:
    """Create an export job; every rule of the API is checked before the request is sent."""
    if once and frequency:
        raise click.UsageError("give one of --daily, --hourly or --once FROM TO")
    settings = _merged_settings(ctx, params)
    date_from = date_to = None
    if once:
        first, last = once[0].date(), once[1].date()
        date_from = midnight(first)
        # The last day is included; the API's `to` is exclusive. A reversed range stays
        # reversed so that the rule's message shows the days as given.
        date_to = midnight(last + timedelta(days=1) if last >= first else last)
        frequency = "once"
    fields, unreadable = parse_fields(field_texts)
    if like is not None:
        source = answered(lambda: calls.job(like, settings=settings))
        if scope is not None and scope.lower() != source.scope:
            # click prints this line as it is: the scope comes from the API.
            raise click.UsageError(scrub(f"--scope {scope} differs from job {like}'s "
                                         f"scope {source.scope}"))
        spec = spec_like(source, name=name, frequency=frequency or "",
                         date_from=date_from, date_to=date_to,
                         format=fmt.upper() if fmt else None,
                         device_label=device.lower() if device else None,
                         segment_id=segment, more_fields=fields)
    else:
        spec = JobSpec(name=name, format=(fmt or "JSONL").upper(),
                       scope=(scope or "").lower(), frequency=frequency or "",
                       fields=tuple(fields), device_label=(device or "all").lower(),
                       segment_id=segment, date_from=date_from, date_to=date_to)
    if dry_run or unreadable:
        # The --field texts that could not be read are listed first, with every rule the
        # rest breaks; nothing is created.
        problems = [*unreadable, *answered(lambda: calls.check_job(spec, settings=settings))]
        if problems:
            fail(InvalidJobSpec(problems))
    if dry_run:
        if as_json:
            print_json(spec.to_api())
        else:
            stdout.print("dry run: the job passes every check; the request would be:")
            print_json(spec.to_api())
        return
    job = answered(lambda: calls.create_job(spec, settings=settings))
    if as_json:
        print_json(job.to_json())
        return
    window = ""
    if job.date_from and job.date_to:
        window = f", window {ts(job.date_from)} -> {ts(job.date_to)} UTC"
    stdout.print(Text.assemble(
        "created job ", (str(job.job_id), "bold"),
        scrub(f": {job.name} ({job.scope}, {job.format}, {job.frequency}{window}, "
              f"{len(job.fields)} field(s), state {job.state or '?'})")))


# -- custom-vars, dynamic-vars ----------------------------------------------------------------


@click.command("custom-vars")
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def custom_vars(as_json: bool, **params: Any) -> None:
    """List the project's custom variables (use them as --field custom_var:POSITION)."""
    settings = settings_from(params)
    found = answered(lambda: calls.custom_vars(settings=settings))
    if as_json:
        print_json([var.to_json() for var in found])
        return
    table = Table(title=f"{len(found)} custom variable(s)")
    table.add_column("position", justify="right")
    table.add_column("name")
    for var in sorted(found, key=lambda v: v.position):
        table.add_row(str(var.position), scrub(var.name or ""))
    stdout.print(table)


@click.command("dynamic-vars")
@click.option("--from", "date_from", type=_DAY, required=True, help="First day.")
@click.option("--to", "date_to", type=_DAY, required=True, help="Last day (included).")
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dynamic_vars(date_from: datetime, date_to: datetime, as_json: bool, **params: Any) -> None:
    """List the dynamic variable keys seen on these days (use them as --field dynamic_var:KEY)."""
    first, last = date_from.date(), date_to.date()
    if last < first:
        raise click.BadParameter(f"{last} is before --from {first}", param_hint="--to")
    settings = settings_from(params)
    found = answered(lambda: calls.dynamic_vars(first, last, settings=settings))
    if as_json:
        print_json([key.to_json() for key in found])
        return
    table = Table(title=f"{len(found)} dynamic variable key(s) seen {first}..{last}")
    table.add_column("key")
    table.add_column("type")
    for key in found:
        table.add_row(scrub(key.key), scrub(key.type or ""))
    stdout.print(table)


# -- backfill ---------------------------------------------------------------------------------


def _elapsed(seconds: float | None) -> str:
    return "" if seconds is None else str(timedelta(seconds=int(seconds)))


class BackfillDisplay(EventDisplay):
    """An event sink for backfills: a live line per window on a terminal, log lines otherwise.

    Log lines (csload.cli.common.LOG_FORMAT: timestamped, like the log records of `-v`) are
    printed on changes only (a new state of a run, not every poll)."""

    log_name = "csload.backfill"

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self.tasks: dict[tuple[str | None, str], TaskID] = {}
        self.states: dict[tuple[str | None, str], str] = {}

    def new_progress(self) -> Progress:
        return Progress(TextColumn("{task.description}", markup=False),
                        TextColumn("{task.fields[detail]}", markup=False), console=self.console)

    def _show(self, event: BackfillEvent, detail: str, *, line: bool = True,
              level: int = logging.INFO) -> None:
        assert event.window is not None
        key = (event.scope, event.window.label)
        where = scrub(f"{event.scope} {event.window.label}")
        if event.job_id is not None:
            where += f" job {event.job_id}"
        detail = scrub(detail)
        if self.progress is not None:
            task = self.tasks.get(key)
            if task is None:
                self.tasks[key] = self.progress.add_task(where, total=None, detail=detail)
            else:
                self.progress.update(task, description=where, detail=detail)
        elif line:
            self._line(level, f"{where}: {detail}", on_terminal=True)

    def __call__(self, event: BackfillEvent) -> None:
        kind = event.kind
        if kind is BackfillEventKind.PLANNED or kind is BackfillEventKind.MESSAGE:
            if event.message:
                self._line(logging.INFO, f"note: {event.message}"
                           if kind is BackfillEventKind.MESSAGE else event.message,
                           on_terminal=True)
            return
        if event.window is None:
            return
        key = (event.scope, event.window.label)
        if kind is BackfillEventKind.JOB_CREATED:
            self._show(event, "job created")
        elif kind is BackfillEventKind.JOB_REUSED:
            self._show(event, f"reusing the job created before ({event.state})")
        elif kind is BackfillEventKind.WAITING:
            state = event.state or "?"
            changed = self.states.get(key) != state
            self.states[key] = state
            self._show(event, f"{state}  {_elapsed(event.elapsed)}", line=changed)
        elif kind is BackfillEventKind.LOADING:
            self._show(event, "loading")
        elif kind is BackfillEventKind.LOADED:
            self._show(event, f"loaded {event.rows:,} rows")
        elif kind is BackfillEventKind.SKIPPED:
            self._show(event, "already loaded")
        elif kind is BackfillEventKind.FAILED:
            self._show(event, f"failed: {event.message}", level=logging.WARNING)


def backfill_table(report: BackfillReport) -> Table:
    title = "backfill plan (dry run)" if report.dry_run else f"backfill into {report.target}"
    table = Table(title=title)
    for column in ("days", "scope", "table", "job", "status", "rows", "note"):
        table.add_column(column, justify="right" if column in ("job", "rows") else "left")
    for item in report.items:
        note = item.action if report.dry_run and item.action else (item.message or "")
        if item.status is BackfillStatus.LOADED and not item.created:
            note = note or "job reused"
        # The scope and the notes (error messages) come from the API: scrubbed.
        table.add_row(scrub(item.window.label), scrub(item.scope), scrub(item.table),
                      "" if item.job_id is None else str(item.job_id), item.status.value,
                      f"{item.rows:,}" if item.status is BackfillStatus.LOADED else "",
                      scrub(note))
    if not report.items:
        table.add_row("-", "", "", "", "nothing to do", "", "")
    return table


@click.command()
@click.option("--scope", type=click.Choice(["sessions", "views"]),
              help="The scope (default with --like: that job's; with --gaps: every scope).")
@click.option("--from", "date_from", type=_DAY, help="First day to load.")
@click.option("--to", "date_to", type=_DAY, help="Last day to load (included).")
@click.option("--like", type=int, metavar="JOB_ID",
              help="Copy this job's fields and filters; load into its table.")
@click.option("--field", "field_texts", multiple=True, metavar="NAME[:ALIAS]",
              help="A field to export (repeatable): NAME[:ALIAS], "
                   "custom_var:POSITION[:ALIAS] or dynamic_var:KEY[:ALIAS].")
@click.option("--format", "fmt", help="CSV or JSONL [default: JSONL, or the --like job's].")
@click.option("--device", help="all, desktop, mobile or tablet [default: all].")
@click.option("--segment", type=int, help="Only sessions of this segment id.")
@click.option("--gaps", is_flag=True,
              help="Fill the days missing from the daily jobs' coverage in the target.")
@click.option("--table", help="Load into this table [default: the --like job's, or the scope].")
@click.option("--db", "db", type=click.Path(dir_okay=False, path_type=Path),
              help=f"The DuckDB database file [default: {DEFAULT_DB}].")
@click.option("--parquet", metavar="ROOT",
              help="Load into a lake of Delta tables instead: a folder, or "
                   "s3://bucket/prefix.")
@click.option("--poll-interval", type=click.FloatRange(0), default=DEFAULT_POLL_INTERVAL,
              show_default=True, help="Seconds between two checks of a run's state.")
@click.option("--max-wait", type=Duration("--max-wait"), metavar="DURATION",
              default=DEFAULT_MAX_WAIT,
              help="How long a window waits for its job's run, from the job's creation "
                   "(30m, 12h...); beyond it the window fails and the job is kept for the next "
                   "backfill [default: 24h].")
@click.option("--dry-run", is_flag=True, help="Print the plan; create and load nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
# --staging-dir goes with the connection options into `settings_from` (Settings.staging_dir).
@click.option("--staging-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Stage the downloads in a folder of csload's own inside this folder "
                   "[default: beside the database, or in the lake; env: CSLOAD_STAGING_DIR].")
@connection_options
def backfill(scope: str | None, date_from: datetime | None, date_to: datetime | None,
             like: int | None, field_texts: tuple[str, ...], fmt: str | None,
             device: str | None, segment: int | None, gaps: bool, table: str | None,
             db: Path | None, parquet: str | None, poll_interval: float, max_wait: float,
             dry_run: bool, as_json: bool, **params: Any) -> None:
    """Load past days through `once` jobs of at most 7 days each, or fill --gaps.

    Resumable: run the same command again after an interruption and it reuses the jobs it
    created and loads only what is missing.
    """
    # The Python API's own checks, as usage errors (exit 2): --to before --from, a bad --like...
    usage_checked(check_backfill_arguments, scope=scope, date_from=_day(date_from),
                  date_to=_day(date_to), like=like, fields=field_texts, gaps=gaps, flags=True)
    usage_checked(check_one_target, db, parquet, flags=True)
    settings = settings_from(params)

    # What the backfill committed and created before a stop (its report is lost with it).
    committed = CommittedRuns()
    created: list[int] = []

    async def main() -> BackfillReport:
        with BackfillDisplay(stderr) as display:
            def collect(event: BackfillEvent) -> None:
                if event.kind is BackfillEventKind.SYNC and event.sync_event is not None:
                    committed(event.sync_event)
                elif event.kind is BackfillEventKind.JOB_CREATED and event.job_id is not None:
                    created.append(event.job_id)
                if not as_json:
                    display(event)

            return await backfill_async(
                settings, scope=scope, date_from=_day(date_from), date_to=_day(date_to),
                like=like, fields=field_texts, format=fmt, device=device, segment=segment,
                gaps=gaps, table=table, db=db, parquet=parquet, dry_run=dry_run,
                poll_interval=poll_interval, max_wait=max_wait, on_event=collect)

    try:
        # SIGTERM too (what orchestrators send): the cancel reaches the backfill's cleanup.
        report = anyio.run(until_signal, main, _stopping)
    except CsloadError as exc:
        fail(str(exc))
    except (Interrupted, KeyboardInterrupt) as exc:
        stop = exc if isinstance(exc, Interrupted) else Interrupted(signal.SIGINT)
        if as_json:   # what it loaded and created stays: say it (it used to be lost)
            print_json({**committed.to_json(stop), "jobsCreated": created})
        fail("interrupted: run the same command again to resume (the jobs already created "
             "are reused, nothing is loaded twice)", code=stop.exit_code)
    if as_json:
        print_json(report.to_json())
    else:
        stdout.print(backfill_table(report))
        for gone in report.unavailable:
            stdout.print(labelled("cannot get", "bold", f" {gone}"))
        for item in report.failed:
            stdout.print(labelled("failed", "bold",
                                  f": {item.scope} {item.window.label}: {item.message}"))
    sys.exit(report.exit_code)


def _stopping(signum: int, first: bool) -> None:
    name = signal.Signals(signum).name
    stderr.print(f"{name} received: stopping" if first
                 else f"{name} received: already stopping")
