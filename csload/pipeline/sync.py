"""`sync_async()`: discover new runs, download them concurrently, load them through one writer.

    list jobs -> list runs (ledger: what is new) -> stage runs (parts downloaded in parallel)
              -> bounded stream -> one writer thread (DuckDBStore.apply, batches of ready runs)

- Downloads of later runs overlap with loading earlier ones: staging tasks run ahead of the
  writer by at most `limits.max_staged_runs` runs, which also bounds the staging disk space
  (a run's files are deleted as soon as it is applied). Parts stream to disk in chunks.
- The writer applies runs in batches: one DuckDB statement over many files is much faster
  than one per run (DuckDB reads the files in parallel), and the store keeps exactly-once and
  per-run failure isolation within a batch. It takes what is ready and waits for more while
  runs keep arriving within `limits.batch_linger` (a fast network) and the plan has more runs of the
  batch's table to come, up to `max_staged_runs` less one run per download connection, so
  downloads go on while it loads; on a slow network it applies each run as it arrives.
  Runs are staged table by table and parts download in plan order (csload.transfer.slots), so one
  table's batch loads while the next table downloads.
- A run that cannot be downloaded fails alone; its files are discarded and the ledger records
  it as failed (the next sync tries it again) or, when its files are gone, as expired.
- Downloads are not inflated (csload.transfer.stage): a part whose gzip stream the load finds
  damaged is downloaded again (verified this time) and its run applied again, within the
  retry budget: a part gets `retry.max_attempts` downloads in all.
"""

from __future__ import annotations

import contextvars
import logging
import shutil
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from csload.api.models import Job, Run
from csload.concurrency import first_error, one_at_a_time, run_blocking
from csload.config import (
    Limits,
    Settings,
    lake_options_for,
    parse_duration,
    settings_or_default,
    table_map,
)
from csload.errors import CsloadError, DamagedDownload, RunExpired
from csload.load.holder import open_when_free
from csload.load.outcome import UnloadedRun
from csload.notices import gather
from csload.pipeline.batching import batches
from csload.pipeline.discover import Selection
from csload.pipeline.dry_run import describe_plan
from csload.pipeline.first_sync import authenticate_before_creating
from csload.pipeline.plan import (
    Seen,
    check_project,
    name_custom_vars,
    plan_sync,
    record_source_failures,
    seen_of,
    seen_of_db,
    seen_of_db_read_only,
)
from csload.pipeline.report import (
    EventKind,
    EventSink,
    RunOutcome,
    RunStatus,
    SyncEvent,
    SyncReport,
    ignore_events,
    planned_event,
)
from csload.target import DEFAULT_DB as DEFAULT_DB
from csload.target import Store, Target
from csload.transfer.slots import OrderedSlots
from csload.transfer.staged import StagedRun

if TYPE_CHECKING:
    # Imported at run time once the store is opening (_open_importing_client): they import
    # aiohttp.
    from csload.api.client import ExportClient
    from csload.transfer.stage import Redo

log = logging.getLogger("csload.sync")

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

def staging_dir(db: Path) -> Path:
    """Where a sync into the DuckDB file `db` stages its downloads."""
    return Target(db=db).staging_dir()


@dataclass(frozen=True, slots=True)
class _Ready:
    """A run handed to the writer: staged whole, or with the reason it could not be."""

    job: Job
    run: Run
    table: str
    staged: StagedRun | None = None
    error: CsloadError | None = None
    expired: bool = False


def _table_for(job: Job, tables: Mapping[int, str]) -> str:
    return tables[job.job_id]


