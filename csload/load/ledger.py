"""The ledger: which jobs, runs and parts csload has applied to a DuckDB database.

It lives in the same database as the data, so a run's rows and its ledger rows commit in one
transaction: a run is loaded whole, and recorded as loaded, or neither. Its tables are in their
own schema, `_csload`, away from the data an analyst browses in `main` (`_csload.runs`, ...;
created idempotently). A database made by an older csload has them in `main` as
`_csload_runs`, ...: `Ledger` reads either layout, and `ensure` (a writer's open) moves them.
The schema is named `_csload`, not `csload`, because DuckDB refuses a two-part name that
matches both a schema and the database file's name (`csload.duckdb`: "Ambiguous reference").

    _csload.meta        key VARCHAR PRIMARY KEY, value VARCHAR     ('schema_version', '1')
    _csload.jobs        job_id UBIGINT PRIMARY KEY, name, scope, format, frequency,
                        fields (JSON text, the API's field list), table_name,
                        first_seen TIMESTAMP, last_seen TIMESTAMP
    _csload.runs        run_id UBIGINT PRIMARY KEY, job_id, table_name,
                        window_start / window_end TIMESTAMP (UTC, end exclusive),
                        finished_at TIMESTAMP, supersede_order HUGEINT (orders runs; see
                        csload.load.supersede), status 'loaded' | 'failed' | 'expired' |
                        'source_failed' (the run FAILED at Contentsquare: no files at all),
                        rows_read UBIGINT (rows in the files), rows UBIGINT (rows of the run in
                        the table right after it was applied), bytes UBIGINT, parts INTEGER,
                        load_started_at / load_finished_at TIMESTAMP, message VARCHAR
    _csload.parts       run_id, part_id (PRIMARY KEY together), job_id, bytes, rows (NULL:
                        counting rows per part would cost a second pass), loaded_at
    _csload.tombstones  table_name, k0 UBIGINT, k1 UBIGINT, supersede_order HUGEINT: the latest
                        run that delivered a row key whose row was later removed by a re-run, so
                        that an older run applied late cannot bring the row back

All timestamps are naive UTC. The ledger tables are small; only they carry primary keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import duckdb
import orjson

from csload.api.models import PROJECT_ID_TEXT, Job, JobField, Run
from csload.errors import StoreError, source_failed_message
from csload.load.ledger_tables import LEDGER_NAMES, LEDGER_SCHEMA
from csload.load.sql import insert_rows
from csload.load.sqltext import quote_ident
from csload.load.supersede import RunWindow, run_order

SCHEMA_VERSION = 1



@dataclass(frozen=True, slots=True)
class LedgerTables:
    """The ledger's table names, as SQL (never user input)."""

    meta: str
    jobs: str
    runs: str
    parts: str
    tombstones: str
    backfills: str

    @classmethod
    def layout(cls, old: bool) -> LedgerTables:
        return cls(*(f"_csload_{n}" if old else f"{LEDGER_SCHEMA}.{n}"
                     for n in (*LEDGER_NAMES, "backfills")))


TABLES = LedgerTables.layout(old=False)
OLD_TABLES = LedgerTables.layout(old=True)

