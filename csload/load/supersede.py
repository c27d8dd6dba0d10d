"""Which runs supersede which: the order of runs and the window rule, as pure functions.

The rule csload applies (the reference is "apply every run in this order, one after the other";
csload gets the same table whatever the real order of application, batching and crashes):

* Runs are ordered by `(finished_at, run_id)`; the later run wins. (A run without `finished_at`
  falls back to `created_at`, then its window end, then its window start.)
* **Window rule, within one job.** A later run of a job replaces that job's earlier runs over
  the same window: the earlier run's rows are removed whole when its window lies inside the
  later run's window (the normal case: a re-run of a day, of an hour, of a `once` range), else
  only its rows whose `_date` falls in the days the two windows share. Rows the re-run no longer
  has are therefore gone, which is what a user expects from "the export of that day was redone".
  The rule is deliberately *per job*: two jobs on one scope may have different filters
  (device, segment) or fields, so one job's window says nothing about another job's rows.
* **Key rule, across the jobs of one table.** When a run exports the row key (session_id, plus
  view_number for views, under any alias), its row replaces the row with the same key from any
  earlier run of any job loading that table, and an earlier run's row never replaces a later
  one's: one row per key, the latest run wins. Keys are compared by field, not by column, so
  aliases do not matter. Rows of jobs that do not export the key take part in the window rule
  only.

The key rule is applied in SQL (csload.load.supersede_sql); this module computes the window
rule from run metadata alone (the ledger knows every loaded run's window and order).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Types only: the data's shape is all this module needs of them.
    from csload.api.models import Run


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def supersede_time(run: Run) -> datetime:
    """The timestamp that orders a run among others of the same data."""
    for value in (run.finished_at, run.created_at, run.end_date, run.start_date):
        if value is not None:
            return value
    return _EPOCH


def run_order(run: Run) -> int:
    """A single integer ordering runs by (supersede time, run id); stored as HUGEINT."""
    at = supersede_time(run)
    micros = (at - _EPOCH) // timedelta(microseconds=1)
    return (micros << 64) | run.run_id


@dataclass(frozen=True, slots=True)
class RunWindow:
    run_id: int
    job_id: int
    start: datetime | None
    end: datetime | None
    order: int


@dataclass(frozen=True, slots=True)
class Drop:
    """Rows of `run_id` to remove: all of them, or those with `date_from <= _date < date_to`."""

    run_id: int
    date_from: date | None = None
    date_to: date | None = None


def _days(start: datetime, end: datetime) -> tuple[date, date]:
    """The whole UTC days touched by [start, end), as [first, last + 1)."""
    last = end - timedelta(microseconds=1)
    return start.date(), last.date() + timedelta(days=1)


def window_drops(batch: Sequence[RunWindow], loaded: Iterable[RunWindow]) -> list[Drop]:
    """The drops the window rule implies once `batch` joins the already `loaded` runs.

    Pairs where both runs were already loaded were handled when the later of them was applied.
    Runs without a window take no part in the window rule. Each batch run is paired only with
    the runs of its job that share a day with it (an index by day): pairing every run of the
    job with every other made an hourly job's 2,915 runs take 146 s to load (QA, 2026-12-07).
    """
    runs = {w.run_id: w for w in loaded}
    runs.update({w.run_id: w for w in batch})
    by_day: dict[tuple[int, date], list[RunWindow]] = {}
    for w in runs.values():
        if w.start is not None and w.end is not None and w.start < w.end:
            first, stop = _days(w.start, w.end)
            for i in range((stop - first).days):
                by_day.setdefault((w.job_id, first + timedelta(days=i)), []).append(w)
    drops: dict[tuple[int, date | None, date | None], Drop] = {}
    for mine in {w.run_id: w for w in batch}.values():
        if mine.start is None or mine.end is None or mine.start >= mine.end:
            continue
        first, stop = _days(mine.start, mine.end)
        near = {w.run_id: w for i in range((stop - first).days)
                for w in by_day.get((mine.job_id, first + timedelta(days=i)), ())}
        for other in near.values():
            if other.order == mine.order:
                continue
            old, new = (other, mine) if other.order < mine.order else (mine, other)
            assert old.start and old.end and new.start and new.end
            start, end = max(old.start, new.start), min(old.end, new.end)
            if start >= end:
                continue
            if new.start <= old.start and old.end <= new.end:
                drop = Drop(old.run_id)
            else:
                first_day, stop_day = _days(start, end)
                drop = Drop(old.run_id, first_day, stop_day)
            drops[(drop.run_id, drop.date_from, drop.date_to)] = drop
    whole = {d.run_id for d in drops.values() if d.date_from is None}
    return sorted((d for d in drops.values() if d.date_from is None or d.run_id not in whole),
                  key=lambda d: (d.run_id, d.date_from or date.min))