async def sync_async(
    settings: Settings | None = None,
    *,
    db: str | Path | None = None,
    parquet: str | Path | None = None,
    jobs: Sequence[int] = (),
    scope: str | None = None,
    since: date | str | None = None,
    until: date | str | None = None,
    tables: Mapping[int, str] | None = None,
    dry_run: bool = False,
    wait: float | str | None = None,
    staging_dir: str | Path | None = None,
    on_event: EventSink = ignore_events,
) -> SyncReport:
    """Load every successful run not yet loaded into the DuckDB database at `db` (default
    `contentsquare.duckdb`), or into the lake of Delta tables at `parquet` (a folder or s3:// URL).

    `settings` (default: `load_settings()`, from the environment and ./csload.toml, read at
    the call) names the project, its credentials and the limits. `on_event` is called with
    each SyncEvent as the sync goes (the CLI's progress display is one).

    `jobs` limits the sync to those job ids, `scope` to one scope ("sessions" or "views"),
    `since`/`until` (a `datetime.date` or "YYYY-MM-DD") to runs whose window starts on those
    days (inclusive). A bad value is a ConfigError, raised before anything is opened.
    `tables` maps a job id to a table name (over the settings' `[tables]`); other jobs load
    into the table of their scope, or into a table of their own when their fields differ
    from that table's (csload.load.placement: no run erases columns it does not export; the
    report's `jobs` says where each job went, and a refused job loads nothing). With `dry_run`,
    nothing is downloaded or written: the report lists the runs that would be loaded, with
    their parts and bytes. `wait` (seconds, or "30s", "10m", "1h"; default
    `settings.limits.lock_wait`): while another process has the target open, try again for
    up to that long, then fail with StoreLockedError as at once. `staging_dir` (default
    `settings.staging_dir`): an existing folder for the downloads, which csload stages in a
    subfolder of its own; else beside the database, or in the lake (csload.target).

    A CsloadError raised after runs were committed (a lake's later batch meeting
    LakeConflict, a full disk) carries the report up to it as `error.report`: those runs stay,
    and the next sync loads exactly the rest.
    """
    settings = settings_or_default(settings)
    target = Target.of(db=db, parquet=parquet,
                       storage_options=lake_options_for(parquet, settings.lake),
                       staging_dir=staging_dir if staging_dir is not None
                       else settings.staging_dir, auth_url=settings.auth_url)
    selection = Selection.checked(jobs=jobs, scope=scope, since=since, until=until)
    # A mapped table name is user input: refuse a bad one (or a key that is not a job id)
    # before anything is opened or downloaded.
    mapped = {**settings.tables, **table_map(tables, "tables")}
    report = SyncReport(target=target.label, dry_run=dry_run)
    notices = gather()   # the store's warnings, into the report (csload.notices)
    store: Store | None = None
    lock_wait = settings.limits.lock_wait if wait is None else parse_duration(wait, "wait")

    def waiting(message: str) -> None:
        on_event(SyncEvent(kind=EventKind.MESSAGE, message=message))

    async def read_ledger() -> Seen:
        if target.is_lake:
            return await anyio.to_thread.run_sync(
                lambda: target.read_ledger(seen_of) or Seen(set(), {}))
        return await anyio.to_thread.run_sync(
            lambda: target.read_ledger(seen_of_db_read_only, without_ledger=True)
            or Seen(set(), {}))

    async def open_store() -> Store:
        # Shielded: a cancel while the worker thread opens the store would lose it (and its
        # lock) with no one left to close it. Waiting between two tries is not shielded.
        with anyio.CancelScope(shield=True):
            opened = await anyio.to_thread.run_sync(_open_importing_client, target,
                                                    settings.limits)
        return opened

    if not dry_run:
        await authenticate_before_creating(target, settings, selection)
    # While another process has the target open, try again for up to `lock_wait` seconds.
    if dry_run:
        seen = await open_when_free(read_ledger, wait=lock_wait, on_wait=waiting)
    else:
        # One call at a time: a close waits for the write in progress (one_at_a_time).
        store = one_at_a_time(await open_when_free(open_store, wait=lock_wait,
                                                   on_wait=waiting))
    from csload.api.client import ExportClient

    try:
        if store is not None:
            seen = await anyio.to_thread.run_sync(seen_of if target.is_lake else seen_of_db,
                                                  store.ledger)
        async with ExportClient(settings) as client:
            planned = await plan_sync(client, selection, seen, mapped, report, on_event,
                                      target.reserved_columns)
            # Before anything is written: the token is known now (plan_sync listed the jobs).
            check_project(target.label, seen.project, client.project_id)
            if store is not None and seen.project is None and client.project_id is not None:
                await anyio.to_thread.run_sync(store.record_project, client.project_id)
            plan, tables = planned.runs, planned.tables
            if store is not None and planned.source_failures:
                await record_source_failures(store, planned, report, on_event)
            on_event(planned_event([tables[job.job_id] for job, _run in plan]))
            if dry_run:
                await describe_plan(client, plan, tables, report,
                                    settings.limits.download_concurrency)
            elif plan:
                assert store is not None
                await _load(client, store, plan, tables, settings, target.staging_dir(),
                            report, on_event)
                await name_custom_vars(client, store, plan, report)
    except CsloadError as exc:
        # The runs committed before the error are in the target and stay: the caller is told
        # which (the CLI's line after the error says it from this).
        if not dry_run and report.runs and exc.report is None:
            report.finished_at = _now()
            exc.report = report
        raise
    finally:
        if store is not None:
            with anyio.CancelScope(shield=True):
                try:
                    await anyio.to_thread.run_sync(target.drop_empty_staging)
                    await anyio.to_thread.run_sync(store.close)
                finally:
                    await anyio.to_thread.run_sync(target.release_staging)
    report.warnings.extend(notices)
    report.finished_at = _now()
    return report


