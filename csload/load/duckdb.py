"""`DuckDBStore`: apply downloaded runs to a DuckDB database, exactly once, with the ledger in
the same commit.

One `DuckDBStore` is the only writer (it runs in one worker thread). `apply()` takes the runs
that are ready, loads them with DuckDB's own readers (`read_csv` / `read_json` straight on the
part files, explicit columns, no sniffing, one statement for all parts of a job), and in ONE
transaction: inserts the rows, removes what they supersede (csload.load.supersede states the
rule, csload.load.supersede_sql applies it), writes the ledger rows, commits. A crash at any
moment leaves the whole batch or nothing.

The steps of a table's batch are the methods of `_load_batch`, each a seam of the crash tests:
the table made to fit and the parts inserted (csload.load.batch_sql), `hooks.rows_inserted`,
the key rule and the window rule, the ledger rows, `_commit`. `hooks` is what the target adds
(csload.load.hooks): nothing for a DuckDB file; the lake of Delta tables applies its batches with a
store of its own over an in-memory database and, through the hooks, reads in the partitions
a batch can change (csload.lake.work).

If a batch of several runs fails to parse, the failing part is found from DuckDB's error text
(it names the file) and re-read alone to get the exact line; its run is recorded as failed and
the others are applied without it. Unless the part's gzip stream is damaged (downloads are not
inflated before the load, csload.transfer.stage): then its run is `damaged`, not recorded at
all, and the caller downloads the damaged parts again (csload.load.failures).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from functools import partial
from pathlib import Path

import duckdb

from csload.api.models import Job, Run
from csload.config import Limits
from csload.errors import (
    ConfigError,
    CsloadError,
    DamagedDownload,
    PartParseError,
    StoreError,
    part_label,
)
from csload.load import batch_sql, sql
from csload.load.batch import PendingRun, ReadGroup, damaged_in, read_groups, reader_failure
from csload.load.columns import check_table_name, job_layout
from csload.load.failures import PartFailed, Unattributed, damage, load_error, unattributed_error
from csload.load.holder import (
    claim_in_process,
    open_error,
    release_in_process,
    restore_settings,
    settings_of,
)
from csload.load.hooks import BatchHooks, DuckDBFileHooks, InsertedBatch
from csload.load.ledger import Ledger, run_row
from csload.load.limits import check_part_shape, out_of_memory, out_of_memory_error
from csload.load.lookups import (
    describe_table,
    ensure_lookups,
    lookups_missing,
    record_custom_vars,
)
from csload.load.outcome import AppliedRun, UnloadedRun
from csload.load.parts import inspect_part
from csload.load.supersede_sql import apply_key_rule, apply_window_rule
from csload.notices import notice
from csload.times import utcnow
from csload.transfer.staged import StagedRun, check_run_parts

log = logging.getLogger("csload.load")


def connect(path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A plain DuckDB connection to a csload database, for analysis code. StoreLockedError
    (naming the holding process) while another process writes it, or, unless `read_only`,
    while another process has it open at all."""
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        raise open_error(Path(path), exc, read_only=read_only) from None


