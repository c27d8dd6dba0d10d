"""Showing a sync as it happens: a live progress line on a terminal, log lines otherwise.

On a terminal, one line: the phase (discovering runs / downloading / loading TABLE /
finishing), runs done of planned, parts and bytes downloaded, the download rate and an ETA.
The loading phase covers the load and its commit: they are one transaction in the writer
thread, which says nothing until it is done. The ETA comes from runs done of planned (parts
and bytes are known only as each run downloads).

Off a terminal (piped, cron), one line per event in the log format (csload.cli.common.
LOG_FORMAT: timestamped, as the log records of `-v` are), never cut.

Job names, table names and run messages come from the API or from files: every one is printed
through csload.cli.common.scrub (no control character reaches the terminal).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Self

from csload.cli.common import log_line, scrub
from csload.pipeline.report import EventKind, RunOutcome, RunStatus, SyncEvent, SyncReport

if TYPE_CHECKING:
    # Lazy: the progress bar is only drawn on a terminal, and the summary table only at the
    # end (and not with --json): importing both up front cost ~7 ms at start-up.
    from rich.console import Console
    from rich.progress import Progress, ProgressColumn, Task, TaskID
    from rich.table import Table
    from rich.text import Text

# The logger name of the display's lines: the sync's own (csload.pipeline.sync logs as it too).
LOG_NAME = "csload.sync"
# Below this width the progress line leaves out the bar, parts, rows and the clock (it would
# fold onto a second line).
_NARROW = 100


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


def _count(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


class EventDisplay:
    """What the displays of a sync and of a backfill share: a rich Progress on a terminal,
    entered and left with the display (use it as a context manager), and log lines under
    `log_name` otherwise. `console` is one of csload.cli.common's (markup off: messages are
    printed as they are)."""

    log_name = "csload"

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.progress: Progress | None = None

    def new_progress(self) -> Progress:
        """The live display, made when the display is entered on a terminal."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        if self.live:
            self.progress = self.new_progress()
            self.progress.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.progress is not None:
            self.progress.__exit__(kind, exc, tb)

    def _line(self, level: int, message: str, *, on_terminal: bool) -> None:
        """Off a terminal, a log line. On a terminal, with `on_terminal`, the message as it
        is, above the live lines. Scrubbed either way: messages quote the API."""
        if not self.live:
            self.console.print(log_line(level, self.log_name, message))
        elif on_terminal:
            self.console.print(scrub(message))