def _open_importing_client(target: Target, limits: Limits) -> Store:
    """Open the target for writing while this thread imports the HTTP client and the
    downloader: importing aiohttp takes ~0.13 s and holds the GIL, opening a DuckDB database
    mostly does not, so the two overlap (0.025 s off every sync). Issue 17's A/B
    (benchmarks/results/ab-2026-12-06.md): opening first and importing after makes the no-op sync's
    median 6 % and 10 % longer (two runs of 15 and 20 interleaved syncs each)."""
    with ThreadPoolExecutor(1, thread_name_prefix="csload-open") as pool:
        # In this context: the store's notices go to the sync's report (csload.notices).
        opening = pool.submit(contextvars.copy_context().run, target.open, limits)
        try:
            import csload.transfer.stage  # noqa: F401
        except BaseException:
            with suppress(BaseException):
                opening.result().close()
            raise
        return opening.result()


def sync(
    settings: Settings | None = None,
    *,
    db: str | Path | None = None,
    parquet: str | Path | None = None,
    jobs: Sequence[int] = (),
    scope: str | None = None,
    since: date | str | None = None,
    until: date | str | None = None,
    tables: Mapping[int, str] | None = None,
    dry_run: bool = False,
    wait: float | str | None = None,
    staging_dir: str | Path | None = None,
    on_event: EventSink = ignore_events,
) -> SyncReport:
    """Blocking `sync_async` (same arguments), for scripts and notebooks; it works inside a
    running event loop too (a notebook's), from a thread of its own."""
    run = partial(sync_async, settings, db=db, parquet=parquet, jobs=jobs, scope=scope,
                  since=since, until=until, tables=tables, dry_run=dry_run, wait=wait,
                  staging_dir=staging_dir, on_event=on_event)
    return run_blocking(run, thread_name="csload-sync")


def _now() -> Any:
    from datetime import UTC

    return datetime.now(UTC)


