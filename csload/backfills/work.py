"""The work of one backfill, window by window (csload.backfills.engine sets it up).

    check    every window's create-job request against the API's rules (csload.api.jobspec.
             check_jobs), before anything is sent; the tables the jobs load into
    resolve  per window, a job already made for it: from the backfill ledger (DuckDB only),
             else by its deterministic name among the project's once jobs and the jobs the
             loader's ledger knows (a crash may have come between the create request and the
             ledger row; a lake has no backfill ledger at all)
    run      window after window: reuse its job or create one, wait for its run (polling, with
             an injectable sleep and clock, for up to `max_wait` from the job's creation), and
             hand a finished run to the loader (`sync_async`, the normal sync path) while the
             next window's job computes
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio

from csload.api.jobspec import Problem, check_jobs, post_checked_job
from csload.api.models import FILE_RETENTION, Job, Run
from csload.api.schemas import load_schema
from csload.backfills.pieces import Phase, Piece
from csload.backfills.plan import (
    NAME_PREFIX,
    Template,
    Window,
    available_days,
    split_days,
    window_of_name,
)
from csload.backfills.report import (
    BackfillEvent,
    BackfillEventKind,
    BackfillItem,
    BackfillReport,
    BackfillSink,
    BackfillStatus,
)
from csload.backfills.tables import BackfillTables
from csload.concurrency import first_error
from csload.errors import ApiRequestError, ApiUnavailable, ConfigError, CsloadError
from csload.load.backfill_ledger import BackfillRecord
from csload.load.holder import human_duration
from csload.pipeline.report import RunStatus, SyncEvent, SyncReport
from csload.times import midnight

if TYPE_CHECKING:
    from csload.api.client import ExportClient
    from csload.backfills.ledgers import BackfillLedgers
    from csload.config import Settings
    from csload.target import Target

__all__ = ["BackfillWork", "Clock", "Sleep"]

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], datetime]
LoadRun = Callable[[Job, str, Callable[[SyncEvent], None]], Awaitable[SyncReport]]
"""Loads a job's finished run into its table through the normal sync path: the engine passes
`csload.pipeline.sync.sync_async` bound to the backfill's target and settings. The work decides
what to export and when; loading is the pipeline's, so it is handed in."""

FINISHED = ("SUCCESS", "FAILURE")


