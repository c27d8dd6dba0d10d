"""How one run of a batch fails while the batch is being loaded, and whether its download is
damaged rather than its data wrong.

`PartFailed` (the failing run is known) and `Unattributed` (DuckDB refused the data without
naming a part) are raised inside a batch's transaction and caught by the store
(csload.load.duckdb), which fails that run and applies the others. `damage` tells a damaged
gzip stream (download again: DamagedDownload) from data that does not parse.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from csload.errors import CsloadError, DamagedDownload, PartParseError, StoreError, part_label
from csload.load.lineage import LINEAGE_COLUMNS
from csload.transfer.gzipcheck import gzip_problem
from csload.transfer.staged import StagedRun


class PartFailed(Exception):
    """Run `run_id` of the batch cannot be loaded: `error` says why."""

    def __init__(self, run_id: int, error: CsloadError) -> None:
        super().__init__(str(error))
        self.run_id = run_id
        self.error = error


class Unattributed(Exception):
    """DuckDB refused the data but did not say which part."""


def unattributed_error(staged: StagedRun, exc: Unattributed) -> CsloadError:
    """The error of a run DuckDB refused without naming a part: damaged, else a parse error."""
    return damage(staged, None) or PartParseError(
        f"{part_label(staged.job.job_id, staged.run.run_id, None)}: {exc}",
        job_id=staged.job.job_id, run_id=staged.run.run_id)


def damage(staged: StagedRun, first: int | None) -> DamagedDownload | None:
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


def load_error(table: str, exc: Exception) -> StoreError:
    """What a batch's load into `table` failing in DuckDB says, with the way out where a
    change of the user's to the table is the cause: a constraint they added, an index on a
    column csload must widen, a lineage column renamed or dropped. Each failed every later
    sync with DuckDB's words only, and status and doctor said nothing was wrong (QA,
    2026-12-08)."""
    text = str(exc)
    cause = ""
    if isinstance(exc, duckdb.ConstraintException):
        cause = ("; a constraint on the table (a PRIMARY KEY, a UNIQUE index, a NOT NULL "
                 "column: yours?) refuses the load: csload adds a run's rows before it "
                 "removes the older rows of the same keys, and leaves the columns of other "
                 "jobs empty. Remove it (csload keeps one row per key itself): DROP INDEX, "
                 "ALTER TABLE ... ALTER COLUMN ... DROP NOT NULL, or for a PRIMARY KEY "
                 "CREATE OR REPLACE TABLE ... AS SELECT * FROM ...; then sync again")
    elif isinstance(exc, duckdb.DependencyException) or "an index depends on it" in text:
        cause = ("; csload must change a column of the table (a wider type, a new column) "
                 "and an index on it (yours?) stops DuckDB: drop the index, sync, then "
                 "create it again")
    elif isinstance(exc, duckdb.CatalogException) and "is not an table" in text:
        cause = (f"; {table} is a view (yours?), and csload loads into tables: give the view "
                 "another name, and the table whose rows it shows its name back")
    else:
        missing = [name for name in LINEAGE_COLUMNS if f'column with name "{name}"' in text]
        if isinstance(exc, duckdb.BinderException) and missing:
            cause = (f"; the table has no column {missing[0]} (renamed or dropped?), which "
                     "csload writes on every row: give it back (ALTER TABLE ... RENAME "
                     "COLUMN ... TO " f"{missing[0]}) and sync again")
    return StoreError(f"loading into table {table!r} failed: {text}{cause}")