async def _load(
    client: ExportClient,
    store: Store,
    plan: list[tuple[Job, Run]],
    tables: Mapping[int, str],
    settings: Settings,
    staging: Path,
    report: SyncReport,
    on_event: EventSink,
) -> None:
    from csload.transfer.stage import Redo, stage_run

    limits = settings.limits
    # Parts download in plan order: the first runs finish first and load while others download.
    download_slots = OrderedSlots(limits.download_concurrency)
    # One table after the other (oldest run first within a table; the store's result does not
    # depend on the order): a batch holds one table's runs, so the first table loads while the
    # next one downloads, with no more statements than one mixed batch would need. (Pageview
    # tables first left less to load after the last download on a 5 MB/s x 4 network, 0.3 s,
    # but cost up to 0.8 s on a fast one at 1.2 M rows, in A/B runs of the two orders.)
    plan = sorted(plan, key=lambda item: _table_for(item[0], tables))
    # Runs staged but not yet applied: bounds staging disk space and how far downloads run ahead.
    slots = anyio.Semaphore(limits.max_staged_runs)
    send, receive = anyio.create_memory_object_stream[_Ready](limits.max_staged_runs)
    # A batch leaves a staging slot per download connection free, so that downloads go on
    # at full speed while it loads.
    batch_size = max(1, limits.max_staged_runs - limits.download_concurrency)

    def part_done(job: Job, run: Run, nbytes: int) -> None:
        on_event(SyncEvent(kind=EventKind.PART_DOWNLOADED, job_id=job.job_id,
                           run_id=run.run_id, parts=1, bytes=nbytes))

    async def download(job: Job, run: Run, priority: int, redo: Redo | None = None) -> _Ready:
        table = _table_for(job, tables)
        try:
            staged = await stage_run(client, job, run, staging, table, download_slots,
                                     partial(part_done, job, run), priority=priority,
                                     redo=redo)
            return _Ready(job, run, table, staged=staged)
        except RunExpired as exc:
            return _Ready(job, run, table, error=exc, expired=True)
        except CsloadError as exc:
            return _Ready(job, run, table, error=exc)

    async def stage(index: int, job: Job, run: Run) -> None:
        await send.send(await download(job, run, index))

    async def download_again(damaged: list[tuple[_Ready, DamagedDownload]], attempts: int
                             ) -> list[_Ready]:
        redone: list[_Ready] = []

        async def again(item: _Ready, error: DamagedDownload) -> None:
            assert item.staged is not None
            redo = Redo(item.staged, frozenset(error.part_ids), attempts)
            # Priority -1: ahead of every queued download, as the writer waits for these.
            redone.append(await download(item.job, item.run, -1, redo))

        async with anyio.create_task_group() as group:
            for item, error in damaged:
                group.start_soon(again, item, error)
        return redone

    def committed(outcomes: list[RunOutcome]) -> None:
        # Called right after the write, before any other await: once the writer thread has
        # committed, a cancel (Ctrl-C, SIGTERM) that arrived meanwhile is raised at the next
        # checkpoint, and must not hide runs that are in the target from the report.
        for outcome in outcomes:
            report.runs.append(outcome)
            on_event(_event_of(outcome))

    def loading(batch: list[_Ready]) -> None:   # a batch is one table's (batches' key)
        parts = [p for item in batch if item.staged is not None for p in item.staged.parts]
        on_event(SyncEvent(kind=EventKind.LOADING, table=batch[0].table, runs=len(batch),
                           parts=len(parts), bytes=sum(p.bytes for p in parts)))

    async def write(items: list[_Ready]) -> list[tuple[_Ready, DamagedDownload]]:
        """Write `items` (one table's runs) and report what committed; the damaged runs."""
        loading(items)
        try:
            outcomes, damaged = await anyio.to_thread.run_sync(_write, store, items)
        except _CommittedThenFailed as failure:
            committed(failure.outcomes)
            raise failure.error from None
        committed(outcomes)
        return damaged

    async def apply(batch: list[_Ready]) -> None:
        """Write the batch; download damaged parts again and write their runs again."""
        damaged = await write(batch)
        # The first download of every part was one of its attempts.
        attempts = settings.retry.max_attempts - 1
        while damaged:
            if attempts < 1:
                again = [replace(item, staged=None, error=error) for item, error in damaged]
            else:
                again = await download_again(damaged, attempts)
                # A verified download is whole: a run found damaged again fails next round.
                attempts = 0
            damaged = await write(again)

    async def produce() -> None:
        async with send, anyio.create_task_group() as group:
            for index, (job, run) in enumerate(plan):
                await slots.acquire()
                group.start_soon(stage, index, job, run)

    async def consume() -> None:
        async with receive:
            # Once a batch holds every planned run of its table, it goes without lingering.
            coming = Counter(_table_for(job, tables) for job, _run in plan)
            async for batch in batches(receive, batch_size, limits.batch_linger,
                                        key=lambda item: item.table, coming=coming):
                try:
                    await apply(batch)
                finally:
                    await anyio.to_thread.run_sync(_discard, staging, batch)
                    for _ in batch:
                        slots.release()

    try:
        async with anyio.create_task_group() as group:
            group.start_soon(produce)
            group.start_soon(consume)
    except BaseExceptionGroup as group_error:
        # One task's failure (a store error, say) cancels the rest: surface that one error.
        raise first_error(group_error) from None
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(partial(shutil.rmtree, staging, ignore_errors=True))