class SyncDisplay(EventDisplay):
    """An event sink (`on_event`) that renders a sync's progress to stderr."""

    log_name = LOG_NAME

    def __init__(self, console: Console, *, dry_run: bool = False) -> None:
        super().__init__(console)
        # A dry run fetches each planned run's detail (its files), and downloads nothing.
        self.after_plan = "reading the runs' files" if dry_run else "downloading"
        self.started = time.monotonic()
        self.planned_at: float | None = None    # when the downloads started
        self.planned: int | None = None
        self.phase = "discovering runs"
        self.parts = 0
        self.bytes = 0
        self.rows = 0
        self.runs_done = 0
        self.task: TaskID | None = None
        # Per (outcome, job): the first run logged with a reason, and that reason.
        self.reasons: dict[tuple[EventKind, int | None], tuple[int | None, str]] = {}

    def new_progress(self) -> Progress:
        from rich.progress import BarColumn, Progress, SpinnerColumn

        columns = [SpinnerColumn(), _line_column(self)]
        if self.console.width >= _NARROW:
            columns.insert(1, BarColumn(bar_width=16))
        return Progress(*columns, console=self.console, transient=True)

    def __enter__(self) -> Self:
        super().__enter__()
        if self.progress is not None:
            self.task = self.progress.add_task("sync", total=None)
        return self

    # -- what the line says ---------------------------------------------------------------------

    def eta(self) -> str:
        """The time left, from the pace of runs done so far; "?" before the first one."""
        if self.planned is None or self.planned_at is None or not self.runs_done:
            return "?"
        left = self.planned - self.runs_done
        return _clock((time.monotonic() - self.planned_at) / self.runs_done * left)

    def rate(self) -> str:
        """Bytes downloaded per second since the downloads started."""
        seconds = time.monotonic() - (self.planned_at or self.started)
        return f"{human_bytes(self.bytes / max(seconds, 1e-3))}/s"

    def line(self) -> str:
        """The progress line, drawn anew at every tick of the live display (not only on
        events): while a table loads, its clock and ETA still move. Narrower than 100
        columns, it leaves out parts, rows and the clock, to fit on one line of 80."""
        elapsed = _clock(time.monotonic() - self.started)
        if self.planned is None:
            return f"{self.phase}  {elapsed}"
        items = [self.phase, f"runs {self.runs_done}/{self.planned}", human_bytes(self.bytes),
                 self.rate(), f"ETA {self.eta()}"]
        if self.console.width >= _NARROW:
            items[2:2] = [f"parts {self.parts}", f"rows {self.rows:,}"]
            items.append(elapsed)
        return "  ".join(items)

    # -- events ---------------------------------------------------------------------------------

    def __call__(self, event: SyncEvent) -> None:
        kind = event.kind
        phase_changed = False
        if kind is EventKind.PLANNED:
            self.planned, self.planned_at = event.runs, time.monotonic()
            self.phase = self.after_plan if event.runs else "nothing new"
            phase_changed = True
            per_table = f" ({event.message})" if event.message else ""
            self._line(logging.INFO, f"planned {_count(event.runs, 'new run')}{per_table}")
        elif kind is EventKind.PART_DOWNLOADED:
            self.parts += event.parts
            self.bytes += event.bytes
        elif kind is EventKind.LOADING:
            self.phase = f"loading {event.table} ({_count(event.runs, 'run')})"
            phase_changed = True
            self._line(logging.INFO, f"loading {_count(event.runs, 'run')} into {event.table}: "
                                     f"{_count(event.parts, 'part')}, {human_bytes(event.bytes)}")
        elif kind in (EventKind.RUN_LOADED, EventKind.RUN_FAILED, EventKind.RUN_EXPIRED):
            self.runs_done += 1
            self.rows += event.rows
            # The writer reports a batch's runs once it has committed: its load is over.
            if self.phase.startswith("loading") or self.phase == "downloading":
                more = self.planned is None or self.runs_done < self.planned
                phase = "downloading" if more else "finishing"
                phase_changed, self.phase = phase != self.phase, phase
            self._log_run(event)
        elif kind in (EventKind.MESSAGE, EventKind.RUN_SOURCE_FAILED) and event.message:
            self._line(logging.INFO, f"note: {event.message}", on_terminal=True)
        if self.progress is not None and self.task is not None:
            # A new phase is drawn at once (else at the next tick, a tenth of a second on).
            self.progress.update(self.task, completed=self.runs_done, total=self.planned,
                                 refresh=phase_changed)

    def _line(self, level: int, message: str, *, on_terminal: bool = False) -> None:
        """On a terminal, only the notes: the rest is on the progress line, or in the
        summary."""
        super()._line(level, message, on_terminal=on_terminal)

    def _log_run(self, event: SyncEvent) -> None:
        if self.live:
            return   # on a terminal, the summary says it once, grouped (problem_lines)
        from csload.errors import part_label

        where = part_label(event.job_id, event.run_id, None)
        done = f" [{self.runs_done}/{self.planned} runs]" if self.planned else ""
        if event.kind is EventKind.RUN_LOADED:
            self._line(logging.INFO, f"loaded {where}: {_count(event.rows, 'row')}, "
                                     f"{human_bytes(event.bytes)}{done}")
            return
        # The run's message names the job and run already (csload.errors.part_label).
        reason = event.message or ""
        if reason.startswith(where):
            reason = reason[len(where):].lstrip(",: ")
        # A reason the job's runs share is said in full once: a first sync of a year of
        # history logs 716 expired runs, each with the same 300 characters.
        first = self.reasons.setdefault((event.kind, event.job_id), (event.run_id, reason))
        if first[0] != event.run_id and first[1] == reason:
            reason = f"the same reason as run {first[0]}"
        status = "expired" if event.kind is EventKind.RUN_EXPIRED else "failed"
        self._line(logging.WARNING, f"{status} {where}: {reason}{done}")


def _line_column(display: SyncDisplay) -> ProgressColumn:
    """A progress column showing `display.line()`, folded (never cut with "…") when the
    terminal is too narrow for it."""
    from rich.progress import ProgressColumn
    from rich.table import Column
    from rich.text import Text

    class LineColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            return Text(display.line(), overflow="fold")

    return LineColumn(table_column=Column(overflow="fold"))


