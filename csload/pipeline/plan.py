"""What a sync will do, decided before any download: the jobs and their tables, the runs to
load, and the runs that FAILED at Contentsquare (recorded as gaps); and, after the load, the
names of the project's custom variables. Before it: what the sync reads of its target (`Seen`).

    list jobs -> place every job (csload.load.placement) -> list each selected job's runs
              -> the runs the target does not hold yet (csload.pipeline.discover.select_runs)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from csload.api.models import Job, Run
from csload.concurrency import first_error
from csload.errors import ConfigError, CsloadError, source_failed_message
from csload.load.backfill_names import left_to_backfill
from csload.load.ledger import Ledger
from csload.load.placement import place_jobs
from csload.pipeline.discover import (
    Selection,
    check_jobs_listed,
    in_window,
    select_jobs,
    select_runs,
)
from csload.pipeline.report import (
    EventKind,
    EventSink,
    RunOutcome,
    RunStatus,
    SyncEvent,
    SyncReport,
)

if TYPE_CHECKING:
    from csload.api.client import ExportClient
    from csload.target import Store

log = logging.getLogger("csload.sync")


@dataclass(frozen=True, slots=True)
class Plan:
    runs: list[tuple[Job, Run]]            # to download and load
    tables: dict[int, str]                 # every job's table (csload.load.placement)
    # Runs of the selected jobs that FAILED at Contentsquare: (job, run, table).
    source_failures: list[tuple[Job, Run, str]]


async def record_source_failures(store: Store, planned: Plan, report: SyncReport,
                                  on_event: EventSink) -> None:
    """Record in the ledger the runs that FAILED at Contentsquare (their days are gaps, which
    `csload backfill` fills); report those it did not hold yet."""
    from csload.load.status import window_label

    recorded = await anyio.to_thread.run_sync(store.record_source_failed,
                                              planned.source_failures)
    frequency = {job.job_id: job.frequency for job, _run, _table in planned.source_failures}
    for run in recorded:
        message = source_failed_message(run.job_id, frequency.get(run.job_id), run.start_date,
                                        run.end_date)
        outcome = RunOutcome(job_id=run.job_id, run_id=run.run_id,
                             table=planned.tables[run.job_id], status=RunStatus.SOURCE_FAILED,
                             window_start=run.start_date, window_end=run.end_date,
                             message=message)
        report.runs.append(outcome)
        on_event(SyncEvent(kind=EventKind.RUN_SOURCE_FAILED, job_id=run.job_id,
                           run_id=run.run_id,
                           message=(f"job {run.job_id}, run {run.run_id} "
                                    f"({window_label(run.start_date, run.end_date)}): "
                                    f"{message}")))


async def name_custom_vars(client: ExportClient, store: Store,
                            plan: Sequence[tuple[Job, Run]], report: SyncReport) -> None:
    """Once runs of a job exporting custom variables loaded: their names, from the project
    (one API call), into the target. A failure here loses nothing: a warning."""
    loaded = {run.job_id for run in report.loaded}
    if not any(f.field_name == "custom_var" for job, _run in plan if job.job_id in loaded
               for f in job.fields):
        return
    try:
        variables = await client.custom_vars()
        await anyio.to_thread.run_sync(store.name_custom_vars,
                                       [(v.position, v.name) for v in variables])
    except CsloadError as exc:
        note = f"the names of the custom variables were not recorded: {exc}"
        log.warning("%s", note)
        report.warnings.append(note)


async def plan_sync(
    client: ExportClient,
    selection: Selection,
    seen: Seen,
    mapped: Mapping[int, str],
    report: SyncReport,
    on_event: EventSink,
    reserved: Mapping[str, str] | None = None,
) -> Plan:
    """The runs to load, and the table of each job (csload.load.placement: every job of the
    project is placed, so that the result does not depend on which jobs this sync selects),
    from what the target's ledger says (`seen`: the runs done, the jobs it knows, the tables
    csload did not make, which no job loads into); `reserved`: the column names the target
    keeps, Target.reserved_columns."""
    done, known = seen.done, seen.jobs
    all_jobs = await client.list_jobs(keep_unreadable=True)   # refused alone: placement
    listed = {job.job_id for job in all_jobs}
    # A backfill's job is loaded by that backfill, into the table it was made for (which only
    # it knows): a sync started while it waits (cron) used to load it by the placement rule,
    # into `views`, and the backfill then reported the window loaded, in a table that did not
    # exist; another target's backfill (a colleague's, a device-filtered one) counted as
    # filling this target's gaps. Loaded here only when this target loaded it before, or
    # when asked for by id or mapped (what the backfill's own sync does).
    left = left_to_backfill(all_jobs, known, mapped, selection.job_ids)
    theirs = [job for job in all_jobs if job.job_id in left]
    all_jobs = [job for job in all_jobs if job.job_id not in left]
    chosen, skipped = select_jobs(all_jobs, selection)
    check_jobs_listed(selection, all_jobs)

    def say(job: Job, note: str) -> None:
        report.warnings.append(note)
        on_event(SyncEvent(kind=EventKind.MESSAGE, job_id=job.job_id, message=note))

    for item in skipped:
        say(item.job, f"job {item.job.job_id} ({item.job.name}) skipped: {item.reason}")
    for job in theirs:
        if selection.scope is None or job.scope == selection.scope:
            log.info("job %s (%s) left to `csload backfill`, which made it and loads it into "
                     "its table (to load it here: `csload sync --job %s`)", job.job_id,
                     job.name, job.job_id)
    for job_id, (job, table) in sorted(known.items()):
        # A recurring job deleted at Contentsquare: status showed it as it was, no word said.
        if (job_id not in listed and job.frequency in ("daily", "hourly")
                and not selection.job_ids and selection.scope in (None, job.scope)):
            on_event(SyncEvent(
                kind=EventKind.MESSAGE, job_id=job_id,
                message=(f"job {job_id} ({job.name}) is no longer listed by Contentsquare "
                         f"(deleted?): table {table} keeps the rows it loaded, and gets no "
                         "new runs of it")))
    placements = place_jobs(all_jobs, known, mapped, seen.foreign, reserved, seen.loaded_into)
    report.jobs = [placements[job.job_id] for job in chosen]
    for placement in report.jobs:
        # Moved too: docs/loading.md promises a word that its earlier rows stay where they
        # were, and none came.
        if placement.refused or placement.new or placement.moved_from:
            say(placement.job, placement.note)
        if placement.stopped:   # said, not a warning: a job suspended on purpose stays so
            on_event(SyncEvent(
                kind=EventKind.MESSAGE, job_id=placement.job.job_id,
                message=(f"job {placement.job.job_id} ({placement.job.name}) is SUSPENDED at "
                         f"Contentsquare: table {placement.table} gets no new runs of it "
                         "until the job is resumed in the Contentsquare console")))
    refused = [job for job in chosen if placements[job.job_id].refused]
    chosen = [job for job in chosen if not placements[job.job_id].refused]

    runs_of: dict[int, list[Run]] = {}

    async def list_runs(job: Job) -> None:
        # Every state, in the one request as before: runs that FAILED at Contentsquare are
        # recorded too (csload.load.ledger `source_failed`), as their days are gaps.
        # A run that cannot be read is kept, to fail alone (csload.api.models.Run.listed).
        runs_of[job.job_id] = await client.list_runs(job.job_id, keep_unreadable=True)

    try:
        async with anyio.create_task_group() as group:
            for job in [*chosen, *refused]:   # a refused job's: are any left to load?
                group.start_soon(list_runs, job)
    except BaseExceptionGroup as error:
        # The API's own error (one line naming the job), not "unexpected ExceptionGroup".
        raise first_error(error) from None
    unloaded = {job.job_id: len(select_runs(runs_of[job.job_id], done, selection))
                for job in refused}
    report.jobs = [replace(p, unloaded=unloaded[p.job.job_id]) if p.refused else p
                   for p in report.jobs]
    by_id = {job.job_id: job for job in chosen}
    fresh = select_runs((run for runs in runs_of.values() for run in runs), done, selection)
    tables = {job_id: placement.table for job_id, placement in placements.items()}
    failures = [(by_id[run.job_id], run, tables[run.job_id])
                for runs in runs_of.values() for run in runs
                if run.state == "FAILURE" and run.job_id in by_id and in_window(run, selection)
                and run.unreadable is None]
    planned = [(by_id[run.job_id], run) for run in fresh if run.job_id in by_id]
    for job, run in planned:
        if run.finished_at and run.end_date and run.finished_at < run.end_date:
            # Made before its window ended (a once job over days not over yet): it holds the
            # rows up to then. Loaded as whole without a word, and counted as filling the
            # days (QA, 2026-12-08). The window rule still replaces it by a later run.
            say(job, f"job {job.job_id}, run {run.run_id}: it finished at "
                     f"{run.finished_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC, before its window "
                     f"ended ({run.end_date.astimezone(UTC):%Y-%m-%d %H:%M} UTC): it holds the "
                     "rows up to then at most; export those days again once they are over")
    return Plan(planned, tables, failures)


@dataclass(frozen=True, slots=True)
class Seen:
    """What a sync reads of its target before it plans: the runs not to fetch again, the jobs
    the target has seen with their tables, the tables of a DuckDB target that csload did not
    make (no job loads into those: csload.load.placement), and the project whose exports the
    target holds (`check_project`)."""

    done: set[int]
    jobs: dict[int, tuple[Job, str]]
    foreign: frozenset[str] = frozenset()
    project: int | None = None
    # Per table, the jobs whose rows it holds (Ledger.loaded_tables): place_jobs' loaded_into.
    loaded_into: Mapping[str, frozenset[int]] = field(default_factory=dict)


def seen_of(ledger: Ledger) -> Seen:
    """What a target's ledger says (of a lake, all there is to see: a folder of another tool's
    is refused when the lake opens, csload.lake.recovery)."""
    return Seen(ledger.done_run_ids(), ledger.jobs(), project=ledger.project_id(),
                loaded_into=ledger.loaded_tables())


def seen_of_db(ledger: Ledger) -> Seen:
    """Of a DuckDB target opened for the sync: with the tables of the user's own."""
    return replace(seen_of(ledger), foreign=frozenset(ledger.foreign_tables()))