def _write(store: Store, batch: list[_Ready]
           ) -> tuple[list[RunOutcome], list[tuple[_Ready, DamagedDownload]]]:
    """The writer: apply the staged runs, record the ones that failed or expired; return
    their outcomes, and the runs to apply again once their damaged parts are downloaded."""
    outcomes: list[RunOutcome] = []
    damaged: list[tuple[_Ready, DamagedDownload]] = []
    staged = [item for item in batch if item.staged is not None]
    applied = store.apply([item.staged for item in staged if item.staged is not None])
    for item, result in zip(staged, applied, strict=True):
        assert item.staged is not None
        if result.status == "skipped":
            log.info("job %s, run %s: already loaded", item.job.job_id, item.run.run_id)
            continue
        if result.status == "damaged":
            assert isinstance(result.error, DamagedDownload)
            damaged.append((item, result.error))
            continue
        loaded = result.status == "loaded"
        outcome = _outcome(
            item, RunStatus.LOADED if loaded else RunStatus.FAILED,
            parts=len(item.staged.parts), nbytes=result.bytes, rows=result.rows_read,
            message=None if loaded or result.error is None else str(result.error))
        if loaded:
            outcome = replace(outcome, added=max(result.rows - result.replaced, 0),
                              replaced=result.replaced, removed=result.removed)
        outcomes.append(outcome)
    # The ledger and the report say the same text for a run that failed or expired.
    failed = [(item, str(item.error)) for item in batch if item.error is not None]
    if failed:   # one transaction (a lake's commit) for the batch's failed and expired runs
        try:
            store.record_unloaded([
                UnloadedRun(item.job, item.run, "expired" if item.expired else "failed",
                            message, item.table) for item, message in failed])
        except CsloadError as exc:
            # The runs `store.apply` committed before this stay: the report (and the error's,
            # CsloadError.report) must say so.
            raise _CommittedThenFailed(outcomes, exc) from exc
    for item, message in failed:
        status = RunStatus.EXPIRED if item.expired else RunStatus.FAILED
        outcomes.append(_outcome(item, status, message=message))
    return outcomes, damaged


class _CommittedThenFailed(Exception):
    """From the writer thread: `store.apply` committed the batch's `outcomes` (its loaded
    runs, and those whose load failed), then recording its failed or expired downloads raised
    `error` (a second writer's commit in between, a full disk)."""

    def __init__(self, outcomes: list[RunOutcome], error: CsloadError) -> None:
        super().__init__(str(error))
        self.outcomes, self.error = outcomes, error


def _outcome(item: _Ready, status: RunStatus, *, parts: int = 0, nbytes: int = 0,
             rows: int = 0, message: str | None = None) -> RunOutcome:
    return RunOutcome(job_id=item.job.job_id, run_id=item.run.run_id, table=item.table,
                      status=status, window_start=item.run.start_date,
                      window_end=item.run.end_date, parts=parts, bytes=nbytes, rows=rows,
                      message=message)


def _discard(staging: Path, batch: list[_Ready]) -> None:
    from csload.transfer.stage import discard_staging, run_dir

    for item in batch:
        discard_staging(run_dir(staging, item.job.job_id, item.run.run_id))


def _event_of(outcome: RunOutcome) -> SyncEvent:
    kind = {
        RunStatus.LOADED: EventKind.RUN_LOADED,
        RunStatus.FAILED: EventKind.RUN_FAILED,
        RunStatus.EXPIRED: EventKind.RUN_EXPIRED,
        RunStatus.SOURCE_FAILED: EventKind.RUN_SOURCE_FAILED,
    }.get(outcome.status, EventKind.MESSAGE)
    return SyncEvent(kind=kind, job_id=outcome.job_id, run_id=outcome.run_id,
                     rows=outcome.rows, bytes=outcome.bytes, message=outcome.message)
