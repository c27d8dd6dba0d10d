"""Apply downloaded runs to a DuckDB database, exactly once, with the ledger in the same commit.

One `DuckDBStore` is the only writer (it runs in one worker thread). `apply()` takes the runs
that are ready, loads them with DuckDB's own readers (`read_csv` / `read_json` straight on the
part files, explicit columns, no sniffing, one statement for all parts of a job), and in ONE
transaction: inserts the rows, removes what they supersede (csload.load.supersede explains the
rule), writes the ledger rows, commits. A crash at any moment leaves the whole batch or nothing.

Fact tables have no PRIMARY KEY or UNIQUE constraint (see duckdb-notes.md: bulk loads several
times slower, unbounded index memory). Instead, after inserting a batch inside the transaction:

1. Key rule: the batch's keys are collected; if none repeats within the batch and none exists
   in the table or among tombstones (the common case: new days), nothing more is done. Else
   every row carrying one of those keys competes and only the row of the latest run survives
   (`QUALIFY row_number() OVER (PARTITION BY key ORDER BY run order DESC)`); losers are deleted
   by `rowid`.
2. Window rule: rows of runs that a later run of the same job re-exported are deleted; their
   keys are remembered as tombstones so that an older run applied late cannot bring them back.

If a batch of several runs fails to parse, the failing part is found from DuckDB's error text
(it names the file) and re-read alone to get the exact line; its run is recorded as failed and
the others are applied without it. Unless the part's gzip stream is damaged (downloads are not
inflated before the load, csload.transfer.stage): then its run is `damaged`, not recorded at
all, and the caller downloads the damaged parts again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

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
from csload.load import sql
from csload.load.columns import (
    LINEAGE_COLUMNS,
    Column,
    JobLayout,
    check_table_name,
    job_layout,
    quote_ident,
    unknown_column,
    widens,
)
from csload.load.holder import duckdb_locked_error
from csload.load.ledger import Ledger, naive_utc, run_row
from csload.load.limits import (
    check_part_shape,
    out_of_memory,
    out_of_memory_error,
)
from csload.load.lookups import (
    describe_table,
    ensure_lookups,
    lookups_missing,
    record_custom_vars,
)
from csload.load.parts import PartFile, diagnose, inspect_part, locate_error, parse_error
from csload.load.supersede import RunWindow, run_order, window_drops
from csload.transfer.gzipcheck import gzip_problem
from csload.transfer.staged import StagedRun, check_run_parts

log = logging.getLogger("csload.load")

# The writer's DuckDB memory cap; DuckDB spills to `<db>.tmp/` beyond it.
MEMORY_LIMIT = "256MB"
# The cap while one statement reads JSONL parts (DuckDBStore.JSON_MEMORY_LIMIT). Under
# MEMORY_LIMIT the JSON reader's buffers (~115 MB) and the transaction's row groups (~150 MB)
# leave DuckDB no headroom, and it hands freed memory back to the OS after nearly every
# eviction: at 2 M pageviews the sessions insert took 2.0 s instead of 1.7 s, with 2-3x the
# page faults. Peak RSS rose by 10-30 MB (360-371 MB at 1 M and 2 M pageviews, 390 MB at 4 M):
# the row groups are flushed one at a time (write_buffer_row_group_count = 1), and a statement
# reads at most JSON_STATEMENT_BYTES of parts, which bounds the written blocks it leaves
# cached; the cap goes back to MEMORY_LIMIT after the statement, which evicts them.
JSON_MEMORY_LIMIT = "512MB"
JSON_STATEMENT_BYTES = 256 << 20

_LOCK_PID = re.compile(r"\(PID (\d+)\)")


Status = Literal["loaded", "skipped", "failed", "damaged"]


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What `apply` did with one run. `skipped`: the ledger already had it as loaded.
    `damaged`: nothing done or recorded, because the gzip streams of `error.part_ids` are
    damaged (error is a DamagedDownload): download them again and apply the run again."""

    job_id: int
    run_id: int
    status: Status
    rows: int = 0          # rows of the run in the table right after it was applied
    rows_read: int = 0     # rows in its files
    bytes: int = 0
    replaced: int = 0      # rows of other runs that rows of this run replaced (key rule)
    removed: int = 0       # rows of its job's earlier runs its window dropped (window rule)
    error: CsloadError | None = None


def _translate_open_error(path: Path, exc: duckdb.Error, *, read_only: bool = False
                          ) -> StoreError:
    message = str(exc)
    if "Could not set lock" in message:
        # Any DuckDB process may hold it (a notebook, the duckdb CLI, a BI tool), not only a
        # sync: the error names the holder from DuckDB's own text.
        return duckdb_locked_error(path, message, read_only=read_only)
    return StoreError(f"cannot open database {path}: {message}")