def seen_of_db_read_only(ledger: Ledger) -> Seen:
    """The same, read-only (a dry run), of a database that may have no ledger yet: the runs of
    a table the user dropped are not done (a sync loads them again:
    DuckDBStore.forget_dropped_tables)."""
    foreign = frozenset(ledger.foreign_tables())
    if not ledger.exists():
        return Seen(set(), {}, foreign)
    seen = seen_of(ledger)
    dropped = ledger.dropped_tables()
    for table, runs in sorted(dropped.items()):
        log.warning("table %s is no longer in the database (dropped or renamed?): a sync "
                    "would load its %d loaded run(s) again", table, runs)
    done = seen.done - ledger.runs_of_tables(sorted(dropped)) if dropped else seen.done
    return replace(seen, done=done, foreign=foreign)


def check_project(target: str, recorded: int | None, current: int | None) -> None:
    """ConfigError if the target holds another project's exports than the one the credentials
    are for. A session id identifies a session within its project only: two projects' runs in
    one table would replace each other's rows of the same keys (the key rule), silently.
    Unknown on either side (a target of an older csload, project-level credentials whose
    token answer names no project): not checked."""
    if recorded is None or current is None or recorded == current:
        return
    raise ConfigError(
        f"{target} holds the exports of Contentsquare project {recorded}, and these settings "
        f"are for project {current}: a session id identifies a session within its project "
        "only, so one project's rows would replace the other's in the same tables. Sync "
        f"project {current} into a target of its own (--db FILE or --parquet ROOT), or check "
        "CONTENTSQUARE_PROJECT_ID")