class BackfillWork:
    """One backfill's work on its windows: checked, resolved against what exists, then run
    (or, for a dry run, described) into `report`."""

    def __init__(self, settings: Settings, client: ExportClient, db: BackfillLedgers, *,
                 target: Target, load_run: LoadRun, report: BackfillReport,
                 poll_interval: float,
                 max_wait: float, sleep: Sleep, clock: Clock, retention_months: int,
                 on_event: BackfillSink) -> None:
        self.settings = settings
        self.client = client
        self.db = db
        self.target = target
        self.load_run = load_run
        self.report = report
        self.poll_interval = poll_interval
        self.max_wait = max_wait
        self.sleep = sleep
        self.clock = clock
        self.retention_months = retention_months
        self.emit = on_event
        self.items: dict[int, BackfillItem] = {}
        self.tables = BackfillTables(settings, client, db, target)

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

    async def check(self, pieces: Sequence[Piece], templates: Sequence[Template],
                    extra: Sequence[Problem]) -> None:
        """Every rule each job would break, before any is created (InvalidJobSpec); then the
        tables the jobs load into, and the row key."""
        now = self.clock()
        yesterday = now.astimezone(UTC).date() - timedelta(days=1)
        specs = [p.template.spec(p.window) for p in pieces]
        # A template with no window left (all its days trimmed) is checked all the same.
        specs += [t.spec(Window(yesterday, yesterday + timedelta(days=1))) for t in templates
                  if not any(p.template == t for p in pieces)]
        await check_jobs(self.client, specs, now=now, retention_months=self.retention_months,
                         extra_problems=extra)
        await self.tables.check(templates)
        for template in templates:
            key = load_schema(template.scope).row_key
            names = {f.field_name for f in template.fields}
            if not set(key) <= names:
                self.warn(
                    f"the {template.scope} fields do not include the row key "
                    f"({', '.join(key)}): rows of days that another job already loaded into "
                    f"table {template.table!r} are not replaced by the backfill's and may "
                    "appear twice")

    def plan(self, template: Template, days: Iterable[date], anchor: date | None,
             ) -> list[Piece]:
        ok, lost = available_days(days, self.clock(), self.retention_months)
        for gone in lost:
            self.report.unavailable.append(gone)
            self.warn(f"{template.scope}: cannot get {gone}")
        return [Piece(template, window) for window in split_days(ok, anchor=anchor)]

    # -- resolving what exists ---------------------------------------------------------------

    async def resolve(self, pieces: Sequence[Piece]) -> None:
        """Find, per window, a job made for it before: in the backfill ledger (DuckDB), or by
        its deterministic name among the API's once jobs and the jobs the loader's ledger knows
        (both targets; a lake has no backfill ledger)."""
        records = await self.db.run(lambda ledger: ledger.records())
        by_window: dict[tuple[str, Window], list[BackfillRecord]] = {}
        for record in records:
            window = Window(record.window_start.date(), record.window_end.date())
            by_window.setdefault((record.plan_key, window), []).append(record)
        # Kept whole or not: a colleague's once job that cannot be read failed every backfill.
        listed = await self.client.list_jobs(frequency="once", keep_unreadable=True)
        once_jobs = [job for job in listed if job.name.startswith(NAME_PREFIX)]
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
                piece.phase = Phase.DONE
                piece.job = api_jobs.get(done[0]) or piece.stub_job(done[0])
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

    async def drop_loaded_days(self, pieces: Sequence[Piece]) -> list[Piece]:
        """The pieces, less the days of windows to create that a job of the same plan loaded
        already: the windows are cut from the days exportable now, so the same command run
        again a day later (a range reaching past today, or starting at the retention's edge)
        cut other windows, and exported and loaded the loaded days again (found by QA,
        2026-12-07: rows without the row key then appeared two and three times)."""
        creating = {p.template for p in pieces if p.phase is Phase.CREATE}
        if not creating:
            return list(pieces)
        named = await self.db.run(lambda ledger: ledger.backfill_jobs())
        loaded = await self.db.run(lambda ledger: ledger.loaded_runs_of(set(named)))
        covered: dict[Template, dict[date, int]] = {t: {} for t in creating}
        for job_id, (name, _) in named.items():
            for template in creating if job_id in loaded else ():
                window = window_of_name(name, template)
                days = window.days if window is not None else []
                covered[template].update(dict.fromkeys(days, job_id))
        result: list[Piece] = []
        for piece in pieces:
            done = covered.get(piece.template, {}) if piece.phase is Phase.CREATE else {}
            if not done.keys() & set(piece.window.days):
                result.append(piece)
                continue
            gone = [d for d in piece.window.days if d in done]
            jobs = ", ".join(str(j) for j in sorted({done[d] for d in gone}))
            self.emit(BackfillEvent(kind=BackfillEventKind.MESSAGE, message=(
                f"{piece.template.scope} {Window(gone[0], gone[-1] + timedelta(days=1)).label}"
                f": loaded by job {jobs} of this backfill already, not exported again")))
            rest = [Piece(piece.template, w) for w in
                    split_days(d for d in piece.window.days if d not in done)]
            await self.resolve(rest)   # a window of these may have its job already
            result += rest
        return result

    async def consider(self, piece: Piece, job: Job) -> bool:
        """Take `job` for the piece if its run can still deliver; False if it cannot."""
        runs = await self.client.list_runs(job.job_id)
        run = max(runs, key=lambda r: r.run_id) if runs else None
        now = self.clock()
        if run is not None and run.state == "FAILURE":
            await self.db.set_state(job.job_id, "run_failed", now, run.run_id,
                                    "the run ended in FAILURE")
            piece.unusable.add(job.job_id)
            return False
        if run is not None and run.state == "SUCCESS":
            finished = run.finished_at or run.created_at
            # Gone by the clock, or by what a sync met: storage may drop the files before
            # csload's 7 days (or this clock be behind the service's). Such a run was
            # reused at every later backfill, whose sync skipped it as recorded ("did not
            # find run"), for good (found 2026-12-07).
            if (finished is not None and finished + FILE_RETENTION <= now) or \
                    await self.db.recorded_expired(run.run_id):
                await self.db.set_state(job.job_id, "expired", now, run.run_id,
                                        "the run's files were gone before it was loaded")
                piece.unusable.add(job.job_id)
                return False
            piece.phase, piece.job, piece.run = Phase.LOAD, job, run
            return True
        piece.phase, piece.job, piece.run = Phase.WAIT, job, run
        piece.state = run.state if run is not None else "QUEUED"
        return True

    async def record(self, piece: Piece, job: Job) -> None:
        template, window, now = piece.template, piece.window, self.clock()
        await self.db.write(lambda ledger: ledger.record_job(
            job_id=job.job_id, name=job.name or piece.name, plan_key=template.key,
            scope=template.scope, format=template.format, fields=template.fields,
            device_label=template.device_label, segment_id=template.segment_id,
            table=template.table, like_job_id=template.like_job_id,
            window_start=midnight(window.start), window_end=midnight(window.end), now=now))

    # -- dry run ---------------------------------------------------------------------------------

    def describe(self, pieces: Sequence[Piece]) -> None:
        for piece in pieces:
            if piece.phase is Phase.DONE:
                self.report.items.append(piece.item(BackfillStatus.ALREADY_LOADED,
                                                    action="nothing: already loaded"))
                continue
            assert piece.phase is Phase.CREATE or piece.job is not None
            action = {
                Phase.CREATE: "create a once job, wait for its run, load it",
                Phase.WAIT: f"wait for job {piece.job.job_id if piece.job else ''} "
                             f"({piece.state}), load its run",
                Phase.LOAD: f"load run {piece.run.run_id if piece.run else ''} of job "
                             f"{piece.job.job_id if piece.job else ''}",
            }[piece.phase]
            self.report.items.append(piece.item(BackfillStatus.PLANNED, action=action))

    # -- running ---------------------------------------------------------------------------------

    async def execute(self, pieces: Sequence[Piece]) -> None:
        send, receive = anyio.create_memory_object_stream[tuple[int, Piece]](
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

    def event(self, kind: BackfillEventKind, piece: Piece, **values: Any) -> None:
        job_id = piece.job.job_id if piece.job is not None else None
        self.emit(BackfillEvent(kind=kind, window=piece.window, scope=piece.template.scope,
                                job_id=job_id, **values))

    async def advance(self, index: int, piece: Piece) -> bool:
        """Bring the piece to a finished run; True when it is ready for the loader."""
        if piece.phase is Phase.CREATE:
            failure = await self.create(piece)
            if failure is not None:
                return self.fail(index, piece, failure)
        elif piece.phase is not Phase.DONE:
            self.event(BackfillEventKind.JOB_REUSED, piece,
                       state=piece.run.state if piece.run else piece.state)
        if piece.phase is Phase.DONE:
            self.items[index] = piece.item(BackfillStatus.ALREADY_LOADED)
            self.event(BackfillEventKind.SKIPPED, piece, run_id=piece.loaded_run)
            return False
        if piece.phase is Phase.WAIT:
            overdue = await self.wait(piece)
            if overdue is not None:
                return self.fail(index, piece, overdue)
        assert piece.job is not None and piece.run is not None
        run, now = piece.run, self.clock()
        self.event(BackfillEventKind.RUN_FINISHED, piece, run_id=run.run_id, state=run.state)
        if run.state != "SUCCESS":
            message = (f"run {run.run_id} of job {piece.job.job_id} ended in {run.state}, "
                       "without files; run the backfill again to retry this window")
            await self.db.set_state(piece.job.job_id, "run_failed", now, run.run_id, message)
            return self.fail(index, piece, message, run_id=run.run_id)
        await self.db.set_state(piece.job.job_id, "succeeded", now, run.run_id, None)
        return True

    def fail(self, index: int, piece: Piece, message: str, **values: Any) -> bool:
        """The piece's window failed before loading (`message` says why): recorded in the
        report and told; False, as `advance` answers for a piece not to load."""
        self.items[index] = piece.item(BackfillStatus.FAILED, message=message)
        self.event(BackfillEventKind.FAILED, piece, message=message, **values)
        return False

    async def create(self, piece: Piece) -> str | None:
        """Create the piece's job and record it at once; the reason it failed, else None.
        With the database held: another backfill of it may have made the window's job since
        the plan was resolved, and is then reused, as the one that made it does."""
        async with self.db.held():
            await self.resolve([piece])
            if piece.phase is Phase.CREATE:
                return await self._create(piece)
        if piece.phase is not Phase.DONE:
            self.event(BackfillEventKind.JOB_REUSED, piece,
                       state=piece.run.state if piece.run else piece.state)
        return None

    async def _create(self, piece: Piece) -> str | None:
        spec = piece.template.spec(piece.window)
        try:
            job = await post_checked_job(self.client, spec)
        except ApiRequestError as exc:
            return str(exc)
        except ApiUnavailable as exc:
            # The API may have created it before failing: look for it by its name.
            listed = await self.client.list_jobs(frequency="once", keep_unreadable=True)
            found = [job for job in listed if job.name == spec.name and job.scope == spec.scope
                     and job.job_id not in piece.unusable]
            if not found:
                return str(exc)
            job = max(found, key=lambda j: j.job_id)
        # Record first: from here on, an interruption must not lead to a second job.
        await self.record(piece, job)
        piece.job, piece.created_here_at, piece.phase = job, self.clock(), Phase.WAIT
        self.event(BackfillEventKind.JOB_CREATED, piece, message=job.name)
        return None

    async def wait(self, piece: Piece) -> str | None:
        """Poll until the job's run finished (into `piece.run`); None then. Else, once
        `max_wait` has passed since the job was created, why the window fails (the job's
        ledger row keeps it, for a later backfill to reuse)."""
        assert piece.job is not None
        job = piece.job
        # A job this backfill created is timed from then, by this machine's clock alone: its
        # createdAt is the server's clock, and a client clock hours off it failed every window
        # at once ("still QUEUED 4185h after the job was created"). A job an earlier backfill
        # created is timed from its createdAt.
        since = piece.created_here_at or job.created_at or self.clock()
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

    async def overdue(self, piece: Piece, run: Run | None, state: str, elapsed: float) -> str:
        assert piece.job is not None
        job_id = piece.job.job_id
        what = f"its run {run.run_id}" if run is not None else "its run"
        since = "the job was created" if piece.job.created_at else "this backfill began waiting"
        message = (f"job {job_id}: {what} was still {state} {human_duration(elapsed)} after "
                   f"{since} (max_wait {human_duration(self.max_wait)}); the job is kept: run "
                   "the backfill again later and it reuses this job and loads its run once it "
                   "finished")
        # State `created` (the job waits for its run), with why this backfill left it.
        await self.db.set_state(job_id, "created", self.clock(),
                                run.run_id if run is not None else None, message)
        return message

    async def load(self, piece: Piece) -> BackfillItem:
        assert piece.job is not None and piece.run is not None
        job, run = piece.job, piece.run
        self.event(BackfillEventKind.LOADING, piece, run_id=run.run_id)

        def forward(event: SyncEvent) -> None:
            self.event(BackfillEventKind.SYNC, piece, run_id=run.run_id, sync_event=event)

        try:
            sync_report = await self.load_run(job, piece.template.table, forward)
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
            await self.db.set_state(job.job_id, "loaded", now, run.run_id, None)
            self.event(BackfillEventKind.LOADED, piece, run_id=run.run_id, rows=rows)
            return piece.item(BackfillStatus.LOADED, rows=rows)
        state = "expired" if outcome_status is RunStatus.EXPIRED else "load_failed"
        text = f"loading run {run.run_id} of job {job.job_id} failed: {message}"
        await self.db.set_state(job.job_id, state, now, run.run_id, message)
        self.event(BackfillEventKind.FAILED, piece, run_id=run.run_id, message=text)
        return piece.item(BackfillStatus.FAILED, message=text)