class DuckDBStore:
    """The single writer of one csload DuckDB database. `hooks`: what the target adds to the
    steps of a batch (csload.load.hooks; default: nothing, the table is the target)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path,
                 hooks: BatchHooks | None = None) -> None:
        self.con = con
        self.path = path
        self.ledger = Ledger(con)
        self.hooks: BatchHooks = hooks or DuckDBFileHooks()
        # The caps on a run's files (csload.load.limits): the sync's `settings.limits`.
        self.limits = Limits()
        # Lets go of this process's mark on the database (`open`: a second sync of it in
        # this process is refused, csload.load.holder.claim_in_process).
        self._release: Callable[[], object] = lambda: None
        self._kept_settings: dict[str, str] = {}

    @classmethod
    def open(cls, path: Path, limits: Limits | None = None, hooks: BatchHooks | None = None
             ) -> DuckDBStore:
        """Open (creating if needed) the database; StoreLockedError if another process has it.
        `limits`: the caps on a run's files (default: Limits()). `hooks`: see the class."""
        path = Path(path)
        hooks = hooks or DuckDBFileHooks()
        claim = claim_in_process(path)
        # Lets go of the claim, once: a finalizer of the store once there is one, so that a
        # failed open does not leave it to let go later of a claim another sync has made since.
        release: Callable[[], object] = partial(release_in_process, claim)
        try:
            con = duckdb.connect(str(path))
        except BaseException as exc:
            release()
            if isinstance(exc, duckdb.Error):
                raise open_error(path, exc) from None
            raise
        try:
            # The settings are the database instance's, which connections of this process to
            # the file share: put back at close (csload.load.holder.restore_settings).
            kept = settings_of(con)
            # Rows have no meaningful order; not preserving it lets inserts stream.
            con.execute("SET preserve_insertion_order = false")
            # Capped, DuckDB spills written blocks to disk and a sync's memory stays flat
            # (csload.load.memory).
            con.execute(f"SET memory_limit = '{hooks.memory_limit}'")
            # A bulk insert flushes each row group as it fills instead of buffering five.
            con.execute("SET write_buffer_row_group_count = 1")
            for macro in sql.MACROS:
                con.execute(macro)
            store = cls(con, path, hooks)
            store._kept_settings = kept
            # Released by `close`, or when the store is collected unclosed (a bug's path
            # must not bar every later sync of this process from the file).
            store._release = release = weakref.finalize(store, release_in_process, claim)
            store.limits = limits or store.limits
            with store._transaction():
                store.ledger.ensure()
                if lookups_missing(con):   # a database an older csload made
                    ensure_lookups(con)
        except BaseException:
            con.close()
            release()
            raise
        return store

    def close(self) -> None:
        try:
            restore_settings(self.con, self._kept_settings)
        finally:
            try:
                self.con.close()
            finally:
                self._release()

    def __enter__(self) -> DuckDBStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the ledger --------------------------------------------------------------------------

    def loaded_runs(self) -> set[int]:
        """Ids of the runs already applied."""
        return self.ledger.loaded_run_ids()

    def forget_dropped_tables(self) -> None:
        """A DuckDB target's table the user dropped or renamed is loaded again: the ledger
        forgets the runs loaded into it, so that this sync loads them again (those whose files
        Contentsquare still has; the others are recorded as expired, and `csload status` shows
        their days). Without this, the sync recreated the table with new runs only."""
        dropped = self.ledger.dropped_tables()
        if not dropped:
            return
        with self._transaction():
            self.ledger.forget_tables(sorted(dropped))
        for table, runs in sorted(dropped.items()):
            notice(log, "table %s is no longer in %s (dropped or renamed?): its %d loaded "
                   "run(s) are loaded again", table, self.path, runs)

    def record_failed(self, job: Job, run: Run, message: str, table: str | None = None) -> None:
        """Record that a run could not be loaded (download or parse failure)."""
        self.record_unloaded([UnloadedRun(job, run, "failed", message, table)])

    def record_unloaded(self, runs: Sequence[UnloadedRun]) -> int:
        """Record runs the sync could not load, in one transaction (a lake commits it once:
        a first sync can meet hundreds of expired runs); a loaded run stays loaded. Returns
        how many were recorded."""
        rows = []
        with self._transaction():
            now = utcnow()
            jobs: dict[int, tuple[Job, str]] = {}
            for item in runs:
                job, run, table = item.job, item.run, item.table or item.job.scope
                if self.ledger.status_of(run.run_id) == "loaded":
                    log.warning("%s: already loaded; not recording it as %s",
                                part_label(job.job_id, run.run_id, None), item.status)
                    continue
                jobs[job.job_id] = (job, table)
                rows.append(run_row(run, table, item.status, rows_read=None, rows=None,
                                    nbytes=None, parts=None, started=None, finished=now,
                                    message=item.message))
            for job, table in jobs.values():
                self.ledger.upsert_job(job, table, now)
            if rows:
                self.ledger.record_runs(rows)
        return len(rows)

    def record_source_failed(self, failures: Sequence[tuple[Job, Run, str]]) -> list[Run]:
        """Record runs that FAILED at Contentsquare, (job, run, table) each, in one
        transaction; returns those the ledger did not hold (Ledger.record_source_failed)."""
        grouped: dict[int, tuple[Job, list[Run], str]] = {}
        for job, run, table in failures:
            grouped.setdefault(job.job_id, (job, [], table))[1].append(run)
        recorded: list[Run] = []
        with self._transaction():
            now = utcnow()
            for job, runs, table in grouped.values():
                recorded += self.ledger.record_source_failed(job, runs, table, now)
        return recorded

    def record_project(self, project_id: int) -> None:
        """The project whose exports the database holds (csload.pipeline.plan.check_project)."""
        with self._transaction():
            self.ledger.record_project(project_id)

    def name_custom_vars(self, variables: Sequence[tuple[int, str | None]]) -> None:
        """The project's custom variables (position, name): `codes.custom_vars` and the
        comments of the columns that carry them (csload.load.lookups)."""
        with self._transaction():
            record_custom_vars(self.con, variables)

    # --- transactions ----------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            self.con.execute("BEGIN TRANSACTION")
            yield
            self._commit()
        except BaseException as exc:
            self._rollback()
            if isinstance(exc, duckdb.Error):
                # A raw DuckDB error (COMMIT on a full disk, while recording a failed run) would
                # reach the CLI as a traceback (found by tests/reliability): a StoreError is
                # one clear line.
                raise StoreError(f"writing to database {self.path} failed: {exc}") from exc
            raise

    def _commit(self) -> None:
        """The one place a load becomes durable (a seam for the crash tests)."""
        self.con.execute("COMMIT")
        self.hooks.committed()

    def _rollback(self) -> None:
        with suppress(duckdb.Error):
            self.con.execute("ROLLBACK")
        self.hooks.rolled_back()

    # --- apply ---------------------------------------------------------------------------------

    def apply(self, runs: Sequence[StagedRun]) -> list[AppliedRun]:
        """Load the runs not yet in the ledger; one outcome per input run, in input order.

        Runs of one table are applied in one transaction (one statement per job's parts);
        a run whose part does not parse fails alone, with a PartParseError naming the line.
        Anything else DuckDB refuses (disk full, ...) raises StoreError and commits nothing
        of the batch being applied.
        """
        loaded = self.ledger.loaded_run_ids()
        outcomes: dict[int, AppliedRun] = {}
        todo: dict[str, list[StagedRun]] = {}
        for staged in runs:
            run_id = staged.run.run_id
            if run_id in loaded or run_id in outcomes or any(
                    s.run.run_id == run_id for group in todo.values() for s in group):
                outcomes.setdefault(run_id, AppliedRun(staged.job.job_id, run_id, "skipped"))
                continue
            todo.setdefault(staged.table, []).append(staged)
        for table, group in todo.items():
            outcomes.update(self._apply_table(table, group))
        result = []
        first: set[int] = set()
        for staged in runs:
            run_id = staged.run.run_id
            if run_id in first:
                result.append(AppliedRun(staged.job.job_id, run_id, "skipped"))
            else:
                first.add(run_id)
                result.append(outcomes[run_id])
        return result

    def _fail(self, staged: StagedRun, error: CsloadError) -> AppliedRun:
        if isinstance(error, DamagedDownload):
            log.warning("%s: downloading it again", error)
            return AppliedRun(staged.job.job_id, staged.run.run_id, "damaged", error=error)
        # Debug: the failure is the sync's to report (its RUN_FAILED event, report.failed, the
        # ledger); a warning here made it two lines of the CLI's log.
        log.debug("%s", error)
        self.record_failed(staged.job, staged.run, str(error), staged.table)
        return AppliedRun(staged.job.job_id, staged.run.run_id, "failed",
                          bytes=sum(p.bytes for p in staged.parts), error=error)

    def _apply_table(self, table: str, runs: list[StagedRun]) -> dict[int, AppliedRun]:
        outcomes: dict[int, AppliedRun] = {}
        pending: list[PendingRun] = []
        check_table_name(table)
        known_jobs = self.ledger.jobs()
        moved: set[str] = set()
        for staged in runs:
            job = staged.job
            try:
                seen = known_jobs.get(job.job_id)
                other_scope = {j.scope for j, t in known_jobs.values() if t == table}
                if other_scope - {job.scope}:
                    raise ConfigError(
                        f"job {job.job_id} ({job.scope}) cannot load into table {table!r}, "
                        f"which holds {sorted(other_scope)[0]} rows")
                if seen is not None and seen[1] != table and seen[1] not in moved:
                    # Mapped elsewhere by hand (csload.load.placement): its new runs load there,
                    # its earlier rows stay where they are.
                    moved.add(seen[1])
                    log.warning("job %s moves from table %s to table %s: the rows it loaded "
                                "into %s stay there", job.job_id, seen[1], table, seen[1])
                item = self._inspect(staged)
            except (ConfigError, PartParseError) as exc:
                damaged = (damage(staged, exc.part_id) if isinstance(exc, PartParseError)
                           else None)
                outcomes[staged.run.run_id] = self._fail(staged, damaged or exc)
                continue
            if not all(f.empty for f in item.files):
                for empty in (f for f in item.files if f.empty):
                    # Loaded as no rows (an empty export is one empty part), but next to
                    # parts with rows it may be a damaged file: say so.
                    log.warning("%s: the part is empty while other parts of its run "
                                "hold rows; loading it as no rows",
                                part_label(empty.job_id, empty.run_id, empty.part_id))
            pending.append(item)
        while pending:
            try:
                outcomes.update(self._load_batch(table, pending))
                break
            except PartFailed as exc:
                # The failing part is known: fail its run, retry the others together.
                item = next(p for p in pending if p.run_id == exc.run_id)
                outcomes[exc.run_id] = self._fail(item.staged, exc.error)
                pending = [p for p in pending if p.run_id != exc.run_id]
            except (Unattributed, StoreError) as exc:
                # No part named, or out of memory: a batch of several runs is retried run by
                # run (a run that fits alone loads); the run that fails alone fails, not the
                # sync.
                if isinstance(exc, StoreError) and not out_of_memory(exc):
                    raise
                if len(pending) > 1:
                    for item in pending:
                        outcomes.update(self._apply_table_alone(table, item))
                    break
                staged = pending[0].staged
                outcomes[staged.run.run_id] = self._fail(staged, self._alone_error(staged, exc))
                break
        return outcomes

    def _inspect(self, staged: StagedRun) -> PendingRun:
        """The run with its parts inspected; ConfigError or PartParseError when they cannot
        load (too many parts, a part of the wrong shape or unreadable)."""
        job = staged.job
        check_run_parts(job.job_id, staged.run.run_id, len(staged.parts), self.limits)
        item = PendingRun(staged, job_layout(job))
        sources = tuple(c.source for c in item.layout.columns)
        for part in staged.parts:
            item.files.append(inspect_part(job.job_id, staged.run.run_id, part.part_id,
                                           Path(part.path), job.format, sources))
            check_part_shape(item.files[-1], item.layout, self.limits)
        return item

    def _alone_error(self, staged: StagedRun, exc: Unattributed | StoreError) -> CsloadError:
        """The error of a run that failed alone without a part named, or out of memory."""
        if isinstance(exc, Unattributed):
            return unattributed_error(staged, exc)
        return out_of_memory_error(staged.job.job_id, staged.run.run_id,
                                   self.hooks.memory_limit)

    def _apply_table_alone(self, table: str, item: PendingRun) -> dict[int, AppliedRun]:
        staged = item.staged
        try:
            return self._load_batch(table, [item])
        except PartFailed as exc:
            return {item.run_id: self._fail(staged, exc.error)}
        except (Unattributed, StoreError) as exc:
            if isinstance(exc, StoreError) and not out_of_memory(exc):
                raise
            return {item.run_id: self._fail(staged, self._alone_error(staged, exc))}

    # --- one table's batch, in one transaction --------------------------------------------------

    def _load_batch(self, table: str, batch: list[PendingRun]) -> dict[int, AppliedRun]:
        started = utcnow()
        groups = read_groups(batch)
        parts = {p.path: p for item in batch for p in item.files}
        ids = ", ".join(str(item.run_id) for item in batch)
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            before = sql.table_columns(con, table)
            batch_sql.ensure_table(con, table, batch, groups, self.hooks.column_problem)
            for job in {item.staged.job.job_id: item.staged.job for item in batch}.values():
                self.ledger.upsert_job(job, table, started)
            batch_sql.create_run_tables(con, table, batch)
            for group in groups:
                try:
                    self._insert_group(table, group, started)
                except (duckdb.ConversionException, duckdb.InvalidInputException) as exc:
                    raise reader_failure(exc, parts, batch) from None
                except duckdb.IOException as exc:
                    # A damaged gzip stream ("Unexpected end of GZIP stream: <file>"); any
                    # other I/O error (disk full, ...) is the store's, raised as it is.
                    damaged = damaged_in(str(exc), parts, batch)
                    if damaged is None:
                        raise
                    raise damaged from None
            # Comments for the columns just created or added only (none new: no statement),
            # once the rows are in: one per column, so thousands took a minute, and the rows
            # of such a wide run may not fit in memory anyway.
            describe_table(con, table, [
                *((item.layout.scope, c) for item in batch for c in item.layout.columns),
                *((g.pending[0].layout.scope, c) for g in groups for c in g.columns)], before)
            read = self._run_counts(table, ids)
            self.hooks.rows_inserted(InsertedBatch(con, self.ledger, table, batch))
            replaced = self._apply_key_rule(table, batch, ids)
            removed = self._apply_window_rule(table, batch)
            kept = (self._run_counts(table, ids)
                    if replaced is not None or removed is not None else read)
            outcomes = self._record_loaded(table, batch, started, read, kept,
                                           replaced or {}, removed or {})
            batch_sql.drop_temp(con)
            self._commit()
        except BaseException as exc:
            self._rollback()
            with suppress(duckdb.Error):
                con.execute(f"SET memory_limit = '{self.hooks.memory_limit}'")
            if isinstance(exc, duckdb.Error):
                raise load_error(table, exc) from exc
            raise
        # One line per commit, at debug: each run's load is a line of the sync's own (its
        # RUN_LOADED event); a line per run here made -v print each load twice.
        log.debug("table %s: committed run(s) %s, %s rows", table, ids,
                  sum(outcome.rows for outcome in outcomes.values()))
        return outcomes

    def _record_loaded(self, table: str, batch: list[PendingRun], started: datetime,
                       read: dict[int, int], kept: dict[int, int], replaced: dict[int, int],
                       removed: dict[int, int]) -> dict[int, AppliedRun]:
        """The batch's outcomes, written to the ledger (runs and parts) in its transaction."""
        finished = utcnow()
        outcomes: dict[int, AppliedRun] = {}
        ledger_rows = []
        for item in batch:
            outcome = AppliedRun(
                item.staged.job.job_id, item.run_id, "loaded",
                rows=kept.get(item.run_id, 0), rows_read=read.get(item.run_id, 0),
                bytes=sum(p.bytes for p in item.files),
                replaced=replaced.get(item.run_id, 0), removed=removed.get(item.run_id, 0))
            outcomes[item.run_id] = outcome
            ledger_rows.append(run_row(
                item.staged.run, table, "loaded", rows_read=outcome.rows_read,
                rows=outcome.rows, nbytes=outcome.bytes, parts=len(item.files),
                started=started, finished=finished, message=None))
        self.ledger.record_runs(ledger_rows)
        self.ledger.record_parts(
            [(item.run_id, p.part_id, item.layout.job_id, p.bytes, 0 if p.empty else None)
             for item in batch for p in item.files], finished)
        return outcomes

    # The steps below are seams of the crash tests and the benchmarks' timers.

    def _insert_group(self, table: str, group: ReadGroup, loaded_at: datetime) -> None:
        batch_sql.insert_group(self.con, table, group, loaded_at, self.hooks.json_memory_limit,
                               self.hooks.memory_limit)

    def _run_counts(self, table: str, ids: str) -> dict[int, int]:
        return batch_sql.run_counts(self.con, table, ids)

    def _apply_key_rule(self, table: str, batch: list[PendingRun], ids: str
                        ) -> dict[int, int] | None:
        return apply_key_rule(self.con, self.ledger, table, batch, ids)

    def _apply_window_rule(self, table: str, batch: list[PendingRun]) -> dict[int, int] | None:
        return apply_window_rule(self.con, self.ledger, table, batch)
