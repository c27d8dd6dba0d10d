"""Daily and hourly runs appear as the clock moves; suspended jobs stop getting runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from csload.simulator import Simulator


def test_advance_days_adds_the_next_daily_runs(simulator: Simulator) -> None:
    jobs = {j.name: j.job_id for j in simulator.jobs}
    counts = {name: len(simulator.runs(job_id)) for name, job_id in jobs.items()}
    new = simulator.advance_days(1)
    assert len(new) == 2
    assert {name: len(simulator.runs(job_id)) for name, job_id in jobs.items()} == {
        name: count + (name != "Legacy sessions (CSV)") for name, count in counts.items()}
    for run_id in new:
        run = simulator.run(run_id)
        assert run.start == datetime(2026, 11, 25, tzinfo=UTC)
        assert run.created_at.date().isoformat() == "2026-11-26"
        assert run.state(simulator.clock.now()) == "SUCCESS"
        assert simulator.truth(run.job_id, run_id)
    assert simulator.advance_days(3) and len(simulator.runs(jobs["Daily sessions"])) == 7


def test_a_daily_run_is_running_before_it_finishes(simulator: Simulator) -> None:
    # From 2026-11-25 12:00 to 2026-11-26 04:05: the views run of the 25th has just started.
    simulator.advance(16 * 3600 + 5 * 60)
    job = simulator.job_named("Daily pageviews")
    latest = simulator.runs(job.job_id)[-1]
    assert latest.start.day == 25
    assert latest.state(simulator.clock.now()) == "RUNNING"
    assert simulator.truth(job.job_id, latest.run_id) == []


def test_suspend_stops_new_runs(simulator: Simulator) -> None:
    job = simulator.job_named("Daily sessions")
    simulator.suspend(job.job_id)
    assert simulator.job_state(job.job_id) == "SUSPENDED"
    before = len(simulator.runs(job.job_id))
    simulator.advance_days(2)
    assert len(simulator.runs(job.job_id)) == before


async def test_hourly_job_gets_a_run_per_hour(api: Any, simulator: Simulator) -> None:
    body = {"name": "Hourly views", "format": "CSV", "scope": "views",
            "frequency": {"value": "hourly"}, "fields": [{"fieldName": "view_time"}]}
    reply = await api.post("/v1/exports", body)
    job_id = reply.payload()["jobId"]
    assert simulator.runs(job_id) == []
    simulator.advance(2 * 3600 + 20 * 60)
    runs = simulator.runs(job_id)
    assert [(r.start.hour, r.end.hour) for r in runs] == [(12, 13), (13, 14)]
    rows = simulator.truth(job_id, runs[0].run_id)
    assert rows and all(r["view_time"].hour == 12 for r in rows)
