"""Showing a sync as it happens: a live progress bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING

from csload.cli.common import labelled
from csload.report import EventKind, RunOutcome, RunStatus, SyncEvent, SyncReport

if TYPE_CHECKING:
    # Lazy: the progress bar is only drawn on a terminal, and the summary table only at the
    # end (and not with --json): importing both up front cost ~7 ms at start-up.
    from rich.console import Console
    from rich.progress import Progress, TaskID
    from rich.table import Table


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


class SyncDisplay:
    """An event sink (`on_event`) that renders progress to stderr; use it as a context manager.
    `console` is one of csload.cli.common's (markup off: messages are printed as they are)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.started = time.monotonic()
        self.parts = 0
        self.bytes = 0
        self.rows = 0
        self.runs_done = 0
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> SyncDisplay:
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(
                TextColumn("[bold]runs"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}", markup=False), TimeElapsedColumn(),
                console=self.console, transient=True,
            )
            self.progress.__enter__()
            self.task = self.progress.add_task("sync", total=None, detail="discovering runs")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.progress is not None:
            self.progress.__exit__(kind, exc, tb)

    def _detail(self) -> str:
        seconds = max(time.monotonic() - self.started, 1e-3)
        return (f"parts {self.parts}  {human_bytes(self.bytes)}  rows {self.rows:,}  "
                f"{human_bytes(self.bytes / seconds)}/s  {self.rows / seconds:,.0f} rows/s")

    def __call__(self, event: SyncEvent) -> None:
        if event.kind is EventKind.PLANNED:
            if self.progress is not None and self.task is not None:
                self.progress.update(self.task, total=event.runs, detail=self._detail())
            else:
                self.console.print(f"{event.runs} new run(s) to load")
            return
        if event.kind is EventKind.PART_DOWNLOADED:
            self.parts += event.parts
            self.bytes += event.bytes
        elif event.kind in (EventKind.RUN_LOADED, EventKind.RUN_FAILED, EventKind.RUN_EXPIRED):
            self.runs_done += 1
            self.rows += event.rows
            self._log_run(event)
        elif event.kind is EventKind.MESSAGE and event.message:
            self.console.print(f"note: {event.message}")
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, completed=self.runs_done, detail=self._detail())

    def _log_run(self, event: SyncEvent) -> None:
        where = f"job {event.job_id}, run {event.run_id}"
        if event.kind is EventKind.RUN_LOADED:
            if not self.live:
                self.console.print(f"loaded {where}: {event.rows:,} rows, "
                                   f"{human_bytes(event.bytes)}")
        elif self.live:
            return   # on a terminal, the summary says it once, grouped (problem_lines)
        elif event.kind is EventKind.RUN_EXPIRED:
            self.console.print(labelled("expired", "yellow", f" {where}: {event.message}"))
        else:
            self.console.print(labelled("failed", "red", f" {where}: {event.message}"))


def summary_table(report: SyncReport) -> Table:
    """Per table: runs loaded, rows, bytes; then the failed and expired runs."""
    from rich.table import Table

    title = "dry run: would load" if report.dry_run else f"sync of {report.target}"
    table = Table(title=f"{title} ({report.seconds:.1f} s)")
    for column in ("table", "status", "runs", "parts", "rows", "bytes"):
        # Never cut with "…" (a narrow terminal folds a long table name instead).
        table.add_column(column, justify="left" if column in ("table", "status") else "right",
                         overflow="fold")
    groups: dict[tuple[str, RunStatus], list[int]] = {}
    for run in report.runs:
        totals = groups.setdefault((run.table, run.status), [0, 0, 0, 0])
        totals[0] += 1
        totals[1] += run.parts
        totals[2] += run.rows
        totals[3] += run.bytes
    for (name, status), (runs, parts, rows, nbytes) in sorted(groups.items()):
        table.add_row(name, status.value, str(runs), str(parts),
                      "" if report.dry_run else f"{rows:,}", human_bytes(nbytes))
    if not report.runs:
        table.add_row("-", "nothing new", "0", "0", "0", "0 B")
    return table


def jobs_table(report: SyncReport) -> Table | None:
    """Per selected job: its table and why (csload.placement), and what its runs did to the
    table: rows added, replaced and removed. None when the sync selected no job."""
    from rich.table import Table

    if not report.jobs:
        return None
    totals = {t.job_id: t for t in report.job_totals()}
    table = Table(title="jobs")
    columns = ["job", "name", "table", "placed"]
    if not report.dry_run:
        columns += ["runs", "added", "replaced", "removed"]
    for column in columns:
        table.add_column(column, overflow="fold",
                         justify="right" if column in ("runs", "added", "replaced", "removed")
                         else "left")
    for placement in report.jobs:
        placed = ("refused" if placement.refused
                  else ("new, " if placement.new else "") + placement.how)
        if placement.moved_from:
            placed += f" (moved from {placement.moved_from})"
        row = [str(placement.job.job_id), placement.job.name, placement.table, placed]
        if not report.dry_run:
            done = totals.get(placement.job.job_id)
            row += ([str(done.runs), f"{done.added:,}", f"{done.replaced:,}",
                     f"{done.removed:,}"] if done else ["0", "", "", ""])
        table.add_row(*row)
    return table


_NEXT_STEP = {RunStatus.FAILED: "the next csload sync tries them again",
              RunStatus.EXPIRED: "csload backfill --gaps exports their days again"}


def problem_lines(report: SyncReport) -> list[str]:
    """One line per kind of problem and job, with the days and the first run's reason (a
    run's own message starts with "job J, run R": said once, not per run)."""
    from csload.errors import part_label
    from csload.redact import redact_text
    from csload.status import days_text, window_days

    names = {p.job.job_id: p.job.name for p in report.jobs}
    grouped: dict[tuple[RunStatus, int], list[RunOutcome]] = {}
    for run in report.failed + report.expired:
        grouped.setdefault((run.status, run.job_id), []).append(run)
    lines = []
    for (status, job_id), runs in sorted(grouped.items()):
        name = f' "{names[job_id]}"' if names.get(job_id) else ""
        days = days_text([d for r in runs for d in window_days(r.window_start, r.window_end)])
        first = runs[0]
        reason = redact_text(first.message or "")
        prefix = part_label(job_id, first.run_id, None)
        if reason.startswith(prefix):
            reason = reason[len(prefix):].lstrip(",: ")
        lines.append(f"{status.value}: job {job_id}{name}: {len(runs)} run"
                     f"{'s' if len(runs) > 1 else ''}{f', days {days}' if days else ''} "
                     f"(run {first.run_id}: {reason}) - {_NEXT_STEP[status]}")
    return lines
