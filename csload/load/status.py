"""`csload status`: what a target holds, read from its ledger (no API call).

Problems are grouped: one `Problem` per kind and job, with the UTC days its runs cover, so a
month of expired runs is one line, not thirty. The kinds, in the order they are shown:

    failed                   csload could not download or load the runs: the next sync tries
                             them again (it shows the last error, part and line included)
    failed at Contentsquare  the runs FAILED at the source (ledger status `source_failed`):
                             they have no files; only a backfill exports their days again
    expired                  the runs' files were gone before csload loaded them: the same
    filled                   runs that expired or failed at the source whose whole window was
                             loaded since, by a re-run or a backfill (csload.load.backfill_ledger
                             `coverage` says exactly when): shown as done, not as a problem

The days of the last two problem kinds are the jobs' gaps, which `csload backfill --gaps`
fills. Messages stored in the ledger are shown without their `job J, run R` prefix (the line
names the job already) and without any URL or signature (csload.redact).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from csload.errors import StoreError, backfill_command, part_label
from csload.load.backfill_ledger import BackfillLedger, BackfillRecord
from csload.load.duckdb import connect
from csload.load.ledger import Ledger, RunRecord, TableStats
from csload.redact import redact_text

FAILED = "failed"
SOURCE_FAILED = "source_failed"
EXPIRED = "expired"
FILLED = "filled"
KINDS = (FAILED, SOURCE_FAILED, EXPIRED, FILLED)
LABELS = {FAILED: "failed", SOURCE_FAILED: "failed at Contentsquare", EXPIRED: "expired",
          FILLED: "filled"}

# Any URL in a stored message: even redacted (csload.redact keeps scheme, host and path), a
# storage host and object path say nothing a user can act on and should not reach a log.
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://\S+")


def window_days(start: datetime | None, end: datetime | None) -> list[date]:
    """The UTC days a window [start, end) touches (none for an unknown window)."""
    if start is None:
        return []
    if end is None or end <= start:
        return [start.date()]
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def window_label(start: datetime | None, end: datetime | None) -> str:
    """A run's window as people name it: one UTC day (`2026-11-20`) for a daily window, a
    start hour (`2026-11-20 13:00`) for an hourly one, a range of days
    (`2026-11-01..2026-11-07`, both included) for whole days, else start -> end."""
    if start is None:
        return ""
    if end is None:
        return f"{start:%Y-%m-%d %H:%M}"
    midnight = start.time() == end.time() == datetime.min.time()
    if midnight and end - start == timedelta(days=1):
        return f"{start:%Y-%m-%d}"
    if midnight and end > start:
        return f"{start:%Y-%m-%d}..{end - timedelta(days=1):%Y-%m-%d}"
    if end - start == timedelta(hours=1):
        return f"{start:%Y-%m-%d %H:%M}"
    return f"{start:%Y-%m-%d %H:%M} -> {end:%Y-%m-%d %H:%M}"


def days_text(days: Sequence[date]) -> str:
    """`2026-11-20, 2026-11-21, 2026-11-23`; three or more consecutive days as a range
    (`2026-11-01..2026-11-30`), so a long list stays one short line."""
    ordered = sorted(set(days))
    spans: list[list[date]] = []
    for day in ordered:
        if spans and day == spans[-1][-1] + timedelta(days=1):
            spans[-1].append(day)
        else:
            spans.append([day])
    parts: list[str] = []
    for span in spans:
        if len(span) >= 3:
            parts.append(f"{span[0]}..{span[-1]}")
        else:
            parts.extend(str(day) for day in span)
    return ", ".join(parts)


def without_run_label(job_id: int, run_id: int, message: str | None) -> str:
    """A run's message without the `job J, run R` it starts with (said once, by the line
    that groups the runs), secrets redacted."""
    text = redact_text(message or "")
    prefix = part_label(job_id, run_id, None)
    return text[len(prefix):].lstrip(",: ") if text.startswith(prefix) else text


def clean_message(record: RunRecord) -> str:
    """The stored message without its `job J, run R` prefix, URLs or secrets."""
    text = _URL.sub("<URL>", without_run_label(record.job_id, record.run_id, record.message))
    return f"run {record.run_id}, {text}" if text.startswith("part ") else \
        f"run {record.run_id}: {text}"


@dataclass(frozen=True, slots=True)
class JobStatus:
    job_id: int
    name: str
    scope: str
    frequency: str
    table: str
    last_window: tuple[datetime | None, datetime | None] | None
    gaps: tuple[date, ...] = ()

    @property
    def last_window_label(self) -> str:
        return window_label(*self.last_window) if self.last_window else ""


@dataclass(frozen=True, slots=True)
class Problem:
    """The runs of one job with one kind of problem (see the module docstring)."""

    kind: str
    job_id: int
    job_name: str | None
    frequency: str | None
    runs: tuple[RunRecord, ...]

    @property
    def days(self) -> list[date]:
        return sorted({d for r in self.runs for d in window_days(r.window_start, r.window_end)})

    @property
    def label(self) -> str:
        return LABELS[self.kind]

    @property
    def text(self) -> str:
        """The line after the label: the job, how many runs, their days, what to do."""
        count = len(self.runs)
        them = "it" if count == 1 else "them"
        what = f"{count} {'run' if count == 1 else 'runs'}"
        if self.kind == FILLED:
            states = sorted({LABELS[r.status] if r.status == SOURCE_FAILED else r.status
                             for r in self.runs})
            what = f"{what} {' or '.join(states)}"
        days = self.days
        if days:
            what += f", {'day' if len(days) == 1 else 'days'} {days_text(days)}"
        name = f' "{self.job_name}"' if self.job_name else ""
        line = f"job {self.job_id}{name}: {what}"
        if self.kind == FAILED:
            last = max(self.runs, key=lambda r: r.run_id)   # the newest run's error
            return f"{line} — the next csload sync tries {them} again; last error: " \
                   f"{clean_message(last)}"
        if self.kind == FILLED:
            return f"{line} — loaded since by a re-run or a backfill"
        if self.kind == SOURCE_FAILED:
            line += " (no files)"
        command = backfill_command(self.job_id, self.frequency, days[0] if days else None,
                                   days[-1] if days else None)
        return f"{line} — {command} fills {them}"

    def __str__(self) -> str:
        return f"{self.label}: {self.text}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "jobId": self.job_id, "name": self.job_name,
                "runIds": [r.run_id for r in self.runs],
                "days": [d.isoformat() for d in self.days], "text": str(self)}


def group_problems(kind: str, records: Iterable[RunRecord], jobs: Sequence[JobStatus]
                   ) -> list[Problem]:
    """One Problem per job of `records` (runs with the problem `kind`), by job id."""
    by_id = {job.job_id: job for job in jobs}
    grouped: dict[int, list[RunRecord]] = {}
    for record in records:
        grouped.setdefault(record.job_id, []).append(record)
    out = []
    for job_id in sorted(grouped):
        job = by_id.get(job_id)
        runs = sorted(grouped[job_id], key=lambda r: (r.window_start is None, r.window_start,
                                                      r.run_id))
        out.append(Problem(kind, job_id, job.name if job else None,
                           job.frequency if job else None, tuple(runs)))
    return out


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """`failed`: runs csload could not load (retried by the next sync). `source_failed` and
    `expired`: runs missing from the target that no sync will load (gaps), not filled since;
    `filled`: those that were (see the module docstring)."""

    target: str
    tables: tuple[TableStats, ...]
    jobs: tuple[JobStatus, ...]
    failed: tuple[RunRecord, ...] = field(default=())
    expired: tuple[RunRecord, ...] = field(default=())
    source_failed: tuple[RunRecord, ...] = field(default=())
    filled: tuple[RunRecord, ...] = field(default=())
    project: int | None = None   # the Contentsquare project whose exports the target holds
    # Tables runs loaded rows into that are gone (dropped, a lake table's folder deleted): the
    # next sync loads their runs again. The table above showed 0 rows, or the ledger's count.
    dropped: tuple[str, ...] = ()
    # Backfills that made their once job and have not loaded its run: still waiting, or
    # stopped (killed, past their max_wait). A sync never loads their jobs: only the same
    # `csload backfill` run again does (it reuses the job); status said nothing of them.
    unfinished: tuple[BackfillRecord, ...] = ()

    @property
    def unfinished_lines(self) -> list[str]:
        return [f"backfill job {b.job_id} ({b.name}): days "
                f"{days_text(window_days(b.window_start, b.window_end))} not loaded yet "
                f"({_WHERE_THE_RUN_WAS.get(b.state, b.state)}); unless that backfill is still "
                "running, run the same `csload backfill` again to finish it (it reuses the job)"
                for b in self.unfinished]

    @property
    def problems(self) -> list[Problem]:
        """One line's worth per kind and job, filled runs last (they are not problems)."""
        records = {FAILED: self.failed, SOURCE_FAILED: self.source_failed,
                   EXPIRED: self.expired, FILLED: self.filled}
        return [p for kind in KINDS for p in group_problems(kind, records[kind], self.jobs)]

    def to_json(self) -> dict[str, Any]:
        def iso(value: date | datetime | str | None) -> str | None:
            # DuckDB hands a date beyond Python's (year 10000 on, or before year 1) over as
            # its text: a database an older csload committed such a `_date` to has one.
            if value is None or isinstance(value, str):
                return value
            return value.isoformat()

        def run(record: RunRecord) -> dict[str, Any]:
            return {"jobId": record.job_id, "runId": record.run_id, "table": record.table,
                    "status": record.status, "windowStart": iso(record.window_start),
                    "windowEnd": iso(record.window_end),
                    "days": [iso(d) for d in window_days(record.window_start,
                                                         record.window_end)],
                    "message": None if record.message is None else redact_text(record.message)}

        return {
            "target": self.target,
            "projectId": self.project,
            "tables": [{"table": t.table, "rows": t.rows, "firstDate": iso(t.first_date),
                        "lastDate": iso(t.last_date)} for t in self.tables],
            "jobs": [{"jobId": j.job_id, "name": j.name, "scope": j.scope,
                      "frequency": j.frequency, "table": j.table,
                      "lastWindowStart": iso(j.last_window[0]) if j.last_window else None,
                      "lastWindowEnd": iso(j.last_window[1]) if j.last_window else None,
                      "lastWindow": j.last_window_label or None,
                      "gaps": [iso(d) for d in j.gaps]} for j in self.jobs],
            "failedRuns": [run(r) for r in self.failed],
            "sourceFailedRuns": [run(r) for r in self.source_failed],
            "expiredRuns": [run(r) for r in self.expired],
            "filledRuns": [run(r) for r in self.filled],
            "problems": [p.to_json() for p in self.problems],
            "droppedTables": list(self.dropped),
            "unfinishedBackfills": [
                {"jobId": b.job_id, "name": b.name, "table": b.table, "state": b.state,
                 "windowStart": iso(b.window_start), "windowEnd": iso(b.window_end)}
                for b in self.unfinished],
        }


