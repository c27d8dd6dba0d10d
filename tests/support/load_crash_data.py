"""The runs of the crash test: a first day, then a batch with a re-run of it and a new day."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from csload.api.models import Job
from csload.transfer.staged import StagedPart, StagedRun
from tests.support.partgen import Writer, job, run

D1 = date(2026, 11, 20)
FIELDS = ["session_id", "view_number", "view_time", "url", "errors.message"]
BIG = 130_000   # more than one DuckDB row group, so blocks are written before the commit


def the_job() -> Job:
    return job(1, fields=FIELDS)


def rows(day: date, n: int, tag: str) -> list[dict[str, Any]]:
    t = datetime(day.year, day.month, day.day, 8)
    base = (day - D1).days * 1_000_000   # sessions of different days never share an id
    return [{"session_id": base + i, "view_number": 1, "view_time": t, "url": f"{tag}-{i}",
             "errors.message": [tag, "it's"]} for i in range(n)]


def first(folder: Path) -> StagedRun:
    return Writer(folder).staged(the_job(), run(10, 1, D1), [rows(D1, 1000, "first")])


def batch(folder: Path, write: bool = True, next_rows: int = BIG) -> list[StagedRun]:
    """The re-run of D1 (500 rows, new values) and the next day (`next_rows` rows, BIG by
    default). Without `write`, the runs of parts an earlier call wrote into `folder`."""
    nxt = D1 + timedelta(days=1)
    specs = [(run(11, 1, D1, finished_hours=30), rows(D1, 500, "rerun")),
             (run(12, 1, nxt), rows(nxt, next_rows, "next"))]
    if write:
        return [Writer(folder).staged(the_job(), r, [data]) for r, data in specs]
    out = []
    for r, _ in specs:
        path = folder / f"r{r.run_id}-p1.csv.gz"
        out.append(StagedRun(the_job(), r, (StagedPart(1, path, path.stat().st_size),)))
    return out
