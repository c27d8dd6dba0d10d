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

The target is a DuckDB database (`db`) or a Parquet lake (`parquet`). A database also holds
the backfill ledger (`_csload.backfills`, csload.load.backfill_ledger). A lake holds nothing of the
backfill's own: see `_LakeLedger` and docs/backfill.md ("Where the backfill keeps its state").

Jobs are created one at a time, each after the previous one's run finished: the API runs once
jobs one at a time anyway (creating all of them up front would not finish sooner), and an
interrupted backfill leaves at most one job behind, which the next run with the same arguments
picks up instead of creating it again. A run that has not finished `max_wait` after its job was
created (a run stuck at the source waited for forever before issue 16) fails its window alone:
the job stays in the ledger, so a later backfill with the same arguments reuses it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import duckdb

from csload.api.client import ExportClient
from csload.api.jobspec import (
    DATA_RETENTION_MONTHS,
    InvalidJobSpec,
    Problem,
    create_checked_job,
    exportable_names,
    parse_fields,
    validate_spec,
)
from csload.api.models import Job, JobField, Run
from csload.api.schemas import SCOPES, load_schema
from csload.backfills.plan import (
    NAME_PREFIX,
    Template,
    UnavailableDays,
    Window,
    available_days,
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
from csload.concurrency import first_error, run_blocking
from csload.config import Settings, parse_duration, staging_path
from csload.errors import ApiRequestError, ApiUnavailable, ConfigError, CsloadError
from csload.load.backfill_ledger import BackfillLedger, BackfillRecord
from csload.load.duckdb import connect
from csload.load.holder import human_duration
from csload.load.placement import columns_of, difference, table_owner
from csload.pipeline.report import RunStatus, SyncEvent
from csload.pipeline.sync import sync_async
from csload.target import Target

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

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], datetime]

# Files are kept this many days after a run (contract section 5): an older run must be redone.
FILE_RETENTION_DAYS = 7
DEFAULT_POLL_INTERVAL = 15.0
# How long a window waits for its job's run, from the job's creation: a once run takes minutes
# to a few hours; one not finished after a day is stuck at the source.
DEFAULT_MAX_WAIT = 24 * 3600.0
FINISHED = ("SUCCESS", "FAILURE")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# -- the work ---------------------------------------------------------------------------------


class _Phase(enum.Enum):
    CREATE = "create"
    WAIT = "wait"
    LOAD = "load"
    DONE = "done"


@dataclass(slots=True)
class _Piece:
    """One window of the plan, as it is resolved and worked through."""

    template: Template
    window: Window
    phase: _Phase = _Phase.CREATE
    job: Job | None = None
    run: Run | None = None
    loaded_run: int | None = None
    created: bool = False
    state: str | None = None
    # Jobs made for this window before whose run cannot deliver (failed, or files gone).
    unusable: set[int] = field(default_factory=set)

    @property
    def name(self) -> str:
        return job_name(self.template, self.window)

    def item(self, status: BackfillStatus, **values: Any) -> BackfillItem:
        job_id = self.job.job_id if self.job is not None else None
        run_id = self.run.run_id if self.run is not None else self.loaded_run
        base: dict[str, Any] = {
            "scope": self.template.scope, "table": self.template.table,
            "window": self.window, "status": status, "job_id": job_id,
            "job_name": self.name, "run_id": run_id, "created": self.created,
            "like_job_id": self.template.like_job_id,
        }
        base.update(values)
        return BackfillItem(**base)