def ledger_status(con: duckdb.DuckDBPyConnection, target: str,
                  tables: Sequence[TableStats] | None = None) -> StoreStatus:
    """The status read from the `_csload_*` tables of `con` (a DuckDB database's, or a lake's
    ledger snapshot); `tables`: the tables' row counts and dates, when the caller reads them
    elsewhere (a lake's ledger state), else they are counted in `con`."""
    ledger = Ledger(con)
    windows = ledger.last_loaded_windows()
    # Days a backfill filled are covered; days whose files expired or whose run failed at the
    # source are gaps, until covered: the same days `csload backfill --gaps` fills.
    coverage = BackfillLedger(con).coverage()
    jobs = tuple(
        JobStatus(job_id=job_id, name=job.name, scope=job.scope, frequency=job.frequency,
                  table=table, last_window=windows.get(job_id),
                  gaps=tuple(coverage.gaps.get(job_id, ())))
        for job_id, (job, table) in sorted(ledger.jobs().items())
    )
    missing = ledger.expired_runs() + ledger.source_failed_runs()
    # A lake's table whose folder is gone has 0 rows here (csload.lake.reader); a database's
    # table the user emptied is not gone, so the database's tables are looked up.
    if tables is None:
        dropped = sorted(ledger.dropped_tables())
    else:
        with_rows = ledger.tables_with_rows()
        dropped = sorted(t.table for t in tables if t.rows == 0 and t.table in with_rows)
    return StoreStatus(
        target=target, tables=tuple(ledger.table_stats() if tables is None else tables),
        jobs=jobs, failed=tuple(ledger.failed_runs()),
        expired=tuple(r for r in missing if r.status == EXPIRED
                      and r.run_id not in coverage.filled),
        source_failed=tuple(r for r in missing if r.status == SOURCE_FAILED
                            and r.run_id not in coverage.filled),
        filled=tuple(sorted((r for r in missing if r.run_id in coverage.filled),
                            key=lambda r: r.run_id)),
        project=ledger.project_id(), dropped=tuple(dropped), unfinished=_unfinished(con))


