"""A test knob: make a run that has not finished yet end in FAILURE instead of SUCCESS.

    fail_run(sim, run_id)           that run ends in FAILURE (no files) when its time comes
    fail_once_job(sim, job_id)      the run of a `once` job (which must exist already) fails

A run's state is derived from the clock and its recorded outcome (see `model.RunRecord`), so
changing the outcome before the run finishes is all it takes; a finished run is refused, so the
truth a client may already have read never changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from csload.simulator.core import Simulator

FINISHED = ("SUCCESS", "FAILURE")


def fail_run(sim: Simulator, run_id: int) -> None:
    """Make the unfinished run `run_id` end in FAILURE."""
    run = sim.run(run_id)
    state = run.state(sim.clock.now())
    if state in FINISHED:
        raise ValueError(f"run {run_id} has already finished ({state})")
    run.outcome = "FAILURE"


def fail_once_job(sim: Simulator, job_id: int) -> int:
    """Make the run of `once` job `job_id` end in FAILURE; returns the run id."""
    job = sim.job(job_id)
    if job.frequency != "once":
        raise ValueError(f"job {job_id} is not a once job")
    if job.once_run_id is None:
        raise ValueError(f"once job {job_id} has no run yet (it waits for another once job)")
    fail_run(sim, job.once_run_id)
    return job.once_run_id
