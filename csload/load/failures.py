"""How one run of a batch fails while the batch is being loaded, and whether its download is
damaged rather than its data wrong.

`PartFailed` (the failing run is known) and `Unattributed` (DuckDB refused the data without
naming a part) are raised inside a batch's transaction and caught by the store
(csload.load.duckdb), which fails that run and applies the others. `damage` tells a damaged
gzip stream (download again: DamagedDownload) from data that does not parse.
"""

from __future__ import annotations

from pathlib import Path

from csload.errors import CsloadError, DamagedDownload, PartParseError, part_label
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