class _Ledgers:
    """Where the backfill reads the target's ledgers and records its jobs."""

    in_memory = False

    async def run(self, action: Callable[[BackfillLedger], T]) -> T:
        raise NotImplementedError

    async def write(self, action: Callable[[BackfillLedger], None]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _Db(_Ledgers):
    """A DuckDB target: its connection, used from worker threads one call at a time.

    The backfill ledger (`_csload.backfills`) lives beside the loader's, in the same file.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, *, in_memory: bool = False) -> None:
        self._con = con
        self._writable = False
        self.in_memory = in_memory
        self._limiter = anyio.CapacityLimiter(1)

    def ensure(self) -> None:
        """Create the ledger tables; from now on, writes go through."""
        BackfillLedger(self._con).ensure()
        self._writable = True

    async def run(self, action: Callable[[BackfillLedger], T]) -> T:
        con = self._con

        def call() -> T:
            cursor = con.cursor()
            try:
                return action(BackfillLedger(cursor, writable=self._writable))
            finally:
                cursor.close()

        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    async def write(self, action: Callable[[BackfillLedger], None]) -> None:
        if self._writable:
            await self.run(action)

    def close(self) -> None:
        self._con.close()


class _LakeLedger(_Ledgers):
    """A Parquet lake target: its ledger, read-only, and no backfill ledger at all.

    Each read loads the lake's current version (its ledger snapshot, `_csload_*`), because
    every window the backfill loads publishes a new one. Nothing is ever written here: the
    backfill's jobs are found again by their deterministic names (in the API's job list and in
    the lake's `_csload.jobs`), and whether a window is loaded is read from `_csload.runs`,
    which a lake commits with its data. So the backfill adds no state of its own to a lake,
    takes no lock, and a `--dry-run` leaves the lake untouched.
    """

    def __init__(self, target: Target) -> None:
        assert target.parquet is not None
        self.root = target.parquet
        self.options = dict(target.storage_options)
        self._limiter = anyio.CapacityLimiter(1)

    def exists(self) -> bool:
        from csload.lake.fs import LakeFS
        from csload.lake.manifest import read_current

        return read_current(LakeFS.open(self.root, self.options)).version > 0

    def connect(self) -> duckdb.DuckDBPyConnection:
        """The lake's current version, with its ledger (no table at all if there is no lake)."""
        from csload.lake import connect_lake

        if not self.exists():
            return duckdb.connect(":memory:")
        return connect_lake(self.root, storage_options=self.options)

    def check_usable(self) -> None:
        """Fail before any job is created if the lake cannot be written (writes nothing)."""
        from csload.lake.fs import LakeFS

        LakeFS.open(self.root, self.options).check_usable()

    async def run(self, action: Callable[[BackfillLedger], T]) -> T:
        def call() -> T:
            con = self.connect()
            try:
                return action(BackfillLedger(con, writable=False))
            finally:
                con.close()

        return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    async def write(self, action: Callable[[BackfillLedger], None]) -> None:
        return None

    def close(self) -> None:
        return None


def _open_ledgers(target: Target, *, must_exist: bool) -> _Ledgers:
    """The target's ledgers, read-only in effect (nothing is created or written yet)."""
    if target.parquet is not None:
        from csload.lake.fs import LakeFS

        LakeFS.open(target.parquet, target.storage_options)   # a bad URL or option fails here
        lake = _LakeLedger(target)
        if must_exist and not lake.exists():
            raise ConfigError(f"no csload lake at {target.parquet}: there is no daily coverage "
                              f"to fill yet (run `csload sync --parquet {target.parquet}` first)")
        return lake
    assert target.db is not None
    return _open_db(target.db, must_exist=must_exist)


def _writable(target: Target, current: _Ledgers) -> _Ledgers:
    """The target ready for the backfill: a database created if needed, with the ledger
    tables; a lake checked (the first load creates it, through the sync)."""
    if isinstance(current, _LakeLedger):
        current.check_usable()
        return current
    assert target.db is not None and isinstance(current, _Db)
    return _writable_db(target.db, current)


def _open_db(db: Path, *, must_exist: bool) -> _Db:
    """The target database, read-only in effect (nothing is created or written yet).

    An existing file is opened read-write all the same: DuckDB refuses, within one process, a
    read-only connection to a file that another connection (a notebook's `csload.connect`)
    holds read-write. A missing file is not created: an empty in-memory ledger stands for it.
    """
    if db.exists():
        return _Db(connect(db))
    if must_exist:
        raise ConfigError(f"no database at {db}: there is no daily coverage to fill yet "
                          f"(run `csload sync --db {db}` first)")
    return _Db(duckdb.connect(":memory:"), in_memory=True)


def _writable_db(db: Path, current: _Db) -> _Db:
    """The target database ready for writing: created if needed, with the ledger tables."""
    if current.in_memory:
        current.close()
        if not db.parent.is_dir():
            raise ConfigError(f"cannot create the database {db}: folder {db.parent} does not "
                              "exist")
        current = _Db(connect(db))
    try:
        current.ensure()
    except BaseException:
        current.close()
        raise
    return current


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


class _Backfill:
    def __init__(self, settings: Settings, client: ExportClient, db: _Ledgers, *,
                 target: Target, report: BackfillReport, poll_interval: float,
                 max_wait: float, sleep: Sleep, clock: Clock, retention_months: int,
                 on_event: BackfillSink) -> None:
        self.settings = settings
        self.client = client
        self.db = db
        self.target = target
        self.report = report
        self.poll_interval = poll_interval
        self.max_wait = max_wait
        self.sleep = sleep
        self.clock = clock
        self.retention_months = retention_months
        self.emit = on_event
        self.items: dict[int, BackfillItem] = {}

    def warn(self, message: str) -> None:
        self.report.warnings.append(message)
        self.emit(BackfillEvent(kind=BackfillEventKind.MESSAGE, message=message))

    # -- templates ------------------------------------------------------------------------------

    async def like_job(self, job_id: int) -> Job:
        try:
            return await self.client.get_job(job_id)
        except ApiRequestError as exc:
            if exc.status == 404:
                raise ConfigError(f"--like {job_id}: no such export job") from None
            raise

    async def table_of(self, job_id: int) -> str | None:
        return self.settings.tables.get(job_id) or await self.db.run(
            lambda ledger: ledger.job_table(job_id))

    async def check(self, pieces: Sequence[_Piece], templates: Sequence[Template],
                    extra: Sequence[Problem]) -> None:
        """Every rule each job would break, before any is created (InvalidJobSpec)."""
        now = self.clock()
        catalogs: dict[str, frozenset[str]] = {}
        problems: list[Problem] = list(extra)
        yesterday = now.astimezone(UTC).date() - timedelta(days=1)
        specs = [p.template.spec(p.window) for p in pieces]
        specs += [t.spec(Window(yesterday, yesterday + timedelta(days=1))) for t in templates
                  if not any(p.template == t for p in pieces)]
        for spec in specs:
            if spec.scope in SCOPES and spec.scope not in catalogs:
                catalogs[spec.scope] = await exportable_names(self.client, spec.scope)
            for problem in validate_spec(spec, now=now, exportable=catalogs.get(spec.scope),
                                         retention_months=self.retention_months):
                if problem not in problems:
                    problems.append(problem)
        if problems:
            raise InvalidJobSpec(problems)
        await self.check_tables(templates)
        for template in templates:
            key = load_schema(template.scope).row_key
            names = {f.field_name for f in template.fields}
            if not set(key) <= names:
                self.warn(
                    f"the {template.scope} fields do not include the row key "
                    f"({', '.join(key)}): rows of days that another job already loaded into "
                    f"table {template.table!r} are not replaced by the backfill's and may "
                    "appear twice")

    async def check_tables(self, templates: Sequence[Template]) -> None:
        """A backfill loads into a table whose jobs export the same columns (csload.load.placement:
        a run replaces whole rows, so other columns would be erased); else, a ConfigError
        before any job is created."""
        known = await self.db.run(lambda ledger: ledger.known_jobs())
        for template in templates:
            table = template.table or template.scope
            mine = Job(job_id=0, name="backfill", format=template.format, scope=template.scope,
                       frequency="once", fields=template.fields)
            owner = table_owner(table, known)
            if owner is not None and columns_of(owner) != columns_of(mine):
                raise ConfigError(
                    f"table {table!r} holds the columns of job {owner.job_id} ({owner.name}), "
                    f"and the backfill's fields differ ({difference(mine, owner)}): loading "
                    "them there would erase the columns they lack. Export the table's fields "
                    f"(--like {owner.job_id}), or name a table of their own (--table NAME)")

    def plan(self, template: Template, days: Iterable[date], anchor: date | None,
             ) -> list[_Piece]:
        ok, lost = available_days(days, self.clock(), self.retention_months)
        for gone in lost:
            self.report.unavailable.append(gone)
            self.warn(f"{template.scope}: cannot get {gone}")
        return [_Piece(template, window) for window in split_days(ok, anchor=anchor)]

    # -- resolving what exists ---------------------------------------------------------------

    async def resolve(self, pieces: Sequence[_Piece]) -> None:
        """Find, per window, a job made for it before: in the backfill ledger (DuckDB), or by
        its deterministic name among the API's once jobs and the jobs the loader's ledger knows
        (both targets; a lake has no backfill ledger)."""
        records = await self.db.run(lambda ledger: ledger.records())
        by_window: dict[tuple[str, Window], list[BackfillRecord]] = {}
        for record in records:
            window = Window(record.window_start.date(), record.window_end.date())
            by_window.setdefault((record.plan_key, window), []).append(record)
        once_jobs = [job for job in await self.client.list_jobs(frequency="once")
                     if job.name.startswith(NAME_PREFIX)]
        by_name: dict[tuple[str, str], set[int]] = {}
        api_jobs = {job.job_id: job for job in once_jobs}
        for job in once_jobs:
            by_name.setdefault((job.name, job.scope), set()).add(job.job_id)
        # A job the loader loaded a run of is in its ledger by name, even when the API no longer
        # lists it and no backfill ledger row was written.
        known_to_loader = await self.db.run(lambda ledger: ledger.backfill_jobs())
        for job_id, (name, scope) in known_to_loader.items():
            by_name.setdefault((name, scope), set()).add(job_id)
        known = {r.job_id for r in records} | set(api_jobs) | set(known_to_loader)
        loaded = await self.db.run(lambda ledger: ledger.loaded_runs_of(known))
        for piece in pieces:
            ledger_ids = {r.job_id for r in by_window.get((piece.template.key, piece.window), [])}
            named = by_name.get((piece.name, piece.template.scope), set())
            candidates = sorted(ledger_ids | named)
            done = [job_id for job_id in candidates if job_id in loaded]
            if done:
                piece.phase = _Phase.DONE
                piece.job = api_jobs.get(done[0]) or _stub_job(done[0], piece)
                piece.loaded_run = loaded[done[0]]
                continue
            for job_id in candidates:
                found = api_jobs.get(job_id)
                if found is None:
                    continue  # recorded, but the API no longer lists it
                if job_id not in ledger_ids:
                    await self.record(piece, found)  # created, but the crash lost the record
                if await self.consider(piece, found):
                    break

    async def consider(self, piece: _Piece, job: Job) -> bool:
        """Take `job` for the piece if its run can still deliver; False if it cannot."""
        runs = await self.client.list_runs(job.job_id)
        run = max(runs, key=lambda r: r.run_id) if runs else None
        now = self.clock()
        if run is not None and run.state == "FAILURE":
            await self.db.write(partial(_set, job.job_id, "run_failed", now, run.run_id,
                                        "the run ended in FAILURE"))
            piece.unusable.add(job.job_id)
            return False
        if run is not None and run.state == "SUCCESS":
            finished = run.finished_at or run.created_at
            if finished is not None and finished + timedelta(days=FILE_RETENTION_DAYS) <= now:
                await self.db.write(partial(_set, job.job_id, "expired", now, run.run_id,
                                            "the run's files were gone before it was loaded"))
                piece.unusable.add(job.job_id)
                return False
            piece.phase, piece.job, piece.run = _Phase.LOAD, job, run
            return True
        piece.phase, piece.job, piece.run = _Phase.WAIT, job, run
        piece.state = run.state if run is not None else "QUEUED"
        return True

    async def record(self, piece: _Piece, job: Job) -> None:
        template, window, now = piece.template, piece.window, self.clock()
        await self.db.write(lambda ledger: ledger.record_job(
            job_id=job.job_id, name=job.name or piece.name, plan_key=template.key,
            scope=template.scope, format=template.format, fields=template.fields,
            device_label=template.device_label, segment_id=template.segment_id,
            table=template.table, like_job_id=template.like_job_id,
            window_start=_midnight(window.start), window_end=_midnight(window.end), now=now))

    # -- dry run ---------------------------------------------------------------------------------

    def describe(self, pieces: Sequence[_Piece]) -> None:
        for piece in pieces:
            if piece.phase is _Phase.DONE:
                self.report.items.append(piece.item(BackfillStatus.ALREADY_LOADED,
                                                    action="nothing: already loaded"))
                continue
            assert piece.phase is _Phase.CREATE or piece.job is not None
            action = {
                _Phase.CREATE: "create a once job, wait for its run, load it",
                _Phase.WAIT: f"wait for job {piece.job.job_id if piece.job else ''} "
                             f"({piece.state}), load its run",
                _Phase.LOAD: f"load run {piece.run.run_id if piece.run else ''} of job "
                             f"{piece.job.job_id if piece.job else ''}",
            }[piece.phase]
            self.report.items.append(piece.item(BackfillStatus.PLANNED, action=action))

    # -- running ---------------------------------------------------------------------------------

    async def execute(self, pieces: Sequence[_Piece]) -> None:
        send, receive = anyio.create_memory_object_stream[tuple[int, _Piece]](
            max(len(pieces), 1))

        async def produce() -> None:
            async with send:
                for index, piece in enumerate(pieces):
                    if await self.advance(index, piece):
                        await send.send((index, piece))

        async def consume() -> None:
            async with receive:
                async for index, piece in receive:
                    self.items[index] = await self.load(piece)

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(produce)
                group.start_soon(consume)
        except BaseExceptionGroup as error:
            raise first_error(error) from None
        self.report.items.extend(self.items[i] for i in sorted(self.items))

    def event(self, kind: BackfillEventKind, piece: _Piece, **values: Any) -> None:
        job_id = piece.job.job_id if piece.job is not None else None
        self.emit(BackfillEvent(kind=kind, window=piece.window, scope=piece.template.scope,
                                job_id=job_id, **values))

    async def advance(self, index: int, piece: _Piece) -> bool:
        """Bring the piece to a finished run; True when it is ready for the loader."""
        if piece.phase is _Phase.DONE:
            self.items[index] = piece.item(BackfillStatus.ALREADY_LOADED)
            self.event(BackfillEventKind.SKIPPED, piece, run_id=piece.loaded_run)
            return False
        if piece.phase is _Phase.CREATE:
            failure = await self.create(piece)
            if failure is not None:
                self.items[index] = piece.item(BackfillStatus.FAILED, message=failure)
                self.event(BackfillEventKind.FAILED, piece, message=failure)
                return False
        else:
            self.event(BackfillEventKind.JOB_REUSED, piece,
                       state=piece.run.state if piece.run else piece.state)
        if piece.phase is _Phase.WAIT:
            overdue = await self.wait(piece)
            if overdue is not None:
                self.items[index] = piece.item(BackfillStatus.FAILED, message=overdue)
                self.event(BackfillEventKind.FAILED, piece, message=overdue)
                return False
        assert piece.job is not None and piece.run is not None
        run, now = piece.run, self.clock()
        self.event(BackfillEventKind.RUN_FINISHED, piece, run_id=run.run_id, state=run.state)
        if run.state != "SUCCESS":
            message = (f"run {run.run_id} of job {piece.job.job_id} ended in {run.state}, "
                       "without files; run the backfill again to retry this window")
            await self.db.write(partial(_set, piece.job.job_id, "run_failed", now, run.run_id,
                                        message))
            self.items[index] = piece.item(BackfillStatus.FAILED, message=message)
            self.event(BackfillEventKind.FAILED, piece, run_id=run.run_id, message=message)
            return False
        await self.db.write(partial(_set, piece.job.job_id, "succeeded", now, run.run_id, None))
        return True

    async def create(self, piece: _Piece) -> str | None:
        """Create the piece's job and record it at once; the reason it failed, else None."""
        spec = piece.template.spec(piece.window)
        try:
            job = await create_checked_job(self.client, spec)
        except ApiRequestError as exc:
            return str(exc)
        except ApiUnavailable as exc:
            # The API may have created it before failing: look for it by its name.
            found = [job for job in await self.client.list_jobs(frequency="once")
                     if job.name == spec.name and job.scope == spec.scope
                     and job.job_id not in piece.unusable]
            if not found:
                return str(exc)
            job = max(found, key=lambda j: j.job_id)
        # Record first: from here on, an interruption must not lead to a second job.
        await self.record(piece, job)
        piece.job, piece.created, piece.phase = job, True, _Phase.WAIT
        self.event(BackfillEventKind.JOB_CREATED, piece, message=job.name)
        return None

    async def wait(self, piece: _Piece) -> str | None:
        """Poll until the job's run finished (into `piece.run`); None then. Else, once
        `max_wait` has passed since the job was created, why the window fails (the job's
        ledger row keeps it, for a later backfill to reuse)."""
        assert piece.job is not None
        job = piece.job
        since = job.created_at or self.clock()
        while True:
            runs = await self.client.list_runs(job.job_id)
            run = max(runs, key=lambda r: r.run_id) if runs else None
            state = run.state if run is not None else "QUEUED"
            elapsed = max((self.clock() - since).total_seconds(), 0.0)
            self.event(BackfillEventKind.WAITING, piece, state=state, elapsed=elapsed,
                       run_id=run.run_id if run else None)
            if run is not None and run.state in FINISHED:
                piece.run = run
                return None
            if elapsed >= self.max_wait:
                return await self.overdue(piece, run, state, elapsed)
            # The last poll comes at the deadline, not up to a poll interval after it.
            await self.sleep(min(self.poll_interval, self.max_wait - elapsed))

    async def overdue(self, piece: _Piece, run: Run | None, state: str, elapsed: float) -> str:
        assert piece.job is not None
        job_id = piece.job.job_id
        what = f"its run {run.run_id}" if run is not None else "its run"
        since = "the job was created" if piece.job.created_at else "this backfill began waiting"
        message = (f"job {job_id}: {what} was still {state} {human_duration(elapsed)} after "
                   f"{since} (max_wait {human_duration(self.max_wait)}); the job is kept: run "
                   "the backfill again later and it reuses this job and loads its run once it "
                   "finished")
        # State `created` (the job waits for its run), with why this backfill left it.
        await self.db.write(partial(_set, job_id, "created", self.clock(),
                                    run.run_id if run is not None else None, message))
        return message

    async def load(self, piece: _Piece) -> BackfillItem:
        assert piece.job is not None and piece.run is not None
        job, run = piece.job, piece.run
        self.event(BackfillEventKind.LOADING, piece, run_id=run.run_id)

        def forward(event: SyncEvent) -> None:
            self.event(BackfillEventKind.SYNC, piece, run_id=run.run_id, sync_event=event)

        try:
            sync_report = await sync_async(
                self.settings, db=self.target.db, parquet=self.target.parquet,
                jobs=(job.job_id,),
                tables={job.job_id: piece.template.table}, on_event=forward)
        except CsloadError as exc:
            outcome_status, rows, message = RunStatus.FAILED, 0, str(exc) or type(exc).__name__
        else:
            self.report.warnings.extend(w for w in sync_report.warnings
                                        if w not in self.report.warnings)
            outcome = next((o for o in sync_report.runs if o.run_id == run.run_id), None)
            if outcome is None:
                loaded = await self.db.run(lambda ledger: ledger.loaded_runs_of({job.job_id}))
                if loaded.get(job.job_id) == run.run_id:
                    return piece.item(BackfillStatus.ALREADY_LOADED)
                outcome_status, rows = RunStatus.FAILED, 0
                message = f"the sync did not find run {run.run_id} of job {job.job_id}"
            else:
                outcome_status, rows = outcome.status, outcome.rows
                message = outcome.message or outcome.status.value
        now = self.clock()
        if outcome_status is RunStatus.LOADED:
            await self.db.write(partial(_set, job.job_id, "loaded", now, run.run_id, None))
            self.event(BackfillEventKind.LOADED, piece, run_id=run.run_id, rows=rows)
            return piece.item(BackfillStatus.LOADED, rows=rows)
        state = "expired" if outcome_status is RunStatus.EXPIRED else "load_failed"
        text = f"loading run {run.run_id} of job {job.job_id} failed: {message}"
        await self.db.write(partial(_set, job.job_id, state, now, run.run_id, message))
        self.event(BackfillEventKind.FAILED, piece, run_id=run.run_id, message=text)
        return piece.item(BackfillStatus.FAILED, message=text)


def _set(job_id: int, state: str, now: datetime, run_id: int | None, message: str | None,
         ledger: BackfillLedger) -> None:
    ledger.set_state(job_id, state, now=now, run_id=run_id, message=message)


def _stub_job(job_id: int, piece: _Piece) -> Job:
    """A job the API no longer lists but whose run was loaded: enough to report it."""
    t = piece.template
    return Job(job_id=job_id, name=piece.name, format=t.format, scope=t.scope,
               frequency="once", fields=t.fields)


# -- the entry points -------------------------------------------------------------------------


async def backfill_async(
    settings: Settings,
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
    clock: Clock = _utcnow,
    on_event: BackfillSink = ignore_backfill_events,
) -> BackfillReport:
    """Load the days `date_from`..`date_to` (both included) of `scope` through `once` jobs, or
    with `gaps=True` the days missing from the daily coverage of the target: the DuckDB
    database at `db` (default `contentsquare.duckdb`), or the Parquet lake at `parquet` (a
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
    the report's `exit_code` is 3 when a window failed.
    """
    if staging_dir is not None:
        settings = dataclasses.replace(settings, staging_dir=staging_path(staging_dir,
                                                                          "staging_dir"))
    target = Target.of(db=db, parquet=parquet, storage_options=settings.lake,
                       staging_dir=settings.staging_dir, auth_url=settings.auth_url)
    scope, date_from, date_to = check_backfill_arguments(
        scope=scope, date_from=date_from, date_to=date_to, like=like, fields=fields, gaps=gaps)
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
    # Planning and checking only read the target (nothing is created if a rule is broken); it
    # is opened for writing once there is something to do (a lake: checked; the sync writes).
    # Shielded: a connection opened in a worker thread must not be lost to a cancellation.
    with anyio.CancelScope(shield=True):
        database = await anyio.to_thread.run_sync(
            partial(_open_ledgers, target, must_exist=gaps))
    try:
        async with ExportClient(settings, sleep=sleep) as client:
            work = _Backfill(settings, client, database, target=target, report=report,
                             poll_interval=poll_interval, max_wait=max_wait, sleep=sleep,
                             clock=clock, retention_months=retention_months, on_event=on_event)
            pieces, templates, problems = await _make_plan(
                work, scope=scope, date_from=date_from, date_to=date_to, like=like,
                fields=fields, format=format, device=device, segment=segment, gaps=gaps,
                table=table)
            await work.check(pieces, templates, problems)
            if pieces and not dry_run:
                with anyio.CancelScope(shield=True):
                    database = await anyio.to_thread.run_sync(_writable, target, database)
                work.db = database
            await work.resolve(pieces)
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
    report.finished_at = _utcnow()
    return report


def _plan_line(pieces: Sequence[_Piece]) -> str:
    counts = {phase: sum(1 for p in pieces if p.phase is phase) for phase in _Phase}
    return (f"{len(pieces)} window(s): {counts[_Phase.CREATE]} job(s) to create, "
            f"{counts[_Phase.WAIT] + counts[_Phase.LOAD]} to reuse, "
            f"{counts[_Phase.DONE]} already loaded")


async def _make_plan(
    work: _Backfill, *, scope: str | None, date_from: date | None, date_to: date | None,
    like: int | None, fields: Sequence[str | JobField], format: str | None,
    device: str | None, segment: int | None, gaps: bool, table: str | None,
) -> tuple[list[_Piece], list[Template], list[Problem]]:
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
            table=table or await work.table_of(like) or source.scope, like_job_id=like)
    else:
        assert scope is not None
        parsed, problems = _as_fields(fields)
        template = Template(scope=scope.lower(), format=(format or "JSONL").upper(),
                            fields=tuple(parsed), device_label=(device or "all").lower(),
                            segment_id=segment, table=table or scope.lower())
    days = [date_from + timedelta(days=i) for i in range((date_to - date_from).days + 1)]
    return work.plan(template, days, anchor=date_from), [template], problems