def summary_table(report: SyncReport) -> Table:
    """Per table: runs loaded, rows, bytes; then the failed and expired runs."""
    from rich.table import Table

    title = "dry run: would load" if report.dry_run else f"sync of {report.target}"
    table = Table(title=scrub(f"{title} ({report.seconds:.1f} s)"))
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
        table.add_row(scrub(name), status.value, str(runs), str(parts),
                      "" if report.dry_run else f"{rows:,}", human_bytes(nbytes))
    if not report.runs:
        table.add_row("-", "nothing new", "0", "0", "0", "0 B")
    return table


def jobs_table(report: SyncReport) -> Table | Text | None:
    """Per selected job: its table and why (csload.load.placement), and what its runs did to the
    table: rows added, replaced and removed; `once` jobs loaded before with nothing new are
    only counted, in the caption (a line of its own when they are all the sync selected).
    None when the sync selected no job."""
    from rich.table import Table
    from rich.text import Text

    if not report.jobs:
        return None
    totals = {t.job_id: t for t in report.job_totals()}
    with_runs = {run.job_id for run in report.runs}
    # A finished backfill leaves its `once` jobs in the project: listed, every later sync's
    # table grew by a row of nothing per job (62 after a year's backfill). Such a job is
    # counted under the table instead, unless this sync placed it anew, moved it, refused it
    # or had runs of it.
    shown = [p for p in report.jobs
             if p.job.frequency != "once" or p.new or p.moved_from or p.refused
             or p.job.job_id in with_runs]
    hidden = len(report.jobs) - len(shown)
    counted = (f"{hidden} once job{'s' if hidden > 1 else ''} loaded before, with nothing new "
               "(`csload jobs` lists every job)")
    if not shown:
        return Text(f"jobs: {counted}")
    caption = f"and {counted}" if hidden else None
    table = Table(title="jobs", caption=caption)
    columns = ["job", "name", "table", "placed"]
    if not report.dry_run:
        columns += ["runs", "added", "replaced", "removed"]
    for column in columns:
        table.add_column(column, overflow="fold",
                         justify="right" if column in ("runs", "added", "replaced", "removed")
                         else "left")
    for placement in shown:
        placed = ("refused" if placement.refused
                  else ("new, " if placement.new else "") + placement.how)
        if placement.moved_from:
            placed += f" (moved from {placement.moved_from})"
        if placement.stopped:
            placed += "; job SUSPENDED"
        # The job's name is the API's text; table names may come from it (csload.load.placement).
        row = [str(placement.job.job_id), scrub(placement.job.name), scrub(placement.table),
               scrub(placed)]
        if not report.dry_run:
            done = totals.get(placement.job.job_id)
            row += ([str(done.runs), f"{done.added:,}", f"{done.replaced:,}",
                     f"{done.removed:,}"] if done else ["0", "", "", ""])
        table.add_row(*row)
    return table


def problem_lines(report: SyncReport) -> list[str]:
    """One line per kind of problem and job, with the days and the first run's reason (a
    run's own message starts with "job J, run R": said once, not per run)."""
    from csload.errors import backfill_command
    from csload.load.status import days_text, window_days, without_run_label

    names = {p.job.job_id: p.job.name for p in report.jobs}
    frequencies = {p.job.job_id: p.job.frequency for p in report.jobs}
    grouped: dict[tuple[RunStatus, int], list[RunOutcome]] = {}
    for run in report.failed + report.expired:
        grouped.setdefault((run.status, run.job_id), []).append(run)
    lines = []
    for (status, job_id), runs in sorted(grouped.items()):
        name = f' "{names[job_id]}"' if names.get(job_id) else ""
        days = sorted({d for r in runs for d in window_days(r.window_start, r.window_end)})
        first = runs[0]
        reason = without_run_label(job_id, first.run_id, first.message)
        step = " - the next csload sync tries them again"
        if status is RunStatus.EXPIRED:
            # The way out for all the group's days: the first run's own message names its
            # days only, and `--gaps` fills no hourly job's (QA, 2026-12-08).
            command = backfill_command(job_id, frequencies.get(job_id),
                                       days[0] if days else None, days[-1] if days else None)
            step = "" if f"`{command}`" in reason else f" - {command} exports their days again"
        lines.append(scrub(f"{status.value}: job {job_id}{name}: {len(runs)} run"
                           f"{'s' if len(runs) > 1 else ''}"
                           f"{f', days {days_text(days)}' if days else ''} "
                           f"(run {first.run_id}: {reason}){step}"))
    return lines