# What the backfill ledger's state of an unfinished job says of its run (the state itself,
# "created", read as the run's state, which was SUCCESS by then).
# Status cannot tell a backfill still waiting from one that stopped (it holds no lock while it
# waits), so it says what it last saw, not that it stopped (it said "stopped waiting" of a
# backfill still running: QA, 2026-12-07).
_WHERE_THE_RUN_WAS = {"created": "its run had not finished when the backfill last looked",
                      "succeeded": "its run finished; the backfill had not loaded it yet"}


def _unfinished(con: duckdb.DuckDBPyConnection) -> tuple[BackfillRecord, ...]:
    """The backfills whose run is not loaded yet (StoreStatus.unfinished), but for a job
    whose days a loaded job of the same backfill (its plan) covers: a later run of the
    command cut its windows otherwise, and the job's line stayed for good (found by QA,
    2026-12-07)."""
    try:
        records = BackfillLedger(con).records()
    except duckdb.BinderException:   # an older csload's columns, which its next sync widens
        return ()
    loaded: dict[str, set[date]] = {}
    for b in records:
        if b.state == "loaded":
            loaded.setdefault(b.plan_key, set()).update(window_days(b.window_start,
                                                                    b.window_end))
    return tuple(b for b in records if b.state in ("created", "succeeded")
                 and not set(window_days(b.window_start, b.window_end))
                 <= loaded.get(b.plan_key, set()))


def database_status(path: Path) -> StoreStatus:
    """`csload.status` of a DuckDB database file: StoreError where there is no csload
    database to read (no file, a folder, `:memory:`, a database of the user's own)."""
    first = f"run `csload sync --db {shlex.quote(str(path))}` first"
    if str(path) == ":memory:":
        raise StoreError("an in-memory database (:memory:) holds no csload ledger: give the "
                         "database file a sync wrote")
    if path.is_dir():
        raise StoreError(f"{path} is a folder, not a database file (a lake? `csload status "
                         f"--parquet {shlex.quote(str(path))}`)")
    if not path.is_file():
        raise StoreError(f"no database at {path}: {first}")
    con = connect(path, read_only=True)
    try:
        if not Ledger(con).exists():
            row = con.execute("SELECT count(*) FROM duckdb_tables() WHERE NOT internal "
                              "AND database_name = current_database()").fetchone()
            # Empty: a first sync killed before its first commit, which the next sync uses
            # (it was "not a csload database": QA, 2026-12-07).
            raise StoreError(f"{path} is not a csload database (it has no _csload.runs table)"
                             if row and row[0] else
                             f"no csload sync has loaded {path} yet (it is empty): {first}")
        return ledger_status(con, str(path))
    finally:
        con.close()