async def _gap_plan(work: _Backfill, scope: str | None, date_from: date | None,
                    date_to: date | None) -> tuple[list[_Piece], list[Template]]:
    found = await work.db.run(lambda ledger: ledger.coverage_gaps(scope))
    pieces: list[_Piece] = []
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
        table = await work.table_of(job_id) or source.scope
        template = Template(scope=source.scope, format=source.format, fields=source.fields,
                            device_label=source.device_label or "all",
                            segment_id=source.segment_id, table=table, like_job_id=job_id)
        templates.append(template)
        work.emit(BackfillEvent(kind=BackfillEventKind.MESSAGE, message=(
            f"daily job {job_id} ({source.name}, table {table}): {len(days)} missing day(s): "
            + ", ".join(str(w.label if w.start != w.last else w.start)
                        for w in split_days(days, max_days=10**6)))))
        pieces.extend(work.plan(template, days, anchor=None))
    if not templates:
        work.emit(BackfillEvent(kind=BackfillEventKind.MESSAGE,
                                message="no missing days in the daily coverage"))
    return pieces, templates


def backfill(settings: Settings, **options: Any) -> BackfillReport:
    """Blocking `backfill_async`, for scripts and notebooks (works inside a running loop)."""
    return run_blocking(partial(backfill_async, settings, **options), thread_name="csload-backfill")
