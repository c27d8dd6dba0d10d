"""`backfill_async()`: fill a range of days, or the gaps in daily coverage, with `once` jobs.

(The module is not named `csload.backfill`: that name is the public function, `csload.backfill`,
and a submodule of the same name would be shadowed by it.)

    plan     the days asked for (a range, or the gaps of the daily jobs), minus the days older
             than the data retention or not over yet (each said), cut into windows of at most
             7 days: one `once` job each
    check    every window's create-job request against the API's rules, before anything is sent
    resolve  per window, a job already made for it: from the backfill ledger (DuckDB only),
             else by its deterministic name among the project's once jobs and the jobs the
             loader's ledger knows (a crash may have come between the create request and the
             ledger row; a lake has no backfill ledger at all)
    run      window after window: reuse its job or create one, wait for its run (polling, with
             an injectable sleep and clock, for up to `max_wait` from the job's creation), and
             hand a finished run to the loader, which loads it through the normal sync path
             (`sync_async(db=... | parquet=..., jobs=(job_id,))`) while the next window's job
             computes

The target is a DuckDB database (`db`) or a lake of Delta tables (`parquet`), opened as every caller
opens it (csload.target.Target). A database also holds the backfill ledger (`_csload.backfills`,
csload.load.backfill_ledger). A lake holds nothing of the backfill's own: see
csload.backfills.ledgers and docs/backfill.md ("Where the backfill keeps its state").

This module sets a backfill up (its arguments, its plan); csload.backfills.work does the work.

Jobs are created one at a time, each after the previous one's run finished: the API runs once
jobs one at a time anyway (creating all of them up front would not finish sooner), and an
interrupted backfill leaves at most one job behind, which the next run with the same arguments
picks up instead of creating it again. A run that has not finished `max_wait` after its job was
created (a run stuck at the source waited for forever before issue 16) fails its window alone:
the job stays in the ledger, so a later backfill with the same arguments reuses it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from functools import partial
from pathlib import Path

import anyio
import anyio.to_thread

from csload.api.client import ExportClient
from csload.api.jobspec import Problem, parse_fields
from csload.api.models import DATA_RETENTION_MONTHS, Job, JobField
from csload.backfills.ledgers import BackfillLedgers, open_ledgers
from csload.backfills.pieces import Phase, Piece
from csload.backfills.plan import (
    Template,
    UnavailableDays,
    Window,
    check_backfill_arguments,
    job_name,
    split_days,
)
from csload.backfills.report import (
    BackfillEvent,
    BackfillEventKind,
    BackfillItem,
    BackfillReport,
    BackfillSink,
    BackfillStatus,
    ignore_backfill_events,
)
from csload.backfills.work import BackfillWork, Clock, Sleep
from csload.concurrency import run_blocking
from csload.config import (
    Settings,
    lake_options_for,
    parse_duration,
    settings_or_default,
    staging_path,
)
from csload.errors import (
    ApiError,
    ApiRequestError,
    ApiUnavailable,
    ConfigError,
    StoreLockedError,
)
from csload.load.columns import check_table_name
from csload.load.holder import WRITER_SHUT_OUT, open_when_free
from csload.pipeline.report import SyncEvent, SyncReport
from csload.pipeline.sync import sync_async
from csload.target import Target
from csload.times import utcnow

__all__ = [
    "BackfillEvent",
    "BackfillEventKind",
    "BackfillItem",
    "BackfillReport",
    "BackfillStatus",
    "Template",
    "UnavailableDays",
    "Window",
    "backfill",
    "backfill_async",
    "check_backfill_arguments",
    "job_name",
    "split_days",
]

DEFAULT_POLL_INTERVAL = 15.0
# How long a window waits for its job's run, from the job's creation: a once run takes minutes
# to a few hours; one not finished after a day is stuck at the source.
DEFAULT_MAX_WAIT = 24 * 3600.0


def _as_fields(values: Sequence[str | JobField]) -> tuple[list[JobField], list[Problem]]:
    fields: list[JobField] = []
    problems: list[Problem] = []
    for value in values:
        if isinstance(value, JobField):
            fields.append(value)
        else:
            parsed, broken = parse_fields([value])
            fields.extend(parsed)
            problems.extend(broken)
    return fields, problems


# -- the entry points -------------------------------------------------------------------------


async def backfill_async(
    settings: Settings | None = None,
    *,
    scope: str | None = None,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    like: int | None = None,
    fields: Sequence[str | JobField] = (),
    format: str | None = None,
    device: str | None = None,
    segment: int | None = None,
    gaps: bool = False,
    table: str | None = None,
    db: str | Path | None = None,
    parquet: str | Path | None = None,
    staging_dir: str | Path | None = None,
    dry_run: bool = False,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    max_wait: float | str = DEFAULT_MAX_WAIT,
    retention_months: int = DATA_RETENTION_MONTHS,
    sleep: Sleep = anyio.sleep,
    clock: Clock = utcnow,
    on_event: BackfillSink = ignore_backfill_events,
) -> BackfillReport:
    """Load the days `date_from`..`date_to` (both included) of `scope` through `once` jobs, or
    with `gaps=True` the days missing from the daily coverage of the target: the DuckDB
    database at `db` (default `contentsquare.duckdb`), or the lake of Delta tables at `parquet` (a
    folder or s3://bucket/prefix, with the settings' `[lake]` storage options).

    Fields: `like` copies a job's fields and filters (format, device, segment), else `fields`
    lists them (`"name[:alias]"`, `"custom_var:POSITION[:alias]"`,
    `"dynamic_var:KEY[:alias]"` or JobField). `table` overrides the table loaded into
    (default: the `like` job's table, else the scope). Resumable: run it again with the same
    arguments and it reuses the jobs it created and loads only what is missing. `max_wait`
    (seconds, or "30m", "12h"; default 24 h; `math.inf`: no deadline): how long a window waits
    for its job's run from the job's creation; beyond it that window fails (the job is kept
    for a later backfill to reuse) and the others go on. `sleep` and `clock` are the waiting
    between two polls of a run's state and the current time (tests inject the simulator's).
    `staging_dir` (default `settings.staging_dir`): where the loads stage their downloads, as
    for `sync_async`. Every argument is checked before anything is opened or requested
    (ConfigError). Raises InvalidJobSpec (nothing created) when a job would break an API rule;
    the report's `exit_code` is 3 when a window failed. `settings` (default: `load_settings()`,
    from the environment and ./csload.toml, read at the call).
    """
    settings = settings_or_default(settings)
    if staging_dir is not None:
        settings = dataclasses.replace(settings, staging_dir=staging_path(staging_dir,
                                                                          "staging_dir"))
    target = Target.of(db=db, parquet=parquet,
                       storage_options=lake_options_for(parquet, settings.lake),
                       staging_dir=settings.staging_dir, auth_url=settings.auth_url)
    scope, date_from, date_to = check_backfill_arguments(
        scope=scope, date_from=date_from, date_to=date_to, like=like, fields=fields, gaps=gaps)
    if table is not None:   # before any job is created, not when its first run loads
        check_table_name(table)
    if poll_interval < 0:
        raise ConfigError("poll_interval must not be negative")
    max_wait = parse_duration(max_wait, "max_wait")
    if not max_wait > 0:   # NaN too: it would never be reached
        raise ConfigError(f"max_wait must be a positive duration, got {max_wait!r}")
    if not dry_run:
        # A database folder or staging folder that cannot be written is said before any job
        # is created, not once the first run is ready to load.
        await anyio.to_thread.run_sync(target.check_writable)

    report = BackfillReport(target=target.label, dry_run=dry_run, gaps=gaps)

    def waiting(message: str) -> None:
        on_event(BackfillEvent(kind=BackfillEventKind.MESSAGE, message=message))

    # Once begun, the backfill waits for the database whenever a sync or notebook has it open
    # (it does not hold it while it waits for a run), as long as it would wait for a run.
    database_wait = max(settings.limits.lock_wait, min(max_wait, DEFAULT_MAX_WAIT))

    async def open_database() -> BackfillLedgers:
        # Shielded: a connection opened in a worker thread must not be lost to a cancellation.
        with anyio.CancelScope(shield=True):
            opened = await anyio.to_thread.run_sync(partial(
                open_ledgers, target, must_exist=gaps, wait=database_wait, on_wait=waiting))
        return opened

    try:
        # As a sync does, for up to [limits] lock_wait / CSLOAD_LOCK_WAIT (it failed at once,
        # the setting ignored, when a cron sync held the database).
        database = await open_when_free(open_database, wait=settings.limits.lock_wait,
                                        on_wait=waiting)
    except StoreLockedError as exc:
        # The lock's own advice names `csload sync --wait`, which a backfill does not take.
        # It waits as long as the settings say: said, as the kill soak found it unsaid.
        raise StoreLockedError(f"{exc.holder}: {WRITER_SHUT_OUT}, then run the backfill again "
                               "(to wait for it: CSLOAD_LOCK_WAIT=10m, or lock_wait in the "
                               "[limits] of csload.toml)",
                               holder=exc.holder, pid=exc.pid) from None
    try:
        async with ExportClient(settings, sleep=sleep) as client:
            async def load_run(job: Job, table: str,
                               forward: Callable[[SyncEvent], None]) -> SyncReport:
                return await sync_async(settings, db=target.db, parquet=target.parquet,
                                        jobs=(job.job_id,), tables={job.job_id: table},
                                        wait=database_wait, on_event=forward)

            work = BackfillWork(settings, client, database, target=target, load_run=load_run,
                                report=report, poll_interval=poll_interval,
                                max_wait=max_wait, sleep=sleep,
                                clock=clock, retention_months=retention_months, on_event=on_event)
            pieces, templates, problems = await _make_plan(
                work, scope=scope, date_from=date_from, date_to=date_to, like=like,
                fields=fields, format=format, device=device, segment=segment, gaps=gaps,
                table=table)
            await work.check(pieces, templates, problems)
            # Planning and checking only read the target (nothing is created if a rule is
            # broken); it is made writable once there is something to do (a lake: checked).
            if pieces and not dry_run:
                await database.make_writable()
            await work.resolve(pieces)
            pieces = await work.drop_loaded_days(pieces)
            on_event(BackfillEvent(
                kind=BackfillEventKind.PLANNED, windows=len(pieces),
                message=_plan_line(pieces)))
            if dry_run:
                work.describe(pieces)
            else:
                await work.execute(pieces)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(database.close)
    report.finished_at = utcnow()
    return report


def _plan_line(pieces: Sequence[Piece]) -> str:
    counts = {phase: sum(1 for p in pieces if p.phase is phase) for phase in Phase}
    return (f"{len(pieces)} window(s): {counts[Phase.CREATE]} job(s) to create, "
            f"{counts[Phase.WAIT] + counts[Phase.LOAD]} to reuse, "
            f"{counts[Phase.DONE]} already loaded")


async def _make_plan(
    work: BackfillWork, *, scope: str | None, date_from: date | None, date_to: date | None,
    like: int | None, fields: Sequence[str | JobField], format: str | None,
    device: str | None, segment: int | None, gaps: bool, table: str | None,
) -> tuple[list[Piece], list[Template], list[Problem]]:
    if gaps:
        pieces, templates = await _gap_plan(work, scope, date_from, date_to)
        return pieces, templates, []
    assert date_from is not None and date_to is not None
    problems: list[Problem] = []
    if like is not None:
        source = await work.like_job(like)
        if scope is not None and scope != source.scope:
            raise ConfigError(f"--scope {scope} differs from job {like}'s scope "
                              f"{source.scope}")
        template = Template(
            scope=source.scope, format=(format or source.format).upper(),
            fields=source.fields, device_label=(device or source.device_label or "all").lower(),
            segment_id=segment if segment is not None else source.segment_id,
            table=table or await work.tables.placed_table(source), like_job_id=like)
    else:
        assert scope is not None
        parsed, problems = _as_fields(fields)
        template = Template(scope=scope.lower(), format=(format or "JSONL").upper(),
                            fields=tuple(parsed), device_label=(device or "all").lower(),
                            segment_id=segment, table=table or scope.lower())
    days = [date_from + timedelta(days=i) for i in range((date_to - date_from).days + 1)]
    return work.plan(template, days, anchor=date_from), [template], problems


async def _gap_plan(work: BackfillWork, scope: str | None, date_from: date | None,
                    date_to: date | None) -> tuple[list[Piece], list[Template]]:
    found = await work.db.run(lambda ledger: ledger.coverage_gaps(scope))
    pieces: list[Piece] = []
    templates: list[Template] = []
    for job_id, missing in sorted(found.items()):
        days = [d for d in missing if (date_from is None or d >= date_from)
                and (date_to is None or d <= date_to)]
        if not days:
            continue
        try:
            source = await work.client.get_job(job_id)
        except ApiRequestError as exc:
            if exc.status != 404:
                raise
            work.warn(f"daily job {job_id} no longer exists: its missing days "
                      f"({', '.join(map(str, days))}) cannot be filled with its fields")
            continue
        except ApiUnavailable:
            raise
        except ApiError as exc:
            # One job the API describes oddly failed the whole --gaps (QA, 2026-12-08).
            work.warn(f"daily job {job_id} cannot be read ({exc}): its missing days "
                      f"({', '.join(map(str, days))}) are not filled (exit 3); the others are")
            work.report.unplanned.append(job_id)
            continue
        table = await work.tables.table_of(job_id) or source.scope
        template = Template(scope=source.scope, format=source.format, fields=source.fields,
                            device_label=source.device_label or "all",
                            segment_id=source.segment_id, table=table, like_job_id=job_id)
        templates.append(template)
        work.emit(BackfillEvent(kind=BackfillEventKind.MESSAGE, message=(
            f"daily job {job_id} ({source.name}, table {table}): {len(days)} missing day(s): "
            + ", ".join(str(w.label if w.start != w.last else w.start)
                        for w in split_days(days, max_days=10**6)))))
        pieces.extend(work.plan(template, days, anchor=None))
    if not templates and not work.report.unplanned:
        work.emit(BackfillEvent(kind=BackfillEventKind.MESSAGE,
                                message="no missing days in the daily coverage"))
    return pieces, templates


def backfill(
    settings: Settings | None = None,
    *,
    scope: str | None = None,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    like: int | None = None,
    fields: Sequence[str | JobField] = (),
    format: str | None = None,
    device: str | None = None,
    segment: int | None = None,
    gaps: bool = False,
    table: str | None = None,
    db: str | Path | None = None,
    parquet: str | Path | None = None,
    staging_dir: str | Path | None = None,
    dry_run: bool = False,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    max_wait: float | str = DEFAULT_MAX_WAIT,
    retention_months: int = DATA_RETENTION_MONTHS,
    sleep: Sleep = anyio.sleep,
    clock: Clock = utcnow,
    on_event: BackfillSink = ignore_backfill_events,
) -> BackfillReport:
    """Blocking `backfill_async` (the same arguments), for scripts and notebooks (works inside
    a running loop)."""
    return run_blocking(partial(
        backfill_async, settings,
        scope=scope, date_from=date_from, date_to=date_to, like=like, fields=fields,
        format=format, device=device, segment=segment, gaps=gaps, table=table, db=db,
        parquet=parquet, staging_dir=staging_dir, dry_run=dry_run,
        poll_interval=poll_interval, max_wait=max_wait,
        retention_months=retention_months, sleep=sleep, clock=clock, on_event=on_event),
        thread_name="csload-backfill")