_DDL = (
    f"CREATE SCHEMA IF NOT EXISTS {LEDGER_SCHEMA}",
    "CREATE TABLE IF NOT EXISTS _csload.meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    """CREATE TABLE IF NOT EXISTS _csload.jobs (
        job_id UBIGINT PRIMARY KEY, name VARCHAR, scope VARCHAR, format VARCHAR,
        frequency VARCHAR, fields VARCHAR, table_name VARCHAR,
        first_seen TIMESTAMP, last_seen TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS _csload.runs (
        run_id UBIGINT PRIMARY KEY, job_id UBIGINT, table_name VARCHAR,
        window_start TIMESTAMP, window_end TIMESTAMP, finished_at TIMESTAMP,
        supersede_order HUGEINT, status VARCHAR, rows_read UBIGINT, rows UBIGINT,
        bytes UBIGINT, parts INTEGER, load_started_at TIMESTAMP, load_finished_at TIMESTAMP,
        message VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS _csload.parts (
        run_id UBIGINT, part_id UBIGINT, job_id UBIGINT, bytes UBIGINT, rows UBIGINT,
        loaded_at TIMESTAMP, PRIMARY KEY (run_id, part_id))""",
    """CREATE TABLE IF NOT EXISTS _csload.tombstones (
        table_name VARCHAR, k0 UBIGINT, k1 UBIGINT, supersede_order HUGEINT)""",
)

# The backfill ledger's table (csload.load.backfill_ledger), here so that `Ledger.ensure` can move
# an older csload's `main._csload_backfills` with the rest.
BACKFILLS_DDL = """CREATE TABLE IF NOT EXISTS _csload.backfills (
    job_id UBIGINT PRIMARY KEY, name VARCHAR, plan_key VARCHAR, scope VARCHAR, format VARCHAR,
    fields VARCHAR, device_label VARCHAR, segment_id BIGINT, table_name VARCHAR,
    like_job_id UBIGINT, window_start TIMESTAMP, window_end TIMESTAMP, state VARCHAR,
    run_id UBIGINT, message VARCHAR, created_at TIMESTAMP, updated_at TIMESTAMP)"""

STATUSES = ("loaded", "failed", "expired", "source_failed")
# Runs whose rows are missing from the target and that no later sync will load: their files
# are gone (expired) or never existed (source_failed). Only a once job can export their days
# again (`csload backfill --gaps`), so they count as gaps until something covers them.
MISSING_STATUSES = ("expired", "source_failed")


def naive_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def aware_utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class RunRecord:
    run_id: int
    job_id: int
    table: str | None
    window_start: datetime | None
    window_end: datetime | None
    finished_at: datetime | None
    status: str
    rows_read: int | None
    rows: int | None
    bytes: int | None
    parts: int | None
    load_started_at: datetime | None
    load_finished_at: datetime | None
    message: str | None


@dataclass(frozen=True, slots=True)
class TableStats:
    table: str
    rows: int
    first_date: date | None
    last_date: date | None


_RUN_COLUMNS = ("run_id, job_id, table_name, window_start, window_end, finished_at, status, "
                "rows_read, rows, bytes, parts, load_started_at, load_finished_at, message")


_RUN_TYPES = ("UBIGINT", "UBIGINT", "VARCHAR", "TIMESTAMP", "TIMESTAMP", "TIMESTAMP", "HUGEINT",
              "VARCHAR", "UBIGINT", "UBIGINT", "UBIGINT", "INTEGER", "TIMESTAMP", "TIMESTAMP",
              "VARCHAR")
_PART_TYPES = ("UBIGINT", "UBIGINT", "UBIGINT", "UBIGINT", "UBIGINT", "TIMESTAMP")


def run_row(run: Run, table: str | None, status: str, *, rows_read: int | None,
            rows: int | None, nbytes: int | None, parts: int | None,
            started: datetime | None, finished: datetime | None,
            message: str | None) -> tuple[Any, ...]:
    """One `_csload.runs` row, in its column order, for `Ledger.record_runs`."""
    if status not in STATUSES:
        raise ValueError(status)
    return (run.run_id, run.job_id, table, naive_utc(run.start_date), naive_utc(run.end_date),
            naive_utc(run.finished_at), str(run_order(run)), status, rows_read, rows, nbytes,
            parts, naive_utc(started), naive_utc(finished), message)


def _run_record(row: tuple[Any, ...]) -> RunRecord:
    return RunRecord(
        run_id=int(row[0]), job_id=int(row[1]), table=row[2],
        window_start=aware_utc(row[3]), window_end=aware_utc(row[4]),
        finished_at=aware_utc(row[5]), status=row[6], rows_read=row[7], rows=row[8],
        bytes=row[9], parts=row[10], load_started_at=aware_utc(row[11]),
        load_finished_at=aware_utc(row[12]), message=row[13],
    )


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the database of `con` has the table `name` ("schema.table", or a table of
    `main`)."""
    schema, _, table = name.rpartition(".")
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ?", [schema or "main", table]).fetchone()
    return bool(row and row[0])


# The runs loaded into the tables of a list given as the one parameter (`forget_tables`).
_LOADED_INTO = "status = 'loaded' AND list_contains(?, table_name)"


class Ledger:
    """Reads and writes the ledger tables through the caller's connection/transaction.

    `t` names them: `_csload.*`, or, in a database an older csload made and `ensure` has not
    upgraded yet (a read-only connection cannot), `main._csload_*`."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.t = (OLD_TABLES if not has_table(con, TABLES.runs)
                  and has_table(con, OLD_TABLES.runs) else TABLES)

    # --- setup ---------------------------------------------------------------------------

    def exists(self) -> bool:
        """Whether this database has a csload ledger at all (read-only check)."""
        return has_table(self.con, self.t.runs)

    def ensure(self) -> None:
        """Create the ledger tables if missing, moving an older csload's from `main` into
        their schema; refuse a ledger from a newer csload."""
        for ddl in _DDL:
            self.con.execute(ddl)
        moved = [(old, new) for old, new in zip(
            (OLD_TABLES.meta, OLD_TABLES.jobs, OLD_TABLES.runs, OLD_TABLES.parts,
             OLD_TABLES.tombstones, OLD_TABLES.backfills),
            (TABLES.meta, TABLES.jobs, TABLES.runs, TABLES.parts, TABLES.tombstones,
             TABLES.backfills),
            strict=True) if has_table(self.con, old)]
        if (OLD_TABLES.backfills, TABLES.backfills) in moved:
            self.con.execute(BACKFILLS_DDL)
        for old, new in moved:
            # BY NAME: the tables have the same columns; an older one may lack a newer column.
            self.con.execute(f"INSERT INTO {new} BY NAME SELECT * FROM {old}")  # noqa: S608
            self.con.execute(f"DROP TABLE {old}")
        self.t = TABLES
        row = self.con.execute(
            "SELECT value FROM _csload.meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            self.con.execute("INSERT INTO _csload.meta VALUES ('schema_version', ?)",
                             [str(SCHEMA_VERSION)])
        elif int(row[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"the database's csload ledger has schema version {row[0]}, newer than this "
                f"csload understands ({SCHEMA_VERSION}): upgrade csload")

    # --- writes (inside the caller's transaction) -----------------------------------------

    def record_project(self, project_id: int) -> None:
        """The Contentsquare project whose exports the target holds (`project_id`)."""
        self.con.execute(f"INSERT OR REPLACE INTO {self.t.meta} VALUES ('project_id', ?)",  # noqa: S608
                         [str(project_id)])

    def upsert_job(self, job: Job, table: str, now: datetime) -> None:
        fields = orjson.dumps([f.to_api() for f in job.fields]).decode()
        self.con.execute(
            f"""INSERT INTO {self.t.jobs} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (job_id) DO UPDATE SET name = excluded.name, scope = excluded.scope,
               format = excluded.format, frequency = excluded.frequency,
               fields = excluded.fields, table_name = excluded.table_name,
               last_seen = excluded.last_seen""",  # noqa: S608
            [job.job_id, job.name, job.scope, job.format, job.frequency, fields, table,
             naive_utc(now), naive_utc(now)],
        )

    def record_runs(self, rows: list[tuple[Any, ...]]) -> None:
        """rows: `run_row(...)` of each run, all written by one statement."""
        insert_rows(self.con, f"INSERT OR REPLACE INTO {self.t.runs}", _RUN_TYPES, rows)

    def record_source_failed(self, job: Job, runs: list[Run], table: str,
                             now: datetime) -> list[Run]:
        """Record runs of `job` that FAILED at Contentsquare (no files at all), so that their
        days count as gaps (`csload status`, `csload backfill --gaps`) although no sync will
        ever list them among the successful runs. A run the ledger already holds, under any
        status, is left alone (a sync that sees the same failed runs again writes nothing).
        Returns the runs recorded now: a sync reports those (once), and a lake publishes a
        new version only when there are any. The job's row is written only then too.
        """
        known = self.recorded_run_ids({run.run_id for run in runs})
        new = [run for run in runs if run.run_id not in known]
        if not new:
            return []
        self.upsert_job(job, table, now)
        self.record_runs([run_row(run, table, "source_failed", rows_read=None, rows=None,
                                  nbytes=None, parts=None, started=None, finished=now,
                                  message=source_failed_message(job.job_id, job.frequency,
                                                                run.start_date, run.end_date))
                          for run in new])
        return new

    def record_parts(self, rows: list[tuple[int, int, int, int, int | None]],
                     loaded_at: datetime) -> None:
        """rows: (run_id, part_id, job_id, bytes, rows)."""
        insert_rows(self.con, f"INSERT OR REPLACE INTO {self.t.parts}", _PART_TYPES,
                    [(*r, naive_utc(loaded_at)) for r in rows])

    def forget_tables(self, tables: list[str]) -> None:
        """Forget what was loaded into `tables` (their loaded runs, those runs' parts and the
        tables' tombstones), so that the next sync loads those runs again: for tables the
        user dropped (`dropped_tables`). The jobs keep their tables."""
        if not tables:
            return
        self.con.execute(f"DELETE FROM {self.t.parts} "  # noqa: S608
                         f"WHERE run_id IN (SELECT run_id FROM {self.t.runs} WHERE {_LOADED_INTO})",
                         [tables])
        self.con.execute(f"DELETE FROM {self.t.tombstones} "  # noqa: S608
                         "WHERE list_contains(?, table_name)", [tables])
        self.con.execute(f"DELETE FROM {self.t.runs} WHERE {_LOADED_INTO}", [tables])  # noqa: S608

    # --- reads -----------------------------------------------------------------------------

    def tables_with_rows(self) -> dict[str, int]:
        """The tables that the ledger's loaded runs delivered rows to, with the number of
        those runs."""
        rows = self.con.execute(
            f"""SELECT table_name, count(*) FROM {self.t.runs}
               WHERE status = 'loaded' AND table_name IS NOT NULL
               GROUP BY table_name HAVING sum(coalesce(rows, 0)) > 0"""  # noqa: S608
        ).fetchall()
        return {str(name): int(count) for name, count in rows}

    def dropped_tables(self) -> dict[str, int]:
        """Tables of a DuckDB target that runs loaded rows into and that are no longer in the
        database (the user dropped or renamed them), with the number of those runs. Not for a
        lake's work database, whose tables are the lake's."""
        existing = self._main_tables()
        return {name: count for name, count in self.tables_with_rows().items()
                if name not in existing}

    def _main_tables(self) -> set[str]:
        """The names of the tables and views of the schema `main` (the data tables of a
        DuckDB target), lowercased as csload names its tables. DuckDB's names ignore case:
        `views` renamed `Views` is csload's table still, and a view put in a table's place
        holds its name; taken for dropped, their runs were forgotten and every later sync
        failed on the name (QA, 2026-12-08)."""
        return {str(r[0]).lower() for r in self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
            "AND table_catalog = current_database()").fetchall()}

    def project_id(self) -> int | None:
        """The project recorded by `record_project` (None: none yet, no ledger, or an older
        csload's)."""
        if not self.exists():
            return None
        row = self.con.execute(f"SELECT value FROM {self.t.meta} WHERE key = 'project_id'"  # noqa: S608
                               ).fetchone()
        return int(row[0]) if row and PROJECT_ID_TEXT.match(str(row[0])) else None

    def foreign_tables(self) -> set[str]:
        """The tables and views of a DuckDB target's schema `main` that csload never loaded
        into (no job or run of the ledger names them): the user's own, in a database they
        gave csload. csload loads into none of them (csload.load.placement). Works on a
        database without a ledger (every table is then the user's). Not for a lake's work
        database."""
        names = self._main_tables()
        if not self.exists():
            return names
        ours = {r[0] for r in self.con.execute(
            f"SELECT table_name FROM {self.t.jobs} UNION "  # noqa: S608
            f"SELECT table_name FROM {self.t.runs}").fetchall()}
        return names - ours

    def runs_of_tables(self, tables: list[str]) -> set[int]:
        """The loaded runs of `tables` (what `forget_tables` forgets)."""
        rows = self.con.execute(f"SELECT run_id FROM {self.t.runs} WHERE {_LOADED_INTO}",  # noqa: S608
                                [tables]).fetchall()
        return {int(r[0]) for r in rows}

    def loaded_tables(self) -> dict[str, frozenset[int]]:
        """Per table, the jobs whose loaded runs went into it, a job mapped elsewhere since
        included: the table still holds its rows, with their columns."""
        rows = self.con.execute(
            f"SELECT table_name, list(DISTINCT job_id) FROM {self.t.runs} "  # noqa: S608
            "WHERE status = 'loaded' AND table_name IS NOT NULL GROUP BY table_name").fetchall()
        return {str(table): frozenset(int(j) for j in jobs) for table, jobs in rows}

    def loaded_run_ids(self) -> set[int]:
        rows = self.con.execute(
            f"SELECT run_id FROM {self.t.runs} WHERE status = 'loaded'").fetchall()  # noqa: S608
        return {int(r[0]) for r in rows}

    def done_run_ids(self) -> set[int]:
        """Runs a sync must not fetch again: loaded, or recorded as expired (backfill those)."""
        return self.loaded_run_ids() | {r.run_id for r in self.expired_runs()}

    def recorded_run_ids(self, run_ids: set[int]) -> set[int]:
        """Those of `run_ids` the ledger holds, whatever their status."""
        if not run_ids:
            return set()
        rows = self.con.execute(f"SELECT run_id FROM {self.t.runs} WHERE list_contains(?, run_id)",  # noqa: S608
                                [sorted(run_ids)]).fetchall()
        return {int(r[0]) for r in rows}

    def status_of(self, run_id: int) -> str | None:
        row = self.con.execute(f"SELECT status FROM {self.t.runs} WHERE run_id = ?",  # noqa: S608
                               [run_id]).fetchone()
        return None if row is None else str(row[0])

    def runs(self, status: str | None = None) -> list[RunRecord]:
        query = f"SELECT {_RUN_COLUMNS} FROM {self.t.runs}"  # noqa: S608
        params: list[Any] = []
        if status is not None:
            query += " WHERE status = ?"
            params.append(status)
        rows = self.con.execute(query + " ORDER BY run_id", params).fetchall()
        return [_run_record(r) for r in rows]

    def failed_runs(self) -> list[RunRecord]:
        return self.runs("failed")

    def expired_runs(self) -> list[RunRecord]:
        return self.runs("expired")

    def source_failed_runs(self) -> list[RunRecord]:
        return self.runs("source_failed")

    def jobs(self) -> dict[int, tuple[Job, str]]:
        """Every job seen, with the table it loads into."""
        rows = self.con.execute(
            "SELECT job_id, name, scope, format, frequency, fields, table_name "  # noqa: S608
            f"FROM {self.t.jobs}").fetchall()
        out: dict[int, tuple[Job, str]] = {}
        for job_id, name, scope, fmt, frequency, fields, table in rows:
            job = Job(job_id=int(job_id), name=name, format=fmt, scope=scope,
                      frequency=frequency,
                      fields=tuple(JobField.from_api(f) for f in orjson.loads(fields)))
            out[int(job_id)] = (job, table)
        return out

    def loaded_windows(self, job_ids: set[int]) -> list[RunWindow]:
        if not job_ids:
            return []
        rows = self.con.execute(
            "SELECT run_id, job_id, window_start, window_end, CAST(supersede_order AS VARCHAR) "  # noqa: S608
            f"FROM {self.t.runs} WHERE status = 'loaded' AND list_contains(?, job_id)",
            [sorted(job_ids)],
        ).fetchall()
        return [RunWindow(int(r[0]), int(r[1]), aware_utc(r[2]), aware_utc(r[3]), int(r[4]))
                for r in rows]

    def last_loaded_windows(self) -> dict[int, tuple[datetime | None, datetime | None]]:
        """Per job, the window of its loaded run with the latest window end."""
        rows = self.con.execute(
            f"""SELECT job_id, window_start, window_end FROM {self.t.runs}
               WHERE status = 'loaded'
               QUALIFY row_number() OVER (PARTITION BY job_id
                                          ORDER BY window_end DESC NULLS LAST, run_id DESC) = 1"""  # noqa: S608
        ).fetchall()
        return {int(r[0]): (aware_utc(r[1]), aware_utc(r[2])) for r in rows}

    def tables(self) -> list[str]:
        """Every table a job loads into, or a job's runs loaded into (it moved since: the
        table keeps those rows; `status` left it out, found 2026-12-07)."""
        rows = self.con.execute(
            f"SELECT DISTINCT table_name FROM {self.t.jobs} WHERE table_name IS NOT NULL"  # noqa: S608
        ).fetchall()
        return sorted({str(r[0]) for r in rows} | set(self.loaded_tables()))

    def table_stats(self) -> list[TableStats]:
        """Rows and `_date` coverage of every table (`tables`)."""
        tables = self.tables()
        existing = self._main_tables()
        out = []
        for table in tables:
            if table not in existing:
                out.append(TableStats(table, 0, None, None))
                continue
            try:
                row = self.con.execute(
                    f"SELECT count(*), min(_date), max(_date) FROM {quote_ident(table)}"  # noqa: S608
                ).fetchone()
            except duckdb.BinderException:   # "a bug in csload" said status and doctor (QA)
                raise StoreError(f"table {table!r} has no column _date (renamed or dropped?), "
                                 "which csload writes on every row: give it back (ALTER TABLE "
                                 "... RENAME COLUMN ... TO _date)") from None
            assert row is not None
            out.append(TableStats(table, int(row[0]), row[1], row[2]))
        return out

    def daily_gaps(self) -> dict[int, list[date]]:
        """Per daily job: the UTC days between its first and last loaded day with no loaded run.

        Only the holes between loaded days, from this job's own runs: what `csload status`
        and `csload backfill --gaps` report is csload.load.backfill_ledger's `coverage_gaps`, which
        adds the days of runs that expired or failed at the source (they may lie before the
        first or after the last loaded day) and counts the days backfills loaded since.
        """
        rows = self.con.execute(
            f"""SELECT r.job_id, r.window_start, r.window_end FROM {self.t.runs} r
               JOIN {self.t.jobs} j USING (job_id)
               WHERE r.status = 'loaded' AND j.frequency = 'daily'
                 AND r.window_start IS NOT NULL AND r.window_end IS NOT NULL"""  # noqa: S608
        ).fetchall()
        covered: dict[int, set[date]] = {}
        for job_id, start, end in rows:
            days = covered.setdefault(int(job_id), set())
            day = start.date()
            while datetime(day.year, day.month, day.day) < end:
                days.add(day)
                day += timedelta(days=1)
        gaps: dict[int, list[date]] = {}
        for job_id, days in covered.items():
            first, last = min(days), max(days)
            missing = [first + timedelta(days=i) for i in range((last - first).days + 1)
                       if first + timedelta(days=i) not in days]
            gaps[job_id] = missing
        return gaps