def connect(path: str | Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A plain DuckDB connection to a csload database, for analysis code. StoreLockedError
    (naming the holding process) while another process writes it, or, unless `read_only`,
    while another process has it open at all."""
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        raise _translate_open_error(Path(path), exc, read_only=read_only) from None


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Pending:
    """A run being applied, with its inspected parts."""

    staged: StagedRun
    layout: JobLayout
    files: list[PartFile] = field(default_factory=list)

    @property
    def run_id(self) -> int:
        return self.staged.run.run_id


@dataclass(frozen=True)
class _Group:
    """Parts read by one reader call: one job, one format, one compression, one header (or
    none: CSV parts without a header row, whose columns are the job's in order)."""

    pending: tuple[_Pending, ...]
    columns: tuple[Column, ...]
    files: tuple[PartFile, ...]
    gzip: bool
    csv: bool
    header: bool = True
    newline: str = "\n"


class _PartFailed(Exception):
    def __init__(self, run_id: int, error: CsloadError) -> None:
        super().__init__(str(error))
        self.run_id = run_id
        self.error = error


class _Unattributed(Exception):
    """DuckDB refused the data but did not say which part."""


def _unattributed(staged: StagedRun, exc: _Unattributed) -> CsloadError:
    """The error of a run DuckDB refused without naming a part: damaged, else a parse error."""
    return _damage(staged, None) or PartParseError(
        f"{part_label(staged.job.job_id, staged.run.run_id, None)}: {exc}",
        job_id=staged.job.job_id, run_id=staged.run.run_id)


def _damage(staged: StagedRun, first: int | None) -> DamagedDownload | None:
    """The run's parts whose gzip stream is damaged, if part `first` is one of them (or, with
    no `first`, if any is). Error path only: this inflates the parts in Python."""
    parts = sorted(staged.parts, key=lambda p: p.part_id != first)
    problems: dict[int, str] = {}
    for part in parts:
        problem = gzip_problem(Path(part.path))
        if problem is not None:
            problems[part.part_id] = problem
        elif part.part_id == first:
            return None
    if not problems:
        return None
    job_id, run_id = staged.job.job_id, staged.run.run_id
    part_id, problem = next(iter(problems.items()))
    others = list(problems)[1:]
    more = (f" (also part{'s' if len(others) > 1 else ''} {', '.join(map(str, others))})"
            if others else "")
    return DamagedDownload(f"{part_label(job_id, run_id, part_id)}: {problem}{more}",
                           job_id=job_id, run_id=run_id, part_ids=tuple(problems))


def _damaged(part: PartFile | None, batch: list[_Pending]) -> _PartFailed | None:
    """Its run's failure as a damaged download, if `part` (the one a reader error names) is
    gzip and its stream is damaged."""
    if part is None or not part.gzip:
        return None
    item = next(i for i in batch if i.run_id == part.run_id)
    damage = _damage(item.staged, part.part_id)
    return None if damage is None else _PartFailed(part.run_id, damage)


def _by_size(members: list[tuple[_Pending, PartFile]], limit: int
             ) -> list[list[tuple[_Pending, PartFile]]]:
    """`members` cut, in order, into pieces whose parts add up to at most `limit` bytes (a
    larger part makes a piece alone)."""
    chunks: list[list[tuple[_Pending, PartFile]]] = []
    size = 0
    for member in members:
        if not chunks or size + member[1].bytes > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(member)
        size += member[1].bytes
    return chunks


def _check_headerless(layout: JobLayout, part: PartFile) -> None:
    """A CSV part whose first row is no header must be a row of exactly the job's fields."""
    row = part.header or ()
    if len(row) != len(layout.columns):
        raise _PartFailed(part.run_id, parse_error(
            part, 1, f"the first row is not a header naming the job's fields, nor a row of "
            f"its {len(layout.columns)} fields (it has {len(row)} values)"))


def _unknown_or_fail(layout: JobLayout, name: str, part: PartFile) -> Column:
    """A text column for a file column the job does not list; an unusable name fails the run."""
    try:
        return unknown_column(layout.job_id, name)
    except ConfigError as exc:
        raise _PartFailed(part.run_id, exc) from None


class DuckDBStore:
    """The single writer of one csload DuckDB database."""

    # None: JSONL statements run under MEMORY_LIMIT too.
    JSON_MEMORY_LIMIT: str | None = JSON_MEMORY_LIMIT

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path) -> None:
        self.con = con
        self.path = path
        self.ledger = Ledger(con)
        # The caps on a run's files (csload.load.limits): the sync's `settings.limits`.
        self.limits = Limits()

    @classmethod
    def open(cls, path: Path, limits: Limits | None = None) -> DuckDBStore:
        """Open (creating if needed) the database; StoreLockedError if another process has it.
        `limits`: the caps on a run's files (default: Limits())."""
        path = Path(path)
        try:
            con = duckdb.connect(str(path))
        except duckdb.Error as exc:
            raise _translate_open_error(path, exc) from None
        try:
            # Rows have no meaningful order; not preserving it lets inserts stream.
            con.execute("SET preserve_insertion_order = false")
            # DuckDB's default keeps up to 80% of RAM of written blocks in memory, so a sync's
            # RSS grew with the data (630 MB at 2M rows); capped, it spills to disk and stays
            # flat (~360 MB at 1M and 2M rows, same speed: benchmarks/bench_sync.py).
            con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
            # A bulk insert flushes each row group as it fills instead of buffering five.
            con.execute("SET write_buffer_row_group_count = 1")
            for macro in sql.MACROS:
                con.execute(macro)
            store = cls(con, path)
            store.limits = limits or store.limits
            with store._transaction():
                store.ledger.ensure()
                if lookups_missing(con):   # a database an older csload made
                    ensure_lookups(con)
        except BaseException:
            con.close()
            raise
        return store

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> DuckDBStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the ledger --------------------------------------------------------------------------

    def loaded_runs(self) -> set[int]:
        """Ids of the runs already applied."""
        return self.ledger.loaded_run_ids()

    def record_failed(self, job: Job, run: Run, message: str, table: str | None = None) -> None:
        """Record that a run could not be loaded (download or parse failure)."""
        self._record_status(job, run, "failed", message, table)

    def record_expired(self, job: Job, run: Run, message: str = "", table: str | None = None
                       ) -> None:
        """Record that a run's files expired before csload could download them."""
        self._record_status(job, run, "expired", message or "the run's files expired", table)

    def record_source_failed(self, failures: Sequence[tuple[Job, Run, str]]) -> list[Run]:
        """Record runs that FAILED at Contentsquare, (job, run, table) each, in one
        transaction; returns those the ledger did not hold (Ledger.record_source_failed)."""
        grouped: dict[int, tuple[Job, list[Run], str]] = {}
        for job, run, table in failures:
            grouped.setdefault(job.job_id, (job, [], table))[1].append(run)
        recorded: list[Run] = []
        with self._transaction():
            now = _utcnow()
            for job, runs, table in grouped.values():
                recorded += self.ledger.record_source_failed(job, runs, table, now)
        return recorded

    def name_custom_vars(self, variables: Sequence[tuple[int, str | None]]) -> None:
        """The project's custom variables (position, name): `codes.custom_vars` and the
        comments of the columns that carry them (csload.load.lookups)."""
        with self._transaction():
            record_custom_vars(self.con, variables)

    def _record_status(self, job: Job, run: Run, status: str, message: str,
                       table: str | None) -> None:
        with self._transaction():
            if self.ledger.status_of(run.run_id) == "loaded":
                log.warning("%s: already loaded; not recording it as %s",
                            part_label(job.job_id, run.run_id, None), status)
                return
            now = _utcnow()
            self.ledger.upsert_job(job, table or job.scope, now)
            self.ledger.record_runs([run_row(run, table or job.scope, status, rows_read=None,
                                             rows=None, nbytes=None, parts=None, started=None,
                                             finished=now, message=message)])

    # --- transactions ----------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            self.con.execute("BEGIN TRANSACTION")
            yield
            self._commit()
        except BaseException as exc:
            with suppress(duckdb.Error):
                self.con.execute("ROLLBACK")
            if isinstance(exc, duckdb.Error):
                # A raw DuckDB error (COMMIT on a full disk, while recording a failed run) would
                # reach the CLI as a traceback (found by tests/reliability): a StoreError is
                # one clear line.
                raise StoreError(f"writing to database {self.path} failed: {exc}") from exc
            raise

    def _commit(self) -> None:
        """The one place a load becomes durable (a seam for the crash tests)."""
        self.con.execute("COMMIT")

    # --- apply ---------------------------------------------------------------------------------

    def apply(self, runs: Sequence[StagedRun]) -> list[RunOutcome]:
        """Load the runs not yet in the ledger; one outcome per input run, in input order.

        Runs of one table are applied in one transaction (one statement per job's parts);
        a run whose part does not parse fails alone, with a PartParseError naming the line.
        Anything else DuckDB refuses (disk full, ...) raises StoreError and commits nothing
        of the batch being applied.
        """
        loaded = self.ledger.loaded_run_ids()
        outcomes: dict[int, RunOutcome] = {}
        todo: dict[str, list[StagedRun]] = {}
        for staged in runs:
            run_id = staged.run.run_id
            if run_id in loaded or run_id in outcomes or any(
                    s.run.run_id == run_id for group in todo.values() for s in group):
                outcomes.setdefault(run_id, RunOutcome(staged.job.job_id, run_id, "skipped"))
                continue
            todo.setdefault(staged.table, []).append(staged)
        for table, group in todo.items():
            outcomes.update(self._apply_table(table, group))
        result = []
        first: set[int] = set()
        for staged in runs:
            run_id = staged.run.run_id
            if run_id in first:
                result.append(RunOutcome(staged.job.job_id, run_id, "skipped"))
            else:
                first.add(run_id)
                result.append(outcomes[run_id])
        return result

    def _fail(self, staged: StagedRun, error: CsloadError) -> RunOutcome:
        if isinstance(error, DamagedDownload):
            log.warning("%s: downloading it again", error)
            return RunOutcome(staged.job.job_id, staged.run.run_id, "damaged", error=error)
        # Debug: the failure is the sync's to report (its RUN_FAILED event, report.failed, the
        # ledger); a warning here made it two lines of the CLI's log.
        log.debug("%s", error)
        self.record_failed(staged.job, staged.run, str(error), staged.table)
        return RunOutcome(staged.job.job_id, staged.run.run_id, "failed",
                          bytes=sum(p.bytes for p in staged.parts), error=error)

    def _apply_table(self, table: str, runs: list[StagedRun]) -> dict[int, RunOutcome]:
        outcomes: dict[int, RunOutcome] = {}
        pending: list[_Pending] = []
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
                check_run_parts(job.job_id, staged.run.run_id, len(staged.parts), self.limits)
                item = _Pending(staged, job_layout(job))
                sources = tuple(c.source for c in item.layout.columns)
                for part in staged.parts:
                    item.files.append(inspect_part(job.job_id, staged.run.run_id, part.part_id,
                                                   Path(part.path), job.format, sources))
                    check_part_shape(item.files[-1], item.layout, self.limits)
            except (ConfigError, PartParseError) as exc:
                damage = (_damage(staged, exc.part_id) if isinstance(exc, PartParseError)
                          else None)
                outcomes[staged.run.run_id] = self._fail(staged, damage or exc)
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
            except _PartFailed as exc:
                # The failing part is known: fail its run, retry the others together.
                item = next(p for p in pending if p.run_id == exc.run_id)
                outcomes[exc.run_id] = self._fail(item.staged, exc.error)
                pending = [p for p in pending if p.run_id != exc.run_id]
            except _Unattributed as exc:
                if len(pending) > 1:
                    for item in pending:   # no part named: find the bad run(s) one by one
                        outcomes.update(self._apply_table_alone(table, item))
                    break
                staged = pending[0].staged
                outcomes[staged.run.run_id] = self._fail(staged, _unattributed(staged, exc))
                break
            except StoreError as exc:
                # Out of memory: a batch of several runs is retried run by run (a run that
                # fits alone loads); the run that does not fails, not the sync.
                if not out_of_memory(exc):
                    raise
                if len(pending) > 1:
                    for item in pending:
                        outcomes.update(self._apply_table_alone(table, item))
                    break
                staged = pending[0].staged
                outcomes[staged.run.run_id] = self._fail(staged, self._too_big(staged))
                break
        return outcomes

    def _too_big(self, staged: StagedRun) -> CsloadError:
        return out_of_memory_error(staged.job.job_id, staged.run.run_id, MEMORY_LIMIT)

    def _apply_table_alone(self, table: str, item: _Pending) -> dict[int, RunOutcome]:
        staged = item.staged
        try:
            return self._load_batch(table, [item])
        except _PartFailed as exc:
            return {item.run_id: self._fail(staged, exc.error)}
        except _Unattributed as exc:
            return {item.run_id: self._fail(staged, _unattributed(staged, exc))}
        except StoreError as exc:
            if not out_of_memory(exc):
                raise
            return {item.run_id: self._fail(staged, self._too_big(staged))}

    # --- one transaction ----------------------------------------------------------------------

    def _table_columns(self, table: str) -> dict[str, str] | None:
        rows = self.con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() "
            "WHERE table_name = ? AND schema_name = 'main' AND NOT internal "
            "AND database_name = current_database()", [table]).fetchall()
        return {r[0]: r[1] for r in rows} if rows else None

    def _groups(self, batch: list[_Pending]) -> list[_Group]:
        groups: dict[tuple[int, bool, bool, bool, str, tuple[str, ...] | None],
                     list[tuple[_Pending, PartFile]]] = {}
        for item in batch:
            csv = item.staged.job.format == "CSV"
            sources = item.layout.by_source()
            for part in item.files:
                if part.empty:
                    continue
                # CSV: parts that share a header, or have none; JSONL: parts that share their
                # extra keys.
                shape: tuple[str, ...] | None
                if not csv:
                    shape = tuple(sorted(k for k in part.keys or () if k not in sources))
                elif part.has_header:
                    shape = part.header
                else:
                    _check_headerless(item.layout, part)
                    shape = ()
                key = (item.layout.job_id, csv, part.gzip, part.has_header, part.newline, shape)
                groups.setdefault(key, []).append((item, part))
        out = []
        for (_job_id, csv, gzip, header, newline, shape), members in groups.items():
            layout = members[0][0].layout
            assert shape is not None
            if csv and not header:
                columns = layout.columns
            elif csv:
                columns = self._header_columns(layout, shape, members[0][1])
            else:
                columns = self._json_columns(layout, shape, members[0][1])
            if not columns:
                continue
            for chunk in ([members] if csv else _by_size(members, JSON_STATEMENT_BYTES)):
                seen_runs: dict[int, _Pending] = {}
                for item, _ in chunk:
                    seen_runs.setdefault(item.run_id, item)
                out.append(_Group(tuple(seen_runs.values()), tuple(columns),
                                  tuple(p for _, p in chunk), bool(gzip), bool(csv),
                                  bool(header), newline))
        return out

    def _header_columns(self, layout: JobLayout, header: tuple[str, ...], part: PartFile
                        ) -> tuple[Column, ...]:
        by_source = layout.by_source()
        # Not a header at all (another format, an HTML page) first: said as "repeats a
        # column", a JSON line looked like a damaged header (found by tests/reliability).
        if header and not any(h in by_source for h in header):
            raise _PartFailed(part.run_id, parse_error(
                part, 1, "the first row is not a header naming the job's fields"))
        if len(set(header)) != len(header):
            raise _PartFailed(part.run_id, parse_error(part, 1, "the header repeats a column"))
        columns = []
        names: set[str] = set()
        for name in header:
            col = by_source.get(name) or _unknown_or_fail(layout, name, part)
            if col.name in names:
                raise _PartFailed(part.run_id, parse_error(
                    part, 1, f"header columns collide on column name {col.name!r}"))
            names.add(col.name)
            columns.append(col)
        return tuple(columns)

    def _json_columns(self, layout: JobLayout, extra: tuple[str, ...], part: PartFile
                      ) -> tuple[Column, ...]:
        """The job's columns plus the keys of the part's first object that the job does not
        list: loaded as text with a warning, as CSV does with unknown header columns (before,
        read_json's explicit columns dropped them silently; found by tests/reliability)."""
        columns = list(layout.columns)
        names = {c.name for c in columns}
        for key in extra:
            col = _unknown_or_fail(layout, key, part)
            if col.name in names:
                raise _PartFailed(part.run_id, parse_error(
                    part, 1, f"key {key!r} collides with another column on {col.name!r}"))
            names.add(col.name)
            columns.append(col)
        return tuple(columns)

    def _ensure_table(self, table: str, batch: list[_Pending], groups: list[_Group]) -> None:
        wanted: dict[str, str] = {}
        all_groups = [_Group((item,), item.layout.columns, (), False, False) for item in batch]
        for group in [*all_groups, *groups]:
            for col in group.columns:
                if wanted.setdefault(col.name, col.duckdb_type) != col.duckdb_type:
                    raise _PartFailed(group.pending[0].run_id, ConfigError(
                        f"column {col.name!r} of table {table!r} would be both "
                        f"{wanted[col.name]} and {col.duckdb_type}: map one job to another "
                        "table or give the field another alias"))
        existing = self._table_columns(table)
        if existing is None:
            defs = [f"{quote_ident(n)} {t}" for n, t in wanted.items()]
            defs += [f"{quote_ident(n)} {t}" for n, t in LINEAGE_COLUMNS.items()]
            self.con.execute(f"CREATE TABLE {quote_ident(table)} ({', '.join(defs)})")
        else:
            for name, dtype in wanted.items():
                have = existing.get(name)
                if have is None:
                    self.con.execute(f"ALTER TABLE {quote_ident(table)} ADD COLUMN "
                                     f"{quote_ident(name)} {dtype}")
                elif widens(have, dtype):
                    self.con.execute(f"ALTER TABLE {quote_ident(table)} ALTER COLUMN "
                                     f"{quote_ident(name)} SET DATA TYPE {dtype}")
                elif have != dtype:
                    group = next(g for g in groups if any(c.name == name for c in g.columns))
                    raise _PartFailed(group.pending[0].run_id, ConfigError(
                        f"column {name!r} of table {table!r} is {have}, but job "
                        f"{group.pending[0].layout.job_id} loads it as {dtype}: map the job "
                        "to another table or give the field another alias"))

    def _insert_group(self, table: str, group: _Group, loaded_at: datetime) -> None:
        layout = group.pending[0].layout
        keys = layout.key_columns or ()
        values = [f"{sql.select_value(c, group.csv, check=True, key=c.name in keys)} AS "
                  f"{quote_ident(c.name)}" for c in group.columns]
        date_col = next((c for c in group.columns if c.name == layout.date_column), None)
        if date_col is not None:
            date_expr = f"COALESCE(CAST(f.{quote_ident(date_col.source)} AS DATE), m.window_start)"
        else:
            date_expr = "m.window_start"
        files = [p.path for p in group.files]
        reader = (sql.read_csv(files, group.columns, group.gzip, header=group.header,
                               newline=group.newline)
                  if group.csv
                  else sql.read_json(files, group.columns, group.gzip))
        raised = None if group.csv else self.JSON_MEMORY_LIMIT
        if raised is not None:
            self.con.execute(f"SET memory_limit = '{raised}'")
        self.con.execute(
            f"INSERT INTO {quote_ident(table)} BY NAME "  # noqa: S608
            f"SELECT {', '.join(values)}, m.job_id AS _job_id, m.run_id AS _run_id, "
            f"{date_expr} AS _date, CAST(? AS TIMESTAMP) AS _loaded_at "
            f"FROM {reader} AS f JOIN _csload_map AS m "
            f"ON f.{quote_ident(sql.FILE_COLUMN)} = m.file",
            [naive_utc(loaded_at)],
        )
        if raised is not None:
            # After a failed statement the transaction refuses any SET: _load_batch restores
            # the cap once it has rolled back.
            self._restore_memory_limit()

    def _restore_memory_limit(self) -> None:
        self.con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")

    def _load_batch(self, table: str, batch: list[_Pending]) -> dict[int, RunOutcome]:
        started = _utcnow()
        groups = self._groups(batch)
        parts = {p.path: p for item in batch for p in item.files}
        run_ids = [item.run_id for item in batch]
        ids = ", ".join(str(r) for r in run_ids)
        self.con.execute("BEGIN TRANSACTION")
        try:
            before = self._table_columns(table)
            self._ensure_table(table, batch, groups)
            for job in {item.staged.job.job_id: item.staged.job for item in batch}.values():
                self.ledger.upsert_job(job, table, started)
            self._create_run_tables(table, batch)
            for group in groups:
                try:
                    self._insert_group(table, group, started)
                except (duckdb.ConversionException, duckdb.InvalidInputException) as exc:
                    raise self._attribute(exc, parts, batch) from None
                except duckdb.IOException as exc:
                    # A damaged gzip stream ("Unexpected end of GZIP stream: <file>"); any
                    # other I/O error (disk full, ...) is the store's, raised as it is.
                    damaged = _damaged(locate_error(str(exc), parts), batch)
                    if damaged is None:
                        raise
                    raise damaged from None
            # Comments for the columns just created or added only (none new: no statement),
            # once the rows are in: one per column, so thousands took a minute, and the rows
            # of such a wide run may not fit in memory anyway.
            describe_table(self.con, table, [
                *((item.layout.scope, c) for item in batch for c in item.layout.columns),
                *((g.pending[0].layout.scope, c) for g in groups for c in g.columns)], before)
            read = self._run_counts(table, ids)
            replaced = self._apply_key_rule(table, batch, ids)
            removed = self._apply_window_rule(table, batch)
            deleted = replaced is not None or removed is not None
            kept = self._run_counts(table, ids) if deleted else read
            finished = _utcnow()
            outcomes: dict[int, RunOutcome] = {}
            ledger_rows = []
            for item in batch:
                outcome = RunOutcome(
                    item.staged.job.job_id, item.run_id, "loaded",
                    rows=kept.get(item.run_id, 0), rows_read=read.get(item.run_id, 0),
                    bytes=sum(p.bytes for p in item.files),
                    replaced=(replaced or {}).get(item.run_id, 0),
                    removed=(removed or {}).get(item.run_id, 0))
                outcomes[item.run_id] = outcome
                ledger_rows.append(run_row(
                    item.staged.run, table, "loaded", rows_read=outcome.rows_read,
                    rows=outcome.rows, nbytes=outcome.bytes, parts=len(item.files),
                    started=started, finished=finished, message=None))
            self.ledger.record_runs(ledger_rows)
            self.ledger.record_parts(
                [(item.run_id, p.part_id, item.layout.job_id, p.bytes, 0 if p.empty else None)
                 for item in batch for p in item.files], finished)
            self._drop_temp()
            self._commit()
        except BaseException as exc:
            with suppress(duckdb.Error):
                self.con.execute("ROLLBACK")
            with suppress(duckdb.Error):
                self._restore_memory_limit()
            if isinstance(exc, duckdb.Error):
                raise StoreError(f"loading into table {table!r} failed: {exc}") from exc
            raise
        # One line per commit, at debug: each run's load is a line of the sync's own (its
        # RUN_LOADED event); a line per run here made -v print each load twice.
        log.debug("table %s: committed run(s) %s, %s rows", table, ids,
                  sum(outcome.rows for outcome in outcomes.values()))
        return outcomes

    def _attribute(self, exc: duckdb.Error, parts: dict[str, PartFile], batch: list[_Pending]
                   ) -> Exception:
        """Turn a reader error into the failing run's PartParseError (exact line)."""
        message = str(exc)
        part = locate_error(message, parts)
        if part is None:
            return _Unattributed(f"the data does not parse: {message.splitlines()[0][:300]}")
        damaged = _damaged(part, batch)
        if damaged is not None:
            return damaged
        item = next(i for i in batch if i.run_id == part.run_id)
        columns = [c for g in self._groups([item]) if part in g.files for c in g.columns]
        return _PartFailed(part.run_id, diagnose(part, columns, item.staged.job.format, message,
                                                 item.layout.key_columns or ()))

    def _create_run_tables(self, table: str, batch: list[_Pending]) -> None:
        self.con.execute("CREATE OR REPLACE TEMP TABLE _csload_map (file VARCHAR, job_id UBIGINT, "
                         "run_id UBIGINT, window_start DATE)")
        rows = []
        for item in batch:
            start = item.staged.run.start_date
            for p in item.files:
                rows.append((p.path, item.layout.job_id, item.run_id,
                             start.astimezone(UTC).date() if start else None))
        sql.insert_rows(self.con, "INSERT INTO _csload_map",
                        ("VARCHAR", "UBIGINT", "UBIGINT", "DATE"), rows)
        # The order of every run whose rows may be in the table, batch included.
        self.con.execute(
            "CREATE OR REPLACE TEMP TABLE _csload_ord AS SELECT run_id, supersede_order AS ord "
            "FROM _csload.runs WHERE status = 'loaded' AND table_name = ?", [table])
        sql.insert_rows(self.con, "INSERT INTO _csload_ord", ("UBIGINT", "HUGEINT"),
                        [(item.run_id, str(run_order(item.staged.run))) for item in batch])

    def _drop_temp(self) -> None:
        for name in ("_csload_map", "_csload_ord", "_csload_bkeys", "_csload_drop",
                     "_csload_losers"):
            self.con.execute(f"DROP TABLE IF EXISTS temp.{name}")

    def _run_counts(self, table: str, ids: str) -> dict[int, int]:
        rows = self.con.execute(
            f"SELECT _run_id, count(*) FROM {quote_ident(table)} WHERE _run_id IN ({ids}) "  # noqa: S608
            "GROUP BY _run_id").fetchall()
        return {int(r[0]): int(r[1]) for r in rows}

    # --- supersede rules ------------------------------------------------------------------------

    def _key_groups(self, table: str, batch: list[_Pending]) -> dict[tuple[str, ...], list[int]]:
        """Jobs of the table that export the row key, grouped by the key's column names."""
        layouts = {item.layout.job_id: item.layout for item in batch}
        for job_id, (job, job_table) in self.ledger.jobs().items():
            if job_table == table and job_id not in layouts:
                try:
                    layouts[job_id] = job_layout(job)
                except ConfigError:
                    continue
        columns = self._table_columns(table) or {}
        groups: dict[tuple[str, ...], list[int]] = {}
        for job_id, layout in sorted(layouts.items()):
            # A job recorded only as failed may have no columns in the table yet.
            if layout.key_columns and all(c in columns for c in layout.key_columns):
                groups.setdefault(layout.key_columns, []).append(job_id)
        return groups

    def _keyed_rows(self, table: str, groups: dict[tuple[str, ...], list[int]], where: str
                    ) -> str:
        """SELECT k0, k1, run_id, rid of the table's keyed rows matching `where` (on t)."""
        selects = []
        for cols, job_ids in groups.items():
            k0 = f"CAST(t.{quote_ident(cols[0])} AS UBIGINT)"
            k1 = f"CAST(t.{quote_ident(cols[1])} AS UBIGINT)" if len(cols) > 1 else "0::UBIGINT"
            not_null = " AND ".join(f"t.{quote_ident(c)} IS NOT NULL" for c in cols)
            jobs = ", ".join(str(j) for j in job_ids)
            selects.append(
                f"SELECT {k0} AS k0, {k1} AS k1, t._run_id AS run_id, t.rowid AS rid "  # noqa: S608
                f"FROM {quote_ident(table)} AS t "
                f"WHERE t._job_id IN ({jobs}) AND {not_null} AND ({where})")
        return " UNION ALL ".join(selects)

    def _apply_key_rule(self, table: str, batch: list[_Pending], ids: str
                        ) -> dict[int, int] | None:
        """Per key, keep the latest run's row. None when no row was deleted; else, per run
        of the batch, how many rows of other runs its rows replaced."""
        groups = self._key_groups(table, batch)
        batch_groups = {cols: jobs for cols, jobs in groups.items()
                        if any(item.layout.key_columns == cols for item in batch)}
        if not batch_groups:
            return None
        batch_keys = self._keyed_rows(table, batch_groups, f"t._run_id IN ({ids})")
        existing = self._keyed_rows(table, groups, f"t._run_id NOT IN ({ids})")
        tomb = "SELECT k0, k1 FROM _csload.tombstones WHERE table_name = ?"
        # The common case, every key of the batch new, is checked without materializing the
        # batch's keys (that took as long as the check itself: 0.2 s per 2M rows).
        row = self.con.execute(
            f"""SELECT count(*) FROM (SELECT 1 FROM ({batch_keys})
                                      GROUP BY k0, k1 HAVING count(*) > 1)""").fetchone()  # noqa: S608
        assert row is not None
        if row[0] == 0 and self._has_earlier_keys(table, ids):
            row = self.con.execute(
                f"""SELECT count(*) FROM (SELECT k0, k1 FROM ({existing}) UNION ALL {tomb}) AS e
                    SEMI JOIN ({batch_keys}) AS b ON e.k0 = b.k0 AND e.k1 = b.k1""",  # noqa: S608
                [table]).fetchone()
            assert row is not None
        if row[0] == 0:
            return None   # every key of the batch is new: nothing to supersede
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE _csload_bkeys AS {batch_keys}")
        # Every row with a batch key competes; per key the latest run's row survives (the
        # first by rowid among one run's duplicates). A tombstone that wins removes them all.
        # The losers are kept aside with the winning run, to count what each run replaced.
        self.con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _csload_losers AS
                SELECT rid, run_id, winner FROM (
                    SELECT *, first_value(run_id) OVER win AS winner,
                           row_number() OVER win AS place
                    FROM (
                    SELECT b.k0, b.k1, b.rid, b.run_id, o.ord FROM _csload_bkeys AS b
                    JOIN _csload_ord AS o ON o.run_id = b.run_id
                    UNION ALL
                    SELECT e.k0, e.k1, e.rid, e.run_id, o.ord FROM ({existing}) AS e
                    JOIN _csload_ord AS o ON o.run_id = e.run_id
                    SEMI JOIN _csload_bkeys AS b ON e.k0 = b.k0 AND e.k1 = b.k1
                    UNION ALL
                    SELECT s.k0, s.k1, NULL, NULL, s.supersede_order
                    FROM _csload.tombstones AS s
                    SEMI JOIN _csload_bkeys AS b ON s.k0 = b.k0 AND s.k1 = b.k1
                    WHERE s.table_name = ?
                    )
                    WINDOW win AS (PARTITION BY k0, k1 ORDER BY ord DESC, rid ASC NULLS LAST)
                )
                WHERE place > 1 AND rid IS NOT NULL""",  # noqa: S608
            [table])
        self.con.execute(f"DELETE FROM {quote_ident(table)} WHERE rowid IN "  # noqa: S608
                         "(SELECT rid FROM _csload_losers)")
        # A run's own duplicate rows are not "replaced" rows; a tombstone's win is no run's.
        rows = self.con.execute(
            "SELECT winner, count(*) FROM _csload_losers "
            "WHERE winner IS NOT NULL AND run_id <> winner GROUP BY winner").fetchall()
        return {int(r[0]): int(r[1]) for r in rows}

    def _has_earlier_keys(self, table: str, ids: str) -> bool:
        """Whether rows of runs loaded before the batch, or tombstones, may hold its keys."""
        row = self.con.execute(
            f"SELECT EXISTS (SELECT 1 FROM _csload_ord WHERE run_id NOT IN ({ids})) "  # noqa: S608
            "OR EXISTS (SELECT 1 FROM _csload.tombstones WHERE table_name = ?)",
            [table]).fetchone()
        return bool(row and row[0])

    def _apply_window_rule(self, table: str, batch: list[_Pending]) -> dict[int, int] | None:
        """Remove what the batch's runs replace by window. None when nothing was to remove;
        else, per run of the batch, the rows it removed (a job's removed rows are counted
        on its latest run in the batch)."""
        job_ids = {item.layout.job_id for item in batch}
        mine = [RunWindow(item.run_id, item.layout.job_id, item.staged.run.start_date,
                          item.staged.run.end_date, run_order(item.staged.run))
                for item in batch]
        drops = window_drops(mine, self.ledger.loaded_windows(job_ids))
        if not drops:
            return None
        self.con.execute("CREATE OR REPLACE TEMP TABLE _csload_drop "
                         "(run_id UBIGINT, date_from DATE, date_to DATE)")
        sql.insert_rows(self.con, "INSERT INTO _csload_drop", ("UBIGINT", "DATE", "DATE"),
                        [(d.run_id, d.date_from, d.date_to) for d in drops])
        dropped = ("EXISTS (SELECT 1 FROM _csload_drop AS d WHERE d.run_id = t._run_id AND "
                   "(d.date_from IS NULL OR (t._date >= d.date_from AND t._date < d.date_to)))")
        groups = self._key_groups(table, batch)
        if groups:
            # Each key has at most one row here (key rule), so a removed keyed row is the
            # latest word on its key: remember it, or an older run could resurrect the key.
            self.con.execute(
                f"""INSERT INTO _csload.tombstones
                    SELECT ?, r.k0, r.k1, o.ord FROM ({self._keyed_rows(table, groups, dropped)})
                    AS r JOIN _csload_ord AS o ON o.run_id = r.run_id""",  # noqa: S608
                [table])
        counts = self.con.execute(
            f"SELECT _job_id, count(*) FROM {quote_ident(table)} AS t "  # noqa: S608
            f"WHERE {dropped} AND t._run_id NOT IN ({', '.join(str(w.run_id) for w in mine)}) "
            "GROUP BY _job_id").fetchall()
        self.con.execute(f"DELETE FROM {quote_ident(table)} AS t WHERE {dropped}")  # noqa: S608
        latest = {w.job_id: w for w in sorted(mine, key=lambda w: w.order)}
        return {latest[int(job_id)].run_id: int(n) for job_id, n in counts
                if int(job_id) in latest}
