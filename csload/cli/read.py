"""Read commands: jobs, jobs show, runs, fields.

A skin over the library's calls (csload.api.calls): `csload.jobs`, `job`, `runs`, `fields`.
Every string they print from an answer of the API (names, states, descriptions, ...) passes
through `scrub`: a hostile or broken API could otherwise send terminal escape sequences. The
consoles print without markup, so a name like `[red]x` is printed as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import click
from rich.table import Table

from csload.api import calls
from csload.api.models import Job, Run, kept_until, normalize_identifier
from csload.cli.common import (
    answered,
    connection_options,
    labelled,
    print_json,
    scrub,
    settings_from,
    stdout,
    ts,
)
from csload.cli.lazy import LazyGroup

T = TypeVar("T")


# Lazy: `jobs create` lives with the job management commands, which import the backfill
# engine; `jobs` and `jobs show` do not need it.
@click.group(cls=LazyGroup, lazy_subcommands={"create": "csload.cli.manage:create"},
             invoke_without_command=True)
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--state", help="Only jobs in this state (ACTIVE, COMPLETED, ...).")
@click.option("--scope", type=click.Choice(["sessions", "views"]), help="Only this scope.")
@click.pass_context
def jobs(ctx: click.Context, /, as_json: bool, state: str | None, scope: str | None,
         **params: Any) -> None:
    """List the project's export jobs (or see `jobs show ID`)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = dict(params)
        return
    settings = settings_from(params)
    found = answered(lambda: calls.jobs(state=state, scope=scope, settings=settings))
    if as_json:
        print_json([job.to_json() for job in found])
        return
    _print_jobs(found)


def _print_jobs(found: Sequence[Job]) -> None:
    table = Table(title=f"{len(found)} export job(s), times in UTC")
    for column in ("id", "name", "scope", "format", "frequency", "state", "fields", "created"):
        table.add_column(column, justify="right" if column in ("id", "fields") else "left")
    for job in found:
        table.add_row(str(job.job_id), scrub(job.name), scrub(job.scope), scrub(job.format),
                      scrub(job.frequency), scrub(job.state or ""),
                      "?" if job.unreadable else str(len(job.fields)), ts(job.created_at))
    stdout.print(table)
    for job in found:
        if job.unreadable:
            stdout.print(f"job {job.job_id}: its definition cannot be read "
                         f"({scrub(job.unreadable)}); a sync refuses it and loads the others")


@jobs.command("show")
@click.argument("job_id", type=click.IntRange(min=1))
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def jobs_show(ctx: click.Context, /, job_id: int, as_json: bool, **params: Any) -> None:
    """Show one export job with its fields."""
    inherited = {k: v for k, v in (ctx.obj or {}).items() if v is not None}
    settings = settings_from({**inherited, **{k: v for k, v in params.items() if v is not None}})
    job = answered(lambda: calls.job(job_id, settings=settings))
    if as_json:
        shown = job.to_json()
        # The column each field becomes, as the text shows (and the README promises).
        for field, out in zip(job.fields, shown.get("fields") or [], strict=False):
            if isinstance(out, dict):
                out["column"] = normalize_identifier(field.column_name)
        print_json(shown)
        return
    stdout.print(labelled(f"Job {job.job_id}", "bold", f": {job.name}"))
    window = ""
    if job.date_from or job.date_to:
        window = f"  window {ts(job.date_from)} -> {ts(job.date_to)} UTC"
    stdout.print(scrub(f"  {job.scope} / {job.format} / {job.frequency} / {job.state or '?'}"
                       f"  device {job.device_label or 'all'}"
                       f"{'  segment ' + str(job.segment_id) if job.segment_id else ''}"
                       f"{window}"))
    table = Table(title=f"{len(job.fields)} field(s)")
    for column in ("field", "alias", "column"):
        table.add_column(column)
    for field in job.fields:
        name = field.field_name
        if field.custom_var_position is not None:
            name += f" (position {field.custom_var_position})"
        if field.dynamic_var_key is not None:
            name += f" (key {field.dynamic_var_key})"
        table.add_row(scrub(name), scrub(field.alias_name or ""),
                      scrub(normalize_identifier(field.column_name)))
    stdout.print(table)


@click.command()
@click.argument("job_id", type=click.IntRange(min=1))
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--state", help="Only runs in this state (SUCCESS, FAILURE, ...).")
@click.option("--files", is_flag=True,
              help="Also fetch each successful run's files (one request per run).")
def runs(job_id: int, as_json: bool, state: str | None, files: bool, **params: Any) -> None:
    """List the runs of an export job, newest first."""
    settings = settings_from(params)
    found = answered(lambda: calls.runs(job_id, state=state, files=files, settings=settings))
    if as_json:
        print_json([run.to_json() for run in found])
        return
    table = Table(title=f"{len(found)} run(s) of job {job_id}, times in UTC")
    columns = ["run", "state", "window start", "window end", "finished"]
    if files:
        columns.append("files")
    for column in columns:
        table.add_column(column)
    for run in found:
        row = [str(run.run_id), scrub(run.state), ts(run.start_date), ts(run.end_date),
               ts(run.finished_at)]
        if files:
            row.append(_files_cell(run))
        table.add_row(*row)
    stdout.print(table)


def _files_cell(run: Run) -> str:
    """How many files the run lists, and whether storage still keeps them: the count alone read
    as downloadable files for runs whose files had expired days before."""
    if run.parts is None:
        return ""
    until = kept_until(run.parts[0] if run.parts else None, run)
    if until is not None and until <= datetime.now(UTC):
        return f"{len(run.parts)} (expired {until:%Y-%m-%d})"
    return str(len(run.parts))


@click.command()
@click.option("--scope", type=click.Choice(["sessions", "views"]), required=True)
@connection_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def fields(scope: str, as_json: bool, **params: Any) -> None:
    """List the exportable fields of a scope, as the API reports them."""
    settings = settings_from(params)
    found = answered(lambda: calls.fields(scope, settings=settings))
    if as_json:
        print_json([field.to_json() for field in found])
        return
    table = Table(title=f"{len(found)} exportable field(s) in {scope}")
    for column in ("name", "type", "description"):
        table.add_column(column)
    for field in found:
        table.add_row(scrub(field.name), scrub(field.type or ""),
                      scrub(field.description or ""))
    stdout.print(table)


