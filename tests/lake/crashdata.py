"""The runs of the lake crash tests: a first day, then a batch with a re-run of it and a new
day (the shapes of tests/load/crash_data.py, smaller: a lake writes whole files anyway)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

from crash_data import rows, the_job
from partgen import Writer, run

from csload.transfer.staged import StagedPart, StagedRun

D1 = date(2026, 11, 20)
NEXT = 3000   # rows of the new day


def first(folder: Path) -> StagedRun:
    return Writer(folder).staged(the_job(), run(10, 1, D1), [rows(D1, 1000, "first")])


def batch(folder: Path, write: bool = True) -> list[StagedRun]:
    """The re-run of D1 (500 rows, new values) and the next day."""
    specs = [(run(11, 1, D1, finished_hours=30), rows(D1, 500, "rerun")),
             (run(12, 1, D1 + timedelta(days=1)), rows(D1 + timedelta(days=1), NEXT, "next"))]
    if write:
        return [Writer(folder).staged(the_job(), r, [data]) for r, data in specs]
    out = []
    for r, _ in specs:
        path = folder / f"r{r.run_id}-p1.csv.gz"
        out.append(StagedRun(the_job(), r, (StagedPart(1, path, path.stat().st_size),)))
    return out
