"""One order of runs: the sync loads runs in the order in which they supersede each other."""

from __future__ import annotations

from datetime import UTC, datetime

from csload.api.models import Run
from csload.load.supersede import run_order
from csload.pipeline.discover import Selection, select_runs


def at(day: int) -> datetime:
    return datetime(2026, 11, day, tzinfo=UTC)


def test_runs_without_times_are_loaded_in_their_supersede_order() -> None:
    # Neither run says when it finished or was created (a hostile or sparse API answer): the
    # supersede rule falls back on their windows, so the later window wins whatever the ids.
    later_window = Run(run_id=1, job_id=7, state="SUCCESS", start_date=at(2), end_date=at(3))
    earlier_window = Run(run_id=2, job_id=7, state="SUCCESS", start_date=at(1), end_date=at(2))
    assert run_order(earlier_window) < run_order(later_window)

    chosen = select_runs([later_window, earlier_window], done=set(), selection=Selection())
    assert [run.run_id for run in chosen] == [2, 1]


def test_finish_time_then_id_order_runs() -> None:
    runs = [Run(run_id=5, job_id=7, state="SUCCESS", finished_at=at(4)),
            Run(run_id=3, job_id=7, state="SUCCESS", finished_at=at(4)),
            Run(run_id=9, job_id=7, state="SUCCESS", created_at=at(1)),
            Run(run_id=4, job_id=7, state="FAILURE", finished_at=at(2))]
    chosen = select_runs(runs, done={5}, selection=Selection())
    assert [run.run_id for run in chosen] == [9, 3]
