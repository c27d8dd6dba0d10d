"""Stopping a long command cleanly on SIGINT (Ctrl-C), SIGTERM (what orchestrators send) and
SIGHUP (an ssh session or terminal that closes: the sync died at once, exit 129, saying nothing
and leaving its staging folder, which on a shared database blocked the other users' syncs).

The signals are received by the event loop (anyio.open_signal_receiver), not by a handler that
raises from wherever the main thread happens to be. The first one cancels the command's cancel
scope, so the cancellation reaches the pipeline like any other and its `finally` blocks run:
downloads stop, the batch the writer thread is applying commits or rolls back whole (a cancel
waits for a worker thread), the staging folder is removed and the store closed. The command
then says what was committed and exits 128 + the signal's number (130, 143, 129), as shells
do.
"""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from typing import TypeVar

import anyio
from anyio.abc import TaskStatus

from csload.pipeline.report import EventKind, SyncEvent, SyncReport

T = TypeVar("T")

SIGNALS = (signal.SIGINT, signal.SIGTERM,
           *((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()))   # none on Windows


class Interrupted(Exception):
    """The command was stopped by `signum`; its cleanup has run."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


async def until_signal(main: Callable[[], Awaitable[T]],
                       on_signal: Callable[[int, bool], None]) -> T:
    """`main()`, cancelled by the first SIGINT or SIGTERM, which then raises Interrupted once
    main's cleanup has run. `on_signal(signum, first)` is called for every signal received
    while main runs (a second Ctrl-C does not cut the cleanup short: it is only reported)."""
    received: list[int] = []
    work = anyio.CancelScope()
    done: list[T] = []

    async def watch(*, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with ExitStack() as stack:
            try:
                signals = stack.enter_context(anyio.open_signal_receiver(*SIGNALS))
            except NotImplementedError:   # Windows: Ctrl-C stays a KeyboardInterrupt
                task_status.started()
                return
            task_status.started()
            async for signum in signals:
                on_signal(signum, not received)
                if not received:
                    received.append(signum)
                    work.cancel()

    failed: list[Exception] = []
    async with anyio.create_task_group() as group:
        await group.start(watch)
        try:
            with work:
                done.append(await main())
        except Exception as exc:
            # Raised below as it is: inside the task group it would become an ExceptionGroup.
            failed.append(exc)
        finally:
            group.cancel_scope.cancel()
    if failed:
        raise failed[0]
    if done:   # finished before a signal could stop it: the work is complete
        return done[0]
    raise Interrupted(received[0] if received else signal.SIGINT)


class CommittedRuns:
    """What a sync committed before it stopped. As an event sink, it counts it from the
    events of its writer (a RUN_LOADED event is emitted once the run's transaction has
    committed): a signal stops the sync with no report. `of(report)` reads it from the report
    an error carries (CsloadError.report)."""

    def __init__(self) -> None:
        self.loaded: list[tuple[int, int, int]] = []   # (job id, run id, rows)
        # Failed or expired runs written to the ledger, and runs that FAILED at Contentsquare
        # (recorded as gaps at the start of a sync).
        self.recorded = 0

    def __call__(self, event: SyncEvent) -> None:
        if event.kind is EventKind.RUN_LOADED:
            self.loaded.append((event.job_id or 0, event.run_id or 0, event.rows))
        elif event.kind in (EventKind.RUN_FAILED, EventKind.RUN_EXPIRED,
                            EventKind.RUN_SOURCE_FAILED):
            self.recorded += 1

    @classmethod
    def of(cls, report: SyncReport | None) -> CommittedRuns:
        """What `report` (a sync's up to an error; None: nothing committed) holds: every
        outcome in it was committed, loaded or recorded."""
        committed = cls()
        if report is not None:
            committed.loaded = [(r.job_id, r.run_id, r.rows) for r in report.loaded]
            committed.recorded = len(report.final()) - len(committed.loaded)
        return committed

    @property
    def rows(self) -> int:
        return sum(rows for _job, _run, rows in self.loaded)

    @property
    def nothing(self) -> bool:
        """Whether the command committed nothing (no run loaded, none recorded)."""
        return not self.loaded and not self.recorded

    def _what(self) -> str:
        runs = len(self.loaded)
        if runs:
            what = (f"{runs} run{'s' if runs > 1 else ''} loaded and committed "
                    f"({self.rows:,} rows)")
        else:
            what = "no run loaded"
        if self.recorded:
            what += (f", {self.recorded} failed or expired run"
                     f"{'s' if self.recorded > 1 else ''} recorded")
        return what

    def summary(self, stop: Interrupted, command: str) -> str:
        """One line: what was committed before the stop, and what to run next."""
        return (f"interrupted by {stop.name}: {self._what()}; nothing else was written and "
                f"the unfinished downloads were removed. Run `{command}` again: it loads "
                "exactly the rest")

    def after_error(self, command: str) -> str | None:
        """For a command stopped by an error once it had committed runs (a lake's
        LakeConflict or a full disk in a later batch): one line saying those stay. None
        when it had committed nothing (the error line says it all)."""
        if self.nothing:
            return None
        return (f"before the error: {self._what()}; those stay, and nothing of the failed "
                f"batch counts. Run `{command}` again once the error is fixed: it loads exactly "
                "the rest")

    def _runs_json(self) -> dict[str, object]:
        return {"runsLoaded": len(self.loaded), "rows": self.rows,
                "runs": [{"jobId": job, "runId": run, "rows": rows}
                         for job, run, rows in self.loaded]}

    def to_json(self, stop: Interrupted) -> dict[str, object]:
        return {"interrupted": stop.name, "exitCode": stop.exit_code, **self._runs_json(),
                "runsRecorded": self.recorded}

    def error_json(self) -> dict[str, object] | None:
        """What the JSON error object of a command stopped by an error adds: the runs it
        committed before it (None when it committed nothing)."""
        if self.nothing:
            return None
        return {**self._runs_json(), "runsRecorded": self.recorded}
